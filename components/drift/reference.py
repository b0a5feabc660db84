"""The drift reference of one model version: what its predictions look like on its own test split.

Built from that version's predictions (``build_reference``) and stored with the version by the registry, so a
production window is always compared with the distribution of the *same* version. JSON form::

    {"model": "emosafe-trinary", "version": "3", "task": "trinary", "n": 1200,
     "label_distribution": {"safe": 0.6, "borderline": 0.2, "unsafe": 0.2}, "borderline_rate": 0.2}

and for the taxonomy ``"category_prevalence": {category: share of predictions carrying it}``. Only proportions and
counts: a reference never holds message text.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.schema import CATEGORIES, LABELS

TASKS = ("trinary", "taxonomy")
_TOLERANCE = 1e-6


@dataclass(frozen=True)
class DriftReference:
    """Predicted-label distribution and/or category prevalence of one model version on its test split."""

    model: str
    version: str
    task: str
    n: int
    label_distribution: Mapping[str, float] | None
    category_prevalence: Mapping[str, float] | None

    @property
    def borderline_rate(self) -> float | None:
        return None if self.label_distribution is None else self.label_distribution["borderline"]

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "version": self.version, "task": self.task, "n": self.n}
        if self.label_distribution is not None:
            payload["label_distribution"] = dict(self.label_distribution)
            payload["borderline_rate"] = self.borderline_rate
        if self.category_prevalence is not None:
            payload["category_prevalence"] = dict(self.category_prevalence)
        return payload


def build_reference(
    model: str,
    version: str,
    task: str,
    labels: Sequence[str] | None = None,
    categories: Sequence[Collection[str]] | None = None,
) -> DriftReference:
    """Reference from one version's predictions (labels for trinary, category sets for taxonomy, or both).

    Raises ValueError on an unknown task, label or category, on no predictions, or on lists of different lengths.
    """
    sizes = {len(x) for x in (labels, categories) if x is not None}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError("build_reference needs predictions (labels and/or categories of the same, non-zero length)")
    n = sizes.pop()
    distribution = None
    if labels is not None:
        unknown = sorted(set(labels) - set(LABELS))
        if unknown:
            raise ValueError(f"unknown label(s) {unknown}; allowed: {list(LABELS)}")
        distribution = {label: sum(1 for x in labels if x == label) / n for label in LABELS}
    prevalence = None
    if categories is not None:
        unknown = sorted(set().union(*map(set, categories)) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown categor(ies) {unknown}; allowed: {list(CATEGORIES)}")
        prevalence = {cat: sum(1 for cats in categories if cat in cats) / n for cat in CATEGORIES}
    return parse_reference(
        {
            "model": model,
            "version": version,
            "task": task,
            "n": n,
            "label_distribution": distribution,
            "category_prevalence": prevalence,
        },
        "build_reference",
    )


def parse_reference(raw: Any, origin: str) -> DriftReference:
    """Validate a reference mapping (e.g. read from JSON). Raises ValueError naming ``origin``, the field and rule."""
    if not isinstance(raw, dict):
        raise ValueError(f"{origin}: a reference must be a JSON object")
    for field in ("model", "version", "task"):
        if not isinstance(raw.get(field), str) or not raw[field]:
            raise ValueError(f"{origin}, field '{field}': must be a non-empty string")
    if raw["task"] not in TASKS:
        raise ValueError(f"{origin}, field 'task': must be one of {list(TASKS)}")
    n = raw.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{origin}, field 'n': must be a positive integer (predictions behind the reference)")
    labels = _proportions(raw.get("label_distribution"), LABELS, origin, "label_distribution", sums_to_one=True)
    categories = _proportions(raw.get("category_prevalence"), CATEGORIES, origin, "category_prevalence", False)
    if labels is None and categories is None:
        raise ValueError(f"{origin}: needs label_distribution and/or category_prevalence")
    rate = raw.get("borderline_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
        raise ValueError(f"{origin}, field 'borderline_rate': must be a number")
    if rate is not None and labels is not None and abs(float(rate) - labels["borderline"]) > _TOLERANCE:
        raise ValueError(f"{origin}, field 'borderline_rate': must equal label_distribution.borderline")
    return DriftReference(raw["model"], raw["version"], raw["task"], n, labels, categories)


def _proportions(raw: Any, keys: Sequence[str], origin: str, field: str, sums_to_one: bool) -> dict[str, float] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != set(keys):
        raise ValueError(f"{origin}, field '{field}': must map exactly {list(keys)} to proportions")
    values = {key: raw[key] for key in keys}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{origin}, field '{field}.{key}': must be a proportion in [0, 1]")
    if sums_to_one and not math.isclose(sum(values.values()), 1.0, abs_tol=_TOLERANCE):
        raise ValueError(f"{origin}, field '{field}': proportions must sum to 1")
    return {key: float(value) for key, value in values.items()}


def reference_from_confusion(model: str, version: str, task: str, confusion: Mapping[str, Any]) -> DriftReference:
    """Reference from an evaluation's confusion matrices (``MetricsReport.confusion``): the predicted counts of the
    evaluated file, so the shipped file's reference comes from the same scoring that proved it (no second run).

    Trinary: ``{"label": rows = truth, columns = predicted, in LABELS order}``; taxonomy: ``{category: [[tn, fp],
    [fn, tp]]}``. Raises ValueError naming the missing or malformed matrix.
    """
    if task == "trinary":
        matrix = confusion.get("label")
        if not isinstance(matrix, list | tuple) or len(matrix) != len(LABELS):
            raise ValueError(f"confusion.label: need a {len(LABELS)}x{len(LABELS)} matrix (rows truth, cols predicted)")
        predicted = [int(sum(int(row[j]) for row in matrix)) for j in range(len(LABELS))]
        labels = [label for label, count in zip(LABELS, predicted, strict=True) for _ in range(count)]
        return build_reference(model, version, task, labels=labels)
    missing = [c for c in CATEGORIES if not isinstance(confusion.get(c), list | tuple)]
    if missing:
        raise ValueError(f"confusion: no [[tn, fp], [fn, tp]] matrix for categor(ies) {missing}")
    n = sum(int(x) for row in confusion[CATEGORIES[0]] for x in row)
    if n < 1:
        raise ValueError("confusion: no predictions behind the matrices")
    prevalence = {c: (int(confusion[c][0][1]) + int(confusion[c][1][1])) / n for c in CATEGORIES}
    return parse_reference(
        {"model": model, "version": version, "task": task, "n": n, "category_prevalence": prevalence},
        "reference_from_confusion",
    )
