"""The promotion gate: decide, from plain evaluation figures, whether a version may take a guarded alias.

Pure: no files, no registry. ``decide_promotion`` runs every check (evidence binding, floors, freshness, regression
against the current production version, quantized-file figures) and returns all of them, so a refusal explains
itself and a pass is auditable. The decision is bound to the candidate's artifact manifest and to the champion it was
compared with; the registry refuses to use it for any other version or after production moved (compare-and-swap).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from components.config.register import GateConfig
from components.release.evidence import Binding
from components.release.scorecard import Estimate, Scorecard, expected_names

#: Floating-point slack so a tie (equal scores, or a score equal to its floor) always passes.
_EPS = 1e-9


@dataclass(frozen=True)
class Evidence:
    """What the gate knows about one registered version."""

    version: int
    manifest_sha256: str  # sha256 over the version's artifact list (path, sha256, size)
    data_hash: str | None  # the data hash registered with the version (training lineage)
    scorecard: Scorecard
    binding: Binding  # whether the figures were computed by emosafe on exactly these files (release/evidence.py)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Comparison:
    """One class/category: candidate vs production (point F1); ``delta`` is None when either side lacks it."""

    name: str
    candidate: float | None
    champion: float | None
    delta: float | None
    regressed: bool


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reasons: tuple[str, ...]  # the failed checks when refused; every check when promoted
    compared: tuple[Comparison, ...]
    checks: tuple[Check, ...]
    candidate_version: int
    candidate_manifest: str
    champion_version: int | None
    gate: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def report_hash(self) -> str:
        """sha256 of the canonical JSON report: what the audit history stores to prove which report was used."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def decide_promotion(candidate: Evidence, champion: Evidence | None, gate: GateConfig) -> PromotionDecision:
    """Run every gate check on ``candidate`` against the production ``champion`` (None: nothing in production).

    Never raises for bad figures: a missing category, a missing CI or stale metrics are failed checks. Raises
    ValueError only for a programming mistake (comparing models of different tasks).
    """
    card = candidate.scorecard
    if champion is not None and champion.scorecard.task != card.task:
        raise ValueError(f"cannot compare a {card.task} candidate with a {champion.scorecard.task} champion")
    checks = [
        Check("evidence", candidate.binding.bound, candidate.binding.detail),
        _freshness(candidate, gate),
        *floor_checks(card, gate),
        *suite_checks(card, gate),
        _quantized(card, gate),
    ]
    compared = _compare(card, champion.scorecard if champion else None, gate.regression_tolerance)
    if champion is None:
        checks.append(Check("regression", True, "no production version yet: nothing to regress against"))
    else:
        worse = [c for c in compared if c.regressed]
        detail = ", ".join(f"{c.name} {c.candidate:.3f} vs {c.champion:.3f}" for c in worse if c.delta is not None)
        checks.append(
            Check(
                "regression",
                not worse,
                f"no category below production v{champion.version} by more than {gate.regression_tolerance:g}"
                if not worse
                else f"worse than production v{champion.version} by more than {gate.regression_tolerance:g}: {detail}",
            )
        )
    promote = all(check.passed for check in checks)
    reasons = tuple(c.detail for c in checks if promote or not c.passed)
    return PromotionDecision(
        promote=promote,
        reasons=reasons,
        compared=tuple(compared),
        checks=tuple(checks),
        candidate_version=candidate.version,
        candidate_manifest=candidate.manifest_sha256,
        champion_version=champion.version if champion else None,
        gate=gate.model_dump(mode="json"),
    )


def floor_checks(card: Scorecard, gate: GateConfig) -> list[Check]:
    """Only the gate's floor checks (per class/category F1, trinary macro-F1, unsafe recall) on ``card``.

    The same rules ``decide_promotion`` applies, exposed for continuous re-evaluation (``emosafe reevaluate``),
    which flags a production version whose figures on new labelled feedback fall below a floor. Suite floors are
    ``suite_checks``: a feedback file is not a suite.
    """
    return [*_floors(card, gate), *_task_floors(card, gate)]


def suite_checks(card: Scorecard, gate: GateConfig) -> list[Check]:
    """One check per floor in ``register.gate.suites``: the suite's figure (CI bound or point, as ``floor_on``
    says) against its floor; a suite the candidate was not evaluated on fails."""
    checks = []
    for suite, floors in sorted(gate.suites.items()):
        figures = card.suites.get(suite)
        for key, floor in floors.model_dump().items():
            if floor is None:
                continue
            figure = key.removeprefix("min_").removeprefix("max_")
            figure = "safe_flag_rate" if figure == "flag_rate" else figure
            name = f"suite:{suite}:{key}"
            if figures is None:
                checks.append(Check(name, False, f"suite {suite}: not evaluated (evaluate.suites, then evaluate)"))
                continue
            label = f"suite {suite} (n={figures.n}) {figure}"
            if key.startswith("min_"):
                checks.append(_floor_check(name, label, figures.figures.get(figure), floor, gate))
            else:
                checks.append(_ceiling_check(name, label, figures.figures.get(figure), floor, gate))
    return checks


def _basis(estimate: Estimate, gate: GateConfig) -> float | None:
    return estimate.low if gate.floor_on == "ci_low" else estimate.value


def _floor_check(name: str, label: str, estimate: Estimate | None, floor: float, gate: GateConfig) -> Check:
    if estimate is None:
        return Check(name, False, f"{label}: missing from the evaluation")
    observed = _basis(estimate, gate)
    if observed is None:
        return Check(name, False, f"{label}: no confidence interval reported (floors apply to {gate.floor_on})")
    passed = observed + _EPS >= floor
    return Check(name, passed, f"{label} {gate.floor_on} {observed:.3f} {'>=' if passed else '<'} floor {floor:.3f}")


def _ceiling_check(name: str, label: str, estimate: Estimate | None, ceiling: float, gate: GateConfig) -> Check:
    """A maximum: under ``floor_on: ci_low`` the interval's upper bound must stay under it (conservative)."""
    if estimate is None:
        return Check(name, False, f"{label}: missing from the evaluation")
    basis, observed = ("ci_high", estimate.high) if gate.floor_on == "ci_low" else ("point", estimate.value)
    if observed is None:
        return Check(name, False, f"{label}: no confidence interval reported (maximums apply to {basis})")
    passed = observed <= ceiling + _EPS
    return Check(name, passed, f"{label} {basis} {observed:.3f} {'<=' if passed else '>'} max {ceiling:.3f}")


def _floors(card: Scorecard, gate: GateConfig) -> list[Check]:
    return [
        _floor_check(
            f"f1_floor:{name}", f"{name} F1", card.f1.get(name), gate.f1_floors.get(name, gate.default_f1_floor), gate
        )
        for name in expected_names(card.task)
    ]


def _task_floors(card: Scorecard, gate: GateConfig) -> list[Check]:
    if card.task != "trinary":
        return []
    return [
        _floor_check("macro_f1_floor", "trinary macro-F1", card.macro_f1, gate.trinary_macro_f1_floor, gate),
        _floor_check("unsafe_recall_floor", "unsafe recall", card.unsafe_recall, gate.unsafe_recall_floor, gate),
    ]


def _freshness(candidate: Evidence, gate: GateConfig) -> Check:
    evaluated, registered = candidate.scorecard.data_hash, candidate.data_hash
    if not gate.require_fresh_metrics:
        return Check("fresh_metrics", True, "metrics freshness not required (register.gate.require_fresh_metrics)")
    if not evaluated or not registered:
        side = "evaluation" if not evaluated else "registered version"
        return Check("fresh_metrics", False, f"stale or unproven metrics: the {side} carries no data hash")
    if evaluated != registered:
        return Check(
            "fresh_metrics",
            False,
            f"stale metrics: evaluated on data {evaluated[:12]} but the version was registered with {registered[:12]}",
        )
    return Check("fresh_metrics", True, f"metrics computed on the registered data ({registered[:12]})")


def _quantized(card: Scorecard, gate: GateConfig) -> Check:
    rules, figures = gate.quantized, card.quantized
    if figures is None:
        if rules.required:
            return Check("quantized", False, "no quantized-export figures, and register.gate.quantized.required")
        return Check("quantized", True, "no quantized export attached: check not applicable")
    problems = []
    if figures.macro_f1_drop > rules.max_macro_f1_drop + _EPS:
        problems.append(f"macro-F1 drop {figures.macro_f1_drop:.4f} > {rules.max_macro_f1_drop:g}")
    if figures.label_agreement + _EPS < rules.min_label_agreement:
        problems.append(f"label agreement {figures.label_agreement:.4f} < {rules.min_label_agreement:g}")
    problems += [
        f"{name} F1 drop {drop:.4f} > {rules.max_category_f1_drop:g}"
        for name, drop in sorted(figures.category_f1_drop.items())
        if drop > rules.max_category_f1_drop + _EPS
    ]
    if problems:
        return Check("quantized", False, "quantized file fails: " + "; ".join(problems))
    return Check("quantized", True, "quantized file within tolerance of fp32")


def _compare(card: Scorecard, champion: Scorecard | None, tolerance: float) -> list[Comparison]:
    rows = []
    for name in expected_names(card.task):
        mine = card.f1.get(name)
        theirs = champion.f1.get(name) if champion else None
        if mine is None or theirs is None:
            rows.append(Comparison(name, mine.value if mine else None, theirs.value if theirs else None, None, False))
            continue
        delta = mine.value - theirs.value
        rows.append(Comparison(name, mine.value, theirs.value, delta, delta + tolerance + _EPS < 0))
    return rows
