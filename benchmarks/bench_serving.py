"""The prediction service under load (`emosafe serve-model`), side by side in one run.

For 1, 8 and 32 concurrent clients (each sends one message per request, back to back), on the shipped int8 bundle
of the embedded default (`exports/<export.model>-trinary`, written by `make run`):
- **micro-batched**: the service as shipped (`--max-batch 32 --max-wait-ms 5`);
- **one request, one inference**: the same service with `--max-batch 1`;
- **in-process**: the predictor called directly, with the same batches the micro-batched service formed (no HTTP,
  no queue): the floor the service's overhead is measured against.
Figures: p50 / p99 latency per request, messages per second, failed requests, and whether every prediction
reached the production log. Then an alias move under load: the bundle registered twice in a throw-away registry
(the second copy differs only in `meta.json`), the service following `@production`, production moved while 32
clients send; figures: failed requests (must be 0) and the versions that answered.
Client and server share the machine's cores, so absolute figures are pessimistic; the ratios are the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REQUESTS_PER_CLIENT = 12


def _messages(n: int) -> list[str]:
    import pandas as pd

    frame = pd.read_parquet(REPO / "data" / "prepared" / "dataset.parquet")
    texts = frame[frame["split"] == "test"]["text"].astype(str).tolist()
    return [texts[i % len(texts)] for i in range(n)]


@contextlib.contextmanager
def _serving(params: Any, model: str, root: Path, log: Path, limits: Any) -> Iterator[tuple[str, Any]]:
    """The service on a free loopback port in a thread; yields (url, its batcher)."""
    from components.serving.holder import ModelHolder
    from components.serving.service import create_app
    from tests.fixtures.serving import in_thread

    app = create_app(ModelHolder(params, model, root), log, limits)
    with in_thread(app) as url:
        yield url, app.app.state.batcher  # create_app wraps the FastAPI app in a body limit


async def _load(url: str, clients: int, texts: list[str], during: Any = None) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    failures = 0
    versions: dict[str, int] = {}

    async def client(index: int, http: httpx.AsyncClient) -> None:
        nonlocal failures
        for k in range(REQUESTS_PER_CLIENT):
            text = texts[(index * REQUESTS_PER_CLIENT + k) % len(texts)]
            started = time.perf_counter()
            try:
                answer = await http.post(f"{url}/predict", json={"text": text, "ids": [f"c{index}-{k}"]})
            except httpx.HTTPError:
                failures += 1
                continue
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200:
                failures += 1
            else:
                version = answer.json()["version"]
                versions[version] = versions.get(version, 0) + 1

    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.perf_counter()
        tasks = [client(i, http) for i in range(clients)]
        if during is not None:
            tasks.append(during())
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": clients * REQUESTS_PER_CLIENT,
        "failed": failures,
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "messages_per_s": round(clients * REQUESTS_PER_CLIENT / seconds, 1),
        "versions": versions,
    }


def _logged(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.is_file() else 0


def _in_process(predictor: Any, texts: list[str], sizes: list[int]) -> dict[str, Any]:
    """The same batches as the service formed, scored back to back in this process."""
    started, start = time.perf_counter(), 0
    for size in sizes:
        predictor.predict(texts[start : start + size])
        start += size
    seconds = time.perf_counter() - started
    return {
        "messages_per_s": round(start / seconds, 1),
        "calls": len(sizes),
        "mean_batch": round(start / len(sizes), 2),
    }


def _alias_move(params: Any, bundle: Path, tmp: Path, texts: list[str]) -> dict[str, Any]:
    from components.export.bundle import MANIFEST, build_manifest
    from components.serving.service import ServiceLimits
    from registry.core import Registry
    from registry.names import ModelRef

    registry = Registry(tmp / "store", params.register.gate)
    second = tmp / "bundle-copy"
    shutil.copytree(bundle, second)
    meta = json.loads((second / "meta.json").read_text()) | {"benchmark_copy": True}
    (second / "meta.json").write_text(json.dumps(meta))
    (second / MANIFEST).write_text(json.dumps(build_manifest(second)))
    figures = json.loads((bundle / "quantization.json").read_text())
    v1, _ = registry.register(bundle, figures, project=REPO, origin=str(bundle / "quantization.json"))
    v2, _ = registry.register(second, figures, project=REPO, origin=str(second / "quantization.json"))
    why = "benchmark: the embedded default fails the gate; forced in a throw-away registry"
    registry.promote(ModelRef(v1.name, version=v1.version), "production", why, force=True)
    moved = params.model_copy(update={"register": params.register.model_copy(update={"store": str(tmp / "store")})})
    log = tmp / "alias.jsonl"
    limits = ServiceLimits(reload_every_s=0.25)
    with _serving(moved, "emosafe-trinary@production", REPO, log, limits) as (url, _):

        async def move() -> None:
            await asyncio.sleep(0.5)
            registry.promote(ModelRef(v2.name, version=v2.version), "production", why, force=True)

        load = asyncio.run(_load(url, 32, texts, move))
    return {**load, "logged": _logged(log), "moved_to": v2.version}


def run(bundle: Path | None = None) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from components.config import load_params
    from components.export.runtime import OnnxPredictor
    from components.serving.service import ServiceLimits

    params = load_params(REPO / "params.yaml")
    bundle = bundle or REPO / params.export.output_dir / f"{params.export.model}-trinary"
    if not (bundle / "manifest.json").is_file():
        return {"skipped": f"{bundle}: no exported bundle; run `make run` first"}
    texts = _messages(32 * REQUESTS_PER_CLIENT)
    figures: dict[str, Any] = {"bundle": str(bundle.relative_to(REPO)), "requests_per_client": REQUESTS_PER_CLIENT}
    with tempfile.TemporaryDirectory() as tmp:
        for clients in (1, 8, 32):
            row: dict[str, Any] = {}
            for mode, max_batch in (("micro_batched", 32), ("one_request_one_inference", 1)):
                log = Path(tmp) / f"{mode}-{clients}.jsonl"
                limits = ServiceLimits(max_batch=max_batch, reload_every_s=0)
                with _serving(params, str(bundle), REPO, log, limits) as (url, batcher):
                    row[mode] = asyncio.run(_load(url, clients, texts))
                    sizes = list(batcher.batch_sizes)
                row[mode] |= {"logged_all": _logged(log) == clients * REQUESTS_PER_CLIENT, "calls": len(sizes)}
                row[mode]["mean_batch"] = round(sum(sizes) / len(sizes), 2)
                if mode == "micro_batched":
                    predictor = OnnxPredictor(bundle, params.predict.variant, 32, params.predict.num_threads)
                    row["in_process_same_batches"] = _in_process(predictor, texts, sizes)
            one, batched = row["one_request_one_inference"], row["micro_batched"]
            row["throughput_ratio_batched_vs_one"] = round(batched["messages_per_s"] / one["messages_per_s"], 2)
            figures[f"clients_{clients}"] = row
        figures["alias_move_under_load"] = _alias_move(params, bundle, Path(tmp), texts)
    return figures


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else None), indent=2))
