"""The scaling report's figures: evaluation reports -> one row per (model, setting, task), tables, comparisons.

Pure over already-loaded JSON payloads (the ``report`` stage reads the files), so it is tested without models. It
reads the ``evaluate`` stage's shape (``splits.test.{accuracy, macro_f1, micro_f1, per_class, critical, n}``,
``model_info.params_millions``, ``inference.peak_rss_mb``, ``canaries``) and fails with MetricsFormatError naming
the file and the field when a needed figure is missing. Only metrics, sizes and ids: never message text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.errors import MetricsFormatError
from components.release.scorecard import Estimate, SuiteCard, suite_cards

TASK_ORDER = ("trinary", "taxonomy")
SETTING_ORDER = ("zero_shot", "few_shot", "fine_tuned")
#: Settings the fine-tuned runs are compared against (prompting the same base model).
BASELINES = ("zero_shot", "few_shot")


@dataclass(frozen=True)
class ScalingRow:
    """One evaluation report, test split: what the scaling table and plots show."""

    model: str
    setting: str
    task: str
    params_millions: float | None
    peak_rss_mb: float | None
    n: int
    accuracy: Estimate | None
    macro_f1: Estimate | None
    micro_f1: Estimate | None
    per_category: Mapping[str, Estimate | None]  # F1 per class (trinary) or per category (taxonomy)
    critical_recall: Estimate | None  # unsafe messages with suicide_self_harm
    critical_support: int
    canaries_failed: int
    canaries_total: int
    suites: Mapping[str, SuiteCard] = field(default_factory=dict)  # evaluation suites (components/report/suite_table)
    # trinary: (safe flag rate, unsafe recall) frontier over the threshold grid, and the applied thresholds' point
    curve: tuple[tuple[float, float], ...] = ()
    applied: tuple[float, float] | None = None
    policy: str = "default"


@dataclass(frozen=True)
class Comparison:
    """Fine-tuned vs a prompting setting of the same model and task, on macro-F1."""

    model: str
    task: str
    baseline: str
    fine_tuned: Estimate
    prompted: Estimate
    delta: float
    disjoint: bool | None  # None when either side has no interval

    @property
    def verdict(self) -> str:
        direction = "higher" if self.delta > 0 else "lower" if self.delta < 0 else "equal"
        if self.disjoint is None:
            return f"fine-tuned {direction}; no confidence intervals to compare"
        gap = "CIs disjoint" if self.disjoint else "CIs overlap: not a clear difference at this test size"
        return f"fine-tuned {direction}, {gap}"


def row_from_report(payload: Mapping[str, Any], origin: str, split: str = "test") -> ScalingRow:
    """Read one ``<model>-<setting>-<task>.json``. Raises MetricsFormatError naming ``origin`` and the field."""
    for key in ("model", "setting", "task"):
        if not isinstance(payload.get(key), str) or not payload[key]:
            raise MetricsFormatError(f"{origin}: field '{key}' is missing or not a string")
    section = _mapping(_mapping(payload.get("splits")).get(split))
    if not section:
        raise MetricsFormatError(
            f"{origin}: field 'splits.{split}' is missing (rule: the report reads the {split} split)"
        )
    where = f"{origin}: splits.{split}"
    items = _mapping(section.get("per_class", section.get("per_category")))
    if not items:
        raise MetricsFormatError(f"{where}.per_class: missing or empty (per-class / per-category metrics)")
    critical, canaries = _mapping(section.get("critical")), _mapping(payload.get("canaries"))
    model_info, inference = _mapping(payload.get("model_info")), _mapping(payload.get("inference"))
    failed = _count(canaries.get("failed", 0), f"{origin}: canaries.failed")
    return ScalingRow(
        model=payload["model"],
        setting=payload["setting"],
        task=payload["task"],
        params_millions=_number(model_info.get("params_millions"), f"{origin}: model_info.params_millions"),
        peak_rss_mb=_number(inference.get("peak_rss_mb"), f"{origin}: inference.peak_rss_mb"),
        n=_count(section.get("n"), f"{where}.n"),
        accuracy=_estimate(section.get("accuracy"), f"{where}.accuracy", required=True),
        macro_f1=_estimate(section.get("macro_f1"), f"{where}.macro_f1", required=True),
        micro_f1=_estimate(section.get("micro_f1"), f"{where}.micro_f1"),
        per_category={
            str(name): _estimate(item.get("f1") if isinstance(item, Mapping) else None, f"{where}.per_class.{name}.f1")
            for name, item in items.items()
        },
        critical_recall=_estimate(critical.get("recall"), f"{where}.critical.recall"),
        critical_support=_count(critical.get("support", 0), f"{where}.critical.support"),
        canaries_failed=failed,
        canaries_total=failed + _count(canaries.get("passed", 0), f"{origin}: canaries.passed"),
        suites=suite_cards(payload.get("suites"), origin),
        **_operating_point(_mapping(payload.get("operating_point")), split, f"{origin}: operating_point"),
    )


def _operating_point(section: Mapping[str, Any], split: str, where: str) -> dict[str, Any]:
    """The trinary operating point's curve and applied point on ``split`` (absent in older reports: none)."""
    curve = []
    for i, pair in enumerate(_mapping(section.get("curve")).get(split) or []):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise MetricsFormatError(f"{where}.curve.{split}[{i}]: expected [flag_rate, recall]")
        curve.append((_number(pair[0], where) or 0.0, _number(pair[1], where) or 0.0))
    applied = _mapping(_mapping(section.get("applied")).get(split))
    flag, recall = applied.get("flag_rate"), applied.get("recall")
    point = None
    if isinstance(flag, int | float) and isinstance(recall, int | float):
        point = (float(flag), float(recall))
    policy = section.get("policy", "default")
    return {"curve": tuple(curve), "applied": point, "policy": policy if isinstance(policy, str) else "default"}


def sort_rows(rows: Sequence[ScalingRow]) -> list[ScalingRow]:
    """Task, then setting (zero-shot, few-shot, fine-tuned), then size (unknown last), then name."""

    def key(row: ScalingRow) -> tuple[int, int, float, str]:
        size = row.params_millions if row.params_millions is not None else float("inf")
        return (_rank(row.task, TASK_ORDER), _rank(row.setting, SETTING_ORDER), size, row.model)

    return sorted(rows, key=key)


def compare_settings(rows: Sequence[ScalingRow]) -> list[Comparison]:
    """Fine-tuned vs each prompting setting of the same (model, task), on test macro-F1.

    ``disjoint`` is a conservative test: disjoint 95% CIs imply a difference; overlapping ones do not prove none.
    """
    by_key = {(r.model, r.setting, r.task): r for r in rows}
    found = []
    for row in sort_rows(rows):
        if row.setting != "fine_tuned" or row.macro_f1 is None:
            continue
        for baseline in BASELINES:
            other = by_key.get((row.model, baseline, row.task))
            if other is None or other.macro_f1 is None:
                continue
            tuned, prompted = row.macro_f1, other.macro_f1
            found.append(
                Comparison(
                    row.model,
                    row.task,
                    baseline,
                    tuned,
                    prompted,
                    tuned.value - prompted.value,
                    _disjoint(tuned, prompted),
                )
            )
    return found


def metrics_summary(rows: Sequence[ScalingRow], comparisons: Sequence[Comparison]) -> dict[str, Any]:
    """The compact DVC metrics file: ``model.setting.task.{macro_f1, accuracy, critical_recall}`` + comparisons."""
    models: dict[str, Any] = {}
    for row in sort_rows(rows):
        models.setdefault(row.model, {}).setdefault(row.setting, {})[row.task] = {
            "macro_f1": _value(row.macro_f1),
            "accuracy": _value(row.accuracy),
            "critical_recall": _value(row.critical_recall),
        }
    compared = {
        f"{c.model}.{c.task}.fine_tuned_vs_{c.baseline}": {
            "macro_f1_delta": round(c.delta, 6),
            "ci_disjoint": c.disjoint,
        }
        for c in comparisons
    }
    return {"models": models, "comparisons": compared}


def headline_metrics(rows: Sequence[ScalingRow], model: str, gated: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The few figures `dvc metrics show` prints (one screen, diffable across commits): the shipped model's
    (``export.model``, fine-tuned) macro-F1 per task, and on the trinary task each suite figure the gate has a floor
    for (``register.gate.suites``). Everything else (the ladder, timings, memory) lives in non-metric files."""
    out: dict[str, Any] = {}
    for row in rows:
        if row.model != model or row.setting != "fine_tuned":
            continue
        out[row.task] = {"f1": _rounded(row.macro_f1)}
        if row.task != "trinary":
            continue
        for suite, floors in sorted(gated.items()):
            card = row.suites.get(suite)
            for key, floor in sorted(floors.items()):
                if floor is None or card is None:
                    continue
                figure = key.removeprefix("min_").removeprefix("max_")
                figure = "safe_flag_rate" if figure == "flag_rate" else figure
                out.setdefault(suite, {})[HEADLINE_NAMES.get(figure, figure)] = _rounded(card.figures.get(figure))
    return out


#: Short column names for `dvc metrics show` (one screen): the suite figure the gate checks, by what it means.
HEADLINE_NAMES = {"unsafe_recall": "recall", "safe_flag_rate": "flagged", "macro_f1": "f1"}


def _rounded(estimate: Estimate | None) -> float | None:
    return None if estimate is None else round(estimate.value, 4)


def plot_records(rows: Sequence[ScalingRow]) -> dict[str, list[dict[str, Any]]]:
    """Flat records for DVC plots (one list per plot). The templates (.dvc/plots/emosafe_*.json) colour by
    ``series``, facet bars by ``panel`` and draw ``low``-``high`` as the CI."""
    ordered = sort_rows(rows)
    scatter = [
        {
            "model": r.model,
            "setting": r.setting,
            "task": r.task,
            "series": f"{r.task} / {r.setting}",
            "params_millions": r.params_millions,
            "peak_rss_mb": r.peak_rss_mb,
            "macro_f1": r.macro_f1.value,
            "low": r.macro_f1.low,
            "high": r.macro_f1.high,
        }
        for r in ordered
        if r.macro_f1 is not None
    ]
    categories = [
        {
            "model": r.model,
            "setting": r.setting,
            "task": r.task,
            "series": r.model if r.params_millions is None else f"{r.model} ({r.params_millions:g}M)",
            "panel": f"{r.task} / {r.setting}",
            "category": name,
            "f1": est.value,
            "low": est.low,
            "high": est.high,
        }
        for r in ordered
        for name, est in r.per_category.items()
        if est is not None
    ]
    curves = [
        {
            "model": r.model,
            "setting": r.setting,
            "series": f"{r.model} / {r.setting}",
            "flag_rate": flag_rate,
            "unsafe_recall": recall,
        }
        for r in ordered
        for flag_rate, recall in r.curve
    ]
    return {
        "operating_points": curves,
        "f1_vs_params": [record for record in scatter if record["params_millions"] is not None],
        "f1_vs_memory": [record for record in scatter if record["peak_rss_mb"] is not None],
        "per_category": categories,
    }


def markdown(rows: Sequence[ScalingRow], comparisons: Sequence[Comparison], split: str = "test") -> str:
    """The report body: one table of every (model, setting, task), per-category F1 per task, the comparisons."""
    ordered = sort_rows(rows)
    lines = [
        f"## Every model x setting x task ({split} split, 95% bootstrap CIs)",
        "",
        "| task | setting | model | params (M) | peak RSS (MB) | n | accuracy | macro-F1 | micro-F1 "
        "| critical recall (support) | canaries failed |",
        "|---|---|---|---:|---:|---:|---|---|---|---|---:|",
    ]
    for r in ordered:
        size = "-" if r.params_millions is None else f"{r.params_millions:g}"
        rss = "-" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}"
        lines.append(
            f"| {r.task} | {r.setting} | {r.model} | {size} | {rss} | {r.n} | {fmt(r.accuracy)} | {fmt(r.macro_f1)} "
            f"| {fmt(r.micro_f1)} | {fmt(r.critical_recall)} ({r.critical_support}) "
            f"| {r.canaries_failed}/{r.canaries_total} |"
        )
    lines += [
        "",
        "Peak RSS: the evaluating process's resident high-water mark while that model scored (reset per",
        "model; it includes the process baseline, e.g. earlier stages under the flow: compare differences).",
    ]
    for task in sorted({r.task for r in ordered}, key=lambda t: _rank(t, TASK_ORDER)):
        task_rows = [r for r in ordered if r.task == task]
        names = list(dict.fromkeys(name for r in task_rows for name in r.per_category))
        lines += [
            "",
            f"## Per-{'class' if task == 'trinary' else 'category'} F1: {task}",
            "",
            "| setting | model | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names),
        ]
        lines += [
            f"| {r.setting} | {r.model} | " + " | ".join(fmt(r.per_category.get(n)) for n in names) + " |"
            for r in task_rows
        ]
    lines += ["", "## Fine-tuned vs prompting (macro-F1)", ""]
    if not comparisons:
        lines.append("No (model, task) has both a fine-tuned and a prompting setting in these reports.")
    for c in comparisons:
        lines.append(
            f"- {c.model}, {c.task}: fine-tuned {fmt(c.fine_tuned)} vs {c.baseline} {fmt(c.prompted)}; "
            f"difference {c.delta:+.3f}: {c.verdict}."
        )
    return "\n".join(lines) + "\n"


def fmt(estimate: Estimate | None) -> str:
    """'0.812 [0.741, 0.873]'; '-' when undefined."""
    if estimate is None:
        return "-"
    if estimate.low is None or estimate.high is None:
        return f"{estimate.value:.3f}"
    return f"{estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]"


def _disjoint(a: Estimate, b: Estimate) -> bool | None:
    if None in (a.low, a.high, b.low, b.high):
        return None
    return bool(a.low > b.high or b.low > a.high)  # type: ignore[operator]


def _value(estimate: Estimate | None) -> float | None:
    return None if estimate is None else estimate.value


def _rank(value: str, order: tuple[str, ...]) -> int:
    return order.index(value) if value in order else len(order)


def _estimate(raw: Any, where: str, required: bool = False) -> Estimate | None:
    """{value, low, high} -> Estimate; None when absent or undefined (``value: null``) unless ``required``."""
    value = raw.get("value") if isinstance(raw, Mapping) else raw
    if value is None:
        if required:
            raise MetricsFormatError(f"{where}: missing (need {{value, low, high}})")
        return None
    low, high = (raw.get("low"), raw.get("high")) if isinstance(raw, Mapping) else (None, None)
    try:
        figures = [None if x is None else float(x) for x in (value, low, high)]
    except (TypeError, ValueError):
        raise MetricsFormatError(f"{where}: value, low and high must be numbers") from None
    if isinstance(value, bool) or not all(0.0 <= x <= 1.0 for x in figures if x is not None):
        raise MetricsFormatError(f"{where}: scores must be fractions in [0, 1]")
    return Estimate(figures[0], figures[1], figures[2])  # type: ignore[arg-type]


def _mapping(raw: Any) -> Mapping[str, Any]:
    return raw if isinstance(raw, Mapping) else {}


def _number(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise MetricsFormatError(f"{where}: must be a non-negative number, got {type(raw).__name__}")
    return float(raw)


def _count(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise MetricsFormatError(f"{where}: must be a non-negative integer")
    return raw
