"""The decision rule and the operating-point policy (components/evaluation/operating_point.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from components.evaluation.operating_point import (
    choose,
    decide,
    fit,
    frontier,
    measure_point,
    probabilities,
    trinary_candidates,
)
from components.export.bundle import BundleError, label_map
from components.schema import CATEGORIES, LABELS

SAFE, BORDERLINE, UNSAFE = (LABELS.index(n) for n in ("safe", "borderline", "unsafe"))
GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


def _val(seed: int = 0, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Labels and noisy softmax scores that lean towards the truth, so a policy has a real trade-off to make."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    logits = rng.normal(size=(n, 3)) + 1.2 * np.eye(3)[labels]
    return labels, probabilities(logits, "trinary")


def test_without_thresholds_trinary_is_argmax_and_with_them_the_rule() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.1, 0.2, 0.7]])
    assert decide(p, "trinary").tolist() == [SAFE, BORDERLINE, SAFE, UNSAFE]
    # unsafe when p(unsafe) >= 0.25; else borderline when p(borderline) + p(unsafe) >= 0.45; else safe
    assert decide(p, "trinary", {"unsafe": 0.25, "flagged": 0.45}).tolist() == [BORDERLINE, UNSAFE, UNSAFE, UNSAFE]
    assert decide(p, "trinary", {"unsafe": 0.9, "flagged": 0.9}).tolist() == [SAFE, SAFE, SAFE, SAFE]
    assert decide(p, "trinary", {"unsafe": 0.25}).tolist() == decide(p, "trinary").tolist()  # half a point: argmax
    taxonomy = np.full((2, len(CATEGORIES)), 0.4)
    assert not decide(taxonomy, "taxonomy").any()
    assert decide(taxonomy, "taxonomy", {CATEGORIES[0]: 0.3})[:, 0].all()


def test_max_recall_at_flag_rate_is_the_best_point_under_the_cap() -> None:
    labels, p = _val()
    point = fit("max_recall_at_flag_rate", "trinary", labels, np.zeros((len(labels), 6), bool), p, GRID, 0.1, 0.9)
    assert point.feasible == {"trinary": True}
    chosen = point.points["trinary"]
    assert chosen.flag_rate is not None and chosen.flag_rate <= 0.1
    brute = [
        measure_point("trinary", labels, np.zeros((len(labels), 6), bool), p, {"unsafe": u, "flagged": f})
        for u, f in itertools.product(GRID, GRID)
    ]
    best = max(m.recall for m in brute if m is not None and m.flag_rate is not None and m.flag_rate <= 0.1)
    assert chosen.recall == pytest.approx(best)
    # the chosen thresholds, applied, give exactly the figures the policy saw
    again = measure_point("trinary", labels, np.zeros((len(labels), 6), bool), p, point.thresholds)
    assert again is not None and (again.recall, again.flag_rate) == (chosen.recall, chosen.flag_rate)


def test_min_flag_rate_at_recall_and_an_unreachable_target_says_so() -> None:
    labels, p = _val(seed=1)
    reached = fit("min_flag_rate_at_recall", "trinary", labels, np.zeros((len(labels), 6), bool), p, GRID, 0.1, 0.9)
    chosen = reached.points["trinary"]
    assert reached.feasible["trinary"] and chosen.recall is not None and chosen.recall >= 0.9
    candidates = trinary_candidates(labels, p, GRID)
    lowest = min(
        c.flag_rate for c in candidates if c.recall is not None and c.recall >= 0.9 and c.flag_rate is not None
    )
    assert chosen.flag_rate == pytest.approx(lowest)
    # recall 1.0 needs p(unsafe) >= 0.05 for every unsafe message: plant one below the grid
    p2 = p.copy()
    first_unsafe = int(np.flatnonzero(labels == UNSAFE)[0])
    p2[first_unsafe] = [0.98, 0.01, 0.01]
    missed = fit("min_flag_rate_at_recall", "trinary", labels, np.zeros((len(labels), 6), bool), p2, GRID, 0.1, 1.0)
    assert missed.feasible == {"trinary": False}
    assert missed.points["trinary"].recall == max(c.recall or 0 for c in trinary_candidates(labels, p2, GRID))
    assert missed.to_dict()["feasible"] == {"trinary": False} and missed.to_dict()["target"] == {"min_recall": 1.0}


def test_taxonomy_fits_each_category_on_its_own() -> None:
    rng = np.random.default_rng(2)
    truth = rng.random((80, len(CATEGORIES))) < 0.3
    scores = np.clip(truth * 0.4 + rng.random(truth.shape) * 0.6, 0.0, 1.0)
    point = fit("max_recall_at_flag_rate", "taxonomy", np.zeros(80, np.int64), truth, scores, GRID, 0.05, 0.9)
    assert set(point.points) == set(CATEGORIES) and set(point.thresholds) == set(CATEGORIES)
    for i, category in enumerate(CATEGORIES):
        flagged = scores[:, i] >= point.thresholds[category]
        assert (flagged & ~truth[:, i]).sum() / (~truth[:, i]).sum() <= 0.05 + 1e-9


def test_frontier_is_monotone_and_undominated() -> None:
    labels, p = _val(seed=3)
    curve = frontier(trinary_candidates(labels, p, GRID))
    assert len(curve) >= 2
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(curve))
    with pytest.raises(ValueError, match="unknown policy"):
        choose(trinary_candidates(labels, p, GRID), "default", 0.1, 0.9)


def test_the_bundle_label_map_carries_a_trinary_operating_point_or_none() -> None:
    assert label_map("trinary", 64).thresholds == {}
    assert label_map("trinary", 64, {"unsafe": 0.3, "flagged": 0.5}).to_dict()["thresholds"] == {
        "unsafe": 0.3,
        "flagged": 0.5,
    }
    with pytest.raises(BundleError, match="must be exactly"):
        label_map("trinary", 64, {"unsafe": 0.3})
    with pytest.raises(BundleError, match=r"must lie in \(0, 1\]"):
        label_map("trinary", 64, {"unsafe": 0.0, "flagged": 0.5})
