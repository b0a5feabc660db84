"""A training run folder (``models/<model>-<task>/``) as one plain torch classifier: LoRA folded in.

The train stage saves the peft adapter (LoRA + the fully trained head) and the tokenizer under ``adapter/`` and the
base model's location in ``adapter/adapter_config.json``; ``merge_and_unload`` adds ``B @ A * alpha / r`` into the
base weights, so the exported graph is a plain LlamaForSequenceClassification (or BERT for MiniLM) with no peft code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from components.errors import EmosafeError, EvaluationError
from components.evaluation.predictors import Predictor
from components.schema import CATEGORIES, LABELS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunInfo:
    """What export needs to know about a training run (all read from its files)."""

    folder: Path
    task: str
    family: str
    base_path: str
    num_layers: int | None
    max_length: int
    long_messages: str  # truncate | windows (components.export.long_messages)
    meta: dict[str, Any]

    @property
    def num_labels(self) -> int:
        return len(LABELS) if self.task == "trinary" else len(CATEGORIES)


def read_run(folder: Path, root: Path = Path()) -> RunInfo:
    """Read a run folder's labels, meta and adapter config. Raises EmosafeError naming the missing file/field."""
    adapter = folder / "adapter" / "adapter_config.json"
    for needed in (folder / "labels.json", folder / "meta.json", adapter):
        if not needed.is_file():
            raise EmosafeError(f"{needed}: missing; is {folder} a finished `emosafe train` run?")
    labels, meta, config = (
        json.loads(p.read_text(encoding="utf-8")) for p in (folder / "labels.json", folder / "meta.json", adapter)
    )
    task = str(labels.get("task"))
    if task not in ("trinary", "taxonomy"):
        raise EmosafeError(f"{folder / 'labels.json'}: field 'task' must be trinary or taxonomy")
    params = meta.get("params") or {}
    spec = params.get("spec") or {}
    base = str(config.get("base_model_name_or_path") or "")
    base_path = base if Path(base).is_absolute() or not (root / base).exists() else str(root / base)
    if not base or not Path(base_path).exists():
        raise EmosafeError(f"{adapter}: base model '{base}' not found (run `emosafe convert` first)")
    return RunInfo(
        folder=folder,
        task=task,
        family=str(spec.get("family", "llama")),
        base_path=base_path,
        num_layers=None if spec.get("convert", True) else spec.get("num_layers"),
        max_length=int((params.get("hyper") or {}).get("max_length", 64)),
        long_messages=str((params.get("hyper") or {}).get("long_messages", "truncate")),
        meta=meta,
    )


def load_merged(run: RunInfo) -> tuple[Any, Any]:
    """(merged model in eval mode, tokenizer with a pad token). The head and LoRA come from ``adapter/``."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(run.folder / "adapter"))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"num_labels": run.num_labels, "pad_token_id": tokenizer.pad_token_id}
    kwargs["problem_type"] = "single_label_classification" if run.task == "trinary" else "multi_label_classification"
    if run.num_layers is not None:
        kwargs["num_hidden_layers"] = run.num_layers
    loader = LlamaForSequenceClassification if run.family == "llama" else AutoModelForSequenceClassification
    base = loader.from_pretrained(run.base_path, **kwargs)
    model = PeftModel.from_pretrained(base, str(run.folder / "adapter")).merge_and_unload()
    model.eval()
    label_names = LABELS if run.task == "trinary" else CATEGORIES
    model.config.id2label = dict(enumerate(label_names))
    model.config.label2id = {name: i for i, name in enumerate(label_names)}
    return model, tokenizer


def encode(tokenizer: Any, texts: Sequence[str], max_length: int | None) -> list[list[int]]:
    """Token ids as training produced them (truncation, special tokens, no padding); ``None``: no truncation."""
    if max_length is None:
        return [list(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]
    return [list(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Right padding to the longest message, with the attention mask (torch tensors)."""
    import torch

    width = max(1, *(len(s) for s in sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return ids, mask


def ids_logits(model: Any, encoded: Sequence[Sequence[int]], pad_id: int, batch_size: int = 32) -> NDArray[np.float32]:
    """Logits of the torch model for tokenised messages, in input order. Batches are cut from the messages sorted
    by length, so a long message never pads a batch of short ones (real corpora mix tweets and forum posts)."""
    import torch

    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = np.zeros((len(encoded), int(model.config.num_labels)), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = pad([encoded[i] for i in rows], pad_id)
            out[rows] = model(input_ids=ids, attention_mask=mask).logits.float().numpy()
    return out


def torch_logits(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 32
) -> NDArray[np.float32]:
    """Logits of the torch model in input order, each message truncated to ``max_length`` tokens."""
    return ids_logits(model, encode(tokenizer, texts, max_length), int(tokenizer.pad_token_id), batch_size)


class TorchPredictor:
    """The merged torch model behind the evaluation ``Predictor`` protocol (benchmarks compare it with ONNX).

    ``long_messages="windows"`` scores a message longer than ``max_length`` as overlapping windows, by its
    riskiest window (``components.export.long_messages``); ``truncate`` keeps its first ``max_length`` tokens."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        task: str,
        max_length: int,
        batch_size: int = 32,
        long_messages: str = "truncate",
    ) -> None:
        self.model, self.tokenizer, self.task = model, tokenizer, task
        self.max_length, self.batch_size, self.long_messages = max_length, batch_size, long_messages

    def predict(self, texts: Sequence[str]) -> NDArray[np.float64]:
        from components.evaluation.operating_point import probabilities

        pad_id = int(self.tokenizer.pad_token_id)
        if self.long_messages != "windows":
            encoded = encode(self.tokenizer, texts, self.max_length)
            return probabilities(ids_logits(self.model, encoded, pad_id, self.batch_size), self.task)
        from components.export import long_messages as w

        layout = w.special_layout(
            self.tokenizer(w.PROBE)["input_ids"], self.tokenizer(w.PROBE, add_special_tokens=False)["input_ids"]
        )
        pieces, owners = w.windows(encode(self.tokenizer, texts, None), self.max_length, *layout)
        scores = probabilities(ids_logits(self.model, pieces, pad_id, self.batch_size), self.task)
        return w.riskiest(scores, owners, len(texts), self.task)


def run_predictor(run_dir: Path, task: str, root: Path = Path()) -> tuple[Predictor, dict[str, Any]]:
    """A Predictor over a finished training run (base + LoRA merged, score head), and its size for the report."""
    run = read_run(run_dir, root)
    if run.task != task:
        raise EvaluationError(f"{run_dir / 'labels.json'}: task is {run.task}, expected {task}")
    model, tokenizer = load_merged(run)
    parameters = sum(p.numel() for p in model.parameters())
    info = {
        "source": str(run_dir),
        "base": run.base_path,
        "parameters": int(parameters),
        "params_millions": round(parameters / 1e6, 1),
        "weights_mb": round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 1),
        "device": "cpu",
    }
    return TorchPredictor(model, tokenizer, task, run.max_length, long_messages=run.long_messages), info
