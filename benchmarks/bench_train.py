"""Training throughput and peak memory: emosafe's trainer vs a plain transformers ``Trainer`` + peft baseline.

Same base model, same rows (the prepared dataset's train split, or the bundled sample), same LoRA settings, same
global batch and step count, 2 threads, CPU. Each side runs in a fresh subprocess so peak RSS is its own; tokens/s
counts non-padding tokens actually trained on. The base is the converted SmolLM2 8-layer cut
(``models/base/smollm2-8l``; run ``emosafe convert`` first) or, if absent, a random tiny LLaMA (then the figures
only compare overheads); ``python benchmarks/bench_train.py <folder>`` picks another base.
Reported: each side's figures and ``ratio`` = ours / baseline tokens per second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STEPS, BATCH, MAX_LENGTH, THREADS, REPEATS = 20, 16, 64, 2, 2

COMMON = textwrap.dedent(
    """
    import json, resource, sys, time
    import pandas as pd, torch
    from transformers import AutoTokenizer
    base, data_path, steps, batch, max_length, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    frame = pd.read_parquet(data_path)
    frame = frame[frame["split"] == "train"].reset_index(drop=True)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    labels = {"safe": 0, "borderline": 1, "unsafe": 2}
    def report(seconds, tokens, rows):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"seconds": round(seconds, 2), "tokens": tokens, "rows": rows,
                          "tokens_per_second": round(tokens / seconds, 1), "s_per_step": round(seconds / steps, 3),
                          "peak_rss_mb": round(peak, 1)}))
    """
)

OURS = COMMON + textwrap.dedent(
    """
    from components.config.train import Hardware, Hyper, LoraSettings, ModelSpec, Profile
    from components.training.batches import encode, imbalance_weights
    from components.training.finetune import RunSpec, train
    spec = ModelSpec(family="llama", source=base)
    profile = Profile(models={"bench": spec}, hyper=Hyper(epochs=100, max_steps=steps, batch_size=batch,
                      max_length=max_length, lr=5e-4, warmup_ratio=0.0), lora=LoraSettings(r=8, alpha=16, dropout=0.0),
                      hardware=Hardware(num_threads=threads, deterministic=False))
    data = encode(frame, tokenizer, "trinary", max_length)
    empty = encode(frame.iloc[:0], tokenizer, "trinary", max_length)
    run = RunSpec("bench", "trinary", spec, profile, 0, base, 3, "bench", None)
    outcome = train(run, data, empty, int(tokenizer.pad_token_id), imbalance_weights(data.targets, "trinary",
                    "weighted_loss", 20.0))
    report(outcome.seconds, outcome.tokens, steps * batch)
    """
)

BASELINE = COMMON + textwrap.dedent(
    """
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import DataCollatorWithPadding, LlamaForSequenceClassification, Trainer, TrainingArguments
    import tempfile
    model = LlamaForSequenceClassification.from_pretrained(base, num_labels=3, pad_token_id=tokenizer.pad_token_id)
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.0,
                                             target_modules=["q_proj", "v_proj"]))
    encoded = tokenizer(list(frame["text"]), truncation=True, max_length=max_length)
    rows = [{"input_ids": ids, "attention_mask": mask, "labels": labels[label]}
            for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], frame["label"])]
    seen = {"tokens": 0}
    collator = DataCollatorWithPadding(tokenizer)
    def collate(features):
        out = collator(features)
        seen["tokens"] += int(out["attention_mask"].sum())
        return out
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=5e-4,
                                 lr_scheduler_type="linear", warmup_steps=0, logging_strategy="no", save_strategy="no",
                                 report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    report(seconds, seen["tokens"], steps * batch)
    """
)


def _base(tmp: Path, folder: str | None) -> tuple[str, str]:
    converted = Path(folder) if folder else REPO / "models" / "base" / "smollm2-8l"
    if (converted / "config.json").is_file():
        return str(converted), converted.name
    sys.path.insert(0, str(REPO))
    from tests.fixtures.tiny_training import tiny_llama_folder

    return str(tiny_llama_folder(tmp / "tiny-llama")), "tiny-llama (run `emosafe convert` for SmolLM2)"


def _data(tmp: Path) -> str:
    prepared = REPO / "data" / "prepared" / "dataset.parquet"
    if prepared.is_file():
        return str(prepared)
    sys.path.insert(0, str(REPO))
    from tests.fixtures.tiny_training import tiny_frame

    path = tmp / "dataset.parquet"
    tiny_frame(copies=10, canary=False).to_parquet(path, index=False)
    return str(path)


def _child(code: str, *args: str) -> dict[str, Any]:
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE"}  # as `emosafe train` sets it; both sides alike
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, env=env)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(base_folder: str | None = None) -> dict[str, Any]:
    """``base_folder`` overrides the converted model folder (default ``models/base/smollm2-8l``)."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        base, name = _base(tmp, base_folder)
        args = (base, _data(tmp), str(STEPS), str(BATCH), str(MAX_LENGTH), str(THREADS))
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
        for _ in range(REPEATS):  # alternate, keep each side's best: a shared machine's load drifts
            runs["ours"].append(_child(OURS, *args))
            runs["baseline"].append(_child(BASELINE, *args))
        ours, baseline = (max(runs[k], key=lambda r: r["tokens_per_second"]) for k in ("ours", "baseline"))
    return {
        "model": name,
        "steps": STEPS,
        "batch_size": BATCH,
        "max_length": MAX_LENGTH,
        "threads": THREADS,
        "repeats": REPEATS,
        "emosafe": ours,
        "transformers_trainer_peft": baseline,
        "ratio_tokens_per_second": round(ours["tokens_per_second"] / baseline["tokens_per_second"], 3),
        "ratio_peak_rss": round(ours["peak_rss_mb"] / baseline["peak_rss_mb"], 3),
    }


if __name__ == "__main__":
    print(json.dumps(run(*sys.argv[1:2]), indent=2))
