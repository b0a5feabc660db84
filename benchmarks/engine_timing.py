"""Latency, throughput and peak RSS of the three engines of ``bench_export.py``, each in fresh child processes.

Each engine's latency runs in fresh child processes so its peak RSS is its own: ``ROUNDS`` rounds in which the
engines take turns (the CPU is shared, so a burst of other work lands on all engines alike), the times pooled
into p50/p95, each process's load average recorded. Shapes: batch 1 x 128 tokens and batch 8 x 128 tokens
(random ids, no padding). The folder holds ``torch/`` (safetensors), ``model_fp32.onnx`` and ``model_int8.onnx``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHAPES = ((1, 128), (8, 128))
REPEATS = {1: 30, 8: 12}
ROUNDS = 3  # engines take turns (torch, ONNX fp32, ONNX int8, torch, ...) so others' load hits all of them alike
ENGINES = ("torch_fp32", "onnx_fp32", "onnx_int8")


def time_engines(folder: Path, threads: int) -> dict[str, dict[str, Any]]:
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
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(_measure(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
