"""The registry's two storage interfaces and their records, plus the local content-addressed blob store.

``MetadataStore`` keeps versions, aliases, the audit history and gate reports; ``BlobStore`` keeps artifact bytes
addressed by sha256. The single-user defaults are SQLite (``sqlite_store.py``) and a local folder (here); a team can
serve both from Postgres and an fsspec object store by implementing the same two Protocols (docs/registry.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactRecord:
    path: str  # relative POSIX path inside the model folder
    sha256: str
    size: int


@dataclass(frozen=True)
class VersionRecord:
    name: str
    version: int
    task: str
    created_at: str
    manifest_sha256: str
    artifacts: tuple[ArtifactRecord, ...]
    lineage: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    wandb_link: str = ""


@dataclass(frozen=True)
class AliasEvent:
    """One row of the append-only audit history."""

    seq: int
    name: str
    alias: str
    at: str
    from_version: int | None
    to_version: int
    who: str
    why: str
    action: str  # register | promote | force | rollback
    gate_report_hash: str | None


@dataclass(frozen=True)
class MoveRequest:
    """An alias move: applied only if the alias still holds ``expected`` and production still holds ``champion``."""

    name: str
    alias: str
    to_version: int
    expected: int | None
    who: str
    why: str
    action: str
    champion_alias: str | None = None  # when set, also compare-and-swap on this alias holding ``champion``
    champion: int | None = None
    gate_report_hash: str | None = None


@dataclass(frozen=True)
class EvaluationRecord:
    """One dated re-evaluation of a version on labelled feedback (``emosafe reevaluate``); append-only.

    ``metrics`` is the evaluation's MetricsReport (figures with CIs, counts); ``flagged`` names the failed floor
    checks (empty when none). Neither holds message text: the feedback is identified by sha256 and row count.
    """

    seq: int  # assigned by the store
    name: str
    version: int
    evaluated_at: str
    who: str
    feedback_sha256: str
    feedback_rows: int
    flagged: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # floor checks, thresholds, report path, model ref


class MetadataStore(Protocol):
    """Transactional metadata. Every method is atomic; ``move_alias`` is one compare-and-swap transaction."""

    def add_version(self, draft: VersionRecord, move: MoveRequest | None) -> tuple[VersionRecord, bool]: ...
    def get_version(self, name: str, version: int) -> VersionRecord | None: ...
    def list_versions(self, name: str | None = None) -> list[VersionRecord]: ...
    def aliases(self, name: str) -> dict[str, int]: ...
    def move_alias(self, move: MoveRequest) -> AliasEvent: ...
    def history(self, name: str | None = None, alias: str | None = None) -> list[AliasEvent]: ...
    def save_report(self, report_hash: str, name: str, version: int, promote: bool, report: dict[str, Any]) -> None: ...
    def get_report(self, report_hash: str) -> dict[str, Any] | None: ...
    def latest_report(self, name: str, version: int) -> dict[str, Any] | None: ...
    def add_evaluation(self, draft: EvaluationRecord) -> EvaluationRecord: ...
    def evaluations(self, name: str | None = None, version: int | None = None) -> list[EvaluationRecord]: ...
    def withdraw(self, name: str, versions: list[int], who: str, why: str) -> list[str]: ...
    def withdrawn(self, name: str) -> dict[int, list[str]]: ...
    def reinstate(self, name: str, version: int, move: MoveRequest) -> None: ...


class BlobStore(Protocol):
    """Immutable bytes addressed by their sha256."""

    def put_file(self, source: Path) -> ArtifactRecord: ...
    def open(self, sha256: str) -> IO[bytes]: ...
    def location(self, sha256: str) -> str: ...
    def verify(self, sha256: str, size: int) -> str | None: ...


class LocalBlobStore:
    """``<root>/objects/ab/abcdef...``: written to a temp file, fsynced, renamed, so a blob is whole or absent."""

    def __init__(self, root: Path) -> None:
        self.root = root / "objects"
        self.root.mkdir(parents=True, exist_ok=True)

    def location(self, sha256: str) -> str:
        return str(self._path(sha256))

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:]

    def put_file(self, source: Path) -> ArtifactRecord:
        """Copy ``source`` in while hashing it; the blob lands under its digest (no-op if already stored)."""
        fd, tmp = tempfile.mkstemp(prefix=".incoming.", dir=self.root)
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                while block := src.read(_CHUNK):
                    digest.update(block)
                    size += len(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            target = self._path(digest.hexdigest())
            if target.is_file() and target.stat().st_size == size:
                Path(tmp).unlink()
            else:
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp, target)
                fsync_dir(target.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ArtifactRecord(path=source.name, sha256=digest.hexdigest(), size=size)

    def open(self, sha256: str) -> IO[bytes]:
        return self._path(sha256).open("rb")

    def verify(self, sha256: str, size: int) -> str | None:
        """None when the blob's bytes hash to ``sha256``; otherwise what is wrong (missing, truncated, tampered)."""
        path = self._path(sha256)
        if not path.is_file():
            return f"blob {path} is missing"
        actual = path.stat().st_size
        if actual != size:
            return f"blob {path} has {actual} bytes, {size} recorded (truncated or tampered)"
        with path.open("rb") as handle:
            got = hash_stream(handle)
        return None if got == sha256 else f"blob {path} hashes to {got[:12]}, {sha256[:12]} recorded (tampered)"


def hash_stream(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while block := handle.read(_CHUNK):
        digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A temp folder beside ``target``; renamed onto it on success, removed on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
