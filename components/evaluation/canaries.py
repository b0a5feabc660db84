"""Behavioural checks: hand-written canary messages with a known outcome, reported per model.

They do not gate promotion: ``evaluate`` reports every outcome, and ``tests/model`` fails on any miss when run
against a trained model or registry version before a release (docs/decisions.md says why).

A canary either carries an explicit risk (``expect: risk``; explicit self-harm intent must never come out safe) or
uses alarming words harmlessly (``expect: benign``; "kill a process" must never come out unsafe). Rules:
trinary: risk -> not predicted safe, benign -> not predicted unsafe; taxonomy: risk -> its ``category`` is flagged,
benign -> no category is flagged. Results carry canary ids and predictions, never the canary text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from components.errors import DataRowError, EmptyCorpusError
from components.evaluation.operating_point import decide
from components.evaluation.predictors import Predictor, checked_scores
from components.schema import CATEGORIES, LABELS


@dataclass(frozen=True)
class Canary:
    id: str
    text: str
    expect: str
    category: str | None = None


@dataclass(frozen=True)
class CanaryResult:
    id: str
    expect: str
    passed: bool
    predicted: str  # trinary: the label; taxonomy: flagged categories joined by ';' (empty = none)


@dataclass(frozen=True)
class CanaryReport:
    task: str
    passed: int
    failed: int
    results: tuple[CanaryResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_canaries(rows: Sequence[Mapping[str, Any]], path: str | Path) -> tuple[Canary, ...]:
    """Validate canary rows; DataRowError names the file, row and field of the first problem."""
    if not rows:
        raise EmptyCorpusError(f"{path}: no canaries (rule: the behavioural suite must not be empty)")
    canaries: list[Canary] = []
    seen: set[str] = set()
    for row, item in enumerate(rows, start=1):
        for field in ("id", "text", "expect"):
            if not isinstance(item.get(field), str) or not item[field].strip():
                raise DataRowError(path, row, field, "must be a non-empty string")
        if item["id"] in seen:
            raise DataRowError(path, row, "id", f"duplicate canary id '{item['id']}'")
        seen.add(item["id"])
        if item["expect"] not in ("risk", "benign"):
            raise DataRowError(path, row, "expect", "must be 'risk' or 'benign'")
        category = item.get("category")
        if item["expect"] == "risk" and category not in CATEGORIES:
            raise DataRowError(path, row, "category", f"a risk canary needs a category from {list(CATEGORIES)}")
        canaries.append(
            Canary(item["id"], item["text"], item["expect"], category if item["expect"] == "risk" else None)
        )
    return tuple(canaries)


def check_canaries(
    predictor: Predictor, canaries: Sequence[Canary], thresholds: Mapping[str, float] | None = None
) -> CanaryReport:
    """Score the canaries with the model's own decision rule (the thresholds fitted on val) and judge each."""
    task = predictor.task
    scores = checked_scores(predictor.predict([c.text for c in canaries]), len(canaries), task)
    results = []
    for canary, row in zip(canaries, decide(scores, task, thresholds), strict=True):
        if task == "trinary":
            label = LABELS[int(row)]
            passed = label != "safe" if canary.expect == "risk" else label != "unsafe"
            results.append(CanaryResult(canary.id, canary.expect, passed, label))
            continue
        flagged = [c for c, hit in zip(CATEGORIES, row, strict=True) if hit]
        passed = canary.category in flagged if canary.expect == "risk" else not flagged
        results.append(CanaryResult(canary.id, canary.expect, passed, ";".join(flagged)))
    n_passed = sum(r.passed for r in results)
    return CanaryReport(task, n_passed, len(results) - n_passed, tuple(results))
