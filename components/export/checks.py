"""The two proofs an export must pass, as pure functions over scores: parity and the int8 comparison.

Parity: the fp32 ONNX graph reproduces the torch model (max |logit difference| within a stated tolerance, every
decision equal) on a fixed batch. Quantization: the int8 file, scored through the one evaluation path
(``components.evaluation.measure``), loses at most the allowed macro-F1 and per-class/category F1 against the fp32 file
and decides (nearly) every message the same way. Reports hold ids, counts and figures, never text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from components.config.export import QuantizedLimits
from components.evaluation.measure import EvaluationResult
from components.evaluation.metrics import MetricsReport
from components.evaluation.operating_point import decide, probabilities


@dataclass(frozen=True)
class ParityReport:
    n: int
    atol: float
    max_abs_diff: float
    mean_abs_diff: float
    label_agreement: float
    disagreeing_ids: tuple[str, ...]
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"disagreeing_ids": list(self.disagreeing_ids)}


@dataclass(frozen=True)
class QuantizationReport:
    """int8 vs fp32 on the same messages. Drops are fp32 minus int8 (positive = int8 is worse), as fractions."""

    task: str
    n: int
    macro_f1_fp32: float
    macro_f1_int8: float
    macro_f1_drop: float
    f1_drop: Mapping[str, float]
    label_agreement: float
    limits: QuantizedLimits
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not self.problems

    def gate_figures(self) -> dict[str, Any]:
        """The ``quantized`` block the registry's gate reads (components/release/scorecard.py, docs/registry.md)."""
        return {
            "macro_f1_drop": self.macro_f1_drop,
            "label_agreement": self.label_agreement,
            "category_f1_drop": dict(self.f1_drop),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "n": self.n,
            "macro_f1_fp32": self.macro_f1_fp32,
            "macro_f1_int8": self.macro_f1_int8,
            "macro_f1_drop": self.macro_f1_drop,
            "f1_drop": dict(self.f1_drop),
            "label_agreement": self.label_agreement,
            "limits": self.limits.model_dump(),
            "passed": self.passed,
            "problems": list(self.problems),
        }


def decisions(scores: NDArray[Any], task: str, thresholds: Mapping[str, float] | None = None) -> NDArray[Any]:
    """Trinary: label index per row; taxonomy: (n, 6) booleans at each category's threshold; from probabilities,
    by ``operating_point.decide`` (the rule the evaluation and the served bundle use)."""
    return decide(scores, task, thresholds)


def agreement(a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.bool_]:
    """Per message: the same label (trinary) or the same set of categories (taxonomy)."""
    same = np.asarray(np.asarray(a) == np.asarray(b), dtype=bool)
    return same if same.ndim == 1 else np.asarray(same.all(axis=1), dtype=bool)


def parity(
    torch_logits: NDArray[Any],
    onnx_logits: NDArray[Any],
    task: str,
    atol: float,
    ids: Sequence[str],
    thresholds: Mapping[str, float] | None = None,
) -> ParityReport:
    """Compare logits of the same messages. Passes only within ``atol`` AND with 100 % decision agreement."""
    reference, candidate = np.asarray(torch_logits, np.float64), np.asarray(onnx_logits, np.float64)
    if reference.shape != candidate.shape or reference.ndim != 2 or len(ids) != len(reference):
        raise ValueError(f"parity needs equal (n, k) logits and n ids, got {reference.shape}, {candidate.shape}")
    diff = np.abs(reference - candidate)
    reference_scores, candidate_scores = probabilities(reference, task), probabilities(candidate, task)
    same = agreement(decisions(reference_scores, task, thresholds), decisions(candidate_scores, task, thresholds))
    max_diff = float(diff.max()) if diff.size else 0.0
    return ParityReport(
        n=len(ids),
        atol=atol,
        max_abs_diff=max_diff,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        label_agreement=float(same.mean()) if len(same) else 1.0,
        disagreeing_ids=tuple(str(i) for i, ok in zip(ids, same, strict=True) if not ok),
        passed=bool(max_diff <= atol and same.all()),
    )


def compare_quantized(fp32: EvaluationResult, int8: EvaluationResult, limits: QuantizedLimits) -> QuantizationReport:
    """int8 against fp32 on the same frame, through the evaluation path's decisions and reports."""
    if fp32.ids != int8.ids or fp32.task != int8.task:
        raise ValueError("fp32 and int8 results must cover the same messages and task")
    task = fp32.task
    same = agreement(decisions(fp32.scores, task, fp32.thresholds), decisions(int8.scores, task, int8.thresholds))
    macro_fp32, macro_int8 = _value(fp32.report, "macro_f1"), _value(int8.report, "macro_f1")
    drops = {name: round(_f1(fp32.report, name) - _f1(int8.report, name), 6) for name in fp32.report.per_class}
    report = QuantizationReport(
        task=task,
        n=len(fp32.ids),
        macro_f1_fp32=macro_fp32,
        macro_f1_int8=macro_int8,
        macro_f1_drop=round(macro_fp32 - macro_int8, 6),
        f1_drop=drops,
        label_agreement=float(same.mean()),
        limits=limits,
    )
    return QuantizationReport(**{**report.__dict__, "problems": tuple(_problems(report))})


def _problems(report: QuantizationReport) -> list[str]:
    limits, problems = report.limits, []
    if report.macro_f1_drop > limits.max_macro_f1_drop + 1e-9:
        problems.append(f"macro-F1 drop {report.macro_f1_drop:.4f} > {limits.max_macro_f1_drop:g}")
    problems += [
        f"{name} F1 drop {drop:.4f} > {limits.max_category_f1_drop:g}"
        for name, drop in sorted(report.f1_drop.items())
        if drop > limits.max_category_f1_drop + 1e-9
    ]
    if report.label_agreement + 1e-9 < limits.min_label_agreement:
        problems.append(f"label agreement with fp32 {report.label_agreement:.4f} < {limits.min_label_agreement:g}")
    return problems


def _value(report: MetricsReport, name: str) -> float:
    value = getattr(report, name).value
    return 0.0 if value is None else float(value)


def _f1(report: MetricsReport, name: str) -> float:
    value = report.per_class[name].f1.value
    return 0.0 if value is None else float(value)
