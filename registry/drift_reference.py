"""The drift reference stored with a registry version: what monitoring compares production windows with.

``emosafe ship`` computes it from the shipped (int8) file's scoring of its test split and stores it in the
version's lineage (``lineage.reference``: task, n, label distribution or category prevalence; proportions only,
never text). The model name and version are filled in from the record, so the reference always names the exact
version ``emosafe predict`` logs for ``name@alias``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.config.register import RegisterConfig
from components.errors import RegistryError
from registry.store import VersionRecord


def reference_of(record: VersionRecord) -> dict[str, Any]:
    """The version's reference as monitoring reads it. Raises RegistryError when the version carries none."""
    stored = record.lineage.get("reference")
    if not isinstance(stored, dict):
        raise RegistryError(
            f"{record.name} v{record.version}: no drift reference stored (rule: versions registered by `emosafe ship` "
            "carry one; otherwise pass --reference FILE)"
        )
    return {**stored, "model": record.name, "version": str(record.version), "task": record.task}


def stored_reference(ref: str, config: RegisterConfig | None = None, project: Path = Path()) -> dict[str, Any]:
    """``emosafe-trinary@production`` -> that version's reference. Raises RegistryError (unknown ref, none stored)."""
    from registry.core import open_registry
    from registry.names import parse_ref

    config = config or RegisterConfig()
    registry = open_registry(config, project)
    return reference_of(registry.resolve(parse_ref(ref)))
