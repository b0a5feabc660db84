"""The prediction service (`emosafe serve-model`) on a real uvicorn server over a registered bundle.

The bundle is the marker model of tests/fixtures/reevaluate_bundles.py: a message holding ``lbl_unsafe`` is unsafe,
so every answer is known. Requests go over real HTTP (httpx), concurrently where the test is about concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from components.config import parse_params
from components.serving.holder import ModelHolder
from components.serving.service import ServiceLimits, create_app
from monitoring.log import read_log
from tests.fixtures.reevaluate_bundles import CANARY, build_bundle, production
from tests.fixtures.registry_runs import bound, trinary_metrics
from tests.fixtures.serving import free_port, in_thread


def _params(project: Path) -> Any:
    raw = {
        "prepare": {"sources": [{"name": "t", "kind": "emosafe", "path": "x.jsonl"}]},
        "register": {"store": str(project / "store")},
        "predict": {"log": str(project / "logs" / "predictions.jsonl")},
    }
    return parse_params(raw)


@contextlib.contextmanager
def serving(project: Path, limits: ServiceLimits | None = None) -> Iterator[tuple[str, ModelHolder]]:
    """A uvicorn server on a free loopback port in a thread, over ``emosafe-trinary@production``."""
    params = _params(project)
    holder = ModelHolder(params, "emosafe-trinary@production", project)
    app = create_app(holder, Path(params.predict.log), limits or ServiceLimits(reload_every_s=0))
    with in_thread(app) as url:
        yield url, holder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    production(tmp_path, "trinary")
    return tmp_path


def _log(project: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (project / "logs" / "predictions.jsonl").read_text().splitlines()]


def test_one_message_a_batch_health_and_metrics(project: Path) -> None:
    with serving(project) as (url, _):
        one = httpx.post(f"{url}/predict", json={"text": f"lbl_unsafe {CANARY}"}, timeout=30)
        assert one.status_code == 200, one.text
        body = one.json()
        assert (body["model"], body["version"], body["task"]) == ("emosafe-trinary", "1", "trinary")
        assert body["predictions"][0]["label"] == "unsafe" and CANARY not in one.text
        batch = httpx.post(f"{url}/predict", json={"texts": ["lbl_safe", "lbl_borderline x"], "ids": ["a", "b"]})
        assert [p["label"] for p in batch.json()["predictions"]] == ["safe", "borderline"]
        assert [p["id"] for p in batch.json()["predictions"]] == ["a", "b"]
        health = httpx.get(f"{url}/healthz").json()
        assert (
            health["status"] == "ok" and health["version"] == "1" and health["follows"] == "emosafe-trinary@production"
        )
        metrics = httpx.get(f"{url}/metrics").text
    assert 'emosafe_requests_total{code="200"} 2.0' in metrics
    assert 'emosafe_model_info{name="emosafe-trinary",task="trinary",version="1"} 1.0' in metrics
    assert 'emosafe_predictions_total{version="1"} 3.0' in metrics
    logged = _log(project)
    assert [r["id"] for r in logged][-2:] == ["a", "b"] and len(logged) == 3
    assert CANARY not in (project / "logs" / "predictions.jsonl").read_text()
    assert len(read_log(project / "logs" / "predictions.jsonl")) == 3  # the monitor reads service traffic


def test_limits_answer_413_503_and_422_without_echoing_text(project: Path) -> None:
    limits = ServiceLimits(max_queued=4, max_request_messages=5, max_text_chars=100, max_body_bytes=5_000)
    with serving(project, limits) as (url, _):
        too_many = httpx.post(f"{url}/predict", json={"texts": ["lbl_safe"] * 6})
        too_long = httpx.post(f"{url}/predict", json={"text": "x" * 101})
        too_big = httpx.post(f"{url}/predict", content=b'{"text": "' + b"y" * 6_000 + b'"}')
        chunked = httpx.post(f"{url}/predict", content=iter([b'{"text": "', b"z" * 6_000, b'"}']))
        overloaded = httpx.post(f"{url}/predict", json={"texts": ["lbl_safe"] * 5})  # 5 > max_queued 4
        both = httpx.post(f"{url}/predict", json={"text": CANARY, "texts": [CANARY]})
        wrong_type = httpx.post(f"{url}/predict", json={"texts": CANARY})
        bad_ids = httpx.post(f"{url}/predict", json={"texts": ["a", "b"], "ids": ["same", "same"]})
        ok = httpx.post(f"{url}/predict", json={"text": "lbl_safe"})
    assert [r.status_code for r in (too_many, too_long, too_big, chunked)] == [413] * 4
    assert overloaded.status_code == 503 and overloaded.headers["retry-after"] == "1"
    assert [r.status_code for r in (both, wrong_type, bad_ids)] == [422] * 3
    assert all(CANARY not in r.text for r in (both, wrong_type))
    assert ok.status_code == 200 and len(_log(project)) == 1  # refusals log nothing


def test_concurrent_requests_are_micro_batched_and_all_logged(project: Path) -> None:
    async def clients(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            calls = [
                client.post(f"{url}/predict", json={"text": f"lbl_unsafe {i}", "ids": [f"c{i}"]}) for i in range(64)
            ]
            return await asyncio.gather(*calls)

    with serving(project, ServiceLimits(max_batch=16, max_wait_ms=20, reload_every_s=0)) as (url, _):
        answers = asyncio.run(clients(url))
        metrics = httpx.get(f"{url}/metrics").text
    assert all(r.status_code == 200 for r in answers)
    assert all(r.json()["predictions"][0]["label"] == "unsafe" for r in answers)
    assert sorted(r["id"] for r in _log(project)) == sorted(f"c{i}" for i in range(64))
    calls = float(
        next(line.split()[1] for line in metrics.splitlines() if line.startswith("emosafe_batch_messages_count"))
    )
    assert calls < 64, f"64 concurrent requests took {calls} model calls: no batching"


def test_an_alias_move_switches_versions_under_load_and_a_broken_version_keeps_the_old(project: Path) -> None:
    from components.config.register import GateConfig
    from registry.core import Registry
    from registry.names import ModelRef

    registry = Registry(project / "store", GateConfig())
    shifted = build_bundle(project / "bundle-v2", "trinary", shift=1)  # lbl_unsafe now answers "safe"
    v2, _ = registry.register(shifted, bound(trinary_metrics(), shifted), project=project)

    async def load_during_move(url: str, holder: ModelHolder) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            calls = [client.post(f"{url}/predict", json={"text": "lbl_unsafe"}) for _ in range(40)]
            registry.promote(ModelRef(v2.name, version=v2.version), "production", "v2 release")
            moved = asyncio.to_thread(holder.refresh)
            *answers, outcome = await asyncio.gather(*calls, moved)
            assert outcome == "now serving v2 (was v1)"
            after = await client.post(f"{url}/predict", json={"text": "lbl_unsafe"})
            return [*answers, after]

    with serving(project) as (url, holder):
        answers = asyncio.run(load_during_move(url, holder))
        assert all(r.status_code == 200 for r in answers)
        seen = {(r.json()["version"], r.json()["predictions"][0]["label"]) for r in answers}
        assert seen <= {("1", "unsafe"), ("2", "safe")} and answers[-1].json()["version"] == "2"
        third = build_bundle(project / "bundle-v3", "trinary", shift=2)
        v3, _ = registry.register(third, bound(trinary_metrics(), third), project=project)
        registry.promote(ModelRef(v3.name, version=v3.version), "production", "v3 release")
        graph = next(a.sha256 for a in v3.artifacts if a.path == "model_int8.onnx")
        blob = project / "store" / "objects" / graph[:2] / graph[2:]  # damaged after the move, before the reload
        blob.chmod(0o644)
        blob.write_bytes(b"\0" + blob.read_bytes()[1:])
        assert "reload failed, still serving v2" in (holder.refresh() or "")
        still = httpx.post(f"{url}/predict", json={"text": "lbl_unsafe"})
        health = httpx.get(f"{url}/healthz").json()
    assert still.status_code == 200 and still.json()["version"] == "2"
    assert "sha256" in health["last_reload_error"] or "tampered" in health["last_reload_error"]


def test_the_commands_serve_answer_one_message_and_stop_on_sigterm(project: Path) -> None:
    """`emosafe serve-model` as a user runs it (a real process), `predict --text`, and a clean stop on SIGTERM."""
    import os
    import signal
    import subprocess

    from tests.fixtures.common import VENV_BIN

    (project / "params.yaml").write_text(json.dumps(_params(project).model_dump(mode="json")))
    env = {**os.environ, "EMOSAFE_REGISTRY": str(project / "store")}
    ask = ["predict", "--model", "emosafe-trinary@production", "--text", f"lbl_unsafe {CANARY}"]
    one = subprocess.run(
        [str(VENV_BIN / "emosafe"), *ask], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    assert one.returncode == 0, one.stderr
    answer = json.loads(one.stdout)
    assert answer["label"] == "unsafe" and answer["version"] == "1" and CANARY not in one.stdout
    assert not (project / "logs").exists()  # a question asked by hand is not production traffic
    port = free_port()
    command = [str(VENV_BIN / "emosafe"), "serve-model", "--port", str(port)]
    server = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline and server.poll() is None, server.stderr.read() if server.stderr else ""
            time.sleep(0.1)
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"text": "lbl_borderline"}).json()
        assert answer["predictions"][0]["label"] == "borderline"
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    # uvicorn shuts down gracefully (the lifespan stops the batcher), then re-raises SIGTERM for the parent to see
    assert code in (0, -signal.SIGTERM) and "Traceback" not in (server.stderr.read() if server.stderr else "")
    assert len(_log(project)) == 1
