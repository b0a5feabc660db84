"""Read the production log (JSONL written by `emosafe predict`) into columns, checking every line.

One prediction per line: ``{"id", "timestamp" (ISO-8601 with a zone), "model", "version", "task", "label"
(trinary) | "categories" (taxonomy), "scores"}``. A bad line stops the read with ``LogLineError`` naming the file,
the 1-based line, the field and the rule; a line's content is never quoted (the log may carry text if someone
asked `predict` to keep it, and monitoring never reads it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from components.drift.reference import TASKS
from components.errors import LogLineError, SourceFileError
from components.schema import CATEGORIES, LABELS

_LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
_CATEGORY_INDEX = {category: i for i, category in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class PredictionLog:
    """The log as columns. ``labels`` holds indexes into LABELS (-1: no label); ``categories`` is (n, 6)."""

    path: Path
    timestamps: NDArray[np.float64]
    models: tuple[str, ...]
    versions: tuple[str, ...]
    labels: NDArray[np.int8]
    categories: NDArray[np.bool_]
    has_categories: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.models)

    def select(self, mask: NDArray[np.bool_]) -> PredictionLog:
        keep = np.flatnonzero(mask)
        return PredictionLog(
            self.path,
            self.timestamps[keep],
            tuple(self.models[i] for i in keep),
            tuple(self.versions[i] for i in keep),
            self.labels[keep],
            self.categories[keep],
            self.has_categories[keep],
        )

    def model_versions(self) -> dict[str, int]:
        """How many predictions each ``model@version`` has (for messages and reports)."""
        counts: dict[str, int] = {}
        for model, version in zip(self.models, self.versions, strict=True):
            key = f"{model}@{version}"
            counts[key] = counts.get(key, 0) + 1
        return counts


def read_log(path: Path) -> PredictionLog:
    """Parse and check every line. Raises SourceFileError (missing, empty) or LogLineError (bad line)."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise SourceFileError(path, f"cannot read the production log ({exc.strerror})") from None
    stamps: list[float] = []
    models: list[str] = []
    versions: list[str] = []
    labels: list[int] = []
    categories: list[int] = []
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    _parse(line, path, number, stamps, models, versions, labels, categories)
        except UnicodeDecodeError:
            raise SourceFileError(path, "not UTF-8 text (rule: the production log is UTF-8 JSONL)") from None
    if not models:
        raise SourceFileError(path, "the production log holds no predictions")
    masks = np.array(categories, dtype=np.int64)
    bits = (masks[:, None] >> np.arange(len(CATEGORIES))) & 1
    return PredictionLog(
        path,
        np.array(stamps, dtype=np.float64),
        tuple(models),
        tuple(versions),
        np.array(labels, dtype=np.int8),
        bits.astype(bool),
        masks >= 0,
    )


def _parse(
    line: str,
    path: Path,
    number: int,
    stamps: list[float],
    models: list[str],
    versions: list[str],
    labels: list[int],
    categories: list[int],
) -> None:
    """Check one line and append its columns. Categories are packed into a bit mask (-1: none given)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LogLineError(path, number, "(line)", f"not valid JSON at column {exc.colno}") from None
    except RecursionError:
        raise LogLineError(path, number, "(line)", "nested too deeply to be a prediction record") from None
    if not isinstance(record, dict):
        raise LogLineError(path, number, "(line)", "must be a JSON object (one prediction per line)")
    for field in ("id", "model", "version"):
        if not isinstance(record.get(field), str) or not record[field]:
            raise LogLineError(path, number, field, "required, a non-empty string")
    stamps.append(_timestamp(record.get("timestamp"), path, number))
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
    categories.append(-1 if cats is None else _category_mask(cats, path, number))
    labels.append(-1 if label is None else _LABEL_INDEX[str(label)])
    models.append(record["model"])
    versions.append(record["version"])


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
