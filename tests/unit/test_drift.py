"""Drift statistics (components/drift/statistics.py) against scipy and direct computations on the same counts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from components.config.monitor import DriftConfig
from components.drift.reference import DriftReference, build_reference, parse_reference
from components.drift.statistics import (
    Verdict,
    adjust_p_values,
    assess_windows,
    chi_square_statistic,
    cohens_h,
    js_distance_base2,
    monte_carlo_p_value,
    psi,
)

REF_P = np.array([0.6, 0.2, 0.2])
EXACT = DriftConfig(account_for_reference_size=False, min_samples=10)


def trinary_reference(n: int = 10_000, probs: tuple[float, ...] = (0.6, 0.2, 0.2)) -> DriftReference:
    return parse_reference(
        {
            "model": "m",
            "version": "1",
            "task": "trinary",
            "n": n,
            "label_distribution": dict(zip(("safe", "borderline", "unsafe"), probs, strict=True)),
        },
        "test",
    )


@pytest.mark.parametrize("counts", [[310, 100, 90], [250, 150, 100], [600, 180, 220], [45, 30, 25]])
def test_chi_square_agrees_with_scipy_and_effects_with_direct_formulas(counts: list[int]) -> None:
    observed = np.array([counts], dtype=np.int64)
    n = observed.sum(axis=1)
    [window] = assess_windows(n, observed, None, trinary_reference(), EXACT)
    labels = window.signals[0]
    expected = REF_P * n[0]
    scipy_result = stats.chisquare(counts, expected)
    assert labels.statistic == pytest.approx(scipy_result.statistic, rel=1e-12)
    assert labels.p_value == pytest.approx(scipy_result.pvalue, rel=1e-9)
    q = np.array(counts) / n[0]
    assert labels.effect == pytest.approx(math.sqrt(scipy_result.statistic / n[0]), rel=1e-12)  # Cohen's w
    direct_psi = sum((qi - pi) * math.log(qi / pi) for qi, pi in zip(q, REF_P, strict=True))
    assert labels.psi == pytest.approx(direct_psi, rel=1e-12)
    assert labels.js_distance_base2 == pytest.approx(float(jensenshannon(q, REF_P, base=2)), rel=1e-9)
    # borderline rate: the two-sided one-sample z test on the same counts
    border = window.signals[1]
    z = (q[1] - 0.2) / math.sqrt(0.2 * 0.8 / n[0])
    assert border.statistic == pytest.approx(z**2, rel=1e-12)
    assert border.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert border.effect == pytest.approx(abs(2 * math.asin(math.sqrt(q[1])) - 2 * math.asin(math.sqrt(0.2))))


def test_with_reference_size_it_is_the_two_sample_chi_square_of_scipy() -> None:
    counts = [250, 150, 100]
    reference = trinary_reference(n=1500)
    [window] = assess_windows(np.array([500]), np.array([counts]), None, reference, DriftConfig())
    table = np.array([counts, REF_P * 1500])
    scipy_result = stats.chi2_contingency(table, correction=False)
    assert window.signals[0].statistic == pytest.approx(scipy_result.statistic, rel=1e-12)
    assert window.signals[0].p_value == pytest.approx(scipy_result.pvalue, rel=1e-9)
    border = stats.chi2_contingency(np.array([[150, 350], [300, 1200]]), correction=False)
    assert window.signals[1].statistic == pytest.approx(border.statistic, rel=1e-12)


def test_psi_floors_zero_proportions_at_epsilon() -> None:
    q, p = np.array([0.0, 1.0]), np.array([0.5, 0.5])
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.5 * math.log(2)
    assert float(psi(q, p, 1e-4)) == pytest.approx(expected)
    assert float(js_distance_base2(q, p)) == pytest.approx(float(jensenshannon(q, p, base=2)))
    assert float(js_distance_base2(np.array([1.0, 0.0]), np.array([0.0, 1.0]))) == pytest.approx(1.0)
    assert float(cohens_h(np.array(0.3), np.array(0.2))) == pytest.approx(0.2319, abs=1e-4)


def test_holm_and_benjamini_hochberg_on_a_worked_example() -> None:
    p = np.array([[0.01, 0.04, 0.03, 0.005]])
    np.testing.assert_allclose(adjust_p_values(p, "holm"), [[0.03, 0.06, 0.06, 0.02]])
    np.testing.assert_allclose(adjust_p_values(p, "bh"), [[0.02, 0.04, 0.04, 0.02]])
    assert adjust_p_values(np.array([[0.9, 0.8]]), "holm").max() == 1.0


def test_monte_carlo_p_value_matches_the_exact_multinomial_test() -> None:
    """Small window (n=12): enumerate every outcome; P(X^2 >= observed) exactly vs the Monte-Carlo estimate."""
    n, p = 12, np.array([0.6, 0.25, 0.15])
    outcomes = np.array([(a, b, n - a - b) for a, b in itertools.product(range(n + 1), repeat=2) if a + b <= n])
    probs = np.array([stats.multinomial.pmf(o, n, p) for o in outcomes])
    x2 = chi_square_statistic(outcomes.astype(float), p, None)
    observed = float(chi_square_statistic(np.array([[4.0, 5.0, 3.0]]), p, None)[0])
    exact = probs[x2 >= observed - 1e-9].sum()
    estimate = float(monte_carlo_p_value(np.array([observed]), n, p, None, 40_000, np.random.default_rng(0))[0])
    assert estimate == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 40_000))


def test_small_expected_counts_switch_to_monte_carlo() -> None:
    reference = trinary_reference(probs=(0.9, 0.08, 0.02))
    config = DriftConfig(min_samples=10, account_for_reference_size=False)
    [window] = assess_windows(np.array([50]), np.array([[45, 4, 1]]), None, reference, config)
    assert window.signals[0].method == "monte-carlo" and 0 < window.signals[0].p_value <= 1


def test_below_min_samples_is_insufficient_never_no_drift() -> None:
    [window] = assess_windows(np.array([199]), np.array([[10, 100, 89]]), None, trinary_reference(), DriftConfig())
    assert window.verdict == Verdict.INSUFFICIENT_SAMPLES and window.signals == ()


def test_alarm_needs_both_significance_and_effect_size() -> None:
    """A tiny shift in a huge window is significant but under the effect floor: no alarm."""
    counts = np.array([[580_000, 210_000, 210_000]])
    [window] = assess_windows(counts.sum(axis=1), counts, None, trinary_reference(10**7), DriftConfig())
    labels = window.signals[0]
    assert labels.p_adjusted < 1e-10 and labels.effect < 0.1
    assert window.verdict == Verdict.NO_DRIFT_DETECTED
    counts = np.array([[450, 300, 250]])
    [window] = assess_windows(counts.sum(axis=1), counts, None, trinary_reference(), DriftConfig())
    assert window.verdict == Verdict.ALARM and window.signals[0].alarm


def test_taxonomy_signals_and_reference_builder() -> None:
    cats = [["suicide_self_harm"], [], ["violence_hate", "suicide_self_harm"], []]
    reference = build_reference("emosafe-taxonomy", "2", "taxonomy", categories=cats)
    assert reference.category_prevalence is not None
    assert reference.category_prevalence["suicide_self_harm"] == 0.5 and reference.n == 4
    assert parse_reference(reference.to_json(), "round trip") == reference
    counts = np.zeros((1, 6), dtype=np.int64)
    counts[0, 5] = 150
    [window] = assess_windows(np.array([300]), None, counts, reference, DriftConfig())
    assert [s.name for s in window.signals] == [f"category.{c}" for c in reference.category_prevalence]
    trinary = build_reference("emosafe-trinary", "1", "trinary", labels=["safe", "safe", "borderline", "unsafe"])
    assert trinary.to_json()["borderline_rate"] == 0.25


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n": 0}, "field 'n'"),
        ({"task": "sentiment"}, "field 'task'"),
        ({"label_distribution": {"safe": 0.5, "borderline": 0.2, "unsafe": 0.2}}, "sum to 1"),
        ({"label_distribution": {"safe": 1.0}}, "must map exactly"),
        ({"borderline_rate": 0.5}, "borderline_rate"),
    ],
)
def test_bad_references_are_refused_naming_the_field(change: dict[str, object], message: str) -> None:
    raw = {**trinary_reference().to_json(), **change}
    with pytest.raises(ValueError, match=message):
        parse_reference(raw, "ref.json")


def test_the_report_names_the_test_that_ran() -> None:
    """The reference counted as a sample makes the chi-square a homogeneity test; the report once called every
    label test a goodness of fit (#22)."""
    observed = np.array([[310, 100, 90]], dtype=np.int64)
    n = observed.sum(axis=1)
    [exact] = assess_windows(n, observed, None, trinary_reference(), EXACT)
    [sample] = assess_windows(n, observed, None, trinary_reference(), DriftConfig(min_samples=10))
    assert [s.test for s in exact.signals] == ["chi-square goodness of fit", "one-proportion z (vs reference)"]
    assert [s.test for s in sample.signals] == [
        "chi-square homogeneity (window vs reference sample)",
        "two-proportion z (window vs reference sample)",
    ]
