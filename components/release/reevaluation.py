"""Continuous evaluation: judge a version's figures on new labelled feedback against the promotion gate's floors.

Pure. Measuring is ``components.evaluation.measure`` (the one evaluation path) and the floor rules are
``components.release.promotion.floor_checks`` (the gate's own), so a production version is held on feedback to exactly
the standard that let it in. What is new here is only what feedback needs: a class or category with no rows in the
feedback cannot be measured (its F1 would read 0 by the zero-division convention), so it is reported as not assessable
instead of being flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from components.config.register import GateConfig
from components.evaluation.metrics import MetricsReport
from components.evaluation.operating_point import DEFAULT_THRESHOLD, TRINARY_KEYS
from components.release.promotion import Check, floor_checks, suite_checks
from components.release.scorecard import scorecard_from_dict
from components.schema import CATEGORIES


@dataclass(frozen=True)
class FloorReview:
    """The floor checks on one re-evaluation. ``flagged`` names the failed checks (e.g. ``f1_floor:unsafe``)."""

    floor_on: str
    checks: tuple[Check, ...]
    flagged: tuple[str, ...]
    not_assessable: tuple[str, ...]  # classes/categories absent from the feedback: nothing to measure

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def review_floors(report: MetricsReport, gate: GateConfig, suites: Mapping[str, Any] | None = None) -> FloorReview:
    """Apply ``register.gate``'s floors (F1 per class/category, trinary macro-F1, unsafe recall; on the CI's lower
    bound or the point value, per ``floor_on``) to an evaluation's figures, and its suite floors to ``suites``
    (the version re-scored on each evaluation suite: ``components.evaluation.suites.suite_section``).

    A check about a class/category with no feedback rows is dropped and listed under ``not_assessable``. Raises
    MetricsFormatError only if ``report`` is not an evaluation report (a programming mistake).
    """
    figures = report.to_dict() | {"suites": dict(suites or {})}
    card = scorecard_from_dict(figures, origin=f"{report.task} re-evaluation")
    absent = {name for name, scores in report.per_class.items() if scores.support == 0}
    kept, skipped = [], []
    for check in floor_checks(card, gate):
        about = _subject(check.name)
        if about in absent:
            skipped.append(about)
        else:
            kept.append(check)
    kept += suite_checks(card, gate) if suites is not None else []
    return FloorReview(
        floor_on=gate.floor_on,
        checks=tuple(kept),
        flagged=tuple(c.name for c in kept if not c.passed),
        not_assessable=tuple(dict.fromkeys(skipped)),
    )


def _subject(check_name: str) -> str:
    """The class/category a floor check is about (``unsafe`` for the unsafe-recall floor; '' for macro-F1)."""
    if check_name.startswith("f1_floor:"):
        return check_name.split(":", 1)[1]
    return "unsafe" if check_name == "unsafe_recall_floor" else ""


def stored_thresholds(
    task: str, bundle_thresholds: Mapping[str, float], lineage_thresholds: Any
) -> tuple[dict[str, float], str]:
    """The thresholds a registered version decides with, and where they came from.

    An exported bundle ships them in labels.json (what serving applies); a registered training run carries them in
    its lineage (``thresholds``: from meta.json, or the val-fitted ones of the metrics it was registered with;
    name -> number or -> {threshold: number}). Taxonomy: one per category, 0.5 where none is stored. Trinary: the
    operating point's ``unsafe`` and ``flagged`` thresholds, or none (argmax). Unknown names are ignored, not guessed.
    """
    names = TRINARY_KEYS if task == "trinary" else CATEGORIES
    if bundle_thresholds:
        if task == "trinary":
            return dict(bundle_thresholds), "bundle labels.json"
        return {c: float(bundle_thresholds.get(c, DEFAULT_THRESHOLD)) for c in CATEGORIES}, "bundle labels.json"
    found: dict[str, float] = {}
    if isinstance(lineage_thresholds, Mapping):
        for name in names:
            value = lineage_thresholds.get(name)
            if isinstance(value, Mapping):
                value = value.get("threshold")
            if isinstance(value, int | float) and 0.0 <= float(value) <= 1.0:
                found[name] = float(value)
    if task == "trinary":
        if len(found) == len(TRINARY_KEYS):
            return found, "version lineage (registered operating point)"
        return {}, "argmax (the version stores no operating point)"
    if found:
        return {c: found.get(c, DEFAULT_THRESHOLD) for c in CATEGORIES}, "version lineage (registered thresholds)"
    return {c: DEFAULT_THRESHOLD for c in CATEGORIES}, f"default {DEFAULT_THRESHOLD} (the version stores none)"
