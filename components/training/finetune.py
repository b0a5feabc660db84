"""Fine-tuning one (model, task): a sequence-classification head with LoRA adapters, the same loop for every model.

LLaMA sizes load as ``LlamaForSequenceClassification``, the MiniLM baseline as ``AutoModelForSequenceClassification``;
peft adds LoRA adapters (and trains the new head fully via ``modules_to_save``); 4-bit/8-bit bases go through
``prepare_model_for_kbit_training`` (QLoRA). The loop runs under ``accelerate`` (one process here, DDP/FSDP under
``accelerate launch``), resumes from the latest complete checkpoint, and reports per-epoch validation metrics.
Raw text never leaves this module: only ids, counts and metrics.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from components.config.train import LoraSettings, ModelSpec, Profile
from components.training import checkpoint as ckpt
from components.training.batches import Encoded, collate, epoch_batches, loss_fn, shard
from components.training.epoch_metrics import evaluate_logits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run needs besides the data (all of it recorded in meta.json)."""

    name: str
    task: str
    spec: ModelSpec
    profile: Profile  # resolved for this rung (``Profile.for_model``): its lr and LoRA targets apply
    seed: int
    base_path: str
    num_labels: int
    fingerprint: str
    checkpoint_dir: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainOutcome:
    model: Any
    steps: int
    resumed_from: int
    seconds: float
    tokens: int
    curve: list[dict[str, float]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)


def setup_torch(seed: int, num_threads: int, deterministic: bool) -> None:
    """Seeds and CPU settings that make a rerun (or a resume) produce the same adapter bit for bit."""
    import random

    import numpy as np

    torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def quantization_config(kind: str, on_cuda: bool) -> Any:
    """bitsandbytes config: NF4 with double quantisation (QLoRA) or LLM.int8; None for full precision."""
    if kind == "none":
        return None
    from transformers import BitsAndBytesConfig

    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if on_cuda else torch.float32,
        bnb_4bit_quant_storage=torch.bfloat16 if on_cuda else torch.uint8,  # bf16 storage lets FSDP shard 4-bit
    )


def load_base(run: RunSpec, pad_token_id: int, on_cuda: bool = False) -> Any:
    """The base model with a fresh classification head (LLaMA or BERT), optionally 4/8-bit quantized.

    Weights load in the profile's precision (bf16 halves GPU memory); peft keeps the adapters in fp32. A quantized
    base is placed on this process's GPU at load time (bitsandbytes quantizes while loading)."""
    from transformers import AutoModelForSequenceClassification, LlamaForSequenceClassification

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    kwargs: dict[str, Any] = {"num_labels": run.num_labels, "pad_token_id": pad_token_id}
    kwargs["dtype"] = dtypes[run.profile.hardware.precision] if on_cuda else torch.float32
    kwargs["problem_type"] = "single_label_classification" if run.task == "trinary" else "multi_label_classification"
    if run.spec.revision and not Path(run.base_path).is_dir():
        kwargs["revision"] = run.spec.revision
    quant = quantization_config(run.spec.quantization, on_cuda)
    if quant is not None:
        kwargs["quantization_config"] = quant
        if on_cuda:
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    loader = LlamaForSequenceClassification if run.spec.family == "llama" else AutoModelForSequenceClassification
    if run.spec.num_layers is not None and not run.spec.convert:
        kwargs["num_hidden_layers"] = run.spec.num_layers
    return loader.from_pretrained(run.base_path, **kwargs)


def add_lora(model: Any, spec: ModelSpec, lora: LoraSettings, gradient_checkpointing: bool = False) -> Any:
    """Wrap with LoRA adapters; the classification head (``score``/``classifier``) is trained in full.

    ``lora`` is the profile's setting resolved for this rung (``Profile.for_model``: its ``lora_targets`` folded in).
    """
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    if spec.quantization != "none":
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model, use_gradient_checkpointing=gradient_checkpointing
        )
    default = lora.target_modules if spec.family == "llama" else lora.bert_target_modules
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(default),
    )
    return get_peft_model(model, config)


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """LoRA + head weights by their (unwrapped) parameter names: what checkpoints and comparisons use."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


@dataclass
class _Loop:
    """The live training objects (after ``accelerator.prepare``) and the step plan."""

    accelerator: Any
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    per_epoch: int
    total: int


def _setup(run: RunSpec, n_rows: int, pad_id: int) -> _Loop:
    from accelerate import Accelerator

    hyper, hardware = run.profile.hyper, run.profile.hardware
    setup_torch(run.seed, hardware.num_threads, hardware.deterministic)
    use_cpu = hardware.device == "cpu" or (hardware.device == "auto" and not torch.cuda.is_available())
    precision = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[hardware.precision]
    accelerator = Accelerator(cpu=use_cpu, mixed_precision=precision)
    log.info(
        "%s-%s: %d process(es) on %s, %s",
        run.name,
        run.task,
        accelerator.num_processes,
        accelerator.device,
        accelerator.distributed_type,
    )
    model = add_lora(load_base(run, pad_id, on_cuda=not use_cpu), run.spec, run.profile.lora, not use_cpu)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hyper.lr, weight_decay=hyper.weight_decay)
    per_epoch = len(epoch_batches(n_rows, hyper.batch_size, run.seed, 0))
    total = min(hyper.max_steps or per_epoch * hyper.epochs, per_epoch * hyper.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _linear_schedule(math.ceil(total * hyper.warmup_ratio), total)
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    return _Loop(accelerator, model, optimizer, scheduler, per_epoch, total)


def train(
    run: RunSpec,
    train_data: Encoded,
    val_data: Encoded,
    pad_id: int,
    weights: torch.Tensor | None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainOutcome:
    """Train with the profile's hyper-parameters; resumes from ``run.checkpoint_dir`` when a checkpoint of the
    same fingerprint exists (its curve and epoch reports too). Raises ValueError when the training split is empty."""
    from tqdm.auto import tqdm

    if len(train_data) == 0:
        raise ValueError(f"{run.name}-{run.task}: the training split is empty")
    loop = _setup(run, len(train_data), pad_id)
    acc, hyper = loop.accelerator, run.profile.hyper
    outcome = TrainOutcome(model=None, steps=loop.total, resumed_from=0, seconds=0.0, tokens=0)
    found = ckpt.latest_checkpoint(run.checkpoint_dir, run.fingerprint) if run.checkpoint_dir else None
    if found is not None:
        outcome.resumed_from, history = ckpt.load_checkpoint(
            found, acc.unwrap_model(loop.model), loop.optimizer, loop.scheduler
        )
        outcome.curve, outcome.epochs, outcome.tokens = history["curve"], history["epochs"], history["tokens"]
        log.info("%s-%s: resuming from step %d (%s)", run.name, run.task, outcome.resumed_from, found.path)
    weights = weights.to(acc.device) if weights is not None else None
    began = time.perf_counter()
    bar = tqdm(
        total=loop.total, initial=outcome.resumed_from, desc=f"{run.name}-{run.task}", disable=not acc.is_main_process
    )
    loop.model.train()
    for step in range(outcome.resumed_from, loop.total):
        loss = _step(loop, run, train_data, pad_id, weights, step, outcome)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if (step + 1) % loop.per_epoch == 0 or step + 1 == loop.total:
            report = evaluate(loop.model, val_data, pad_id, run.task, hyper.batch_size, weights, acc)
            report |= {"epoch": step // loop.per_epoch + 1, "step": step + 1}
            outcome.epochs.append(report)
            if on_epoch is not None and acc.is_main_process:
                on_epoch(report)
            loop.model.train()
        if run.checkpoint_dir and (step + 1) % run.profile.hardware.checkpoint_every == 0 and step + 1 < loop.total:
            _checkpoint(loop, run, step + 1, outcome)
    bar.close()
    acc.wait_for_everyone()
    outcome.seconds = time.perf_counter() - began
    outcome.model = acc.unwrap_model(loop.model)
    outcome.final = outcome.epochs[-1] if outcome.epochs else {}
    return outcome


def _step(
    loop: _Loop, run: RunSpec, data: Encoded, pad_id: int, weights: torch.Tensor | None, step: int, out: TrainOutcome
) -> float:
    """One optimizer step on this process's shard of global batch ``step`` (a function of seed and epoch)."""
    acc = loop.accelerator
    epoch, index = divmod(step, loop.per_epoch)
    hyper = run.profile.hyper
    lengths = [len(ids) for ids in data.input_ids] if hyper.length_buckets else None
    batch = epoch_batches(len(data), hyper.batch_size, run.seed, epoch, lengths)[index]
    inputs = {
        k: v.to(acc.device)
        for k, v in collate(data, shard(batch, acc.process_index, acc.num_processes), pad_id).items()
    }
    labels, row_weights = inputs.pop("labels"), inputs.pop("row_weights", None)
    with acc.autocast():
        logits = loop.model(**inputs).logits
    per_row = loss_fn(logits, labels, run.task, weights)
    if row_weights is not None:  # train.weights (curate): a suspect label counts less, the batch size does not change
        per_row = per_row * row_weights
    # Sum over the shard / global batch size, times world size: DDP's gradient mean then equals the global mean.
    loss = per_row.sum() * acc.num_processes / len(batch)
    acc.backward(loss)
    loop.optimizer.step()
    loop.scheduler.step()
    loop.optimizer.zero_grad(set_to_none=True)
    out.tokens += int(inputs["attention_mask"].sum()) * acc.num_processes
    value = float(loss.detach())
    out.curve.append({"step": step + 1, "loss": value, "lr": float(loop.scheduler.get_last_lr()[0])})
    return value


def _checkpoint(loop: _Loop, run: RunSpec, step: int, outcome: TrainOutcome) -> None:
    acc = loop.accelerator
    acc.wait_for_everyone()
    if acc.is_main_process and run.checkpoint_dir is not None:
        history = {"curve": outcome.curve, "epochs": outcome.epochs, "tokens": outcome.tokens}
        state = trainable_state(acc.unwrap_model(loop.model))
        ckpt.save_checkpoint(run.checkpoint_dir, step, state, loop.optimizer, loop.scheduler, run.fingerprint, history)
    acc.wait_for_everyone()


@torch.no_grad()
def evaluate(
    model: Any, data: Encoded, pad_id: int, task: str, batch_size: int, weights: torch.Tensor | None, accelerator: Any
) -> dict[str, Any]:
    """Validation metrics (every process evaluates the whole split, so no gather is needed)."""
    model.eval()
    if len(data) == 0:
        return {}
    chunks = []
    for begin in range(0, len(data), batch_size):
        inputs = collate(data, list(range(begin, min(begin + batch_size, len(data)))), pad_id)
        inputs.pop("labels")
        with accelerator.autocast():
            chunks.append(model(**{k: v.to(accelerator.device) for k, v in inputs.items()}).logits.float().cpu())
    logits = torch.cat(chunks)
    loss = float(loss_fn(logits, data.targets, task, None if weights is None else weights.cpu()).mean())
    return {"val_loss": loss, **evaluate_logits(logits, data.targets, task)}


def _linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor
