"""Prefix-cached vs naive label-likelihood scoring on SmolLM2-135M-Instruct cut to a few layers.

Naive = one full forward pass of prefix + message + answer per (message, label), batched the same way; cached =
the few-shot prefix run once and its KV cache reused (with single-token answers read in one row per message).
Reports seconds for each, the speed-up ratio (target >= 2x) and the largest score difference between them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run(num_layers: int = 4, messages: int = 16, k: int = 5, batch_size: int = 8) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import torch

    from components.evaluation.prompting import LikelihoodPredictor, draw_examples, parse_template, render
    from components.models import SMOLLM2, load_causal_lm, load_tokenizer

    torch.set_num_threads(2)
    frame = _dataset(pd)
    texts = frame.loc[frame["split"] != "train", "text"].astype(str).tolist()[:messages]
    tokenizer, model = load_tokenizer(SMOLLM2), load_causal_lm(SMOLLM2, num_layers)
    figures: dict[str, Any] = {"model": f"SmolLM2-135M-Instruct, first {num_layers} layers", "k": k}
    for task in ("trinary", "taxonomy"):
        path = REPO / "prompts" / "evaluate" / f"{task}.v1.txt"
        prompt = render(parse_template(path.read_text(), task, path.name), draw_examples(frame, k, seed=13))
        timings, outputs = {}, {}
        for name, cached in (("naive", False), ("cached", True)):
            predictor = LikelihoodPredictor(model, tokenizer, prompt, batch_size, use_prefix_cache=cached)
            predictor.predict(texts[:2])  # warm-up
            start = time.perf_counter()
            outputs[name] = predictor.predict(texts)
            timings[name] = time.perf_counter() - start
        figures[task] = {
            "messages": len(texts),
            "prefix_tokens": predictor.describe()["prefix_tokens"],
            "naive_seconds": round(timings["naive"], 2),
            "cached_seconds": round(timings["cached"], 2),
            "speedup": round(timings["naive"] / timings["cached"], 2),
            "max_abs_prob_diff": float(np.abs(outputs["naive"] - outputs["cached"]).max()),
        }
    return figures


def _dataset(pd: Any) -> Any:
    """The prepared dataset when present, else the bundled sample split on the fly (no DVC run needed)."""
    prepared = REPO / "data" / "prepared" / "dataset.parquet"
    if prepared.is_file():
        return pd.read_parquet(prepared)
    from components.config import parse_params
    from components.data.dataset import assign_splits, merge_records, to_frame
    from components.data.sources import read_source

    params = parse_params(
        {"prepare": {"sources": [{"name": "sample", "kind": "emosafe", "path": "data/sample/messages.jsonl"}]}}
    )
    records, _ = merge_records(read_source(params.prepare.sources[0], REPO), "most_severe")
    return to_frame(records, assign_splits(records, params.prepare.split, params.seed))
