"""Read the production log (JSONL written by `emosafe predict`) into columns, checking every line.

One prediction per line: ``{"id", "timestamp" (ISO-8601 with a zone), "model", "version", "task", "label"
(trinary) | "categories" (taxonomy), "scores"}``. A bad line stops the read with ``LogLineError`` naming the file,
the 1-based line, the field and the rule; a line's content is never quoted (the log may carry text if someone
asked `predict` to keep it, and monitoring never reads it).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from components.drift.reference import TASKS
from components.errors import LogLineError, SourceFileError
from components.schema import CATEGORIES, LABELS

_LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
_CATEGORY_INDEX = {category: i for i, category in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class PredictionLog:
    """The log as columns. ``labels`` holds indexes into LABELS (-1: no label); ``categories`` is (n, 6).

    ``model_version`` holds, per prediction, an index into ``pairs`` (the distinct ``(model, version)`` seen): one
    int32 per line instead of two Python strings keeps a million-line log in tens of MB, not hundreds."""

    path: Path
    timestamps: NDArray[np.float64]
    model_version: NDArray[np.int32]
    pairs: tuple[tuple[str, str], ...]
    labels: NDArray[np.int8]
    categories: NDArray[np.bool_]
    has_categories: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.timestamps)

    def of(self, model: str, version: str) -> NDArray[np.bool_]:
        """Which predictions are ``model@version``."""
        code = self.pairs.index((model, version)) if (model, version) in self.pairs else -1
        return np.asarray(self.model_version == code, dtype=bool)

    def select(self, mask: NDArray[np.bool_]) -> PredictionLog:
        keep = np.flatnonzero(mask)
        return PredictionLog(
            self.path,
            self.timestamps[keep],
            self.model_version[keep],
            self.pairs,
            self.labels[keep],
            self.categories[keep],
            self.has_categories[keep],
        )

    def model_versions(self) -> dict[str, int]:
        """How many predictions each ``model@version`` has (for messages and reports)."""
        counts = np.bincount(self.model_version, minlength=len(self.pairs))
        return {f"{m}@{v}": int(c) for (m, v), c in zip(self.pairs, counts, strict=True) if c}


class _Columns:
    """Growing typed columns (``array``: a machine number per line, no Python object per value)."""

    def __init__(self) -> None:
        self.stamps = array("d")
        self.codes = array("i")
        self.labels = array("b")
        self.categories = array("h")
        self.pairs: dict[tuple[str, str], int] = {}

    def add(self, stamp: float, model: str, version: str, label: int, categories: int) -> None:
        self.stamps.append(stamp)
        self.codes.append(self.pairs.setdefault((model, version), len(self.pairs)))
        self.labels.append(label)
        self.categories.append(categories)


def read_log(path: Path) -> PredictionLog:
    """Parse and check every line, streaming (memory grows by a few bytes per line). Raises SourceFileError
    (missing, empty) or LogLineError (bad line)."""
    try:
        handle = path.open("rb")  # bytes: orjson decodes and checks UTF-8 itself, twice as fast as text mode + json
    except OSError as exc:
        raise SourceFileError(path, f"cannot read the production log ({exc.strerror})") from None
    columns = _Columns()
    with handle:
        for number, line in enumerate(handle, start=1):  # split on b"\n" only, never inside a JSON string
            if line.strip():
                _parse(line, path, number, columns)
    if not columns.stamps:
        raise SourceFileError(path, "the production log holds no predictions")
    # Views over the arrays (no copy), and the category bits unpacked in int16: a million lines stay ~25 MB.
    masks = np.frombuffer(columns.categories, dtype=np.int16)
    bits = ((masks[:, None] >> np.arange(len(CATEGORIES), dtype=np.int16)) & 1).astype(bool)
    return PredictionLog(
        path,
        np.frombuffer(columns.stamps, dtype=np.float64),
        np.frombuffer(columns.codes, dtype=np.int32),
        tuple(columns.pairs),
        np.frombuffer(columns.labels, dtype=np.int8),
        bits,
        masks >= 0,
    )


def _parse(line: bytes, path: Path, number: int, columns: _Columns) -> None:
    """Check one line and append its columns. Categories are packed into a bit mask (-1: none given)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise LogLineError(path, number, "(line)", _json_problem(line, exc)) from None
    if not isinstance(record, dict):
        raise LogLineError(path, number, "(line)", "must be a JSON object (one prediction per line)")
    for field in ("id", "model", "version"):
        if not isinstance(record.get(field), str) or not record[field]:
            raise LogLineError(path, number, field, "required, a non-empty string")
    stamp = _timestamp(record.get("timestamp"), path, number)
    task = record.get("task")
    if task not in TASKS:
        raise LogLineError(path, number, "task", f"must be one of {list(TASKS)}{_shown(task)}")
    label = record.get("label")
    if label is None and task == "trinary":
        raise LogLineError(path, number, "label", "required for a trinary prediction")
    if label is not None and (not isinstance(label, str) or label not in _LABEL_INDEX):
        raise LogLineError(path, number, "label", f"must be one of {list(LABELS)}{_shown(label)}")
    cats = record.get("categories")
    if cats is None and task == "taxonomy":
        raise LogLineError(path, number, "categories", "required for a taxonomy prediction (a list, maybe empty)")
    mask = -1 if cats is None else _category_mask(cats, path, number)
    columns.add(stamp, record["model"], record["version"], -1 if label is None else _LABEL_INDEX[str(label)], mask)


def _json_problem(line: bytes, exc: orjson.JSONDecodeError) -> str:
    """orjson's one exception, told apart: bad bytes, nesting past its depth limit, or bad JSON (never the text)."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not UTF-8 text at byte {bad.start} (rule: the production log is UTF-8 JSONL)"
    if "depth limit" in str(exc) or "recursion" in str(exc).lower():
        return "nested too deeply to be a prediction record"
    return f"not valid JSON at column {exc.pos + 1}"  # pos: orjson counts the newline as a second line


def _timestamp(value: Any, path: Path, number: int) -> float:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.timestamp()
    raise LogLineError(path, number, "timestamp", "required, ISO-8601 with a time zone (e.g. 2026-01-02T03:04:05Z)")


def _category_mask(value: Any, path: Path, number: int) -> int:
    if not isinstance(value, list):
        raise LogLineError(path, number, "categories", "must be a list of category names")
    mask = 0
    for item in value:
        if not isinstance(item, str) or item not in _CATEGORY_INDEX:
            raise LogLineError(
                path, number, "categories", f"unknown category{_shown(item)}; allowed: {list(CATEGORIES)}"
            )
        mask |= 1 << _CATEGORY_INDEX[item]
    return mask


def _shown(value: Any) -> str:
    """A production log's fields come from a fixed vocabulary: a bad value is never echoed (even one word could be
    part of a message logged in the wrong field), only its type and length."""
    size = f" of {len(value)} characters" if isinstance(value, str) else ""
    return f" (got a {type(value).__name__}{size})"
