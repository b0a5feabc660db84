"""The ASGI app of ``emosafe serve-model`` (FastAPI, run by uvicorn): ``POST /predict``, ``/healthz``, ``/metrics``.

FastAPI because prefect already brings it (and uvicorn, and prometheus_client): no new dependency, request bodies
checked by pydantic, and ``/docs`` for free. Every answer comes from a bundle verified against its manifest
(``components.serving.holder``); requests are micro-batched (``components.serving.batcher``); each prediction is
appended to the production log without its text, in the record shape `emosafe predict` writes, so `emosafe
monitor` reads service traffic as it reads batch traffic. Limits answer fast instead of falling over: a body over
``max_body_bytes``, more than ``max_request_messages`` messages or a message over ``max_text_chars`` is 413; a full
queue is 503 with ``Retry-After``. Validation errors never echo the request (it holds message text).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field

from components.serving.batcher import MicroBatcher, Overloaded
from components.serving.holder import ModelHolder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class ServiceLimits:
    """How the service batches and what it refuses (the CLI flags of `emosafe serve-model`)."""

    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queued: int = 1024
    max_request_messages: int = 256
    max_text_chars: int = 20_000
    max_body_bytes: int = 2_000_000
    reload_every_s: float = 10.0


class PredictRequest(BaseModel):
    """One message (``text``) or a batch (``texts``), with optional ``ids`` (else generated) for the log."""

    text: str | None = None
    texts: list[str] | None = None
    ids: list[str] | None = Field(default=None, description="One per message; logged instead of the text.")


class _Metrics:
    def __init__(self, holder: ModelHolder, batcher: MicroBatcher) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("emosafe_requests", "HTTP requests by status code", ["code"], registry=self.registry)
        self.seconds = Histogram("emosafe_request_seconds", "POST /predict latency", registry=self.registry)
        self.predictions = Counter("emosafe_predictions", "Predictions by version", ["version"], registry=self.registry)
        buckets = (1, 2, 4, 8, 16, 32, 64, 128, 256)
        self.batch = Histogram(
            "emosafe_batch_messages", "Messages per model call", buckets=buckets, registry=self.registry
        )
        self.reloads = Counter("emosafe_reloads", "Alias reloads by outcome", ["outcome"], registry=self.registry)
        self.model = Gauge(
            "emosafe_model_info", "The served model", ["name", "version", "task"], registry=self.registry
        )
        queued = Gauge("emosafe_queued_messages", "Messages waiting or being scored", registry=self.registry)
        queued.set_function(lambda: batcher.queued)
        self.show(holder)

    def show(self, holder: ModelHolder) -> None:
        served = holder.current
        self.model.clear()
        self.model.labels(served.name, served.version, served.task).set(1)


class _BodyLimit:
    """413 for a body over ``limit`` bytes, by its Content-Length or while it streams in (a chunked upload is read
    here, at most ``limit`` bytes, and replayed to the app: FastAPI would turn an error raised mid-read into 400)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect, as the server would
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)


def create_app(holder: ModelHolder, log_path: Path, limits: ServiceLimits | None = None) -> Any:
    """The service over ``holder``'s model, appending to ``log_path``; wrapped in the body-size limit."""
    from components.stages.predict import append_log, prediction_records

    limits = limits or ServiceLimits()

    def score(ids: list[str], texts: list[str]) -> list[dict[str, Any]]:
        served = holder.current  # one read: a batch is scored and logged by one version
        records = prediction_records(served.predictor, served.name, served.version, ids, texts)
        append_log(log_path, records)
        metrics.batch.observe(len(texts))
        metrics.predictions.labels(served.version).inc(len(texts))
        return records

    batcher = MicroBatcher(score, limits.max_batch, limits.max_wait_ms / 1000, limits.max_queued)
    metrics = _Metrics(holder, batcher)

    async def reload_loop() -> None:
        while True:
            await asyncio.sleep(limits.reload_every_s)
            outcome = await asyncio.to_thread(holder.refresh)
            if outcome is not None:
                metrics.reloads.labels("ok" if outcome.startswith("now serving") else "failed").inc()
                metrics.show(holder)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        reloader = asyncio.create_task(reload_loop()) if holder.follows_alias and limits.reload_every_s > 0 else None
        try:
            yield
        finally:
            if reloader is not None:
                reloader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reloader
            await batcher.stop()

    app = FastAPI(title="emosafe prediction service", lifespan=lifespan)
    app.state.holder, app.state.batcher, app.state.metrics = holder, batcher, metrics

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.requests.labels("422").inc()
        fields = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]  # never the input: it is text
        return JSONResponse({"detail": fields}, status_code=422)

    @app.post("/predict")
    async def predict(body: PredictRequest) -> JSONResponse:
        started = time.perf_counter()
        refused = _refusal(body, limits)
        if refused is not None:
            metrics.requests.labels(str(refused.status_code)).inc()
            return refused
        texts = [body.text] if body.text is not None else list(body.texts or [])
        ids = body.ids or [uuid.uuid4().hex for _ in texts]
        try:
            records = await batcher.submit(ids, texts)
        except Overloaded as exc:
            metrics.requests.labels("503").inc()
            return JSONResponse({"detail": f"overloaded: {exc}"}, status_code=503, headers={"Retry-After": "1"})
        metrics.requests.labels("200").inc()
        metrics.seconds.observe(time.perf_counter() - started)
        first = records[0]
        answers = [{k: v for k, v in r.items() if k not in ("model", "version", "task", "timestamp")} for r in records]
        head = {"model": first["model"], "version": first["version"], "task": first["task"]}
        return JSONResponse(head | {"predictions": answers})

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        served = holder.current
        return {
            "status": "ok",
            "model": served.name,
            "version": served.version,
            "task": served.task,
            "follows": holder.model if holder.follows_alias else None,
            "queued": batcher.queued,
            "last_reload_error": holder.last_error,
        }

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry).decode(), media_type=CONTENT_TYPE_LATEST)

    return _BodyLimit(app, limits.max_body_bytes)


def _refusal(body: PredictRequest, limits: ServiceLimits) -> JSONResponse | None:
    """422 for a malformed request, 413 for one over the limits; None when it can be scored."""
    if (body.text is None) == (body.texts is None):
        return JSONResponse({"detail": "give exactly one of 'text' or 'texts'"}, status_code=422)
    texts = [body.text] if body.text is not None else list(body.texts or [])
    if not texts or any(not t.strip() for t in texts):
        return JSONResponse({"detail": "messages must be non-empty text"}, status_code=422)
    if body.ids is not None and (len(body.ids) != len(texts) or len(set(body.ids)) != len(body.ids)):
        return JSONResponse({"detail": "'ids' must give one distinct id per message"}, status_code=422)
    if len(texts) > limits.max_request_messages:
        detail = f"{len(texts)} messages in one request, limit {limits.max_request_messages}"
        return JSONResponse({"detail": detail}, status_code=413)
    if max(len(t) for t in texts) > limits.max_text_chars:
        return JSONResponse({"detail": f"a message over {limits.max_text_chars} characters"}, status_code=413)
    return None
