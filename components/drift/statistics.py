"""Label-distribution drift: is a window of production predictions still drawn from the reference?

Pure numpy/scipy; the one module behind which the drift statistics live. Every window gets all its signals at once:

- labels (trinary): chi-square goodness of fit against the reference distribution, effect size Cohen's w;
- borderline rate and each taxonomy category: a two-proportion z test (window vs reference), effect size Cohen's h;
- for each signal, PSI (proportions floored at ``psi_epsilon``) and the Jensen-Shannon *distance* in base 2 (0..1).

P-values are asymptotic (chi-square) unless some expected count is below ``min_expected_count``; then they are
Monte-Carlo: ``(1 + #{T_sim >= T_obs}) / (1 + draws)`` over seeded simulated windows. Because the reference is itself
a finite sample of ``n_ref`` predictions, window and reference are compared as two samples (the 2 x K chi-square of
homogeneity with pooled proportions, i.e. ``scipy.stats.chi2_contingency`` without continuity correction; for one
proportion, the pooled two-proportion z test squared) unless ``account_for_reference_size`` is off; then the
chi-square is the goodness of fit of ``scipy.stats.chisquare`` against the reference taken as exact.
The p-values of a window are corrected together (Holm or Benjamini-Hochberg); a signal alarms when its corrected
p < alpha AND its effect size reaches the declared floor. A window smaller than ``min_samples`` is
INSUFFICIENT_SAMPLES and no signal is decided.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import special  # chdtrc = the chi-square survival function, without scipy.stats's ~65 MB import

from components.config.monitor import DriftConfig
from components.drift.reference import DriftReference
from components.schema import CATEGORIES, LABELS

FloatArray = NDArray[np.float64]
BORDERLINE = LABELS.index("borderline")


class Verdict(StrEnum):
    ALARM = "ALARM"
    NO_DRIFT_DETECTED = "NO_DRIFT_DETECTED"
    INSUFFICIENT_SAMPLES = "INSUFFICIENT_SAMPLES"


@dataclass(frozen=True)
class Signal:
    """One tested quantity of one window. ``observed``/``expected`` are proportions, never counts of text."""

    name: str
    test: str
    method: Literal["asymptotic", "monte-carlo"]
    statistic: float
    p_value: float
    p_adjusted: float
    effect_name: Literal["cohens_w", "cohens_h"]
    effect: float
    effect_floor: float
    psi: float
    js_distance_base2: float
    observed: tuple[float, ...]
    expected: tuple[float, ...]
    alarm: bool


@dataclass(frozen=True)
class WindowAssessment:
    """The verdict for one window and every signal behind it."""

    verdict: Verdict
    n: int
    signals: tuple[Signal, ...]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "n": self.n,
            "reason": self.reason,
            "signals": [vars(signal) for signal in self.signals],
        }


# ---------------------------------------------------------------- effect sizes (vectorised over leading axes)
def cohens_w(observed: FloatArray, expected: FloatArray) -> FloatArray:
    """Cohen's w = sqrt(sum((q - p)^2 / p)) over the last axis; 0.1 small, 0.3 medium, 0.5 large."""
    return np.asarray(np.sqrt(((observed - expected) ** 2 / expected).sum(axis=-1)), dtype=np.float64)


def cohens_h(observed: FloatArray, expected: FloatArray) -> FloatArray:
    """Cohen's h = |2 asin(sqrt(q)) - 2 asin(sqrt(p))|; 0.2 small, 0.5 medium."""
    return np.asarray(np.abs(2 * np.arcsin(np.sqrt(observed)) - 2 * np.arcsin(np.sqrt(expected))), dtype=np.float64)


def psi(observed: FloatArray, expected: FloatArray, epsilon: float) -> FloatArray:
    """Population stability index sum((q - p) ln(q / p)), both floored at ``epsilon`` (not renormalised)."""
    q, p = np.maximum(observed, epsilon), np.maximum(expected, epsilon)
    return np.asarray(((q - p) * np.log(q / p)).sum(axis=-1), dtype=np.float64)


def js_distance_base2(observed: FloatArray, expected: FloatArray) -> FloatArray:
    """Jensen-Shannon distance with log base 2 (sqrt of the divergence), in [0, 1]; zeros are fine (0 log 0 = 0)."""
    q = observed / observed.sum(axis=-1, keepdims=True)
    p = expected / expected.sum(axis=-1, keepdims=True)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=-1)
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=-1)
    return np.asarray(np.sqrt(np.maximum((kl_q + kl_p) / 2, 0.0)), dtype=np.float64)


# ---------------------------------------------------------------- tests
def chi_square_statistic(
    counts: FloatArray, probs: FloatArray, reference_n: int | None, reference: FloatArray | None = None
) -> FloatArray:
    """Pearson's X^2 of each row of ``counts``: sum((q - r)^2 / pi) / (1/n + 1/n_ref).

    Without ``reference_n`` (reference known exactly) r = pi = ``probs``: the goodness-of-fit X^2 of
    ``scipy.stats.chisquare``. With it, r = the reference's proportions (``reference``, default ``probs``) and pi
    is pooled over window and reference: the 2 x K homogeneity X^2 of ``scipy.stats.chi2_contingency`` without
    continuity correction, which stays calibrated when the reference is a small sample of a rare class.
    """
    n = counts.sum(axis=-1)[..., None]
    q = counts / n
    r = probs if reference is None else reference
    if reference_n is None:
        pi, scale = np.broadcast_to(probs, q.shape), 1 / n[..., 0]
    else:
        pi, scale = (counts + r * reference_n) / (n + reference_n), 1 / n[..., 0] + 1 / reference_n
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pi > 0, (q - r) ** 2 / pi, 0.0)
    return np.asarray(terms.sum(axis=-1) / scale, dtype=np.float64)


def monte_carlo_p_value(
    observed: FloatArray, n: int, probs: FloatArray, reference_n: int | None, draws: int, rng: np.random.Generator
) -> FloatArray:
    """P(T >= observed) under H0 by simulation, for every observed statistic of windows of size ``n`` at once:
    windows ~ Multinomial(n, p) and, when the reference is a sample, references ~ Multinomial(n_ref, p); T is the
    same statistic (pooled when the reference is a sample). Add-one, so a p-value is never 0:
    p = (1 + #{T_sim >= T_obs}) / (1 + draws)."""
    windows = rng.multinomial(n, probs, size=draws).astype(np.float64)
    reference = rng.multinomial(reference_n, probs, size=draws) / reference_n if reference_n else None
    simulated = np.sort(chi_square_statistic(windows, probs, reference_n, reference))
    at_least = draws - np.searchsorted(simulated, np.asarray(observed) * (1 - 1e-12), side="left")
    return np.asarray((1 + at_least) / (1 + draws), dtype=np.float64)


def adjust_p_values(p_values: FloatArray, method: Literal["holm", "bh"]) -> FloatArray:
    """Holm (family-wise) or Benjamini-Hochberg (FDR) adjusted p-values along the last axis, capped at 1."""
    m = p_values.shape[-1]
    order = np.argsort(p_values, axis=-1, kind="stable")
    ranked = np.take_along_axis(p_values, order, axis=-1)
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked), axis=-1)
    else:
        scaled = ranked * m / np.arange(1, m + 1)
        adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[..., ::-1], axis=-1)[..., ::-1])
    result = np.empty_like(adjusted)
    np.put_along_axis(result, order, adjusted, axis=-1)
    return result


# ---------------------------------------------------------------- one family of signals over many windows
@dataclass(frozen=True)
class _Family:
    """Arrays of shape (W,) for one signal over W windows (internal; turned into Signals at the end)."""

    name: str
    test: str
    effect_name: Literal["cohens_w", "cohens_h"]
    floor: float
    statistic: FloatArray
    p_value: FloatArray
    monte_carlo: NDArray[np.bool_]
    effect: FloatArray
    psi: FloatArray
    js: FloatArray
    observed: FloatArray
    expected: FloatArray


def _test_name(binary: bool, two_sample: bool) -> str:
    """What the report calls the test: with the reference counted as a sample (``account_for_reference_size``) the
    chi-square is the 2 x K homogeneity test, not a goodness of fit against exact proportions."""
    if binary:
        return "two-proportion z (window vs reference sample)" if two_sample else "one-proportion z (vs reference)"
    return "chi-square homogeneity (window vs reference sample)" if two_sample else "chi-square goodness of fit"


def _smoothed(probs: FloatArray, reference_n: int) -> FloatArray:
    """Floor reference probabilities at half a count of the reference so a class never seen there can be tested."""
    floored = np.maximum(probs, 0.5 / reference_n)
    return np.asarray(floored / floored.sum(), dtype=np.float64)


def _family(
    name: str, counts: FloatArray, probs: FloatArray, reference_n: int, config: DriftConfig, seed: int
) -> _Family:
    """All windows' statistics for one signal. ``counts`` is (W, K); K=2 means a proportion ([yes, no])."""
    binary = counts.shape[-1] == 2
    p = _smoothed(probs, reference_n)
    n_ref = reference_n if config.account_for_reference_size else None
    n = counts.sum(axis=-1)
    observed = counts / np.maximum(n, 1)[:, None]
    statistic = chi_square_statistic(counts, p, n_ref)
    p_value = np.asarray(special.chdtrc(counts.shape[-1] - 1, statistic), dtype=np.float64)
    small = (n[:, None] * p).min(axis=-1) < config.min_expected_count
    if n_ref is not None:
        small |= reference_n * p.min() < config.min_expected_count
    small &= n > 0
    for size in np.unique(n[small]):  # one simulation per window size: count windows share one
        rows = small & (n == size)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode()), int(size)])
        p_value[rows] = monte_carlo_p_value(statistic[rows], int(size), p, n_ref, config.monte_carlo_draws, rng)
    expected = np.broadcast_to(probs, observed.shape)
    effect = cohens_h(observed[:, 0], expected[:, 0]) if binary else cohens_w(observed, _broadcast(p, observed))
    return _Family(
        name=name,
        test=_test_name(binary, n_ref is not None),
        effect_name="cohens_h" if binary else "cohens_w",
        floor=config.min_cohens_h if binary else config.min_cohens_w,
        statistic=statistic,
        p_value=p_value,
        monte_carlo=small,
        effect=effect,
        psi=psi(observed, expected, config.psi_epsilon),
        js=js_distance_base2(observed, expected),
        observed=observed,
        expected=expected,
    )


def _broadcast(probs: FloatArray, like: FloatArray) -> FloatArray:
    return np.asarray(np.broadcast_to(probs, like.shape), dtype=np.float64)


def _binary(count: FloatArray, n: FloatArray) -> FloatArray:
    return np.stack([count, n - count], axis=-1)


def assess_windows(
    n: NDArray[np.int64],
    label_counts: NDArray[np.int64] | None,
    category_counts: NDArray[np.int64] | None,
    reference: DriftReference,
    config: DriftConfig,
    seed: int = 0,
) -> list[WindowAssessment]:
    """Assess W windows at once. ``label_counts`` is (W, 3) in LABELS order, ``category_counts`` (W, 6) in
    CATEGORIES order (how many predictions carry each category). Signals are built from whatever both the windows
    and the reference provide. Raises ValueError when they share nothing to compare.
    """
    families: list[_Family] = []
    total = n.astype(np.float64)
    if label_counts is not None and reference.label_distribution is not None:
        labels = label_counts.astype(np.float64)
        ref = np.array([reference.label_distribution[label] for label in LABELS])
        families.append(_family("labels", labels, ref, reference.n, config, seed))
        ref_border = np.array([ref[BORDERLINE], 1 - ref[BORDERLINE]])
        families.append(
            _family("borderline_rate", _binary(labels[:, BORDERLINE], total), ref_border, reference.n, config, seed)
        )
    if category_counts is not None and reference.category_prevalence is not None:
        for index, category in enumerate(CATEGORIES):
            prevalence = reference.category_prevalence[category]
            cat = _binary(category_counts[:, index].astype(np.float64), total)
            families.append(
                _family(f"category.{category}", cat, np.array([prevalence, 1 - prevalence]), reference.n, config, seed)
            )
    if not families:
        raise ValueError("the windows and the reference share no label distribution or category prevalence")
    adjusted = adjust_p_values(np.stack([f.p_value for f in families], axis=-1), config.correction)
    return [_window(int(n[w]), w, families, adjusted[w], config) for w in range(len(n))]


def _window(n: int, w: int, families: list[_Family], adjusted: FloatArray, config: DriftConfig) -> WindowAssessment:
    if n < config.min_samples:
        reason = f"{n} predictions < min_samples {config.min_samples}: no decision (not 'no drift')"
        return WindowAssessment(Verdict.INSUFFICIENT_SAMPLES, n, (), reason)
    signals = tuple(_signal(f, w, float(adjusted[i]), config.alpha) for i, f in enumerate(families))
    alarms = [s.name for s in signals if s.alarm]
    if alarms:
        return WindowAssessment(Verdict.ALARM, n, signals, "drift in " + ", ".join(alarms))
    return WindowAssessment(Verdict.NO_DRIFT_DETECTED, n, signals, "no signal is both significant and large enough")


def _signal(family: _Family, w: int, p_adjusted: float, alpha: float) -> Signal:
    effect = float(family.effect[w])
    return Signal(
        name=family.name,
        test=family.test,
        method="monte-carlo" if family.monte_carlo[w] else "asymptotic",
        statistic=float(family.statistic[w]),
        p_value=float(family.p_value[w]),
        p_adjusted=p_adjusted,
        effect_name=family.effect_name,
        effect=effect,
        effect_floor=family.floor,
        psi=float(family.psi[w]),
        js_distance_base2=float(family.js[w]),
        observed=tuple(float(x) for x in family.observed[w]),
        expected=tuple(float(x) for x in family.expected[w]),
        alarm=bool(p_adjusted < alpha and effect >= family.floor),
    )
