"""The ``monitor`` step: production log + reference -> windows, drift verdicts, reports, history, alerts.

Order: read and check everything (reference, log, the model version's rows), compute all windows, then write the
JSON and HTML reports atomically, record the history, and only then send alerts. The overall verdict is ALARM when
any assessed window alarms, INSUFFICIENT_SAMPLES when no window reached ``min_samples``, else NO_DRIFT_DETECTED.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from components.config import Params
from components.drift.power import sensitivity, sensitivity_line
from components.drift.reference import DriftReference, parse_reference
from components.drift.statistics import Verdict, WindowAssessment, assess_windows
from components.errors import EmosafeError, SourceFileError
from components.io import atomic_write_bytes, atomic_write_json, replace_dir, sha256_file
from components.provenance import provenance
from components.schema import CATEGORIES, LABELS
from monitoring.alerts import Alert, build_sinks, dispatch
from monitoring.drift_report import render_html, window_report
from monitoring.history import HistoryRow, record_windows, resume_point
from monitoring.log import PredictionLog, read_log
from monitoring.windows import Windows, cut_windows, iso

log = logging.getLogger(__name__)
#: Exit code of `emosafe monitor` on a drift alarm (2 is reserved for bad input, 0 for no alarm).
MONITOR_EXIT_ALARM = 3
METHOD = (
    "{labels} on the labels (Cohen's w), {proportions} on the borderline rate and each category (Cohen's h); "
    "Monte-Carlo p-values below the minimum expected count; PSI; Jensen-Shannon distance (base 2); {correction} "
    "correction over a window's signals at alpha={alpha}"
)
#: The tests' names, by whether the reference's own sample size enters them (monitor.drift.account_for_reference_size).
TESTS = {
    True: ("chi-square homogeneity of window and reference sample", "two-sample proportion z tests"),
    False: ("chi-square goodness of fit against the reference proportions", "one-sample proportion z tests"),
}


@dataclass(frozen=True)
class MonitorResult:
    verdict: Verdict
    summary: str
    windows: tuple[dict[str, Any], ...]
    report_json: Path
    report_html: Path
    history_db: Path
    alert_failures: tuple[str, ...]
    predictions: int = 0  # of the reference's model version, assessed by this run
    resumed_from: str | None = None  # ``--since last``: where this run started (None: the whole log or --since)
    sensitivity: str | None = None  # the minimum detectable shifts, in words (components/drift/power.py)


def load_reference(path: Path, params: Params | None = None, project: Path = Path()) -> DriftReference:
    """Read a reference JSON file, or the one stored with a registry version when ``path`` is ``name@alias`` (or
    ``name@N``) and no such file exists (the registry of the project at ``project``). Raises SourceFileError /
    RegistryError naming the file or version."""
    if params is not None and not path.is_file() and "@" in str(path) and "/" not in str(path):
        from registry.drift_reference import stored_reference

        try:
            return parse_reference(stored_reference(str(path), params.register, project), str(path))
        except ValueError as exc:
            raise EmosafeError(str(exc)) from None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceFileError(path, f"cannot read the reference ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SourceFileError(path, "not valid JSON (rule: a reference is one JSON object)") from None
    try:
        return parse_reference(raw, str(path))
    except ValueError as exc:
        raise EmosafeError(str(exc)) from None


def _selected(predictions: PredictionLog, reference: DriftReference, after: tuple[float, bool] | None) -> Any:
    """Which predictions are the reference's model version, at/after (inclusive) or strictly after a time."""
    mask = predictions.of(reference.model, reference.version)
    if after is not None:
        mask &= predictions.timestamps >= after[0] if after[1] else predictions.timestamps > after[0]
    return mask


def _select(predictions: PredictionLog, reference: DriftReference, after: tuple[float, bool] | None) -> PredictionLog:
    mask = _selected(predictions, reference, after)
    if not mask.any():
        found = ", ".join(f"{k} ({v})" for k, v in sorted(predictions.model_versions().items())[:10])
        when = f" since {iso(after[0])}" if after is not None else ""
        raise EmosafeError(
            f"{predictions.path}: no prediction of {reference.model}@{reference.version}{when} "
            f"(rule: the reference's model and version); found {found}"
        )
    return predictions.select(mask)


def _rule(window: Any) -> str:
    """The windowing rule as the history keys it (a window is only comparable under the same rule)."""
    return f"count:{window.size}" if window.by == "count" else f"time:{window.seconds}s"


def _counts(windows: Windows, index: int) -> dict[str, Any]:
    n = max(int(windows.n[index]), 1)
    counts: dict[str, Any] = {}
    if windows.label_counts is not None:
        counts["label_distribution"] = {k: int(c) / n for k, c in zip(LABELS, windows.label_counts[index], strict=True)}
    if windows.category_counts is not None:
        row = windows.category_counts[index]
        counts["category_prevalence"] = {k: int(c) / n for k, c in zip(CATEGORIES, row, strict=True)}
    return counts


def _overall(assessments: list[WindowAssessment]) -> tuple[Verdict, str]:
    alarms = sum(a.verdict == Verdict.ALARM for a in assessments)
    tested = sum(a.verdict != Verdict.INSUFFICIENT_SAMPLES for a in assessments)
    if alarms:
        return Verdict.ALARM, f"{alarms} of {tested} assessed window(s) alarm ({len(assessments)} windows in all)"
    if not tested:
        return Verdict.INSUFFICIENT_SAMPLES, (
            f"no window reached the minimum sample size ({len(assessments)} window(s)): no decision, not 'no drift'"
        )
    return Verdict.NO_DRIFT_DETECTED, f"none of {tested} assessed window(s) alarms ({len(assessments)} in all)"


def monitor(
    params: Params,
    log_path: Path,
    reference_path: Path,
    output_dir: Path | None = None,
    since: datetime | None = None,
    incremental: bool = False,
    project: Path = Path(),
) -> MonitorResult:
    """Run drift monitoring of one model version over its production log (see the module docstring).

    ``incremental`` (``--since last``): start where the history's latest window of this version left off: at its
    start when it may still grow, just after its end when it was complete, so an hourly run reads only what came
    in since (and re-assesses the window that was still filling). With no new prediction it assesses nothing and
    writes nothing (INSUFFICIENT_SAMPLES, exit 0). Raises EmosafeError (bad log line, bad reference, no prediction
    of the reference's model version) before anything is written. Relative params paths (registry, history, reports)
    are the project's at ``project``: a Prefect worker runs the flow from its own folder.
    """
    config = params.monitor
    reference = load_reference(reference_path, params, project)
    history = project / config.history_db
    after: tuple[float, bool] | None = (since.timestamp(), True) if since is not None else None
    resumed = None
    if incremental:
        complete = config.window.size if config.window.by == "count" else None
        point = resume_point(history, reference.model, reference.version, _rule(config.window), complete)
        if point is not None:
            resumed, after = point[0], (datetime.fromisoformat(point[0]).timestamp(), point[1])
    log_columns = read_log(log_path)
    if resumed is not None and not _selected(log_columns, reference, after).any():
        summary = f"no new prediction of {reference.model}@{reference.version} after {resumed}: nothing to assess"
        out = output_dir or project / config.output_dir
        report_json, report_html = out / "report.json", out / "report.html"
        return MonitorResult(
            Verdict.INSUFFICIENT_SAMPLES, summary, (), report_json, report_html, history, (), resumed_from=resumed
        )
    predictions = _select(log_columns, reference, after)
    windows = cut_windows(predictions, config.window)
    try:
        assessments = assess_windows(
            windows.n, windows.label_counts, windows.category_counts, reference, config.drift, params.seed
        )
    except ValueError as exc:
        raise EmosafeError(f"{log_path} vs {reference_path}: {exc}") from None
    verdict, summary = _overall(assessments)
    out = output_dir or project / config.output_dir
    reports = [
        window_report(i, *windows.bounds(i), a.to_json(), _counts(windows, i)) for i, a in enumerate(assessments)
    ]
    report = _summary_report(params, reference, log_path, reference_path, verdict, summary, reports)
    typical = config.window.size if config.window.by == "count" else int(np.median(windows.n))
    report["sensitivity"] = sensitivity(typical, reference, config.drift)
    # Alerts first: an alarm must not be lost because a report or the history cannot be written afterwards.
    alerts = [
        Alert(reference.model, reference.version, _window_id(w), a, str(out / "windows" / f"{w['index']:05d}.json"))
        for w, a in zip(reports, assessments, strict=True)
        if a.verdict == Verdict.ALARM
    ]
    failures = list(dispatch(alerts, build_sinks(config.alerts)))
    try:
        _write_reports(out, report, reports, reference)
        record_windows(history, _history_rows(reference, config.window.by, config.window, reports, report))
    except (OSError, sqlite3.Error) as exc:
        if verdict != Verdict.ALARM:
            raise EmosafeError(f"monitor: could not write the reports or the history ({exc})") from None
        failures.append(f"bookkeeping: {type(exc).__name__}: {exc}"[:300])  # the alarm was sent; still exit 3
        log.error("monitor: the alarm was sent, but writing its reports or history failed: %s", exc)
    log.info("monitor %s@%s: %s", reference.model, reference.version, summary)
    return MonitorResult(
        verdict,
        summary,
        tuple(reports),
        out / "report.json",
        out / "report.html",
        history,
        tuple(failures),
        len(predictions),
        resumed,
        sensitivity_line(report["sensitivity"]),
    )


def _write_reports(out: Path, report: dict[str, Any], reports: list[dict[str, Any]], reference: DriftReference) -> None:
    """windows/ as a unit (written aside, then swapped in: a shorter run leaves no stale window files), then the
    summary and the HTML page."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".windows.", dir=out))
    try:
        for window in reports:
            atomic_write_json(staging / f"{window['index']:05d}.json", window)
        replace_dir(staging, out / "windows")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    atomic_write_json(out / "report.json", report)
    atomic_write_bytes(out / "report.html", render_html(report, reports, reference).encode())


def _window_id(window: dict[str, Any]) -> dict[str, Any]:
    return {key: window[key] for key in ("index", "start", "end", "n")}


def _summary_report(
    params: Params,
    reference: DriftReference,
    log_path: Path,
    reference_path: Path,
    verdict: Verdict,
    summary: str,
    reports: list[dict[str, Any]],
) -> dict[str, Any]:
    drift = params.monitor.drift
    return {
        "model": reference.model,
        "version": reference.version,
        "task": reference.task,
        "verdict": verdict.value,
        "summary": summary,
        "method": METHOD.format(
            labels=TESTS[drift.account_for_reference_size][0],
            proportions=TESTS[drift.account_for_reference_size][1],
            correction=drift.correction,
            alpha=drift.alpha,
        ),
        "reference": reference.to_json(),
        "windows": [{**_window_id(w), "verdict": w["verdict"], "reason": w["reason"]} for w in reports],
        "provenance": provenance(
            __name__,
            {
                "params": {"seed": params.seed, "monitor": params.monitor.model_dump(mode="json")},
                "seed": params.seed,
                "inputs": {
                    str(log_path): sha256_file(log_path),
                    str(reference_path): _reference_hash(reference_path, reference),
                },
                "created_at": iso(datetime.now(tz=UTC).timestamp()),
            },
        ),
    }


def _reference_hash(path: Path, reference: DriftReference) -> str:
    """The file's sha256, or for a registry reference the sha256 of its canonical JSON."""
    if path.is_file():
        return sha256_file(path)
    return hashlib.sha256(json.dumps(reference.to_json(), sort_keys=True).encode()).hexdigest()


def _history_rows(
    reference: DriftReference, by: str, window: Any, reports: list[dict[str, Any]], report: dict[str, Any]
) -> list[HistoryRow]:
    rule = _rule(window)
    log_hash = next(iter(report["provenance"]["inputs"].values()))
    created = report["provenance"]["created_at"]
    return [
        HistoryRow(
            reference.model,
            reference.version,
            reference.task,
            rule,
            w["start"],
            w["end"],
            w["n"],
            w["verdict"],
            w,
            log_hash,
            created,
        )
        for w in reports
    ]


def parse_since(value: str | None) -> datetime | None:
    """``--since`` as an aware datetime (a naive one is taken as UTC). Raises EmosafeError on a bad value."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EmosafeError(f"--since '{value}': not an ISO-8601 date/time (e.g. 2026-01-02T00:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def verdict_lines(result: MonitorResult, shown: int = 8) -> list[str]:
    """The one-screen verdict: overall line, the last ``shown`` windows, and where the reports are."""
    lines = [f"{result.verdict.value}: {result.summary}"]
    if result.sensitivity is not None:
        lines.append(f"  {result.sensitivity}")
    if result.resumed_from is not None:
        lines.append(f"  incremental: {result.predictions} prediction(s) from {result.resumed_from} on (--since last)")
    if result.verdict == Verdict.INSUFFICIENT_SAMPLES:
        lines.append("  Too few predictions to decide; this is NOT a 'no drift' result (exit code 0).")
    for window in result.windows[-shown:]:
        alarms = [
            f"{s['name']} {s['effect_name']}={s['effect']:.3f} p_adj={s['p_adjusted']:.2g}"
            for s in window["signals"]
            if s["alarm"]
        ]
        detail = "; ".join(alarms) if alarms else ("" if window["signals"] else window["reason"])
        lines.append(
            f"  #{window['index']} {window['start']} .. {window['end']} n={window['n']}: "
            f"{window['verdict']} {detail}".rstrip()
        )
    if len(result.windows) > shown:
        lines.insert(1, f"  (last {shown} of {len(result.windows)} windows shown; all are in the JSON report)")
    lines.append(f"Reports: {result.report_json} , {result.report_html} ; history: {result.history_db}")
    lines.extend(f"  alert delivery failed: {failure}" for failure in result.alert_failures)
    return lines
