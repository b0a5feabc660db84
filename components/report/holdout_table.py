"""The scaling report's leave-one-source-out section: each rung trained without a source, scored on that source.

A holdout report (``emosafe holdout``) is an evaluation report whose suites include ``holdout:<source>``: the
held-out source's human rows with the binary-view figures. This module reads those reports into rows, renders one
table (model x held-out source, 95% intervals) and the compact entries for metrics.json and W&B. Pure over the
parsed payloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.errors import MetricsFormatError
from components.report.scaling import ScalingRow, fmt, row_from_report
from components.report.suite_table import COLUMNS

PREFIX = "holdout:"


@dataclass(frozen=True)
class HoldoutRow:
    """One rung trained without ``source``: the row of its report, and the held-out source's suite card."""

    source: str
    row: ScalingRow

    @property
    def card(self) -> Any:
        return self.row.suites[PREFIX + self.source]


def holdout_row(payload: Mapping[str, Any], origin: str, split: str = "test") -> HoldoutRow:
    """Read one ``<model>-without-<source>.json``; raises MetricsFormatError naming ``origin`` and the field."""
    source = payload.get("holdout", {}).get("source") if isinstance(payload.get("holdout"), Mapping) else None
    if not isinstance(source, str) or not source:
        raise MetricsFormatError(f"{origin}: field 'holdout.source' is missing (not a holdout report)")
    row = row_from_report(payload, origin, split)
    if PREFIX + source not in row.suites:
        raise MetricsFormatError(f"{origin}: suites.{PREFIX}{source} is missing (the held-out source's figures)")
    return HoldoutRow(source, row)


def holdout_markdown(rows: Sequence[HoldoutRow]) -> str:
    """``## Leave-one-source-out``: one line per (model, held-out source); '' when there are none."""
    if not rows:
        return ""
    lines = [
        "## Leave-one-source-out (trained without the source, scored on all its human rows; 95% bootstrap CIs)",
        "",
        "How the ladder's recipe does on a corpus it never saw: a large drop from its own test split means the",
        "model learnt the corpora rather than the risk. Safe flagged: safe messages called anything but safe.",
        "",
        "| task | model | held out | n | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|---|---|---:|" + "---|" * len(COLUMNS),
    ]
    for item in sorted(rows, key=lambda r: (r.row.task, r.source, r.row.params_millions or 0.0, r.row.model)):
        cells = " | ".join(fmt(item.card.figures.get(key)) for key, _ in COLUMNS)
        lines.append(f"| {item.row.task} | {item.row.model} | {item.source} | {item.card.n} | {cells} |")
    return "\n".join(lines) + "\n"


def holdout_metrics(rows: Sequence[HoldoutRow]) -> dict[str, Any]:
    """metrics.json's ``holdout.<model>.<source>.{figure}`` (point values; the table has the intervals)."""
    found: dict[str, Any] = {}
    for item in rows:
        figures = {key: None if e is None else e.value for key, e in item.card.figures.items()}
        found.setdefault(item.row.model, {})[item.source] = figures | {"n": item.card.n}
    return found
