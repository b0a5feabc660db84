"""int8 ONNX vs fp32 ONNX vs fp32 torch on the same messages, in one run: latency, throughput, size, peak RSS, F1.

Model: the fine-tuned on-device run (default ``models/smollm2-30l-trinary``, or ``EMOSAFE_BENCH_RUN=<run folder>``;
its base is resolved relative to the folder two levels up, as ``emosafe export`` does): LoRA merged into the base,
exported and quantized with the export stage's own functions and params.yaml's ``export.quantize`` (the exclusions
applied are reported). F1: torch fp32, ONNX fp32 and ONNX int8 scored on the test split of
``EMOSAFE_BENCH_DATA`` (default ``data/augmented/dataset.parquet``) through the one evaluation path. Without a
trained run it falls back to SmolLM2-135M cut to 8 layers with a random 3-class head (speed and memory only).

Latency, throughput and peak RSS come from ``engine_timing.py`` (fresh child processes, engines taking turns).
Figures are absolute and as ratios against fp32 torch.

Usage: python benchmarks/run.py export   |   python benchmarks/bench_export.py [--cut LAYERS] [--run DIR]
(``EMOSAFE_BENCH_QUANTIZE='{"method": "block8"}'`` overrides fields of export.quantize to compare recipes)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from engine_timing import SHAPES, time_engines

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench_export")
RUN = "models/smollm2-30l-trinary"
DATA = "data/augmented/dataset.parquet"
GOAL_SPEEDUP = 2.5


def run(layers: int = 8, threads: int = 2, run_dir: Path | None = None, cut: bool = False) -> dict[str, Any]:
    """The fine-tuned run when it exists (``run_dir``, $EMOSAFE_BENCH_RUN or models/smollm2-30l-trinary) unless
    ``cut``, else the ``layers``-layer cut of SmolLM2 with a random head."""
    sys.path.insert(0, str(REPO))
    run_dir = run_dir or Path(os.environ.get("EMOSAFE_BENCH_RUN", REPO / RUN))
    finetuned = not cut and (run_dir / "adapter" / "adapter_config.json").is_file()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build = _build_run(folder, run_dir, threads) if finetuned else _build(folder, layers)
        engines = time_engines(folder, threads)
    base = engines["torch_fp32"]
    ratios = {name: _ratios(e, base) for name, e in engines.items()}
    agree = sum(a == b for a, b in zip(engines["onnx_int8"]["labels"], base["labels"], strict=True))
    int8 = ratios["onnx_int8"]
    model = (
        f"fine-tuned run {run_dir.name} (LoRA merged)"
        if finetuned
        else f"SmolLM2-135M first {layers} layers, LlamaForSequenceClassification (random head)"
    )
    return {
        "model": model,
        "threads": threads,
        "build": build,
        "engines": engines,
        "vs_torch_fp32": ratios,
        "int8_label_agreement_with_torch_b8": agree / len(base["labels"]),
        "goal": {"speedup_min": GOAL_SPEEDUP, "met": all(int8[f"speedup_b{b}_p50"] >= GOAL_SPEEDUP for b, _ in SHAPES)},
    }


def _ratios(engine: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    speed = {
        f"speedup_b{b}_{q}": round(base[f"b{b}"][f"{q}_ms"] / engine[f"b{b}"][f"{q}_ms"], 2)
        for b, _ in SHAPES
        for q in ("p50", "p95")
    }
    return speed | {
        "size_ratio": round(engine["bytes"] / base["bytes"], 3),
        "peak_rss_ratio": round(engine["peak_rss_mb"] / base["peak_rss_mb"], 3),
    }


def _build_run(folder: Path, run_dir: Path, threads: int) -> dict[str, Any]:
    """Merge, save the torch model, export + quantize as the export stage does, and score test with all three."""
    import torch

    from components.export.bundle import LABELS_FILE, label_map
    from components.export.merged import encode, load_merged, pad, read_run
    from components.export.onnx import export_onnx, model_bytes, quantize_int8
    from components.export.runtime import OnnxPredictor
    from components.stages.export import calibration_batches

    torch.set_num_threads(threads)
    config, source = export_config()
    started = time.perf_counter()
    run = read_run(run_dir, run_dir.resolve().parents[1])
    model, tokenizer = load_merged(run)
    load_s = time.perf_counter() - started
    model.save_pretrained(folder / "torch", safe_serialization=True)
    model.config.to_json_file(str(folder / "config.json"))
    tokenizer.save_pretrained(str(folder))
    labels = label_map(run.task, run.max_length)
    (folder / LABELS_FILE).write_text(json.dumps(labels.to_dict()))
    test = _test_split(Path(os.environ.get("EMOSAFE_BENCH_DATA", REPO / DATA)))
    sample = pad(encode(tokenizer, test["text"].astype(str).tolist()[:2], run.max_length), tokenizer.pad_token_id)
    exported = export_onnx(model, *sample, folder / "model_fp32.onnx", config.opset, 2_000_000_000)
    settings = config.quantize
    log.info("quantizing with %s (%s)", settings.model_dump(mode="json"), source)
    import pandas as pd

    frame = pd.read_parquet(Path(os.environ.get("EMOSAFE_BENCH_DATA", REPO / DATA)))
    calibration = calibration_batches(config, frame, OnnxPredictor(folder, "fp32", verify=False))
    quantized = quantize_int8(
        folder / "model_fp32.onnx", folder / "model_int8.onnx", settings, 2_000_000_000, calibration
    )
    quality = _quality(folder, model, tokenizer, labels, test, config, threads)
    return {
        "load_merge_s": round(load_s, 1),
        "export_s": round(exported.seconds, 1),
        "quantize_s": round(quantized.seconds, 1),
        "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "fp32_onnx_mb": round(model_bytes(folder / "model_fp32.onnx") / 2**20, 1),
        "int8_onnx_mb": round(model_bytes(folder / "model_int8.onnx") / 2**20, 1),
        "quantization": {
            "settings_source": source,
            "settings": settings.model_dump(mode="json"),
            "excluded_nodes": list(quantized.excluded_nodes),
            "unmatched_exclusions": list(getattr(quantized, "unmatched", ())),
            "quantized_nodes": quantized.quantized_nodes,
            "activations": quantized.activations,
        },
        "quality": quality,
    }


def export_config() -> tuple[Any, str]:
    """The ``export`` section as ``emosafe export`` reads it from params.yaml, or the code defaults when params.yaml
    does not load (several people edit it); ``EMOSAFE_BENCH_QUANTIZE`` (JSON) overrides fields of ``quantize`` to
    compare recipes. The second item says which settings were used."""
    from components.config import load_params
    from components.config.export import ExportConfig
    from components.errors import EmosafeError

    try:
        config, source = load_params(REPO / "params.yaml").export, "params.yaml export.quantize"
    except EmosafeError as exc:
        log.warning("params.yaml did not load (%s): using the code defaults of export.quantize", exc)
        config, source = ExportConfig(), "code defaults (ExportConfig().quantize; params.yaml did not load)"
    overrides = json.loads(os.environ.get("EMOSAFE_BENCH_QUANTIZE", "{}"))  # e.g. '{"method": "block8"}'
    if overrides:
        quantize = type(config.quantize)(**(config.quantize.model_dump() | overrides))
        config, source = config.model_copy(update={"quantize": quantize}), f"{source} + EMOSAFE_BENCH_QUANTIZE"
    return config, source


def random_calibration(batches: int, low: int, high: int) -> list[dict[str, Any]]:
    """Calibration batches of 8 x 64 random token ids, for models whose weights are random too: the channels the
    per-token recipes find then mean nothing, but the time and memory of the pass are the real ones."""
    import numpy as np

    rng = np.random.default_rng(0)
    ids = [rng.integers(low, high, size=(8, 64), dtype=np.int64) for _ in range(batches)]
    return [{"input_ids": batch, "attention_mask": np.ones_like(batch)} for batch in ids]


def _test_split(path: Path) -> Any:
    import pandas as pd

    frame = pd.read_parquet(path)
    return frame[frame["split"] == "test"].sort_values("id").reset_index(drop=True)


def _quality(folder: Path, model: Any, tokenizer: Any, labels: Any, test: Any, config: Any, threads: int) -> Any:
    """Test macro-F1 of torch fp32, ONNX fp32 and ONNX int8 (evaluation path), and int8's drops against both."""
    from components.evaluation.measure import evaluate
    from components.export.checks import compare_quantized
    from components.export.merged import TorchPredictor
    from components.export.runtime import OnnxPredictor

    size, thresholds = config.batch_size, labels.thresholds or None
    predictors = {"torch_fp32": TorchPredictor(model, tokenizer, labels.task, labels.max_length, size)} | {
        f"onnx_{v}": OnnxPredictor(folder, v, size, threads, verify=False) for v in ("fp32", "int8")
    }
    results = {name: evaluate(p, test, labels.task, thresholds) for name, p in predictors.items()}
    vs_torch = compare_quantized(results["torch_fp32"], results["onnx_int8"], config.limits)
    vs_onnx = compare_quantized(results["onnx_fp32"], results["onnx_int8"], config.limits)
    keep = ("macro_f1_fp32", "macro_f1_int8", "macro_f1_drop", "f1_drop", "label_agreement", "passed", "problems")
    return {
        "split": "test",
        "n": len(test),
        "task": labels.task,
        "macro_f1": {name: round(r.report.macro_f1.value or 0.0, 4) for name, r in results.items()},
        "int8_vs_torch_fp32": {k: v for k, v in vs_torch.to_dict().items() if k in keep},
        "int8_vs_onnx_fp32_export_gate": {k: v for k, v in vs_onnx.to_dict().items() if k in keep},
    }


def _build(folder: Path, layers: int) -> dict[str, Any]:
    import torch
    from transformers import LlamaForSequenceClassification

    from components.export.onnx import export_onnx, model_bytes, quantize_int8
    from components.models import SMOLLM2, cut_layers, load_tokenizer, resolve

    tokenizer = load_tokenizer(SMOLLM2)
    started = time.perf_counter()
    full = LlamaForSequenceClassification.from_pretrained(
        resolve(SMOLLM2), gguf_file=SMOLLM2.gguf_file, num_labels=3, pad_token_id=tokenizer.pad_token_id
    )
    torch.manual_seed(0)
    model = cut_layers(full, layers)
    del full
    load_s = time.perf_counter() - started
    model.save_pretrained(folder / "torch", safe_serialization=True)
    ids = torch.randint(100, 40000, (2, 16))
    exported = export_onnx(model, ids, torch.ones_like(ids), folder / "model_fp32.onnx", 18, 2_000_000_000)
    config, _ = export_config()
    calibration = random_calibration(4, 100, 40000)  # a random head: speed only
    quantized = quantize_int8(
        folder / "model_fp32.onnx", folder / "model_int8.onnx", config.quantize, 2_000_000_000, calibration
    )
    return {
        "load_s": round(load_s, 1),
        "export_s": round(exported.seconds, 1),
        "quantize_s": round(quantized.seconds, 1),
        "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "fp32_onnx_mb": round(model_bytes(folder / "model_fp32.onnx") / 2**20, 1),
        "int8_onnx_mb": round(model_bytes(folder / "model_int8.onnx") / 2**20, 1),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    cut = int(args[args.index("--cut") + 1]) if "--cut" in args else 8
    chosen = Path(args[args.index("--run") + 1]) if "--run" in args else None
    print(json.dumps(run(cut, run_dir=chosen, cut="--cut" in args), indent=2))
