"""The decision rule and the operating-point policy: how scores become decisions, and how thresholds are chosen.

A crisis product picks its thresholds by policy, not argmax: "catch as many unsafe messages as possible while
flagging at most 10% of safe ones", or "catch at least 90% of unsafe messages at the lowest flag rate". The
policy (``evaluate.operating_point``) is fitted on val, then applied unchanged to test, the suites, the canaries,
the exported bundle (``labels.json``) and ``predict``. Everything that turns scores into decisions calls ``decide``,
so the evaluation, the int8 check and the served bundle cannot disagree on the rule.

Trinary thresholds are two numbers on the softmax probabilities: a message is ``unsafe`` when p(unsafe) >=
``unsafe``; otherwise ``borderline`` when p(borderline) + p(unsafe) >= ``flagged``; otherwise ``safe``. Without them
the rule is argmax. Taxonomy thresholds are one per category on the sigmoid probabilities (0.5 when missing).

The figures a policy reads (trinary): unsafe recall = unsafe messages called unsafe / unsafe messages; flag rate =
safe messages called borderline or unsafe / safe messages. Taxonomy, per category: recall of the category, and the
share of messages without it that get it. Ties go to the lower flag rate, then the lower thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from components.schema import CATEGORIES, LABELS

TRINARY_KEYS = ("unsafe", "flagged")
DEFAULT_THRESHOLD = 0.5
POLICIES = ("default", "max_recall_at_flag_rate", "min_flag_rate_at_recall")
_SAFE, _BORDERLINE, _UNSAFE = (LABELS.index(name) for name in ("safe", "borderline", "unsafe"))


def probabilities(logits: NDArray[Any], task: str) -> NDArray[np.float64]:
    """Softmax (trinary) or sigmoid (taxonomy): the scale every threshold is on."""
    values = np.asarray(logits, dtype=np.float64)
    if task == "taxonomy":
        return np.asarray(1.0 / (1.0 + np.exp(-values)))
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def decide(scores: NDArray[Any], task: str, thresholds: Mapping[str, float] | None = None) -> NDArray[Any]:
    """Decisions for (n, k) probabilities: label indices (trinary) or the (n, 6) flagged matrix (taxonomy).

    Trinary with no ``unsafe``/``flagged`` thresholds is argmax (so logits work as well as probabilities)."""
    scores = np.asarray(scores, dtype=np.float64)
    chosen = thresholds or {}
    if task == "trinary":
        if not all(key in chosen for key in TRINARY_KEYS):
            return np.asarray(scores.argmax(axis=1), dtype=np.int64)
        unsafe = scores[:, _UNSAFE] >= chosen["unsafe"]
        flagged = scores[:, _BORDERLINE] + scores[:, _UNSAFE] >= chosen["flagged"]
        return np.where(unsafe, _UNSAFE, np.where(flagged, _BORDERLINE, _SAFE)).astype(np.int64)
    limits = np.array([float(chosen.get(c, DEFAULT_THRESHOLD)) for c in CATEGORIES])
    return np.asarray(scores >= limits, dtype=bool)


@dataclass(frozen=True)
class Point:
    """One threshold choice and what it does on the rows it was measured on."""

    thresholds: dict[str, float]
    recall: float | None  # unsafe recall (trinary) or the category's recall (taxonomy); None: no positives
    flag_rate: float | None  # safe messages flagged (trinary) or negatives flagged (taxonomy); None: no negatives
    positives: int
    negatives: int


@dataclass(frozen=True)
class OperatingPoint:
    """The fitted policy: per key (``trinary`` or a category), the chosen point and whether it met the target."""

    policy: str
    target: dict[str, float]
    points: dict[str, Point]
    feasible: dict[str, bool]

    @property
    def thresholds(self) -> dict[str, float]:
        """The decision thresholds, flat: {unsafe, flagged} (trinary) or {category: threshold} (taxonomy)."""
        merged: dict[str, float] = {}
        for point in self.points.values():
            merged.update(point.thresholds)
        return merged

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "target": self.target,
            "thresholds": self.thresholds,
            "points": {key: asdict(point) for key, point in self.points.items()},
            "feasible": self.feasible,
        }


def trinary_candidates(labels: NDArray[np.int64], probabilities: NDArray[Any], grid: Sequence[float]) -> list[Point]:
    """Every (unsafe, flagged) pair of the grid with its unsafe recall and safe flag rate on these rows."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    unsafe, safe = y == _UNSAFE, y == _SAFE
    levels = np.sort(np.unique(np.asarray(grid, dtype=np.float64)))
    called = p[:, _UNSAFE][None, :] >= levels[:, None]  # (grid, n)
    risk = (p[:, _BORDERLINE] + p[:, _UNSAFE])[None, :] >= levels[:, None]
    hits = (called & unsafe).sum(axis=1)
    points = []
    for i, t_unsafe in enumerate(levels):
        flagged = called[i][None, :] | risk  # (grid, n): flagged at every "flagged" level
        safe_flagged = (flagged & safe).sum(axis=1)
        for j, t_flag in enumerate(levels):
            points.append(
                Point(
                    {"unsafe": float(t_unsafe), "flagged": float(t_flag)},
                    _share(int(hits[i]), int(unsafe.sum())),
                    _share(int(safe_flagged[j]), int(safe.sum())),
                    int(unsafe.sum()),
                    int(safe.sum()),
                )
            )
    return points


def category_candidates(
    truth: NDArray[np.bool_], probabilities: NDArray[Any], grid: Sequence[float]
) -> dict[str, list[Point]]:
    """Per category, every grid threshold with the category's recall and the share of other messages it flags."""
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(probabilities, dtype=np.float64)
    levels = np.sort(np.unique(np.asarray(grid, dtype=np.float64)))
    out: dict[str, list[Point]] = {}
    for i, category in enumerate(CATEGORIES):
        flagged = p[:, i][None, :] >= levels[:, None]
        positives, negatives = int(t[:, i].sum()), int((~t[:, i]).sum())
        hits, false = (flagged & t[:, i]).sum(axis=1), (flagged & ~t[:, i]).sum(axis=1)
        out[category] = [
            Point({category: float(level)}, _share(int(h), positives), _share(int(f), negatives), positives, negatives)
            for level, h, f in zip(levels, hits, false, strict=True)
        ]
    return out


def choose(points: Sequence[Point], policy: str, max_flag_rate: float, min_recall: float) -> tuple[Point, bool]:
    """The policy's point among ``points`` and whether it met its target on these rows.

    ``max_recall_at_flag_rate``: the highest recall with flag rate <= ``max_flag_rate``; when none qualifies, the
    lowest flag rate (not feasible). ``min_flag_rate_at_recall``: the lowest flag rate with recall >= ``min_recall``;
    when none qualifies, the highest recall (not feasible). Ties: lower flag rate, then lower thresholds."""
    if policy not in POLICIES[1:]:
        raise ValueError(f"unknown policy '{policy}' (one of {list(POLICIES[1:])})")

    def recall(point: Point) -> float:
        return -1.0 if point.recall is None else point.recall

    def flag(point: Point) -> float:
        return 2.0 if point.flag_rate is None else point.flag_rate

    def lower(point: Point) -> tuple[float, ...]:
        return tuple(point.thresholds.values())

    if policy == "max_recall_at_flag_rate":
        allowed = [p for p in points if flag(p) <= max_flag_rate + 1e-12]
        if allowed:
            return min(allowed, key=lambda p: (-recall(p), flag(p), lower(p))), True
        return min(points, key=lambda p: (flag(p), -recall(p), lower(p))), False
    allowed = [p for p in points if recall(p) >= min_recall - 1e-12]
    if allowed:
        return min(allowed, key=lambda p: (flag(p), -recall(p), lower(p))), True
    return min(points, key=lambda p: (-recall(p), flag(p), lower(p))), False


def fit(
    policy: str,
    task: str,
    labels: NDArray[np.int64],
    truth: NDArray[np.bool_],
    probabilities: NDArray[Any],
    grid: Sequence[float],
    max_flag_rate: float,
    min_recall: float,
) -> OperatingPoint:
    """Fit ``policy`` on these (validation) rows: trinary on (unsafe, flagged), taxonomy per category."""
    target = {"max_flag_rate": max_flag_rate} if policy == "max_recall_at_flag_rate" else {"min_recall": min_recall}
    if task == "trinary":
        point, ok = choose(trinary_candidates(labels, probabilities, grid), policy, max_flag_rate, min_recall)
        return OperatingPoint(policy, target, {"trinary": point}, {"trinary": ok})
    points, feasible = {}, {}
    for category, candidates in category_candidates(truth, probabilities, grid).items():
        points[category], feasible[category] = choose(candidates, policy, max_flag_rate, min_recall)
    return OperatingPoint(policy, target, points, feasible)


def frontier(points: Sequence[Point]) -> list[tuple[float, float]]:
    """The (flag rate, recall) pairs no other point beats on both: the curve a report draws, by flag rate."""
    pairs = sorted({(p.flag_rate, p.recall) for p in points if p.flag_rate is not None and p.recall is not None})
    curve: list[tuple[float, float]] = []
    for flag_rate, recall in pairs:
        if curve and recall <= curve[-1][1]:
            continue
        if curve and flag_rate == curve[-1][0]:
            curve[-1] = (flag_rate, recall)
        else:
            curve.append((flag_rate, recall))
    return [(round(f, 6), round(r, 6)) for f, r in curve]


def measure_point(
    task: str,
    labels: NDArray[np.int64],
    truth: NDArray[np.bool_],
    probabilities: NDArray[Any],
    thresholds: Mapping[str, float],
) -> Point | None:
    """Trinary only: the unsafe recall and safe flag rate of ``thresholds`` (argmax when empty) on these rows."""
    if task != "trinary":
        return None
    decided = decide(probabilities, task, thresholds)
    y = np.asarray(labels, dtype=np.int64)
    unsafe, safe = y == _UNSAFE, y == _SAFE
    return Point(
        dict(thresholds),
        _share(int((unsafe & (decided == _UNSAFE)).sum()), int(unsafe.sum())),
        _share(int((safe & (decided != _SAFE)).sum()), int(safe.sum())),
        int(unsafe.sum()),
        int(safe.sum()),
    )


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole
