"""The ``register`` stage: every fine-tuned ladder run becomes a registry version with its evaluation, gate decided.

For each (model, task) of ``evaluate.fine_tuned_models`` x ``evaluate.tasks``: the training run folder
``<evaluate.fine_tuned_dir>/<model>-<task>/`` is registered as a version of ``emosafe-<task>`` with the figures of
``<evaluate.output_dir>/<model>-fine_tuned-<task>.json`` (``candidate`` points at it), then the promotion gate runs
against the current production holder and its report is stored. Nothing moves a guarded alias here: shipping is the
``ship`` stage's job. Idempotent: the registry keys a version on its artifact manifest, so a second run registers
nothing and moves nothing (lineage such as the git commit is read but never part of that key).

Data lineage: training reads the augmented dataset, evaluation the prepared one. The version's ``data_hash`` is the
evaluated dataset only when the augment stage's summary proves the training data was built from it (its recorded
input); otherwise it stays the training data hash and the gate's freshness check reports the metrics as stale.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import Params
from components.config.evaluate import EvaluateConfig
from components.config.train import TrainConfig
from components.errors import EmosafeError
from components.io import atomic_write_json, sha256_file
from components.provenance import provenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    """One ladder run's registration and the gate's verdict on it (counts, hashes, reasons; never text)."""

    model: str
    task: str
    name: str
    version: int
    created: bool
    manifest_sha256: str
    promote: bool
    reasons: tuple[str, ...]
    report_hash: str


@dataclass(frozen=True)
class RegisterOutcome:
    registered: tuple[Registered, ...]
    report: Path
    summary: dict[str, Any]

    @property
    def versions(self) -> list[tuple[str, int, bool]]:
        """(name, version, created) per registered run, in ladder order."""
        return [(r.name, r.version, r.created) for r in self.registered]


def register(params: Params, root: Path = Path()) -> RegisterOutcome:
    """Register the ladder's fine-tuned runs, run the gate on each, write ``register.report``.

    Raises EmosafeError naming the missing run folder or evaluation report (all checked before the first write),
    MetricsFormatError for a malformed report, RegistryError for a refused folder (symlink, pickle).
    """
    from registry.core import open_registry
    from registry.names import default_name

    config, settings = params.register, params.evaluate
    jobs = [(model, task) for model in settings.fine_tuned_models for task in settings.tasks]
    inputs = {job: _inputs(params.evaluate, root, *job) for job in jobs}
    registry = open_registry(config, root)
    rows = []
    for (model, task), (run_dir, report_path, payload) in inputs.items():
        lineage = _data_lineage(params.train, root, run_dir, payload)
        overrides = {
            "ladder_model": model,
            "evaluation": str(report_path.relative_to(root)),
            "metrics_sha256": sha256_file(report_path),
            **lineage,
        }
        record, created = registry.register(
            run_dir, payload, default_name(task), root, overrides, origin=str(report_path)
        )
        decision = registry.decide(record)
        rows.append(
            Registered(
                model,
                task,
                record.name,
                record.version,
                created,
                record.manifest_sha256,
                decision.promote,
                decision.reasons,
                decision.report_hash(),
            )
        )
    summary = _summary(params, rows)
    out = root / config.report
    atomic_write_json(out, summary)
    log.info("registered %d run(s), %d new; wrote %s", len(rows), sum(r.created for r in rows), out)
    return RegisterOutcome(tuple(rows), out, summary)


def _inputs(settings: EvaluateConfig, root: Path, model: str, task: str) -> tuple[Path, Path, dict[str, Any]]:
    run_dir = root / settings.fine_tuned_dir / f"{model}-{task}"
    report = root / settings.output_dir / f"{model}-fine_tuned-{task}.json"
    if not run_dir.is_dir():
        raise EmosafeError(f"{run_dir}: training run not found (rule: every evaluate.fine_tuned_models run is trained)")
    try:
        payload = json.loads(report.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmosafeError(f"{report}: evaluation report not found; run `emosafe evaluate` first") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmosafeError(f"{report}: not valid JSON ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("task") != task:
        raise EmosafeError(f"{report}: field 'task' must be {task!r} (rule: report and run describe one task)")
    return run_dir, report, payload


def _data_lineage(config: TrainConfig, root: Path, run_dir: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """``data_hash`` (what the metrics must have been computed on) and how it links to the training data."""
    evaluated = payload.get("data_hash") or (payload.get("provenance") or {}).get("data_hash")
    trained = _json(run_dir / "meta.json").get("data_hash")
    if not evaluated or not trained:
        return {"train_data_hash": trained, "data_link": "unproven: a data hash is missing"}
    if evaluated == trained:
        return {"data_hash": evaluated, "train_data_hash": trained, "data_link": "trained and evaluated on one file"}
    summary_path = root / Path(config.input).parent / "summary.json"
    provenance = _json(summary_path).get("provenance") or {}
    if provenance.get("data_hash") == trained and evaluated in (provenance.get("inputs") or {}).values():
        link = f"training data built from the evaluated data ({summary_path.relative_to(root)})"
        return {"data_hash": evaluated, "train_data_hash": trained, "data_link": link}
    return {"train_data_hash": trained, "data_link": "unproven: training data not built from the evaluated data"}


def _json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _summary(params: Params, rows: list[Registered]) -> dict[str, Any]:
    settings = params.evaluate
    return {
        "stage": "register",
        "versions": [
            {
                "model": r.model,
                "task": r.task,
                "name": r.name,
                "version": r.version,
                "created": r.created,
                "manifest_sha256": r.manifest_sha256,
                "gate": {"promote": r.promote, "reasons": list(r.reasons), "report_hash": r.report_hash},
            }
            for r in rows
        ],
        "created": sum(r.created for r in rows),
        "provenance": provenance(
            __name__,
            {
                "params": {
                    "register": params.register.model_dump(mode="json"),
                    "evaluate": {"fine_tuned_models": list(settings.fine_tuned_models), "tasks": list(settings.tasks)},
                },
            },
        ),
    }
