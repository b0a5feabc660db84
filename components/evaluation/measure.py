"""The one evaluation path: predictor scores -> decisions -> metrics with intervals, for any setting.

Zero-shot, few-shot, fine-tuned and exported (ONNX) models differ only in how they produce scores; everything
after ``Predictor.predict`` happens here, once. Decisions follow ``operating_point.decide``: trinary = the most
probable label, or the (unsafe, flagged) thresholds of an operating-point policy; taxonomy = score >= the category's
threshold (0.5 unless thresholds fitted on val are given, which are then applied unchanged to test).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from components.errors import EvaluationError
from components.evaluation.bootstrap import Bootstrap
from components.evaluation.metrics import CRITICAL_CATEGORY, MetricsReport, taxonomy_report, trinary_report
from components.evaluation.operating_point import DEFAULT_THRESHOLD, TRINARY_KEYS, decide
from components.evaluation.predictors import Predictor, checked_scores
from components.schema import CATEGORIES, LABELS

log = logging.getLogger(__name__)
REQUIRED = ("id", "text", "label", *CATEGORIES)
NO_INTERVALS = Bootstrap(resamples=0)


@dataclass(frozen=True)
class EvaluationResult:
    """Scores stay in memory (for threshold tuning); ``report`` is what gets written."""

    task: str
    ids: tuple[str, ...]
    scores: NDArray[np.float64]
    thresholds: Mapping[str, float] | None
    report: MetricsReport


def evaluate(
    predictor: Predictor,
    frame: pd.DataFrame,
    task: str,
    thresholds: Mapping[str, float] | None = None,
    bootstrap: Bootstrap = NO_INTERVALS,
) -> EvaluationResult:
    """Score every row of ``frame`` (schema columns, e.g. one split) and measure. Raises EvaluationError on an
    empty frame, missing columns or scores that break the Predictor contract."""
    check_frame(frame)
    if predictor.task != task:
        raise EvaluationError(f"predictor is for task '{predictor.task}', asked to evaluate '{task}'")
    log.info("scoring %d messages (%s)", len(frame), task)
    scores = checked_scores(predictor.predict(frame["text"].astype(str).tolist()), len(frame), task)
    return assess(frame, scores, task, thresholds, bootstrap)


def assess(
    frame: pd.DataFrame,
    scores: NDArray[np.float64],
    task: str,
    thresholds: Mapping[str, float] | None = None,
    bootstrap: Bootstrap = NO_INTERVALS,
) -> EvaluationResult:
    """Metrics for already computed scores (so val can be re-measured after tuning without re-scoring)."""
    check_frame(frame)
    scores = checked_scores(scores, len(frame), task)
    critical = critical_mask(frame)
    ids = tuple(frame["id"].astype(str))
    if task == "trinary":
        chosen = {k: float(thresholds[k]) for k in TRINARY_KEYS} if thresholds and _has_trinary(thresholds) else None
        report = trinary_report(label_indices(frame), decide(scores, task, chosen), critical, bootstrap)
        return EvaluationResult(task, ids, scores, chosen, report)
    chosen = {c: float((thresholds or {}).get(c, DEFAULT_THRESHOLD)) for c in CATEGORIES}
    report = taxonomy_report(category_matrix(frame), decide(scores, task, chosen), critical, bootstrap)
    return EvaluationResult(task, ids, scores, chosen, report)


def _has_trinary(thresholds: Mapping[str, float] | None) -> bool:
    return thresholds is not None and all(key in thresholds for key in TRINARY_KEYS)


def decisions(result: EvaluationResult) -> NDArray[np.int64] | NDArray[np.bool_]:
    """What the model decided: label indices (trinary) or the flagged matrix (taxonomy), by the result's thresholds."""
    return decide(result.scores, result.task, result.thresholds)


def check_frame(frame: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise EvaluationError(f"evaluation data lacks column(s) {missing} (rule: the dataset schema, docs/data.md)")
    if frame.empty:
        raise EvaluationError("evaluation data has no rows (rule: a split to evaluate must not be empty)")
    unknown = sorted(set(frame["label"].astype(str)) - set(LABELS))
    if unknown:
        raise EvaluationError(f"evaluation data has unknown label(s) {unknown} (rule: one of {list(LABELS)})")


def label_indices(frame: pd.DataFrame) -> NDArray[np.int64]:
    return frame["label"].astype(str).map(LABELS.index).to_numpy(dtype=np.int64)


def category_matrix(frame: pd.DataFrame) -> NDArray[np.bool_]:
    return frame[list(CATEGORIES)].astype(bool).to_numpy()


def critical_mask(frame: pd.DataFrame) -> NDArray[np.bool_]:
    """Unsafe messages about suicide or self-harm: the slice whose recall is reported on its own."""
    return ((frame["label"].astype(str) == "unsafe") & frame[CRITICAL_CATEGORY].astype(bool)).to_numpy()
