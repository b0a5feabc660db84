"""The augment stage's generation cache (app layer): raw generator outputs keyed by ``cache_key``.

One append-only JSONL file, ``<cache_dir>/generations.jsonl``. Every batch is appended and fsynced as soon as it
is generated, so an interrupted run (or a failing API) keeps what it already paid for; a torn last line from a
crash is skipped on the next read. Raw outputs are stored *before* filtering, so changing a filter never needs a
regeneration. The file holds generated text: it is data (DVC-tracked, git-ignored), never logged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from components.data.generators import Generation, GenerationRequest, Generator, Sampling
from components.data.tables import jsonl_lines

log = logging.getLogger(__name__)
CACHE_FILE = "generations.jsonl"


@dataclass(frozen=True)
class CacheStats:
    hits: int
    generated: int


class GenerationCache:
    """Key -> Generation, loaded once; ``fetch`` generates only the missing keys and appends them."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / CACHE_FILE
        self._entries: dict[str, Generation] = {}
        if self.path.is_file():
            self._load()

    def __len__(self) -> int:
        return len(self._entries)

    def _load(self) -> None:
        torn = 0
        for _, line in jsonl_lines(self.path.read_text(encoding="utf-8")):
            try:
                entry = json.loads(line)
                self._entries[entry["key"]] = Generation(str(entry["text"]), bool(entry["truncated"]))
            except (ValueError, KeyError, TypeError):
                torn += 1
        if torn:
            log.warning(
                "%s: skipped %d unreadable line(s) (an interrupted run); they will be regenerated", self.path, torn
            )
        log.info("generation cache %s: %d entries", self.path, len(self._entries))

    def _append(self, records: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def fetch(
        self,
        keys: Sequence[str],
        requests: Sequence[GenerationRequest],
        generator: Callable[[], Generator],
        sampling: Sampling,
        meta: dict[str, Any],
        what: str,
    ) -> tuple[list[Generation], CacheStats]:
        """Outputs for ``keys`` in order. ``generator`` is called (built) only when something is missing."""
        missing: dict[str, GenerationRequest] = {}
        for key, request in zip(keys, requests, strict=True):
            if key not in self._entries:
                missing.setdefault(key, request)
        log.info(
            "%s: %d requested, %d cache hits, %d to generate", what, len(keys), len(keys) - len(missing), len(missing)
        )
        if missing:
            self._generate(list(missing.items()), generator(), sampling, meta, what)
        return [self._entries[key] for key in keys], CacheStats(len(keys) - len(missing), len(missing))

    def _generate(
        self,
        todo: list[tuple[str, GenerationRequest]],
        generator: Generator,
        sampling: Sampling,
        meta: dict[str, Any],
        what: str,
    ) -> None:
        with tqdm(total=len(todo), desc=f"augment {what}", unit="msg", leave=False) as bar:
            for start in range(0, len(todo), generator.batch_size):
                chunk = todo[start : start + generator.batch_size]
                outputs = generator.generate([request for _, request in chunk], sampling)
                if len(outputs) != len(chunk):
                    raise RuntimeError(f"generator returned {len(outputs)} outputs for {len(chunk)} requests")
                records = []
                for (key, request), output in zip(chunk, outputs, strict=True):
                    self._entries[key] = output
                    records.append(
                        {"key": key, "text": output.text, "truncated": output.truncated, "seed": request.seed} | meta
                    )
                self._append(records)
                bar.update(len(chunk))
