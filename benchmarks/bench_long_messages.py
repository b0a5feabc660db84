"""Long messages: window 64 (truncation) vs window 256 with length-bucketed batches and windows, on real corpora.

On the real-corpora profile's data (``configs/real/params.yaml``; run ``make run-real`` first for its dataset and
the base models), the profile's rung ``smollm2-8l`` is trained on trinary with the profile's own step budget twice,
side by side in this process: at ``max_length`` 64 (as the profile trains) and at 256 with length buckets. A third
run at 256 without buckets takes ``PLAIN_STEPS`` steps, for its cost per step only. Then each variant scores the test
rows over 64 tokens, the crisis suite and the whole test split: the 64 run truncated, the 64 run with windows of 64
(``long_messages: windows``) and the 256 run with windows of 256. Decisions are argmax (no operating point), so the
variants differ only by what the model sees. Figures: training seconds per step, scoring seconds, and per subset
n, macro-F1, unsafe recall, unsafe flagged at all and safe flag rate with 95% CIs. No text leaves the process.

Usage: python benchmarks/run.py long_messages   (slow: about 15 minutes on 2 cores)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PARAMS, MODEL, TASK, PLAIN_STEPS, SHORT = "configs/real/params.yaml", "smollm2-8l", "trinary", 40, 64


def run() -> dict[str, Any]:
    from components.config import load_params
    from components.evaluation.bootstrap import Bootstrap
    from components.evaluation.suites import Suite, read_suites
    from components.io import read_parquet_input

    params = load_params(REPO / PARAMS)
    frame = read_parquet_input(REPO / params.train.input, "run `make run-real` first: the profile's dataset")
    test = frame[frame["split"] == "test"].sort_values("id").reset_index(drop=True)
    crisis = read_suites(params.evaluate.suites, REPO)["crisis"]
    figures: dict[str, Any] = {"data": PARAMS, "model": MODEL, "task": TASK, "train": {}, "score": {}}
    with tempfile.TemporaryDirectory(prefix="bench-long-") as tmp:
        runs = {
            "window64": _train(params, Path(tmp), "w64", max_length=SHORT, buckets=False, steps=None),
            "window256_buckets": _train(params, Path(tmp), "w256b", max_length=256, buckets=True, steps=None),
            "window256_plain": _train(params, Path(tmp), "w256", max_length=256, buckets=False, steps=PLAIN_STEPS),
        }
        figures["train"] = {name: info for name, (_, info) in runs.items()}
        tokenizer_run = runs["window64"][0]
        long_rows = test[_token_counts(tokenizer_run, test) > SHORT].reset_index(drop=True)
        subsets = {
            f"test_over_{SHORT}_tokens": Suite("test rows longer than 64 tokens", long_rows, ""),
            "crisis": crisis,
            "test": Suite("the whole test split", test, ""),
        }
        variants = {
            "window64_truncate": (runs["window64"][0], "truncate"),
            "window64_windows": (runs["window64"][0], "windows"),
            "window256_windows": (runs["window256_buckets"][0], "windows"),
        }
        bootstrap = Bootstrap(1000, params.seed, 0.95)
        for name, (folder, mode) in variants.items():
            figures["score"][name] = _score(folder, mode, subsets, bootstrap)
    figures["train_s_per_step_ratio_256_buckets_vs_64"] = round(
        figures["train"]["window256_buckets"]["s_per_step"] / figures["train"]["window64"]["s_per_step"], 3
    )
    figures["train_s_per_step_ratio_256_plain_vs_buckets"] = round(
        figures["train"]["window256_plain"]["s_per_step"] / figures["train"]["window256_buckets"]["s_per_step"], 3
    )
    return figures


def _train(params: Any, tmp: Path, name: str, max_length: int, buckets: bool, steps: int | None) -> tuple[Path, Any]:
    from components.training.runner import run_training

    train = params.train
    profile = train.profiles[train.profile]
    hyper = profile.hyper.model_copy(
        update={
            "max_length": max_length,
            "length_buckets": buckets,
            "long_messages": "windows",
            "max_steps": steps or profile.hyper.max_steps,
        }
    )
    config = train.model_copy(
        update={
            "output_dir": str(tmp / name),
            "checkpoint_dir": str(tmp / name / ".checkpoints"),
            "profiles": {**train.profiles, train.profile: profile.model_copy(update={"hyper": hyper})},
            "wandb": train.wandb.model_copy(update={"enabled": False}),
        }
    )
    result = run_training(config, MODEL, TASK, REPO, __name__)
    steps_done, seconds = int(result.metrics["steps"]), float(result.metrics["seconds"])  # the training loop alone
    info = {"max_length": max_length, "length_buckets": buckets, "steps": steps_done, "seconds": round(seconds, 1)}
    info["s_per_step"] = round(seconds / max(1, steps_done), 3)
    info["tokens"] = int(result.metrics["tokens"])
    return result.folder, info


def _token_counts(folder: Path, frame: Any) -> Any:
    import numpy as np
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder / "adapter"))
    return np.array([len(ids) for ids in tokenizer(frame["text"].astype(str).tolist())["input_ids"]])


def _score(folder: Path, mode: str, subsets: dict[str, Any], bootstrap: Any) -> dict[str, Any]:
    from components.evaluation.suites import suite_section
    from components.export.merged import TorchPredictor, load_merged, read_run

    run = read_run(folder, REPO)
    model, tokenizer = load_merged(run)
    predictor = TorchPredictor(model, tokenizer, TASK, run.max_length, long_messages=mode)
    out: dict[str, Any] = {"max_length": run.max_length, "long_messages": mode}
    for name, suite in subsets.items():
        started = time.perf_counter()
        section = suite_section(predictor, suite, TASK, None, bootstrap)
        figures = section["figures"]
        out[name] = {
            "n": figures["n"],
            "seconds": round(time.perf_counter() - started, 2),
            **{key: figures[key] for key in ("macro_f1", "unsafe_recall", "unsafe_flagged", "safe_flag_rate")},
        }
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
