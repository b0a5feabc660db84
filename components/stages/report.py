"""The ``report`` stage: the evaluate stage's JSON reports -> the scaling report under ``report.output_dir``.

Writes ``scaling.md`` (every model x setting x task with CIs, per-category F1, fine-tuned vs prompting),
``metrics.json`` (compact DVC metrics for ``dvc metrics show/diff``), ``plots/*.json`` (DVC plot data) and
``plots/*.png``, and ``meta.json`` (params hash, each input's sha256, code hash). Every input is read and checked
before the first write; the folder is written aside and swapped in whole. Logs one W&B run (``job_type: report``).
Reports carry metrics, sizes and ids only, never message text.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import Params
from components.config.holdout import HoldoutConfig
from components.config.report import ReportConfig
from components.errors import EmosafeError, MetricsFormatError
from components.io import atomic_write_bytes, replace_dir, sha256_bytes
from components.provenance import provenance
from components.report.holdout_table import HoldoutRow, holdout_markdown, holdout_metrics, holdout_row
from components.report.scaling import (
    ScalingRow,
    compare_settings,
    headline_metrics,
    markdown,
    metrics_summary,
    plot_records,
    sort_rows,
)

log = logging.getLogger(__name__)

PLOT_DIR = "plots"
TABLE_COLUMNS = [
    "task",
    "setting",
    "model",
    "params_millions",
    "peak_rss_mb",
    "n",
    "accuracy",
    "macro_f1",
    "macro_f1_low",
    "macro_f1_high",
    "micro_f1",
    "critical_recall",
    "canaries_failed",
    "canaries_total",
]


@dataclass(frozen=True)
class ReportOutcome:
    output_dir: Path
    files: tuple[Path, ...]
    summary: dict[str, Any]  # counts, paths, comparisons, W&B run folder; never text


def report(params: Params, root: Path = Path()) -> ReportOutcome:
    """Build the scaling report from ``report.input_dir``. Raises EmosafeError naming the file when the folder is
    missing or empty, or a report is not JSON, lacks a needed field or does not match its file name."""
    config = params.report
    inputs = _read_reports(root / config.input_dir, config.split)
    held = _read_holdouts(root / params.holdout.reports_dir, config.split) if params.holdout.sources else []
    rows = sort_rows([row for _, _, row in inputs])
    comparisons = compare_settings(rows)
    records = plot_records(rows)
    files = _render(rows, comparisons, records, config.split, [row for _, _, row in held])
    gated = {name: floors.model_dump() for name, floors in params.register.gate.suites.items()}
    files["headline.json"] = _json_bytes(headline_metrics(rows, params.export.model, gated))
    files["meta.json"] = _json_bytes(_meta(params, [*inputs, *held], root))
    out = root / config.output_dir
    _write_folder(out, files)
    images = {Path(name).stem: out / name for name in files if name.endswith(".png")}
    tracking = _track(params.report, rows, images, root, [row for _, _, row in held])
    disjoint = [c for c in comparisons if c.disjoint]
    summary = {
        "reports": len(rows),
        "holdout_reports": len(held),
        "models": len({r.model for r in rows}),
        "settings": sorted({r.setting for r in rows}),
        "tasks": sorted({r.task for r in rows}),
        "comparisons": [
            f"{c.model} {c.task} fine_tuned vs {c.baseline}: {c.delta:+.3f}, {c.verdict}" for c in comparisons
        ],
        "comparisons_disjoint": len(disjoint),
        "markdown": str(out / "scaling.md"),
        "metrics": str(out / "metrics.json"),
        "wandb_run_dir": tracking,
    }
    log.info("scaling report: %d reports -> %s", len(rows), out)
    return ReportOutcome(out, tuple(sorted(out / name for name in files)), summary)


def _read_holdouts(folder: Path, split: str) -> list[tuple[Path, bytes, HoldoutRow]]:
    """Every ``<model>-without-<source>.json`` of the holdout stage; an error when holdout is on but none exist."""
    paths = sorted(folder.glob("*-without-*.json")) if folder.is_dir() else []
    if not paths:
        raise EmosafeError(f"{folder}: no holdout reports; run `emosafe holdout` (or `dvc repro`) first")
    found = []
    for path in paths:
        data = path.read_bytes()
        item = holdout_row(_json_object(path, data), str(path), split)
        expected = f"{HoldoutConfig.run_name(item.row.model, item.source, item.seed)}.json"
        if path.name != expected:
            raise MetricsFormatError(
                f"{path}: model/held-out source/seed inside say {expected} (rule: the name matches)"
            )
        found.append((path, data, item))
    return found


def _json_object(path: Path, data: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise MetricsFormatError(f"{path}: not valid JSON ({where}); rerun the stage that wrote it") from None
    if not isinstance(payload, dict):
        raise MetricsFormatError(f"{path}: top level must be an object, got {type(payload).__name__}")
    return payload


def _read_reports(folder: Path, split: str) -> list[tuple[Path, bytes, ScalingRow]]:
    from components.report.scaling import row_from_report

    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        raise EmosafeError(f"{folder}: no evaluation reports (*.json); run `emosafe evaluate` (or `dvc repro`) first")
    found = []
    for path in paths:
        data = path.read_bytes()
        row = row_from_report(_json_object(path, data), str(path), split)
        expected = f"{row.model}-{row.setting}-{row.task}.json"
        if path.name != expected:
            raise MetricsFormatError(f"{path}: model/setting/task inside say {expected} (rule: the name matches)")
        found.append((path, data, row))
    return found


def _render(
    rows: list[ScalingRow], comparisons: list[Any], records: dict[str, Any], split: str, held: list[HoldoutRow]
) -> dict[str, bytes]:
    from components.report.plots import f1_vs_memory_png, f1_vs_params_png, operating_points_png, per_category_png

    header = "# Scaling report\n\nGenerated by `emosafe report` from the evaluate stage's reports (docs/report.md).\n\n"
    body = markdown(rows, comparisons, split) + _suites_section(rows) + (f"\n{holdout_markdown(held)}" if held else "")
    body += "\n## Plots\n\n" + "".join(f"![{title}]({PLOT_DIR}/{name}.png)\n\n" for name, title in PLOTS.items())
    metrics = metrics_summary(rows, comparisons) | ({"holdout": holdout_metrics(held)} if held else {})
    files = {
        "scaling.md": (header + body).encode(),
        "metrics.json": _json_bytes(metrics),
        f"{PLOT_DIR}/f1_vs_params.png": f1_vs_params_png(rows),
        f"{PLOT_DIR}/f1_vs_memory.png": f1_vs_memory_png(rows),
        f"{PLOT_DIR}/per_category.png": per_category_png(rows),
        f"{PLOT_DIR}/operating_points.png": operating_points_png(rows),
    }
    files |= {f"{PLOT_DIR}/{name}.json": _json_bytes(data) for name, data in records.items()}
    return files


#: The PNGs of the report, linked from scaling.md (the same names as the DVC plot data).
PLOTS = {
    "f1_vs_params": "Macro-F1 (test, 95% CI) vs parameters",
    "f1_vs_memory": "Macro-F1 vs peak inference memory",
    "per_category": "Per-class / per-category F1 per model size",
    "operating_points": "Trinary operating points (unsafe recall vs safe messages flagged)",
}


def _suites_section(rows: list[ScalingRow]) -> str:
    from components.report.suite_table import operating_markdown, suite_markdown

    sections = [section for section in (suite_markdown(rows), operating_markdown(rows)) if section]
    return "".join(f"\n{section}" for section in sections)


def _meta(params: Params, inputs: list[tuple[Path, bytes, Any]], root: Path) -> dict[str, Any]:
    section = params.report.model_dump(mode="json")
    return provenance(
        __name__,
        {
            "stage": "report",
            "params": {"report": section},
            "params_hash": sha256_bytes(json.dumps(section, sort_keys=True).encode()),
            "inputs": {_relative(path, root): sha256_bytes(data) for path, data, _ in inputs},
        },
    )


def _write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Everything into a fresh folder beside ``out``, then one swap: no reader sees a half-written report."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the report is meant to be read
    try:
        for name, data in files.items():
            atomic_write_bytes(staging / name, data)
        replace_dir(staging, out)
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise


def _track(
    config: ReportConfig, rows: list[ScalingRow], images: dict[str, Path], root: Path, held: list[HoldoutRow]
) -> str | None:
    from components.tracking import Tracker

    wandb, logged = config.wandb, {"report": config.model_dump(mode="json")}
    folder = str(root / wandb.dir)
    tracker = Tracker.start(
        wandb.enabled, wandb.project, wandb.mode, folder, "scaling-report", "report", logged, "report"
    )
    summary = _wandb_summary(rows) | {
        f"holdout/{model}/{source}/{figure}": value
        for model, sources in holdout_metrics(held).items()
        for source, figures in sources.items()
        for figure, value in figures.items()
        if value is not None
    }
    tracker.log_report(TABLE_COLUMNS, [_table_row(r) for r in rows], images, summary)
    return tracker.finish().run_dir


def _table_row(r: ScalingRow) -> list[Any]:
    macro = r.macro_f1
    low, high = (None, None) if macro is None else (macro.low, macro.high)
    return [
        r.task,
        r.setting,
        r.model,
        r.params_millions,
        r.peak_rss_mb,
        r.n,
        _value(r.accuracy),
        _value(macro),
        low,
        high,
        _value(r.micro_f1),
        _value(r.critical_recall),
        r.canaries_failed,
        r.canaries_total,
    ]


def _value(estimate: Any) -> float | None:
    return None if estimate is None else float(estimate.value)


def _wandb_summary(rows: list[ScalingRow]) -> dict[str, float]:
    """Test macro-F1 per row, and each evaluation suite's figures (``<model>/<setting>/<task>/suite/<name>/...``)."""
    summary = {f"{r.model}/{r.setting}/{r.task}/macro_f1": r.macro_f1.value for r in rows if r.macro_f1 is not None}
    for r in rows:
        for name, card in r.suites.items():
            for figure, estimate in card.figures.items():
                if estimate is not None:
                    summary[f"{r.model}/{r.setting}/{r.task}/suite/{name}/{figure}"] = estimate.value
    return summary


def _json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
