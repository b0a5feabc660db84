"""The ``ship`` stage: register each exported on-device bundle, decide, and only then move ``production``.

For each ``ship.tasks`` task: ``<export.output_dir>/<export.model>-<task>/`` (verified against its manifest) is
registered as a version of ``emosafe-<task>`` whose figures are the bundle's ``quantization.json``: the INT8 file's
own evaluation on test (with the thresholds it ships) plus the ``quantized`` drops against fp32, so the gate judges
the file users run. Its lineage points at the candidate version it was exported from (the ``register`` stage's
record) and carries the drift reference (the int8 file's predicted-label distribution / category prevalence on the
test split, from the same scoring). Then decide-then-act: the gate (``quantized`` check required) runs against the
current holder; a passing decision moves ``ship.alias`` by compare-and-swap (audited); a refusal, or an export whose
int8 check failed, moves nothing. Everything lands in ``ship.output`` (no text). Idempotent: the same bundle is the
same version, and a version already holding the alias is not moved again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import Params
from components.config.export import ExportConfig
from components.config.register import GateConfig
from components.errors import EmosafeError
from components.io import atomic_write_json, sha256_file
from components.provenance import provenance

if TYPE_CHECKING:
    from registry.core import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shipped:
    """One task's outcome: ``status`` is promoted, already (held the alias before) or refused (with reasons)."""

    task: str
    name: str
    version: int
    created: bool
    status: str
    reasons: tuple[str, ...]
    previous: int | None
    exported_from: dict[str, Any] | None


@dataclass(frozen=True)
class ShipOutcome:
    shipped: tuple[Shipped, ...]
    report: Path
    summary: dict[str, Any]


def ship(params: Params, root: Path = Path()) -> ShipOutcome:
    """Register, gate and (on a pass) promote every configured bundle; write ``ship.output``.

    Raises EmosafeError (missing bundle or quantization.json, task not exported), BundleError (bundle files do not
    match its manifest), AliasConflictError (the alias moved during the run: run again). All inputs are read and
    checked before the first registry write.
    """
    from registry.core import open_registry

    config = params.ship
    out = root / config.output
    if not config.enabled:
        summary = {"stage": "ship", "enabled": False, "alias": config.alias, "tasks": []}
        atomic_write_json(out, summary)
        return ShipOutcome((), out, summary)
    bundles = {task: _bundle(params.export, root, task) for task in config.tasks}
    registry = open_registry(params.register, root, ship_gate(params))
    candidates = _candidates(root / params.register.report)
    rows = [_ship_one(params, registry, root, task, *bundles[task], candidates) for task in config.tasks]
    summary = _summary(params, rows)
    atomic_write_json(out, summary)
    log.info("ship: %s", ", ".join(f"{r.name}@{r.version} {r.status}" for r in rows))
    return ShipOutcome(tuple(rows), out, summary)


def ship_gate(params: Params) -> GateConfig:
    """``register.gate`` with the quantized check required when ``ship.require_quantized``."""
    gate = params.register.gate
    if not params.ship.require_quantized:
        return gate
    return gate.model_copy(update={"quantized": gate.quantized.model_copy(update={"required": True})})


def _bundle(export: ExportConfig, root: Path, task: str) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """(folder, quantization.json, reference without model/version), all checked."""
    from components.drift.reference import reference_from_confusion
    from components.export.bundle import verify_bundle

    if task not in export.tasks:
        raise EmosafeError(f"ship.tasks has {task!r}, which export.tasks {list(export.tasks)} does not export")
    folder = root / export.output_dir / f"{export.model}-{task}"
    if not folder.is_dir():
        raise EmosafeError(f"{folder}: exported bundle not found; run `emosafe export --task {task}` first")
    verify_bundle(folder)
    path = folder / "quantization.json"
    try:
        quant = json.loads(path.read_text(encoding="utf-8"))
        confusion = quant["splits"]["test"]["confusion"]
        if quant.get("task") != task:
            raise ValueError(f"field 'task' is {quant.get('task')!r}, expected {task!r}")
        reference = reference_from_confusion("-", "-", task, confusion).to_json()
    except FileNotFoundError:
        raise EmosafeError(f"{path}: not found (rule: a shipped bundle carries its int8 check)") from None
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise EmosafeError(f"{path}: needs task and splits.test.confusion of the int8 file ({exc})") from None
    stored = {k: v for k, v in reference.items() if k not in ("model", "version")}
    return folder, quant, stored | {"source": "quantization.json splits.test (int8 file on the test split)"}


def _candidates(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The register stage's rows by (model, task); empty when it has not run (lineage then records no parent)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8")).get("versions", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    return {(row["model"], row["task"]): row for row in rows if isinstance(row, dict) and "model" in row}


def _exported_from(registry: Registry, row: dict[str, Any] | None, bundle_meta: dict[str, Any]) -> dict[str, Any]:
    """The candidate version the bundle came from, when the registry record matches the run the export read."""
    if row is None:
        return {"version": None, "why": "no register stage record for export.model and this task"}
    record = registry.meta.get_version(row["name"], int(row["version"]))
    if record is None or record.manifest_sha256 != row.get("manifest_sha256"):
        return {"version": None, "why": f"{row['name']} v{row['version']} is not in this registry"}
    trained = (bundle_meta.get("train") or {}).get("data_hash")
    if trained != record.lineage.get("train_data_hash", record.lineage.get("data_hash")):
        return {"version": None, "why": f"the bundle's training data differs from {record.name} v{record.version}'s"}
    return {
        "name": record.name,
        "version": record.version,
        "manifest_sha256": record.manifest_sha256,
        "ladder_model": record.lineage.get("ladder_model"),
        "wandb_run": record.lineage.get("wandb_run"),  # the training run, so the shipped version links to it
    }


def _ship_one(
    params: Params,
    registry: Registry,
    root: Path,
    task: str,
    folder: Path,
    quant: dict[str, Any],
    reference: dict[str, Any],
    candidates: dict[tuple[str, str], dict[str, Any]],
) -> Shipped:
    from registry.names import ModelRef, default_name

    alias, name = params.ship.alias, default_name(task)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8")) if (folder / "meta.json").is_file() else {}
    parent = _exported_from(registry, candidates.get((params.export.model, task)), meta)
    overrides = {
        "kind": "onnx-bundle",
        "exported_from": parent,
        "reference": reference,
        "quantization_sha256": sha256_file(folder / "quantization.json"),
        "export_check_passed": quant.get("passed"),
        "variant": params.predict.variant,
        "wandb_run": parent.get("wandb_run"),  # None (no override) when the parent is unknown or was not tracked
    }
    record, created = registry.register(folder, quant, name, root, overrides, origin=str(folder / "quantization.json"))
    previous = registry.meta.aliases(name).get(alias)
    if previous == record.version:
        return Shipped(task, name, record.version, created, "already", (f"already {alias}",), previous, parent)
    decision = registry.decide(record)
    problems = (
        []
        if quant.get("passed") is not False
        else ["the export's int8 check failed: " + "; ".join((quant.get("comparison") or {}).get("problems", []))]
    )
    if not decision.promote or problems:
        reasons = (*problems, *(decision.reasons if not decision.promote else ()))
        log.warning("%s v%d not shipped to %s: %s", name, record.version, alias, "; ".join(reasons))
        return Shipped(task, name, record.version, created, "refused", reasons, previous, parent)
    registry.promote(ModelRef(name, version=record.version), alias, why=f"ship {folder.name}")
    return Shipped(task, name, record.version, created, "promoted", decision.reasons, previous, parent)


def _summary(params: Params, rows: list[Shipped]) -> dict[str, Any]:
    return {
        "stage": "ship",
        "enabled": True,
        "alias": params.ship.alias,
        "tasks": [
            {
                "task": r.task,
                "name": r.name,
                "version": r.version,
                "created": r.created,
                "status": r.status,
                "moved": r.status == "promoted",
                "previous": r.previous,
                "reasons": list(r.reasons),
                "exported_from": r.exported_from,
            }
            for r in rows
        ],
        "provenance": provenance(
            __name__,
            {
                "params": {
                    "ship": params.ship.model_dump(mode="json"),
                    "gate": ship_gate(params).model_dump(mode="json"),
                    "export": {"model": params.export.model, "output_dir": params.export.output_dir},
                },
            },
        ),
    }
