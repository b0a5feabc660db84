"""What `make run` prints at the end: the per-model table with CIs and the shipped files, from the stage outputs.

Pure over already-loaded JSON payloads (the CLI reads the files), so it can be tested without running models.
Only counts, metrics, sizes and paths: never message text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelRow:
    model: str
    setting: str
    task: str
    n: int
    accuracy: str
    macro_f1: str
    critical_recall: str
    canaries_failed: int


@dataclass(frozen=True)
class ExportRow:
    bundle: str
    int8_mb: float
    parity_max_abs_diff: float | None
    parity_passed: bool
    int8_macro_f1_drop: float | None
    int8_label_agreement: float | None
    int8_passed: bool


def estimate_text(value: Any) -> str:
    """'0.812 [0.741, 0.873]' from {value, low, high}; '-' when absent."""
    if not isinstance(value, Mapping) or value.get("value") is None:
        return "-"
    low, high = value.get("low"), value.get("high")
    interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{value['value']:.3f}{interval}"


def model_rows(reports: Sequence[Mapping[str, Any]]) -> list[ModelRow]:
    """One row per evaluation report (test split), sorted by task, setting, model."""
    rows = []
    for report in reports:
        test = report["splits"]["test"]
        critical = test.get("critical") or {}
        rows.append(
            ModelRow(
                model=str(report["model"]),
                setting=str(report["setting"]),
                task=str(report["task"]),
                n=int(test["n"]),
                accuracy=estimate_text(test.get("accuracy")),
                macro_f1=estimate_text(test.get("macro_f1")),
                critical_recall=estimate_text(critical.get("recall")) if isinstance(critical, Mapping) else "-",
                canaries_failed=int((report.get("canaries") or {}).get("failed", 0)),
            )
        )
    return sorted(rows, key=lambda r: (r.task, r.setting, r.model))


@dataclass(frozen=True)
class SuiteRow:
    suite: str
    task: str
    setting: str
    model: str
    n: int
    unsafe_recall: str
    unsafe_flagged: str
    safe_flag_rate: str


def suite_rows(reports: Sequence[Mapping[str, Any]]) -> list[SuiteRow]:
    """One row per (evaluation report, suite): the suite's binary view (docs/evaluation.md), sorted by suite."""
    rows = []
    for report in reports:
        for name, suite in (report.get("suites") or {}).items():
            figures = suite.get("figures") or {}
            rows.append(
                SuiteRow(
                    suite=str(name),
                    task=str(report["task"]),
                    setting=str(report["setting"]),
                    model=str(report["model"]),
                    n=int(figures.get("n", 0)),
                    unsafe_recall=estimate_text(figures.get("unsafe_recall")),
                    unsafe_flagged=estimate_text(figures.get("unsafe_flagged")),
                    safe_flag_rate=estimate_text(figures.get("safe_flag_rate")),
                )
            )
    return sorted(rows, key=lambda r: (r.suite, r.task, r.setting, r.model))


def export_row(bundle: str, parity: Mapping[str, Any], quantization: Mapping[str, Any], int8_bytes: int) -> ExportRow:
    quantized = quantization.get("quantized") or {}
    return ExportRow(
        bundle=bundle,
        int8_mb=round(int8_bytes / 2**20, 1),
        parity_max_abs_diff=parity.get("max_abs_diff"),
        parity_passed=bool(parity.get("passed")),
        int8_macro_f1_drop=quantized.get("macro_f1_drop"),
        int8_label_agreement=quantized.get("label_agreement"),
        int8_passed=bool(quantization.get("passed")),
    )


@dataclass(frozen=True)
class GateRow:
    task: str
    name: str
    version: int | None
    status: str
    moved: bool
    reasons: tuple[str, ...]


def gate_rows(ship: Mapping[str, Any]) -> list[GateRow]:
    """The ship stage's decision per task (its ship.json): which version, shipped or refused, and why."""
    return [
        GateRow(
            task=str(row.get("task")),
            name=str(row.get("name")),
            version=row.get("version"),
            status=str(row.get("status", "-")),
            moved=bool(row.get("moved")),
            reasons=tuple(str(r) for r in row.get("reasons") or ()),
        )
        for row in ship.get("tasks") or ()
    ]


def where_lines(places: Mapping[str, str], exists: Mapping[str, bool]) -> list[str]:
    """'<what>: <path>' per report location, marked '(not written yet)' when absent."""
    return [f"{what}: {path}{'' if exists.get(what) else ' (not written yet)'}" for what, path in places.items()]


def next_steps(gate: Sequence[GateRow], alias: str, offline_runs: Sequence[str]) -> list[str]:
    """What a user would do next after `make run`, with the commands to type (paths and names only)."""
    steps = ["emosafe registry list   # versions, aliases; `emosafe registry card <name>@<version>` for a card"]
    shipped = [row for row in gate if row.moved or row.status == "already"]
    if shipped:
        steps.append(f"emosafe serve-model --model {shipped[0].name}@{alias}   # HTTP predictions (docs/serving.md)")
    elif gate:
        steps.append("the gate kept the alias where it was: see its reasons above (docs/registry.md, the checks)")
    if offline_runs:
        steps.append(f"wandb sync {' '.join(offline_runs[-3:])}   # upload {len(offline_runs)} offline W&B run(s)")
    return steps
