"""The ``validate`` stage: the data gate between the dataset and any training.

Reads the augmented dataset, runs the suites (``components/data/expectations.py``) through Great Expectations
(``components/data/validation.py``) and writes, under ``validate.output_dir``:

- ``report.json``: the verdict, per-expectation counts and example ids, provenance. Written **only when every
  expectation passes**, so it is the one file downstream stages (and ``dvc.yaml``) depend on.
- ``failed-report.json``: the same document when the gate fails (a stale ``report.json`` is removed), for humans.
- ``gx_results.json``: GX's own (sanitised) result documents; ``data_docs/``: GX Data Docs (static HTML).

No file holds raw message text: ids, hashes and counts only. On failure the stage raises ``ValidationFailed``
carrying a one-screen summary, so the CLI exits non-zero and ``dvc repro`` stops before training.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import Params
from components.config.evaluate import SuiteConfig
from components.data.expectations import build_frames, build_suites
from components.data.sources import read_source
from components.data.validation import ValidationReport, run_suites
from components.errors import ValidationFailed
from components.io import atomic_write_json, read_parquet_input, replace_dir, sha256_file
from components.provenance import provenance

log = logging.getLogger(__name__)

REPORT_FILE = "report.json"
FAILED_REPORT_FILE = "failed-report.json"
GX_RESULTS_FILE = "gx_results.json"
DOCS_DIR = "data_docs"
MAX_SUMMARY_FAILURES = 12
_UNITS = {"rows": "row(s)", "coverage": "split/label or split/category group(s)", "sources": "source(s)"}


@dataclass(frozen=True)
class ValidateResult:
    report_path: Path
    docs_index: Path
    report: dict[str, Any]


def validate(params: Params, root: Path = Path(), data: Path | None = None) -> ValidateResult:
    """Run the data gate on ``data`` (default: ``validate.input`` under ``root``).

    Raises ``ValidationFailed`` (after writing the failed report and the Data Docs) when any expectation fails,
    and ``EmosafeError`` when the input is missing or not a Parquet file (nothing written then).
    """
    config = params.validate
    path = data if data is not None else root / config.input
    dataset = _read(path)
    out = root / config.output_dir
    report, docs_index = _run_with_docs(dataset, params, root, out)
    payload = {
        **report.to_dict(),
        "rows": len(dataset),
        "provenance": provenance(
            __name__,
            {
                "stage": "validate",
                "params": {
                    "validate": config.model_dump(mode="json"),
                    "evaluate": {"suites": {k: v.model_dump(mode="json") for k, v in params.evaluate.suites.items()}},
                },
                "input": _display(path, root),
                "data_hash": sha256_file(path),
                "great_expectations": report.gx_version,
            },
        ),
    }
    atomic_write_json(out / GX_RESULTS_FILE, list(report.gx_results))
    if not report.success:
        (out / REPORT_FILE).unlink(missing_ok=True)
        atomic_write_json(out / FAILED_REPORT_FILE, payload)
        summary = failure_summary(report, _display(path, root), out / FAILED_REPORT_FILE, docs_index)
        raise ValidationFailed(summary, sorted(report.failed_rules()))
    (out / FAILED_REPORT_FILE).unlink(missing_ok=True)
    atomic_write_json(out / REPORT_FILE, payload)
    log.info(
        "validation passed: %d expectations on %d rows; Data Docs: %s", len(report.outcomes), len(dataset), docs_index
    )
    return ValidateResult(out / REPORT_FILE, docs_index, payload)


def _read(path: Path) -> pd.DataFrame:
    return read_parquet_input(
        path, "dataset not found; run `dvc repro` (or `emosafe prepare` / `emosafe augment`) first"
    )


def suite_texts(suites: Mapping[str, SuiteConfig], root: Path) -> list[str]:
    """Every evaluation suite's messages (read to compare, never written anywhere)."""
    return [record.text for suite in suites.values() for record in read_source(suite.source, root)]


def _run_with_docs(dataset: pd.DataFrame, params: Params, root: Path, out: Path) -> tuple[ValidationReport, Path]:
    """Build the Data Docs in a fresh folder next to the old one, then swap it in (readers never see half a site)."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{DOCS_DIR}.", dir=out))
    try:
        config, suites = params.validate, params.evaluate.suites
        frames = build_frames(dataset, config, suite_texts(suites, root))
        report = run_suites(frames, build_suites(config, bool(suites)), docs_dir=staging)
        replace_dir(staging, out / DOCS_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report, (out / DOCS_DIR / "index.html").resolve()


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def failure_summary(report: ValidationReport, data: str, report_path: Path, docs_index: Path) -> str:
    """One screen: which rule failed, on what, how many rows, example ids. Never values or text."""
    failures = report.failures
    lines = [
        f"{data}: the data gate failed {len(failures)} of {len(report.outcomes)} expectations "
        f"(rules: {', '.join(sorted(report.failed_rules()))})"
    ]
    for outcome in failures[:MAX_SUMMARY_FAILURES]:
        where = f" on {outcome.column}" if outcome.column else ""
        if outcome.errored:
            detail = "could not be evaluated (a required column is missing or mistyped)"
        elif outcome.unexpected_count is not None:
            examples = f", e.g. {', '.join(outcome.example_ids[:5])}" if outcome.example_ids else ""
            detail = f"{outcome.unexpected_count} {_UNITS.get(outcome.suite, 'row(s)')}{examples}"
        else:
            detail = "failed"
        lines.append(f"  [{outcome.suite}] {outcome.rule}{where}: {outcome.description}: {detail}")
    if len(failures) > MAX_SUMMARY_FAILURES:
        lines.append(f"  ... and {len(failures) - MAX_SUMMARY_FAILURES} more")
    lines.append(f"  report: {report_path}   Data Docs: {docs_index.as_uri()}")
    return "\n".join(lines)
