"""Classification metrics with seeded bootstrap confidence intervals, in plain numpy.

Every statistic is computed from weighted counts (components/evaluation/bootstrap.py), so point values and their
intervals can never disagree about a definition. Definitions follow scikit-learn (rows of a confusion matrix are
the truth; a ratio whose denominator is zero counts as 0, like ``zero_division=0``), and a test holds them to
``classification_report``.

The critical slice is the unsafe messages about suicide or self-harm: missing one of those is the most costly
error in this domain, so its recall is reported on its own and never averaged away.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from components.evaluation.bootstrap import DEFAULT_BOOTSTRAP, Bootstrap, FloatArray, estimate, ratio
from components.schema import CATEGORIES, LABELS

Task = Literal["trinary", "taxonomy"]
CRITICAL_CATEGORY = "suicide_self_harm"
_UNSAFE = LABELS.index("unsafe")
_SAFE = LABELS.index("safe")


@dataclass(frozen=True)
class Estimate:
    """A point value with its bootstrap interval; ``None`` where undefined (e.g. an empty slice)."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class ClassScores:
    precision: Estimate
    recall: Estimate
    f1: Estimate
    support: int


@dataclass(frozen=True)
class CriticalSlice:
    """Unsafe messages with suicide_self_harm. ``recall``: trinary = predicted unsafe, taxonomy = category
    flagged. ``flagged``: trinary = predicted anything but safe, taxonomy = any category flagged."""

    support: int
    recall: Estimate
    flagged: Estimate


@dataclass(frozen=True)
class MetricsReport:
    """Everything a safety reviewer reads for one (model, setting, task, split); counts and scores only."""

    task: str
    n: int
    accuracy: Estimate
    macro_f1: Estimate
    micro_f1: Estimate
    per_class: Mapping[str, ClassScores]
    confusion: Mapping[str, tuple[tuple[int, ...], ...]]
    critical: CriticalSlice
    bootstrap: Bootstrap

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes null, tuples become lists)."""
        cleaned: dict[str, Any] = _clean(asdict(self))
        return cleaned


@dataclass(frozen=True)
class ThresholdChoice:
    """The decision threshold picked for one category on val, with the F1 and positives it was chosen on."""

    threshold: float
    val_f1: float
    val_support: int


def trinary_report(
    y_true: Sequence[int] | NDArray[Any],
    y_pred: Sequence[int] | NDArray[Any],
    critical: Sequence[bool] | NDArray[Any],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> MetricsReport:
    """Metrics for label indices in ``LABELS`` order. ``critical`` marks the unsafe suicide/self-harm rows.

    Raises ValueError when the arrays differ in length, are empty, or hold an index outside the label range.
    """
    t, p, crit = _as_int(y_true, len(LABELS)), _as_int(y_pred, len(LABELS)), np.asarray(critical, dtype=bool)
    _same_length(t, p, crit)
    pairs = np.zeros((len(t), len(LABELS) ** 2))
    pairs[np.arange(len(t)), t * len(LABELS) + p] = 1.0
    extra = np.stack([crit & (p == _UNSAFE), crit & (p != _SAFE), crit], axis=1)
    features = np.concatenate([pairs, extra], axis=1)
    stats, point = estimate(features, _trinary_stats, bootstrap)
    confusion = point[: len(LABELS) ** 2].reshape(len(LABELS), len(LABELS)).astype(int)
    support = confusion.sum(axis=1)
    return _report("trinary", LABELS, stats, support, {"label": _matrix(confusion)}, int(crit.sum()), bootstrap)


def taxonomy_report(
    y_true: NDArray[Any],
    y_pred: NDArray[Any],
    critical: Sequence[bool] | NDArray[Any],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> MetricsReport:
    """Multi-label metrics for (n, 6) boolean arrays in ``CATEGORIES`` order; accuracy is exact-match (subset)
    accuracy as in scikit-learn. Per-category confusion matrices are [[tn, fp], [fn, tp]].
    """
    t, p, crit = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool), np.asarray(critical, dtype=bool)
    if t.ndim != 2 or t.shape[1] != len(CATEGORIES) or t.shape != p.shape:
        raise ValueError(f"taxonomy arrays must both be (n, {len(CATEGORIES)}), got {t.shape} and {p.shape}")
    _same_length(t, p, crit)
    ssh = CATEGORIES.index(CRITICAL_CATEGORY)
    exact = (t == p).all(axis=1)
    extra = np.stack([exact, crit & p[:, ssh], crit & p.any(axis=1), crit], axis=1)
    features = np.concatenate([t & p, ~t & p, t & ~p, extra], axis=1).astype(float)
    stats, point = estimate(features, _taxonomy_stats, bootstrap)
    k = len(CATEGORIES)
    tp, fp, fn = (point[i * k : (i + 1) * k].astype(int) for i in range(3))
    tn = len(t) - tp - fp - fn
    confusion = {c: ((int(tn[i]), int(fp[i])), (int(fn[i]), int(tp[i]))) for i, c in enumerate(CATEGORIES)}
    return _report("taxonomy", CATEGORIES, stats, tp + fn, confusion, int(crit.sum()), bootstrap)


def tune_thresholds(y_true: NDArray[Any], scores: NDArray[Any], grid: Sequence[float]) -> dict[str, ThresholdChoice]:
    """Per category, the grid threshold that maximises F1 on these (validation) rows; ties go to the lower
    threshold, which flags more messages (the safer error). A category with no positives gets F1 0 everywhere and
    so the lowest threshold; its ``val_support`` of 0 says the choice is uninformed.
    """
    t = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    levels = np.sort(np.unique(np.asarray(grid, dtype=float)))
    if levels.size == 0 or t.shape != s.shape:
        raise ValueError(f"need a non-empty grid and matching shapes, got grid {len(grid)}, {t.shape} vs {s.shape}")
    predicted = s[None, :, :] >= levels[:, None, None]  # (grid, n, categories)
    tp = (predicted & t).sum(axis=1)
    fp = (predicted & ~t).sum(axis=1)
    fn = (~predicted & t).sum(axis=1)
    f1 = ratio(2.0 * tp, 2.0 * tp + fp + fn)
    best = f1.argmax(axis=0)  # first maximum = lowest threshold
    support = t.sum(axis=0)
    return {
        c: ThresholdChoice(float(levels[best[i]]), float(f1[best[i], i]), int(support[i]))
        for i, c in enumerate(CATEGORIES)
    }


def _trinary_stats(counts: FloatArray) -> dict[str, FloatArray]:
    k = len(LABELS)
    matrix = counts[:, : k * k].reshape(-1, k, k)
    tp = np.diagonal(matrix, axis1=1, axis2=2)
    fp = matrix.sum(axis=1) - tp
    fn = matrix.sum(axis=2) - tp
    stats = _per_class(LABELS, tp, fp, fn)
    stats["accuracy"] = ratio(tp.sum(axis=1), matrix.sum(axis=(1, 2)))
    crit_unsafe, crit_flagged, crit = counts[:, k * k], counts[:, k * k + 1], counts[:, k * k + 2]
    stats["critical_recall"] = ratio(crit_unsafe, crit, empty=math.nan)
    stats["critical_flagged"] = ratio(crit_flagged, crit, empty=math.nan)
    return stats


def _taxonomy_stats(counts: FloatArray) -> dict[str, FloatArray]:
    k = len(CATEGORIES)
    tp, fp, fn = counts[:, :k], counts[:, k : 2 * k], counts[:, 2 * k : 3 * k]
    exact, crit_hit, crit_flagged, crit = (counts[:, 3 * k + i] for i in range(4))
    stats = _per_class(CATEGORIES, tp, fp, fn)
    stats["accuracy"] = ratio(exact, counts[:, -1])
    stats["critical_recall"] = ratio(crit_hit, crit, empty=math.nan)
    stats["critical_flagged"] = ratio(crit_flagged, crit, empty=math.nan)
    return stats


def _per_class(names: Sequence[str], tp: FloatArray, fp: FloatArray, fn: FloatArray) -> dict[str, FloatArray]:
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2.0 * tp, 2.0 * tp + fp + fn)
    stats = {"macro_f1": f1.mean(axis=1), "micro_f1": ratio(2.0 * tp.sum(1), (2.0 * tp + fp + fn).sum(1))}
    for i, name in enumerate(names):
        stats[f"{name}/precision"] = precision[:, i]
        stats[f"{name}/recall"] = recall[:, i]
        stats[f"{name}/f1"] = f1[:, i]
    return stats


def _report(
    task: str,
    names: Sequence[str],
    stats: Mapping[str, tuple[float, float | None, float | None]],
    support: NDArray[Any],
    confusion: Mapping[str, tuple[tuple[int, ...], ...]],
    critical_support: int,
    bootstrap: Bootstrap,
) -> MetricsReport:
    def est(name: str) -> Estimate:
        value, low, high = stats[name]
        return Estimate(*(None if v is None or math.isnan(v) else round(v, 6) for v in (value, low, high)))

    per_class = {
        name: ClassScores(est(f"{name}/precision"), est(f"{name}/recall"), est(f"{name}/f1"), int(support[i]))
        for i, name in enumerate(names)
    }
    critical = CriticalSlice(critical_support, est("critical_recall"), est("critical_flagged"))
    n = sum(sum(row) for row in next(iter(confusion.values())))
    return MetricsReport(
        task, n, est("accuracy"), est("macro_f1"), est("micro_f1"), per_class, confusion, critical, bootstrap
    )


def _as_int(values: Sequence[int] | NDArray[Any], k: int) -> NDArray[np.int64]:
    array = np.asarray(values, dtype=np.int64)
    if array.ndim != 1 or (array.size and (array.min() < 0 or array.max() >= k)):
        raise ValueError(f"expected a 1-D array of class indices in [0, {k}), got shape {array.shape}")
    return array


def _same_length(*arrays: NDArray[Any]) -> None:
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"predictions, truth and critical mask must be non-empty and equally long, got {lengths}")


def _matrix(matrix: NDArray[Any]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v) for v in row) for row in matrix)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
