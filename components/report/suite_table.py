"""The scaling report's evaluation-suite section: every model on every suite, in the binary view.

One table per suite (docs/evaluation.md): unsafe recall, unsafe flagged at all, unsafe F1, safe messages flagged
and macro-F1 over the suite's classes, each with its 95% interval. Pure over the rows the report already read.
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
