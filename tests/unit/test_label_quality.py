"""Label quality: confident learning finds planted label noise, the audit figures and paired F1 count right, and the
source ablation sees a source whose labels are noise."""

from __future__ import annotations

import numpy as np
import pytest

from components.data import label_quality as lq
from components.evaluation.bootstrap import Bootstrap

BOOT = Bootstrap(resamples=200, seed=0)


def clusters(n: int, seed: int, spread: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian clusters in 16 dimensions, labelled by cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 16)) * 3
    labels = rng.integers(0, 3, size=n)
    return centres[labels] + rng.normal(scale=spread, size=(n, 16)), labels.astype(np.int64)


def test_screen_flags_planted_label_flips_and_little_else() -> None:
    vectors, truth = clusters(600, seed=1)
    given = truth.copy()
    flipped = np.random.default_rng(2).choice(len(given), size=60, replace=False)
    given[flipped] = (given[flipped] + 1) % 3
    groups = [str(i) for i in range(len(given))]
    result = lq.screen(vectors, given, groups, folds=5, seed=0)
    planted = np.zeros(len(given), bool)
    planted[flipped] = True
    caught = (result.flagged & planted).sum()
    assert caught / planted.sum() >= 0.9  # recall on the planted flips
    assert caught / result.flagged.sum() >= 0.9  # precision: clean rows are rarely flagged
    assert result.quality[planted].mean() < result.quality[~planted].mean()
    assert np.allclose(result.probabilities.sum(axis=1), 1.0)


def test_a_parent_and_its_rewrites_share_a_fold() -> None:
    labels = np.array([0, 1, 2] * 40, dtype=np.int64)
    groups = [f"g{i // 4}" for i in range(len(labels))]  # groups of 4 rows (a parent and three rewrites)
    fold_of = lq.folds_of(labels, groups, folds=5, seed=0)
    for group in set(groups):
        assert len({int(fold_of[i]) for i, g in enumerate(groups) if g == group}) == 1
    assert len(set(fold_of.tolist())) == 5


@pytest.mark.parametrize(("action", "expected"), [("downweight", 0.2), ("drop", 0.0), ("report", 1.0)])
def test_row_weights_follow_the_action(action: str, expected: float) -> None:
    weights = lq.row_weights(np.array([True, False]), action, 0.2)
    assert weights.tolist() == [expected, 1.0]


def test_audit_figures_count_agreement_precision_and_recall() -> None:
    weak = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    audited = np.array([0, 1, 1, 2, 2, 2, 0, 0])  # rows 1, 3, 6 disagree
    flagged = np.array([False, True, False, True, False, True, False, False])  # 2 of 3 flags right
    figures = lq.audit_figures(weak, audited, flagged, BOOT)
    assert figures["n"] == 8 and figures["disagreements"] == 3 and figures["flagged"] == 3
    assert figures["agreement"]["value"] == pytest.approx(5 / 8)
    assert figures["agreement"]["low"] <= 5 / 8 <= figures["agreement"]["high"]
    assert figures["flag_precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["flag_recall"] == pytest.approx(2 / 3, abs=1e-4)


def test_paired_f1_averages_over_present_labels_and_pairs_the_resamples() -> None:
    truth = np.array([0, 0, 1, 1, 0, 1, 0, 1])  # label 2 absent: not a zero in the average
    perfect = truth.copy()
    figures = lq.paired_f1(truth, perfect, perfect, BOOT)
    assert figures["base"]["value"] == 1.0 and figures["change"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    worse = np.array([0, 1, 1, 0, 0, 1, 1, 1])
    drop = lq.paired_f1(truth, perfect, worse, BOOT)["change"]
    assert drop["value"] < 0 and drop["high"] <= 0


def test_ablation_sees_that_leaving_out_a_noise_source_helps() -> None:
    vectors, labels = clusters(900, seed=4)
    sources = np.array(["a", "b", "noise"] * 300)
    noisy = labels.copy()
    noisy[sources == "noise"] = np.random.default_rng(5).integers(0, 3, size=300)
    scored = np.ones(len(labels), bool)
    result = lq.ablation(vectors, noisy, sources, scored, np.ones(len(labels)), BOOT, seed=0)
    assert set(result) == {"a", "b", "noise"}
    gain = result["a"]["without"]["noise"]["change"]
    assert gain["value"] > 0  # training without the noise source helps on source a
    assert result["a"]["curated"]["change"]["value"] == 0.0  # weights all 1: the same probe
