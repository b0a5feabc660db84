"""Evaluation figures as the promotion gate sees them, and the parser from the evaluation's metrics JSON.

The gate decides on plain data, not on files, so it is independent of how evaluation or export write their
reports. ``scorecard_from_dict`` accepts the documented shape (docs/registry.md, "Metrics contract") with a few
spellings of the same thing, and fails naming the missing key otherwise. Scores are fractions in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from components.errors import MetricsFormatError
from components.schema import CATEGORIES, LABELS

Task = Literal["trinary", "taxonomy"]
TASKS: tuple[Task, ...] = ("trinary", "taxonomy")
#: An evaluation suite's figures (components/evaluation/suites.py writes them; a test keeps the two lists equal).
SUITE_FIGURES = ("unsafe_recall", "unsafe_flagged", "unsafe_f1", "safe_flag_rate", "macro_f1")


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its (bootstrap) confidence interval; ``low``/``high`` are None when not reported."""

    value: float
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class QuantizedFigures:
    """How the shipped quantized file compares with its fp32 parent (written by the export stage)."""

    macro_f1_drop: float
    label_agreement: float
    category_f1_drop: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteCard:
    """One evaluation suite's binary-view figures (``components.evaluation.suites``); absent figures are None."""

    n: int
    figures: Mapping[str, Estimate | None]
    data_hash: str | None = None  # the suite file it was measured on


@dataclass(frozen=True)
class Scorecard:
    """One model's evaluation on one split: per class (trinary) or per category (taxonomy) F1 with CIs."""

    task: Task
    data_hash: str | None
    f1: Mapping[str, Estimate]
    macro_f1: Estimate | None = None
    unsafe_recall: Estimate | None = None
    quantized: QuantizedFigures | None = None
    suites: Mapping[str, SuiteCard] = field(default_factory=dict)


def expected_names(task: Task) -> tuple[str, ...]:
    """The classes (trinary) or categories (taxonomy) whose F1 the gate checks one by one."""
    return LABELS if task == "trinary" else CATEGORIES


def scorecard_from_dict(payload: Mapping[str, Any], split: str = "test", origin: str = "metrics") -> Scorecard:
    """Read an evaluation metrics mapping into a ``Scorecard``.

    Looks for the split's section under ``splits.<split>``, ``<split>`` or ``metrics`` (else the top level).
    Raises MetricsFormatError naming ``origin`` and the key when the task or a needed figure is missing.
    """
    if not isinstance(payload, Mapping):
        raise MetricsFormatError(f"{origin}: must be a JSON object of metrics, got a {type(payload).__name__}")
    section = _section(payload, split)
    task = payload.get("task", section.get("task"))
    if task not in TASKS:
        raise MetricsFormatError(f"{origin}: field 'task' must be one of {list(TASKS)}, got {task!r}")
    provenance = payload.get("provenance") if isinstance(payload.get("provenance"), Mapping) else {}
    data_hash = payload.get("data_hash") or section.get("data_hash") or (provenance or {}).get("data_hash")
    key = "per_class" if task == "trinary" else "per_category"
    items = _first(section, (key, "per_class", "per_category", "per_label", "categories", "classes"))
    if not isinstance(items, Mapping):
        raise MetricsFormatError(f"{origin}: field '{key}' (per-{key[4:]} metrics) is missing or not a mapping")
    f1 = {
        name: estimate
        for name, item in items.items()
        if (estimate := _optional(item.get("f1") if isinstance(item, Mapping) else item, f"{origin}: {key}.{name}.f1"))
    }
    unsafe = items.get("unsafe") if task == "trinary" else None
    recall = unsafe.get("recall") if isinstance(unsafe, Mapping) else None
    return Scorecard(
        task=task,
        data_hash=str(data_hash) if data_hash else None,
        f1=f1,
        macro_f1=_optional(section.get("macro_f1"), f"{origin}: macro_f1"),
        unsafe_recall=_optional(recall, f"{origin}: {key}.unsafe.recall"),
        quantized=_quantized(payload.get("quantized", section.get("quantized")), origin),
        suites=suite_cards(payload.get("suites"), origin),
    )


def scorecard_to_dict(card: Scorecard) -> dict[str, Any]:
    """The canonical shape (the one ``scorecard_from_dict`` reads first), used to store metrics in the registry."""
    key = "per_class" if card.task == "trinary" else "per_category"
    items: dict[str, dict[str, Any]] = {name: {"f1": est.to_dict()} for name, est in card.f1.items()}
    if card.unsafe_recall is not None:
        items.setdefault("unsafe", {})["recall"] = card.unsafe_recall.to_dict()
    payload: dict[str, Any] = {"task": card.task, "data_hash": card.data_hash, key: items}
    if card.macro_f1 is not None:
        payload["macro_f1"] = card.macro_f1.to_dict()
    if card.quantized is not None:
        payload["quantized"] = {
            "macro_f1_drop": card.quantized.macro_f1_drop,
            "label_agreement": card.quantized.label_agreement,
            "category_f1_drop": dict(card.quantized.category_f1_drop),
        }
    if card.suites:
        payload["suites"] = {
            name: {
                "n": suite.n,
                "data_hash": suite.data_hash,
                "figures": {k: v.to_dict() if v else None for k, v in suite.figures.items()},
            }
            for name, suite in card.suites.items()
        }
    return payload


def suite_cards(raw: Any, origin: str) -> dict[str, SuiteCard]:
    """``suites.<name>.figures.<figure>`` as written by ``evaluate`` and ``export`` (figures may sit at the top)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise MetricsFormatError(f"{origin}: field 'suites' must map suite names to their figures")
    cards = {}
    for name, item in raw.items():
        figures = item.get("figures", item) if isinstance(item, Mapping) else None
        if not isinstance(figures, Mapping):
            raise MetricsFormatError(f"{origin}: suites.{name}.figures is missing or not a mapping")
        n = figures.get("n", item.get("n"))
        if isinstance(n, bool) or not isinstance(n, int):
            raise MetricsFormatError(f"{origin}: suites.{name}.n must be the suite's message count")
        data_hash = item.get("data_hash")
        cards[str(name)] = SuiteCard(
            n,
            {key: _optional(figures.get(key), f"{origin}: suites.{name}.{key}") for key in SUITE_FIGURES},
            str(data_hash) if data_hash else None,
        )
    return cards


def _section(payload: Mapping[str, Any], split: str) -> Mapping[str, Any]:
    splits = payload.get("splits")
    for candidate in (splits.get(split) if isinstance(splits, Mapping) else None, payload.get(split)):
        if isinstance(candidate, Mapping):
            return candidate
    metrics = payload.get("metrics")
    return metrics if isinstance(metrics, Mapping) else payload


def _first(section: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in section:
            return section[key]
    return None


def _optional(raw: Any, where: str) -> Estimate | None:
    """None where the figure is absent or undefined (``value: null``, e.g. no positives): the gate reports it."""
    if raw is None or (isinstance(raw, Mapping) and _first(raw, ("value", "point", "mean", "estimate")) is None):
        return None
    return _estimate(raw, where)


def _estimate(raw: Any, where: str) -> Estimate:
    """A number, or {value|point|mean, ci: [low, high] | low/high | ci_low/ci_high}."""
    if isinstance(raw, bool) or raw is None:
        raise MetricsFormatError(f"{where}: missing (need a number or {{value, ci: [low, high]}})")
    if isinstance(raw, int | float):
        return Estimate(float(raw))
    if not isinstance(raw, Mapping):
        raise MetricsFormatError(f"{where}: expected a number or a mapping, got {type(raw).__name__}")
    value = _first(raw, ("value", "point", "mean", "estimate"))
    ci = raw.get("ci")
    low, high = (ci[0], ci[1]) if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)
    low = _first(raw, ("low", "ci_low", "lower")) if low is None else low
    high = _first(raw, ("high", "ci_high", "upper")) if high is None else high
    try:
        estimate = Estimate(float(value), None if low is None else float(low), None if high is None else float(high))
    except (TypeError, ValueError):
        raise MetricsFormatError(f"{where}: value and CI bounds must be numbers, got {dict(raw)}") from None
    if not all(0 <= x <= 1 for x in (estimate.value, estimate.low or 0, estimate.high or 0)):
        raise MetricsFormatError(f"{where}: scores must be fractions in [0, 1], got {estimate}")
    return estimate


def _quantized(raw: Any, origin: str) -> QuantizedFigures | None:
    if raw is None:
        return None
    try:
        return QuantizedFigures(
            macro_f1_drop=float(raw["macro_f1_drop"]),
            label_agreement=float(raw["label_agreement"]),
            category_f1_drop={str(k): float(v) for k, v in dict(raw.get("category_f1_drop") or {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MetricsFormatError(
            f"{origin}: field 'quantized' needs numbers macro_f1_drop, label_agreement (and optional "
            f"category_f1_drop mapping); problem with {exc}"
        ) from None
