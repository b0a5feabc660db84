"""The ``reevaluate`` stage: the production version re-measured on labelled feedback, the result kept in its history.

A feedback file in the dataset schema (docs/data.md; read by the same adapter as the bundled corpus) is scored by
the version the registry holds (sha256-verified load; an ONNX bundle through ``OnnxPredictor``, a training run
through the fine-tuned path) and measured by ``components.evaluation.measure`` with the evaluation's bootstrap
settings and the version's own thresholds (taxonomy: per category; trinary: its operating point, argmax when it has
none). The version is re-scored on every evaluation suite (``evaluate.suites``) too. The gate's floors, suite floors
included, then decide whether to flag it. Outputs: a JSON report (figures, checks, provenance; never message text)
and one appended row in the registry's ``evaluations`` table. Every input is read and checked before the first
write; bad input writes nothing and records nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import EmosafeSource, Params
from components.config.predict import PredictConfig
from components.config.register import RegisterConfig
from components.data.dataset import to_frame
from components.data.sources import read_source
from components.errors import EvaluationError
from components.evaluation.bootstrap import Bootstrap
from components.evaluation.measure import check_frame
from components.evaluation.measure import evaluate as evaluate_frame
from components.evaluation.predictors import Predictor
from components.evaluation.suites import Suite, read_suites, suite_section
from components.io import atomic_write_json, refuse_overwriting_inputs, sha256_file
from components.provenance import provenance
from components.release.reevaluation import FloorReview, review_floors, stored_thresholds
from registry.core import LoadedModel, Registry, open_registry, who_am_i
from registry.names import parse_ref
from registry.store import EvaluationRecord

log = logging.getLogger(__name__)
#: Exit code when a floor is breached: the same convention as ``emosafe monitor``'s drift alarm.
EXIT_FLAGGED = 3


@dataclass(frozen=True)
class ReevaluateOutcome:
    flagged: bool  # some model's class/category fell below its gate floor
    summary: dict[str, Any]  # feedback sha256/rows and one row per model (figures, flagged checks, report, seq)
    reports: tuple[Path, ...] = ()


@dataclass(frozen=True)
class _Feedback:
    frame: pd.DataFrame
    path: Path
    sha256: str


@dataclass(frozen=True)
class _Scorer:
    predictor: Predictor
    thresholds: dict[str, float]  # what an exported bundle ships in labels.json (empty otherwise)


@dataclass(frozen=True)
class _Measured:
    metrics: dict[str, Any]  # MetricsReport.to_dict(): figures with CIs, counts
    review: FloorReview
    thresholds: dict[str, float] | None
    thresholds_source: str | None
    seed: int


def reevaluate(
    params: Params,
    root: Path,
    feedback: Path,
    model_ref: str | None = None,
    output: Path | None = None,
    who: str | None = None,
) -> ReevaluateOutcome:
    """Re-evaluate ``model_ref`` (default: ``reevaluate.model`` for each of ``reevaluate.tasks``) on ``feedback``.

    Raises an EmosafeError before anything is written: the feedback file is missing, unreadable or breaks the
    schema (file, row, field and rule named; never its text), a reference is malformed or its alias unset, a
    stored artifact fails its sha256, or the model's task differs from the one asked.
    """
    refs = [("", model_ref)] if model_ref else params.reevaluate.refs()
    if output is not None and len(refs) > 1:
        raise EvaluationError("--output names one report file; give --model too (reevaluate.tasks lists several)")
    feedback = feedback if feedback.is_absolute() else root / feedback
    if output is not None:
        refuse_overwriting_inputs(output, feedback)
    data = read_feedback(feedback)
    suites = read_suites(params.evaluate.suites, root)
    registry = _open_registry(params.register, root)
    jobs = []
    for task, ref in refs:
        record = registry.resolve(parse_ref(ref))
        if task and record.task != task:
            raise EvaluationError(f"{ref} is a {record.task} model; reevaluate.tasks asked for {task}")
        loaded = registry.load(parse_ref(f"{record.name}@{record.version}"))  # verified against the sha256s
        jobs.append((ref, loaded, _predictor(params.predict, loaded.folder, record.task, root)))
    rows, reports = [], []
    for ref, loaded, scorer in jobs:
        measured = _measure(params, loaded, scorer, data, suites)
        row, path = _record(params, root, registry, loaded, ref, data, measured, output, who or who_am_i())
        rows.append(row)
        reports.append(path)
    summary = {"feedback": {"sha256": data.sha256, "rows": len(data.frame)}, "models": rows}
    return ReevaluateOutcome(any(row["flagged"] for row in rows), summary, tuple(reports))


def read_feedback(path: Path) -> _Feedback:
    """The labelled feedback in emosafe's schema (JSONL/CSV/JSON/Parquet), read by the bundled corpus's adapter."""
    records = read_source(EmosafeSource(name="feedback", kind="emosafe", path=str(path)), Path())
    frame = to_frame(records, {record.id: "test" for record in records})
    check_frame(frame)
    return _Feedback(frame, path, sha256_file(path))


def _open_registry(config: RegisterConfig, root: Path) -> Registry:
    """The configured registry; refuses to create an empty one (nothing could be in production there)."""
    open_registry(config, root, read_only=True)  # raises RegistryError "no registry here" rather than create one
    return open_registry(config, root)


def _measure(
    params: Params, loaded: LoadedModel, scorer: _Scorer, data: _Feedback, suites: Mapping[str, Suite]
) -> _Measured:
    """The evaluation path with the evaluation's bootstrap on the feedback and on every evaluation suite, then the
    gate's floors (suite floors included)."""
    record = loaded.record
    thresholds, source = stored_thresholds(record.task, scorer.thresholds, record.lineage.get("thresholds"))
    chosen = thresholds or None
    seed = params.evaluate.seed
    bootstrap = Bootstrap.of(params.evaluate)
    result = evaluate_frame(scorer.predictor, data.frame, record.task, chosen, bootstrap)
    sections = {
        name: suite_section(scorer.predictor, suite, record.task, chosen, bootstrap) for name, suite in suites.items()
    }
    review = review_floors(result.report, params.register.gate, sections)
    metrics = result.report.to_dict() | ({"suites": sections} if sections else {})
    return _Measured(metrics, review, chosen, source if chosen else None, seed)


def _record(
    params: Params,
    root: Path,
    registry: Registry,
    loaded: LoadedModel,
    ref: str,
    data: _Feedback,
    measured: _Measured,
    output: Path | None,
    who: str,
) -> tuple[dict[str, Any], Path]:
    """Write the JSON report, then append the evaluation row to the version's history."""
    record, metrics, review = loaded.record, measured.metrics, measured.review
    at = datetime.now(UTC)
    evaluated_at = at.isoformat(timespec="microseconds")
    path = output or root / params.reevaluate.output_dir / (
        f"{record.name}-v{record.version}-{at.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    )
    details = {
        "ref": ref,
        "report": str(path),
        "floors": review.to_dict(),
        "thresholds": measured.thresholds,
        "thresholds_source": measured.thresholds_source,
    }
    payload = {
        "stage": "reevaluate",
        "evaluated_at": evaluated_at,
        "who": who,
        "model": {
            "ref": ref,
            "name": record.name,
            "version": record.version,
            "task": record.task,
            "manifest_sha256": record.manifest_sha256,
        },
        "feedback": {"path": str(data.path), "sha256": data.sha256, "rows": len(data.frame)},
        "metrics": metrics,
        "floors": review.to_dict(),
        "flagged": bool(review.flagged),
        "thresholds": measured.thresholds,
        "thresholds_source": measured.thresholds_source,
        "registered_metrics": record.metrics,
        "provenance": _provenance(params, measured.seed),
    }
    atomic_write_json(path, payload)
    draft = EvaluationRecord(
        0,
        record.name,
        record.version,
        evaluated_at,
        who,
        data.sha256,
        len(data.frame),
        review.flagged,
        metrics,
        details,
    )
    stored = registry.meta.add_evaluation(draft)
    log.info(
        "%s v%d on %d feedback rows: macro-F1 %s, flagged %s (evaluation #%d, %s)",
        record.name,
        record.version,
        len(data.frame),
        metrics["macro_f1"]["value"],
        list(review.flagged) or "nothing",
        stored.seq,
        path,
    )
    row = {
        "ref": ref,
        "name": record.name,
        "version": record.version,
        "task": record.task,
        "n": metrics["n"],
        "macro_f1": metrics["macro_f1"],
        "flagged": list(review.flagged),
        "not_assessable": list(review.not_assessable),
        "report": str(path),
        "seq": stored.seq,
    }
    return row, path


def _predictor(config: PredictConfig, folder: Path, task: str, root: Path) -> _Scorer:
    """An exported bundle (manifest.json) serves through ONNX Runtime with predict's settings; a training run
    through the fine-tuned (merged LoRA) path of ``emosafe evaluate``. Raises EvaluationError on a task mismatch."""
    if (folder / "manifest.json").is_file():
        from components.export.runtime import OnnxPredictor

        onnx = OnnxPredictor(folder, config.variant, config.batch_size, config.num_threads)
        if onnx.task != task:
            raise EvaluationError(f"{folder / 'labels.json'}: task is {onnx.task}, the registry says {task}")
        return _Scorer(onnx, dict(onnx.labels.thresholds))
    from components.export.merged import run_predictor

    predictor, _ = run_predictor(folder, task, root)
    return _Scorer(predictor, {})


def _provenance(params: Params, seed: int) -> dict[str, Any]:
    return provenance(
        __name__,
        {
            "seed": seed,
            "params": {
                "seed": params.seed,
                "reevaluate": params.reevaluate.model_dump(mode="json"),
                "evaluate": params.evaluate.model_dump(
                    mode="json", include={"bootstrap_resamples", "confidence", "seed"}
                ),
                "register": {"gate": params.register.gate.model_dump(mode="json")},
                "predict": params.predict.model_dump(mode="json", include={"variant", "batch_size", "num_threads"}),
            },
        },
    )
