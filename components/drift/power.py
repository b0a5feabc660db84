"""What a monitor run can see: the smallest shift each signal detects with the stated power (a power analysis).

A drift monitor that misses most of the shifts it is believed to catch is a safety defect, and its power depends on
the window size *and* on the reference's size (a reference of 108 predictions is itself noisy). So every report
states, for its window size and its reference, the minimum detectable shift (MDS) at ``power`` (0.8): below it an
alarm is unlikely even when the shift is real.

The computation follows the tests the monitor runs (``components.drift.statistics``):
- the label chi-square (df = K - 1): the noncentrality ``lambda`` at which ``P(ncx2 > critical) = power``, then
  Cohen's ``w = sqrt(lambda / n_eff)``;
- one proportion (the borderline rate, each category) with the two-sided z test on the arcsine scale: Cohen's
  ``h = (z_{1 - a/2} + z_power) / sqrt(n_eff)``, shown as the proportion it moves to, upwards (the direction that
  matters for risk);
with ``n_eff = 1 / (1/n + 1/n_ref)`` when the reference counts as a sample (``account_for_reference_size``), else
``n``; each test at ``alpha / m`` for the ``m`` signals of a window (Holm's first step, so the figure is a
conservative bound); and the configured effect floors (an alarm also needs the effect to reach them).
"""

from __future__ import annotations

import math
from typing import Any

from scipy import optimize, stats

from components.config.monitor import DriftConfig
from components.drift.reference import DriftReference
from components.schema import LABELS

POWER = 0.8
BORDERLINE = LABELS.index("borderline")


def effective_n(window_n: int, reference_n: int, two_sample: bool) -> float:
    return 1 / (1 / window_n + 1 / reference_n) if two_sample else float(window_n)


def detectable_w(n_eff: float, df: int, alpha: float, power: float = POWER) -> float:
    """Cohen's w the chi-square test (df, alpha) detects with ``power`` at effective size ``n_eff``."""
    critical = stats.chi2.isf(alpha, df)
    gap = lambda lam: stats.ncx2.sf(critical, df, lam) - power  # noqa: E731
    lam = optimize.brentq(gap, 1e-9, 1e4)
    return math.sqrt(lam / n_eff)


def detectable_h(n_eff: float, alpha: float, power: float = POWER) -> float:
    """Cohen's h the two-sided one-proportion z test detects with ``power`` at effective size ``n_eff``."""
    return float((stats.norm.isf(alpha / 2) + stats.norm.ppf(power)) / math.sqrt(n_eff))


def shifted(p: float, h: float) -> float:
    """The proportion ``h`` (Cohen's h) above ``p``, capped at 1."""
    angle = min(math.asin(math.sqrt(p)) + h / 2, math.pi / 2)
    return math.sin(angle) ** 2


def sensitivity(window_n: int, reference: DriftReference, config: DriftConfig, power: float = POWER) -> dict[str, Any]:
    """The minimum detectable shifts of a window of ``window_n`` predictions against ``reference``."""
    two_sample = config.account_for_reference_size
    n_eff = effective_n(window_n, reference.n, two_sample)
    proportions: dict[str, float] = {}
    signals = 0
    if reference.label_distribution is not None:
        proportions["borderline_rate"] = reference.label_distribution["borderline"]
        signals += 2
    if reference.category_prevalence is not None:
        proportions |= {f"category.{name}": p for name, p in reference.category_prevalence.items()}
        signals += len(reference.category_prevalence)
    alpha = config.alpha / max(signals, 1)
    h = max(detectable_h(n_eff, alpha, power), config.min_cohens_h)
    result: dict[str, Any] = {
        "power": power,
        "window_n": window_n,
        "reference_n": reference.n,
        "effective_n": round(n_eff, 1),
        "alpha_per_signal": alpha,
        "proportions": {
            name: {"from": round(p, 4), "to": round(shifted(p, h), 4), "cohens_h": round(h, 4)}
            for name, p in proportions.items()
        },
    }
    if reference.label_distribution is not None:
        w = max(detectable_w(n_eff, len(LABELS) - 1, alpha, power), config.min_cohens_w)
        result["labels_cohens_w"] = round(w, 4)
    return result


def sensitivity_line(figures: dict[str, Any]) -> str:
    """One sentence for the verdict screen and the HTML report."""
    parts = []
    if "labels_cohens_w" in figures:
        parts.append(f"label distribution Cohen's w >= {figures['labels_cohens_w']:.2f}")
    for name, shift in list(figures["proportions"].items())[:3]:
        parts.append(f"{name} {shift['from']:.2f} -> {shift['to']:.2f}")
    return (
        f"Detectable with {figures['power']:.0%} power (window {figures['window_n']}, reference "
        f"{figures['reference_n']}): " + "; ".join(parts) + "; smaller shifts are likely missed"
    )
