"""Which model the service answers with, and the switch when the registry alias moves.

The service is started on a reference such as ``emosafe-trinary@production`` (or on a bundle folder, which never
changes). ``refresh`` asks the registry (read-only) which version the alias holds now; when it differs, the new
version is checked out verified (every sha256) and opened in ONNX Runtime *before* the swap, so requests never wait
on a load and never see a half-loaded model. A version that fails to load (damaged file, withdrawn, wrong task)
leaves the old one serving; the failure is reported, and retried at the next refresh.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import Params
from components.errors import EmosafeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """One loaded model: the predictor and what the production log records for it."""

    predictor: Any
    name: str
    version: str
    task: str


class ModelHolder:
    """The served model, swapped whole (one attribute assignment) when the alias moves."""

    def __init__(self, params: Params, model: str, root: Path = Path()) -> None:
        from registry.core import looks_like_ref
        from registry.names import parse_ref

        self.params, self.model, self.root = params, model, root
        self.follows_alias = looks_like_ref(model) and parse_ref(model).alias is not None
        self.reloads = {"ok": 0, "failed": 0}
        self.last_error: str | None = None
        self._lock = threading.Lock()  # one refresh at a time
        self.current = self._load(model)

    def _load(self, model: str) -> Served:
        from components.export.runtime import OnnxPredictor
        from components.stages.predict import resolve_model

        config = self.params.predict
        folder, name, version = resolve_model(self.params.register, model, self.root)
        predictor = OnnxPredictor(folder, config.variant, config.batch_size, config.num_threads)
        return Served(predictor, name, version, predictor.task)

    def alias_version(self) -> str | None:
        """The version the alias holds now (None when the service follows no alias)."""
        from registry.core import open_registry
        from registry.names import parse_ref

        if not self.follows_alias:
            return None
        config = self.params.register
        registry = open_registry(config, self.root, read_only=True)
        return str(registry.resolve(parse_ref(self.model)).version)

    def refresh(self) -> str | None:
        """Swap to the alias's version when it moved; a line saying what happened, or None when nothing did."""
        with self._lock:
            try:
                wanted = self.alias_version()
                if wanted is None or wanted == self.current.version:
                    return None
                name = self.model.rsplit("@", 1)[0]
                loaded = self._load(f"{name}@{wanted}")
                if loaded.task != self.current.task:
                    raise EmosafeError(f"{name}@{wanted} is a {loaded.task} model, not {self.current.task}")
            except EmosafeError as exc:
                self.reloads["failed"] += 1
                self.last_error = str(exc)
                log.warning("reload refused, still serving %s@%s: %s", self.current.name, self.current.version, exc)
                return f"reload failed, still serving v{self.current.version}: {exc}"
            previous, self.current, self.last_error = self.current.version, loaded, None
            self.reloads["ok"] += 1
            log.info("%s: now serving v%s (was v%s)", self.model, loaded.version, previous)
            return f"now serving v{loaded.version} (was v{previous})"
