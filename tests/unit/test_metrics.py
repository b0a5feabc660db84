"""components.evaluation.metrics against scikit-learn, plus bootstrap, critical slice and threshold tuning rules."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
)

from components.evaluation.bootstrap import Bootstrap
from components.evaluation.metrics import taxonomy_report, trinary_report, tune_thresholds
from components.schema import CATEGORIES, LABELS

NO_CI = Bootstrap(resamples=0)


def _trinary_data(n: int = 300, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < 0.6, truth, rng.integers(0, 3, n))
    critical = (truth == 2) & (rng.random(n) < 0.5)
    return truth, pred, critical


def _taxonomy_data(n: int = 300, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random((n, 6)) < 0.2
    pred = np.where(rng.random((n, 6)) < 0.7, truth, rng.random((n, 6)) < 0.3)
    return truth, pred


def test_trinary_matches_sklearn_classification_report() -> None:
    truth, pred, critical = _trinary_data()
    report = trinary_report(truth, pred, critical, NO_CI)
    expected = classification_report(truth, pred, labels=[0, 1, 2], output_dict=True, zero_division=0)
    for i, label in enumerate(LABELS):
        scores = report.per_class[label]
        assert scores.precision.value == pytest.approx(expected[str(i)]["precision"], abs=1e-6)
        assert scores.recall.value == pytest.approx(expected[str(i)]["recall"], abs=1e-6)
        assert scores.f1.value == pytest.approx(expected[str(i)]["f1-score"], abs=1e-6)
        assert scores.support == expected[str(i)]["support"]
    assert report.macro_f1.value == pytest.approx(f1_score(truth, pred, average="macro"), abs=1e-6)
    assert report.micro_f1.value == pytest.approx(f1_score(truth, pred, average="micro"), abs=1e-6)
    assert report.accuracy.value == pytest.approx(accuracy_score(truth, pred), abs=1e-6)
    assert np.array_equal(np.array(report.confusion["label"]), confusion_matrix(truth, pred, labels=[0, 1, 2]))
    assert report.n == len(truth)


def test_taxonomy_matches_sklearn_multilabel() -> None:
    truth, pred = _taxonomy_data()
    report = taxonomy_report(truth, pred, np.zeros(len(truth), bool), NO_CI)
    expected = classification_report(truth, pred, output_dict=True, zero_division=0)
    for i, category in enumerate(CATEGORIES):
        assert report.per_class[category].f1.value == pytest.approx(expected[str(i)]["f1-score"], abs=1e-6)
        assert report.per_class[category].precision.value == pytest.approx(expected[str(i)]["precision"], abs=1e-6)
        assert report.per_class[category].recall.value == pytest.approx(expected[str(i)]["recall"], abs=1e-6)
        assert report.per_class[category].support == expected[str(i)]["support"]
    assert report.macro_f1.value == pytest.approx(f1_score(truth, pred, average="macro", zero_division=0), abs=1e-6)
    assert report.micro_f1.value == pytest.approx(f1_score(truth, pred, average="micro", zero_division=0), abs=1e-6)
    assert report.accuracy.value == pytest.approx(accuracy_score(truth, pred), abs=1e-6)
    sk = multilabel_confusion_matrix(truth, pred)
    for i, category in enumerate(CATEGORIES):
        assert np.array_equal(np.array(report.confusion[category]), sk[i])
    assert report.critical.support == 0 and report.critical.recall.value is None


def test_empty_class_counts_as_zero_like_sklearn() -> None:
    truth, pred = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])  # 'unsafe' neither true nor predicted
    report = trinary_report(truth, pred, np.zeros(4, bool), NO_CI)
    assert report.per_class["unsafe"].f1.value == 0.0
    expected = f1_score(truth, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    assert report.macro_f1.value == pytest.approx(expected)


def test_critical_slice_is_recall_of_unsafe_on_marked_rows() -> None:
    truth = np.array([2, 2, 2, 2, 0])
    pred = np.array([2, 1, 0, 2, 2])
    critical = np.array([True, True, True, False, False])
    report = trinary_report(truth, pred, critical, NO_CI)
    assert report.critical.support == 3
    assert report.critical.recall.value == pytest.approx(1 / 3)
    assert report.critical.flagged.value == pytest.approx(2 / 3)


def test_bootstrap_is_seeded_contains_point_and_is_fast() -> None:
    truth, pred, critical = _trinary_data(n=1000)
    settings = Bootstrap(resamples=1000, seed=5)
    start = time.perf_counter()
    first = trinary_report(truth, pred, critical, settings)
    seconds = time.perf_counter() - start
    again = trinary_report(truth, pred, critical, settings)
    other = trinary_report(truth, pred, critical, Bootstrap(resamples=1000, seed=6))
    assert first == again and first != other
    for estimate in (first.accuracy, first.macro_f1, first.per_class["unsafe"].f1, first.critical.recall):
        assert estimate.low is not None and estimate.high is not None and estimate.value is not None
        assert estimate.low <= estimate.value <= estimate.high
        assert 0.0 < estimate.high - estimate.low < 0.2
    assert seconds < 1.0, f"1000 resamples x 1000 rows took {seconds:.2f}s"


def test_bootstrap_interval_matches_a_naive_loop() -> None:
    truth, pred, critical = _trinary_data(n=200, seed=9)
    rng = np.random.default_rng(0)
    naive = [accuracy_score(truth[i], pred[i]) for i in (rng.integers(0, 200, 200) for _ in range(300))]
    report = trinary_report(truth, pred, critical, Bootstrap(resamples=300, seed=0))
    assert report.accuracy.low == pytest.approx(np.percentile(naive, 2.5), abs=1e-6)
    assert report.accuracy.high == pytest.approx(np.percentile(naive, 97.5), abs=1e-6)


def test_report_serialises_to_json_without_nan() -> None:
    truth, pred = _taxonomy_data(n=50)
    payload = taxonomy_report(truth, pred, np.zeros(50, bool), Bootstrap(resamples=20)).to_dict()
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text)["per_class"]["suicide_self_harm"]["support"] == int(truth[:, 5].sum())


def test_tune_thresholds_maximises_f1_and_breaks_ties_low() -> None:
    truth = np.zeros((6, 6), bool)
    truth[:3, 0] = True
    scores = np.zeros((6, 6))
    scores[:, 0] = [0.9, 0.8, 0.45, 0.4, 0.1, 0.05]  # 0.45 catches all three positives and no negative
    scores[:, 1] = [0.6, 0.6, 0.6, 0.6, 0.6, 0.6]  # no positives: F1 is 0 everywhere -> lowest threshold
    chosen = tune_thresholds(truth, scores, [0.7, 0.3, 0.5, 0.45, 0.42])
    assert chosen["violence_hate"].threshold == 0.42 and chosen["violence_hate"].val_f1 == 1.0
    assert chosen["sexual_content"].threshold == 0.3 and chosen["sexual_content"].val_support == 0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="equally long"):
        trinary_report([0, 1], [0], [False, False], NO_CI)
    with pytest.raises(ValueError, match="class indices"):
        trinary_report([0, 3], [0, 1], [False, False], NO_CI)
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        taxonomy_report(np.zeros((2, 5), bool), np.zeros((2, 5), bool), [False, False], NO_CI)
