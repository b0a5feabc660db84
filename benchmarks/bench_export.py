"""int8 ONNX vs fp32 ONNX vs fp32 torch on the same messages, in one run: latency, throughput, size, peak RSS.

Model: SmolLM2-135M cut to its first 8 decoder layers as a LlamaForSequenceClassification (random 3-class head:
speed and memory do not depend on the head's training). Each engine runs in its own child process so its peak RSS
is its own. Shapes: batch 1 x 128 tokens and batch 8 x 128 tokens (fixed-length messages, no padding). Figures
are absolute and as ratios against fp32 torch.

Usage: python benchmarks/run.py export   |   python benchmarks/bench_export.py [layers]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHAPES = ((1, 128), (8, 128))
REPEATS = {1: 30, 8: 10}


def run(layers: int = 8, threads: int = 2) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build = _build(folder, layers)
        engines = {name: _child(name, folder, threads) for name in ("torch_fp32", "onnx_fp32", "onnx_int8")}
    base = engines["torch_fp32"]
    ratios = {
        name: {
            **{f"speedup_b{b}_p50": round(base[f"b{b}"]["p50_ms"] / e[f"b{b}"]["p50_ms"], 2) for b, _ in SHAPES},
            "size_ratio": round(e["bytes"] / base["bytes"], 3),
            "peak_rss_ratio": round(e["peak_rss_mb"] / base["peak_rss_mb"], 3),
        }
        for name, e in engines.items()
    }
    agree = sum(a == b for a, b in zip(engines["onnx_int8"]["labels"], base["labels"], strict=True))
    return {"model": f"SmolLM2-135M first {layers} layers, LlamaForSequenceClassification (random head)",
            "threads": threads, "build": build, "engines": engines, "vs_torch_fp32": ratios,
            "int8_label_agreement_with_torch": agree / len(base["labels"])}  # fmt: skip


def _build(folder: Path, layers: int) -> dict[str, Any]:
    import torch
    from transformers import LlamaForSequenceClassification

    from components.config.export import QuantizeConfig
    from components.export import export_onnx, model_bytes, quantize_int8
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
    return {"load_s": round(load_s, 1), "export_s": round(exported.seconds, 1),
            "quantize_s": round(quantized.seconds, 1),
            "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "fp32_onnx_mb": round(model_bytes(folder / "model_fp32.onnx") / 2**20, 1),
            "int8_onnx_mb": round(model_bytes(folder / "model_int8.onnx") / 2**20, 1)}  # fmt: skip


def _child(engine: str, folder: Path, threads: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--engine", engine, str(folder), str(threads)],
                         capture_output=True, text=True, check=True, cwd=REPO, timeout=1800)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _measure(engine: str, folder: Path, threads: int) -> dict[str, Any]:
    """Runs in a fresh process: load one engine, warm up, time each shape, report peak RSS and labels."""
    import numpy as np

    rng = np.random.default_rng(0)
    batches = {b: rng.integers(100, 40000, size=(b, t), dtype=np.int64) for b, t in SHAPES}
    if engine == "torch_fp32":
        import torch
        from transformers import LlamaForSequenceClassification

        torch.set_num_threads(threads)
        model = LlamaForSequenceClassification.from_pretrained(folder / "torch").eval()
        size = sum(p.stat().st_size for p in (folder / "torch").glob("*.safetensors"))

        def forward(ids: Any) -> Any:
            with torch.no_grad():
                t = torch.from_numpy(ids)
                return model(input_ids=t, attention_mask=torch.ones_like(t)).logits.numpy()
    else:
        import onnxruntime as ort

        from components.export import model_bytes

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        path = folder / ("model_int8.onnx" if engine == "onnx_int8" else "model_fp32.onnx")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        size = model_bytes(path)

        def forward(ids: Any) -> Any:
            return session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]

    figures: dict[str, Any] = {"bytes": size}
    for (b, t), ids in zip(SHAPES, batches.values(), strict=True):
        forward(ids)
        times = []
        for _ in range(REPEATS[b]):
            started = time.perf_counter()
            forward(ids)
            times.append((time.perf_counter() - started) * 1000)
        p50 = float(np.percentile(times, 50))
        p95 = float(np.percentile(times, 95))
        rate = b / p50 * 1000
        figures[f"b{b}"] = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "messages_per_s": round(rate, 1),
                            "tokens_per_s": round(rate * t)}  # fmt: skip
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
        print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 8), indent=2))
