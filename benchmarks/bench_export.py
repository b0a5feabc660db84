"""int8 ONNX vs fp32 ONNX vs fp32 torch on the same messages, in one run: latency, throughput, size, peak RSS, F1.

Model: the fine-tuned on-device run (default ``models/smollm2-30l-trinary``, or ``EMOSAFE_BENCH_RUN=<run folder>``;
its base is resolved relative to the folder two levels up, as ``emosafe export`` does): LoRA merged into the base,
exported and quantized with the export stage's own functions and params.yaml's ``export.quantize`` (the exclusions
applied are reported). F1: torch fp32, ONNX fp32 and ONNX int8 scored on the test split of
``EMOSAFE_BENCH_DATA`` (default ``data/augmented/dataset.parquet``) through the one evaluation path. Without a
trained run it falls back to SmolLM2-135M cut to 8 layers with a random 3-class head (speed and memory only).

Each engine's latency runs in fresh child processes so its peak RSS is its own: ``ROUNDS`` rounds in which the
engines take turns (the CPU is shared, so a burst of other work lands on all engines alike), the times pooled
into p50/p95, each process's load average recorded. Shapes: batch 1 x 128 tokens and batch 8 x 128 tokens
(random ids, no padding). Figures are absolute and as ratios against fp32 torch.

Usage: python benchmarks/run.py export   |   python benchmarks/bench_export.py [--cut LAYERS] [--run DIR]
(``EMOSAFE_BENCH_QUANTIZE='{"method": "block8"}'`` overrides fields of export.quantize to compare recipes)
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench_export")
SHAPES = ((1, 128), (8, 128))
REPEATS = {1: 30, 8: 12}
ROUNDS = 3  # engines take turns (torch, ONNX fp32, ONNX int8, torch, ...) so others' load hits all of them alike
ENGINES = ("torch_fp32", "onnx_fp32", "onnx_int8")


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
        engines = _engines(folder, threads)
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
    quantized = quantize_int8(folder / "model_fp32.onnx", folder / "model_int8.onnx", settings, 2_000_000_000)
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


def _test_split(path: Path) -> Any:
    import pandas as pd

    frame = pd.read_parquet(path)
    return frame[frame["split"] == "test"].sort_values("id").reset_index(drop=True)


def _quality(folder: Path, model: Any, tokenizer: Any, labels: Any, test: Any, config: Any, threads: int) -> Any:
    """Test macro-F1 of torch fp32, ONNX fp32 and ONNX int8 (evaluation path), and int8's drops against both."""
    from components.evaluation.measure import evaluate
    from components.export.checks import compare_quantized
    from components.export.merged import TorchPredictor
    from components.export.onnx import OnnxPredictor

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

    from components.config.export import QuantizeConfig
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
    quantized = quantize_int8(folder / "model_fp32.onnx", folder / "model_int8.onnx", QuantizeConfig(), 2_000_000_000)
    return {
        "load_s": round(load_s, 1),
        "export_s": round(exported.seconds, 1),
        "quantize_s": round(quantized.seconds, 1),
        "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "fp32_onnx_mb": round(model_bytes(folder / "model_fp32.onnx") / 2**20, 1),
        "int8_onnx_mb": round(model_bytes(folder / "model_int8.onnx") / 2**20, 1),
    }


def _engines(folder: Path, threads: int) -> dict[str, dict[str, Any]]:
    """``ROUNDS`` fresh processes per engine, interleaved; latencies pooled over rounds, peak RSS the largest."""
    import numpy as np

    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in ENGINES}
    for _ in range(ROUNDS):
        for name in ENGINES:
            rounds[name].append(_child(name, folder, threads))
    engines = {}
    for name, runs in rounds.items():
        figures: dict[str, Any] = {"bytes": runs[0]["bytes"], "rounds": ROUNDS}
        for b, t in SHAPES:
            times = [ms for run in runs for ms in run[f"b{b}_ms"]]
            p50, p95 = float(np.percentile(times, 50)), float(np.percentile(times, 95))
            rate = b / p50 * 1000
            figures[f"b{b}"] = {
                "p50_ms": round(p50, 1),
                "p95_ms": round(p95, 1),
                "n": len(times),
                "messages_per_s": round(rate, 1),
                "tokens_per_s": round(rate * t),
            }
        figures["labels"] = runs[0]["labels"]
        figures["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
        figures["load_avg_1m"] = [run["load_avg_1m"] for run in runs]  # shared CPU: read p95 with it
        engines[name] = figures
    return engines


def _child(engine: str, folder: Path, threads: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, __file__, "--engine", engine, str(folder), str(threads)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=1800,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def _measure(engine: str, folder: Path, threads: int) -> dict[str, Any]:
    """Runs in a fresh process: load one engine, warm up, time each shape (its share of ``REPEATS`` for one round),
    report the raw times, peak RSS and labels."""
    import numpy as np

    rng = np.random.default_rng(0)
    batches = {b: rng.integers(100, 40000, size=(b, t), dtype=np.int64) for b, t in SHAPES}
    if engine == "torch_fp32":
        import torch
        from transformers import LlamaForSequenceClassification

        torch.set_num_threads(threads)
        model = LlamaForSequenceClassification.from_pretrained(folder / "torch").eval()  # type: ignore[no-untyped-call]
        size = sum(p.stat().st_size for p in (folder / "torch").glob("*.safetensors"))

        def forward(ids: Any) -> Any:
            with torch.no_grad():
                t = torch.from_numpy(ids)
                return model(input_ids=t, attention_mask=torch.ones_like(t)).logits.numpy()
    else:
        import onnxruntime as ort

        from components.export.onnx import model_bytes

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        path = folder / ("model_int8.onnx" if engine == "onnx_int8" else "model_fp32.onnx")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        size = model_bytes(path)

        def forward(ids: Any) -> Any:
            return session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]

    figures: dict[str, Any] = {"bytes": size}
    for (b, _), ids in zip(SHAPES, batches.values(), strict=True):
        forward(ids)
        times = []
        for _ in range(-(-REPEATS[b] // ROUNDS)):
            started = time.perf_counter()
            forward(ids)
            times.append(round((time.perf_counter() - started) * 1000, 2))
        figures[f"b{b}_ms"] = times
    figures["labels"] = forward(batches[8]).argmax(axis=1).tolist()
    figures["peak_rss_mb"] = _peak_rss_mb()
    return figures


def _peak_rss_mb() -> float:
    """VmHWM of this process: unlike ru_maxrss, it restarts at exec, so the parent's peak does not leak in."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--engine":
        sys.path.insert(0, str(REPO))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        print(json.dumps(_measure(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
    else:
        args = sys.argv[1:]
        cut = int(args[args.index("--cut") + 1]) if "--cut" in args else 8
        chosen = Path(args[args.index("--run") + 1]) if "--run" in args else None
        print(json.dumps(run(cut, run_dir=chosen, cut="--cut" in args), indent=2))
