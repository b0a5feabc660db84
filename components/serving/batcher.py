"""Micro-batching: concurrent requests are scored together, one model call per batch, in arrival order.

A transformer on CPU costs nearly as much for one message as for a handful (fixed per-call overhead, matrix
kernels that like more rows), so 32 clients each sending one message are served faster by gathering them into a
few calls than by 32 calls. The batcher waits at most ``max_wait_s`` after the first queued request for others to
join, up to ``max_batch`` messages; one worker thread runs the model, so calls never overlap (ONNX Runtime already
uses the cores inside one call). The queue is bounded in messages: a request that would overflow it is refused at
once (``Overloaded``, HTTP 503), so a burst degrades into fast refusals instead of unbounded memory and latency.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

#: ``score(ids, texts)`` -> one result per message, in order (runs in the batcher's worker thread).
Score = Callable[[list[str], list[str]], list[Any]]


class Overloaded(Exception):
    """The queue holds ``max_queued`` messages already: refuse now (HTTP 503) rather than queue without bound."""


@dataclass
class _Job:
    ids: list[str]
    texts: list[str]
    future: asyncio.Future[list[Any]] = field(repr=False)


class MicroBatcher:
    """Gathers submitted messages into batches of at most ``max_batch`` and scores each batch with one call."""

    def __init__(self, score: Score, max_batch: int = 32, max_wait_s: float = 0.005, max_queued: int = 1024) -> None:
        if max_batch < 1 or max_queued < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queued must be >= 1 and max_wait_s >= 0")
        self.score, self.max_batch, self.max_wait_s, self.max_queued = score, max_batch, max_wait_s, max_queued
        self.queued = 0  # messages waiting or being scored
        self.batch_sizes: deque[int] = deque(maxlen=100_000)  # the latest batches' sizes (benchmarks read them)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emosafe-model")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="emosafe-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=True)

    async def submit(self, ids: Sequence[str], texts: Sequence[str]) -> list[Any]:
        """The results for ``texts`` (scored with whatever else arrived meanwhile). Raises Overloaded at once when
        the queue cannot take them; re-raises the model's exception for every request of a failed batch."""
        if self.queued + len(texts) > self.max_queued:
            raise Overloaded(f"{self.queued} messages queued, limit {self.max_queued}")
        self.queued += len(texts)
        job = _Job(list(ids), list(texts), asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        try:
            return await job.future
        finally:
            self.queued -= len(texts)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0].texts)
            deadline = loop.time() + self.max_wait_s
            while size < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0 and self._queue.empty():
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), max(remaining, 0))
                except TimeoutError:
                    break
                jobs.append(job)
                size += len(job.texts)
            await self._score(loop, jobs)

    async def _score(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        ids = [i for job in jobs for i in job.ids]
        texts = [t for job in jobs for t in job.texts]
        self.batch_sizes.append(len(texts))
        try:
            results = await loop.run_in_executor(self._pool, self.score, ids, texts)
        except Exception as exc:  # the model failed: every waiting request gets the error, the loop goes on
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            if not job.future.done():  # a client that went away cancelled its future
                job.future.set_result(results[start : start + len(job.texts)])
            start += len(job.texts)
