"""The scaling report's figures as PNG bytes (matplotlib, Agg; no pyplot, so no global state or display needed).

Four figures, always drawn (a panel says "no data" rather than the file going missing, because DVC declares fixed
file names): macro-F1 vs parameter count (log x) per task, one line per setting and model family; per-class /
per-category F1 per model size as grouped bars with CI error bars; macro-F1 vs peak inference memory (the study's
figure 1B); and the trinary operating points (unsafe recall vs safe flag rate over the threshold grid, with the
applied point). Every point of the first three carries its 95% bootstrap CI. Only metrics and model names are
drawn, never text.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from components.report.scaling import SETTING_ORDER, TASK_ORDER, ScalingRow, sort_rows

COLOURS = {"zero_shot": "#1f77b4", "few_shot": "#ff7f0e", "fine_tuned": "#2ca02c"}
MARKERS = {"smollm2": "o", "minilm": "s"}


def f1_vs_params_png(rows: Sequence[ScalingRow]) -> bytes:
    """Macro-F1 (test, 95% CI) against parameters in millions, log x; one panel per task."""
    return _scatter_by_task(rows, "params_millions", "parameters (millions, log scale)", log_x=True)


def f1_vs_memory_png(rows: Sequence[ScalingRow]) -> bytes:
    """Macro-F1 against the evaluate process's peak RSS (MB) when the report was made: the study's figure 1B."""
    label = "peak RSS of the evaluate process (MB; high-water mark, so an upper bound)"
    return _scatter_by_task(rows, "peak_rss_mb", label, log_x=False)


def per_category_png(rows: Sequence[ScalingRow]) -> bytes:
    """One panel per (task, setting): categories on x, one bar per model (smallest first), CI error bars."""
    ordered = sort_rows(rows)
    panels = list(dict.fromkeys((r.task, r.setting) for r in ordered))
    figure, axes_list = _figure(max(len(panels), 1), 1, width=10.0, height=3.0)
    if not panels:
        _empty(axes_list[0])
    for axes, (task, setting) in zip(axes_list, panels, strict=False):
        group = [r for r in ordered if r.task == task and r.setting == setting]
        names = list(dict.fromkeys(name for r in group for name in r.per_category))
        width = 0.8 / len(group)
        for i, row in enumerate(group):
            estimates = [row.per_category.get(name) for name in names]
            xs = [j + (i - (len(group) - 1) / 2) * width for j in range(len(names))]
            heights = [0.0 if e is None else e.value for e in estimates]
            bars = axes.bar(
                xs, heights, width, yerr=_errors(estimates), capsize=2, label=_label(row), error_kw={"lw": 0.8}
            )
            zero = ["0" if e is not None and e.value == 0 else "n/a" if e is None else "" for e in estimates]
            axes.bar_label(bars, labels=zero, fontsize=7)
        axes.set_xticks(range(len(names)), [name.replace("_", " ") for name in names], fontsize=8)
        axes.set_ylim(0, 1.2)
        axes.set_ylabel("F1 (test)")
        axes.set_title(f"{task}: {setting.replace('_', '-')}", fontsize=10)
        axes.legend(fontsize=7, ncol=min(len(group), 4), loc="upper center")
        axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def operating_points_png(rows: Sequence[ScalingRow]) -> bytes:
    """Trinary: each model's unsafe recall against the share of safe messages flagged, over the threshold grid (the
    frontier), with a marker where its applied thresholds sit (argmax or the operating-point policy)."""
    shown = [r for r in sort_rows(rows) if r.task == "trinary" and r.curve]
    figure, axes_list = _figure(1, 1, width=7.0, height=4.5)
    axes = axes_list[0]
    if not shown:
        _empty(axes)
        return _png(figure)
    for row in shown:
        xs, ys = zip(*row.curve, strict=True)
        (line,) = axes.step(
            xs, ys, where="post", lw=1.2, label=f"{_label(row)}, {row.setting.replace('_', '-')}, {row.policy}"
        )
        if row.applied is not None:
            axes.plot(*row.applied, marker="o", ms=7, color=line.get_color(), markeredgecolor="black")
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.05)
    axes.set_xlabel("safe messages flagged (borderline or unsafe)")
    axes.set_ylabel("unsafe recall (called unsafe)")
    axes.set_title("trinary operating points (test; dot = applied thresholds)", fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    axes.grid(alpha=0.3)
    return _png(figure)


def _scatter_by_task(rows: Sequence[ScalingRow], field: str, xlabel: str, log_x: bool) -> bytes:
    ordered = [r for r in sort_rows(rows) if getattr(r, field) is not None and r.macro_f1 is not None]
    tasks = sorted({r.task for r in ordered}, key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else 9)
    figure, axes_list = _figure(1, max(len(tasks), 1), width=5.5, height=4.2)
    if not tasks:
        _empty(axes_list[0])
    for axes, task in zip(axes_list, tasks, strict=False):
        for setting in [s for s in SETTING_ORDER if any(r.setting == s for r in ordered)]:
            for family in sorted({_family(r.model) for r in ordered}):
                line = [r for r in ordered if r.task == task and r.setting == setting and _family(r.model) == family]
                if not line:
                    continue
                xs = [float(getattr(r, field)) for r in line]
                ys = [r.macro_f1.value for r in line if r.macro_f1 is not None]
                axes.errorbar(
                    xs,
                    ys,
                    yerr=_errors([r.macro_f1 for r in line]),
                    marker=MARKERS.get(family, "^"),
                    color=COLOURS.get(setting, "grey"),
                    capsize=3,
                    lw=1.2,
                    label=f"{setting.replace('_', '-')} ({family})",
                )
                for x, y, row in zip(xs, ys, line, strict=True):
                    axes.annotate(row.model, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if log_x:
            _log_axis(axes, [float(getattr(r, field)) for r in ordered])
        axes.set_ylim(0, 1.05)
        axes.set_xlabel(xlabel)
        axes.set_ylabel("macro-F1 (test, 95% CI)")
        axes.set_title(task)
        axes.legend(fontsize=7, loc="best")
        axes.grid(alpha=0.3)
    return _png(figure)


def _log_axis(axes: Any, values: list[float]) -> None:
    """Log scale with the model sizes themselves as plain-number ticks (not 10^1.5)."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    axes.set_xscale("log")
    axes.xaxis.set_major_locator(FixedLocator(sorted(set(values))))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.set_xlim(min(values) / 1.3, max(values) * 1.3)


def _family(model: str) -> str:
    """Lines join sizes of one family only (SmolLM2 cuts), never a SmolLM2 cut to the MiniLM encoder."""
    return model.split("-")[0]


def _label(row: ScalingRow) -> str:
    return row.model if row.params_millions is None else f"{row.model} ({row.params_millions:g}M)"


def _errors(estimates: Sequence[Any]) -> list[list[float]]:
    """Asymmetric error bars from CIs; zero where there is no interval."""
    lower, upper = [], []
    for e in estimates:
        known = e is not None and e.low is not None and e.high is not None
        lower.append(max(e.value - e.low, 0.0) if known else 0.0)
        upper.append(max(e.high - e.value, 0.0) if known else 0.0)
    return [lower, upper]


def _figure(n_rows: int, n_cols: int, width: float, height: float) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * n_cols, height * n_rows), layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    return figure, [a for line in axes for a in line]


def _empty(axes: Any) -> None:
    axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()
