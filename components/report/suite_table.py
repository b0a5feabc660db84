"""The scaling report's sections on real-message behaviour: evaluation suites and trinary operating points.

One table per suite (docs/evaluation.md): unsafe recall, unsafe flagged at all, unsafe F1, safe messages flagged
and macro-F1 over the suite's classes, each with its 95% interval. One table of where each trinary model's applied
thresholds sit (policy, unsafe recall, safe flag rate), beside the curve in ``plots/operating_points.png``. Pure
over the rows the report already read.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.report.scaling import ScalingRow, fmt, sort_rows

COLUMNS = (
    ("unsafe_recall", "unsafe recall"),
    ("unsafe_flagged", "unsafe flagged at all"),
    ("unsafe_f1", "unsafe F1"),
    ("safe_flag_rate", "safe flagged"),
    ("macro_f1", "macro-F1 (its classes)"),
)


def suite_markdown(rows: Sequence[ScalingRow]) -> str:
    """``## Evaluation suites``: one table per suite over every row that carries it; '' when no row has suites."""
    ordered = sort_rows(rows)
    names = sorted({name for row in ordered for name in row.suites})
    if not names:
        return ""
    lines = [
        "## Evaluation suites (never trained on; 95% bootstrap CIs)",
        "",
        "Safe flagged: the share of safe messages called anything but safe (taxonomy: any category flagged).",
    ]
    for name in names:
        lines += [
            "",
            f"### {name}",
            "",
            "| task | setting | model | n | " + " | ".join(title for _, title in COLUMNS) + " |",
            "|---|---|---|---:|" + "---|" * len(COLUMNS),
        ]
        for row in (r for r in ordered if name in r.suites):
            card = row.suites[name]
            cells = " | ".join(fmt(card.figures.get(key)) for key, _ in COLUMNS)
            lines.append(f"| {row.task} | {row.setting} | {row.model} | {card.n} | {cells} |")
    return "\n".join(lines) + "\n"


def operating_markdown(rows: Sequence[ScalingRow]) -> str:
    """``## Trinary operating points``: policy and applied point per trinary row with a curve; '' when none has one."""
    shown = [row for row in sort_rows(rows) if row.task == "trinary" and row.curve]
    if not shown:
        return ""
    lines = [
        "## Trinary operating points",
        "",
        "Unsafe recall (called unsafe) and safe messages flagged (borderline or unsafe) at the thresholds the model",
        "decides with: argmax under the default policy, else fitted on val by `evaluate.operating_point`. The",
        "curve over the threshold grid: [plots/operating_points.png](plots/operating_points.png).",
        "",
        "| setting | model | policy | unsafe recall | safe flagged |",
        "|---|---|---|---:|---:|",
    ]
    for row in shown:
        flag, recall = row.applied if row.applied is not None else (None, None)
        cells = " | ".join("n/a" if v is None else f"{v:.3f}" for v in (recall, flag))
        lines.append(f"| {row.setting} | {row.model} | {row.policy} | {cells} |")
    return "\n".join(lines) + "\n"
