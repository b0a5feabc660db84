"""The scaling report's leave-one-source-out section: each rung trained without a source, scored on that source.

A holdout report (``emosafe holdout``) is an evaluation report whose suites include ``holdout:<source>``: the
held-out source's human rows with the binary-view figures. This module reads those reports into rows, renders one
table (model x held-out source, 95% intervals) and the compact entries for metrics.json and W&B. Pure over the
parsed payloads. Reports of ``holdout.seeds`` runs carry their seed: the table gets a seed column, and a second
table gives each (model, source) the mean and range of every figure across its seeds, the yardstick for whether two
recipes differ by more than a training seed does.
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
    seed: int | None = None

    @property
    def card(self) -> Any:
        return self.row.suites[PREFIX + self.source]


def holdout_row(payload: Mapping[str, Any], origin: str, split: str = "test") -> HoldoutRow:
    """Read one ``<model>-without-<source>.json``; raises MetricsFormatError naming ``origin`` and the field."""
    source = payload.get("holdout", {}).get("source") if isinstance(payload.get("holdout"), Mapping) else None
    if not isinstance(source, str) or not source:
        raise MetricsFormatError(f"{origin}: field 'holdout.source' is missing (not a holdout report)")
    seed = payload["holdout"].get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise MetricsFormatError(f"{origin}: field 'holdout.seed' must be an integer or null, got {seed!r}")
    row = row_from_report(payload, origin, split)
    if PREFIX + source not in row.suites:
        raise MetricsFormatError(f"{origin}: suites.{PREFIX}{source} is missing (the held-out source's figures)")
    return HoldoutRow(source, row, seed)


def holdout_markdown(rows: Sequence[HoldoutRow]) -> str:
    """``## Leave-one-source-out``: one line per (model, held-out source, seed); '' when there are none. With seeds,
    a second table of the mean and range across them."""
    if not rows:
        return ""
    seeded = any(item.seed is not None for item in rows)
    lines = [
        "## Leave-one-source-out (trained without the source, scored on all its human rows; 95% bootstrap CIs)",
        "",
        "How the ladder's recipe does on a corpus it never saw: a large drop from its own test split means the",
        "model learnt the corpora rather than the risk. Safe flagged: safe messages called anything but safe.",
        "",
        "| task | model | held out | "
        + ("seed | " if seeded else "")
        + "n | "
        + " | ".join(title for _, title in COLUMNS)
        + " |",
        "|---|---|---|" + ("---:|" if seeded else "") + "---:|" + "---|" * len(COLUMNS),
    ]
    for item in sorted(rows, key=_order):
        cells = " | ".join(fmt(item.card.figures.get(key)) for key, _ in COLUMNS)
        seed = f"{'-' if item.seed is None else item.seed} | " if seeded else ""
        lines.append(f"| {item.row.task} | {item.row.model} | {item.source} | {seed}{item.card.n} | {cells} |")
    return "\n".join(lines) + "\n" + _across_seeds(rows)


def _order(item: HoldoutRow) -> tuple[str, str, float, str, int]:
    return (item.row.task, item.source, item.row.params_millions or 0.0, item.row.model, item.seed or 0)


def _across_seeds(rows: Sequence[HoldoutRow]) -> str:
    """Mean [min, max] of each figure's point value over the seeds of one (task, model, source); '' without seeds."""
    groups: dict[tuple[str, str, str], list[HoldoutRow]] = {}
    for item in sorted(rows, key=_order):
        if item.seed is not None:
            groups.setdefault((item.row.task, item.row.model, item.source), []).append(item)
    if not groups:
        return ""
    lines = [
        "",
        "### Across training seeds (mean [min, max] of the point values; the same held-out rows for every seed)",
        "",
        "A difference between two recipes smaller than the range here is within run-to-run noise.",
        "",
        "| task | model | held out | seeds | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for (task, model, source), items in groups.items():
        cells = " | ".join(_spread([item.card.figures.get(key) for item in items]) for key, _ in COLUMNS)
        seeds = ", ".join(str(item.seed) for item in items)
        lines.append(f"| {task} | {model} | {source} | {seeds} | {cells} |")
    return "\n".join(lines) + "\n"


def _spread(estimates: Sequence[Any]) -> str:
    values = [estimate.value for estimate in estimates if estimate is not None]
    if not values:
        return "-"
    return f"{sum(values) / len(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def holdout_metrics(rows: Sequence[HoldoutRow]) -> dict[str, Any]:
    """metrics.json's ``holdout.<model>.<source>.{figure}`` (``<source>-seed<N>`` for a seeded run; point values,
    the table has the intervals)."""
    found: dict[str, Any] = {}
    for item in rows:
        figures = {key: None if e is None else e.value for key, e in item.card.figures.items()}
        key = item.source if item.seed is None else f"{item.source}-seed{item.seed}"
        found.setdefault(item.row.model, {})[key] = figures | {"n": item.card.n}
    return found
