"""A flow's registry transaction: a checkpoint taken before its first write, and the rollback to it.

The release flow checkpoints every model it may touch, and when a later task fails it rolls back: each alias
returns to its checkpointed holder through an audited compare-and-swap move (action ``rollback``), then every
version created after the checkpoint is withdrawn (kept for the audit, never resolvable again). ``Registry``
exposes both as ``checkpoint`` and ``rollback_to``; this module holds the logic over the metadata store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from registry.sqlite_store import now
from registry.store import MetadataStore, MoveRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryCheckpoint:
    """Alias holders (``{name: {alias: version}}``) and highest version numbers (0: none) at one instant."""

    aliases: Mapping[str, Mapping[str, int]]
    versions: Mapping[str, int]
    at: str


def take_checkpoint(meta: MetadataStore, names: Sequence[str]) -> RegistryCheckpoint:
    """Every alias holder and the highest version number of each of ``names`` (validated names)."""
    aliases = {n: meta.aliases(n) for n in names}
    versions = {n: max((r.version for r in meta.list_versions(n)), default=0) for n in names}
    return RegistryCheckpoint(aliases, versions, now())


def rollback(meta: MetadataStore, checkpoint: RegistryCheckpoint, who: str, why: str) -> list[str]:
    """Every alias back to its checkpointed holder, then every version created after the checkpoint withdrawn (an
    alias still on one is unset in the same transaction). Idempotent. Returns what it did, one line per change."""
    done: list[str] = []
    for name in sorted(checkpoint.versions):
        before, withdrawn = checkpoint.aliases.get(name, {}), meta.withdrawn(name)
        done += _restore_aliases(meta, name, before, who, why)
        new = [
            r.version
            for r in meta.list_versions(name)
            if r.version > checkpoint.versions[name] and r.version not in withdrawn
        ]
        if new:
            cleared = meta.withdraw(name, new, who, why)
            done += [f"{name} v{v}: withdrawn" for v in new] + [f"{name}@{a}: unset (was unset)" for a in cleared]
        for alias, holder in sorted(meta.aliases(name).items()):
            if alias not in before:  # set after the checkpoint to a version that existed before it
                done.append(f"{name}@{alias}: NOT restored (v{holder} set after the checkpoint); move it by hand")
                log.warning(done[-1])
    return done


def _restore_aliases(meta: MetadataStore, name: str, before: Mapping[str, int], who: str, why: str) -> list[str]:
    """Move each alias that held a version at the checkpoint back to it (carrying that move's report hash)."""
    done = []
    for alias, holder in sorted(meta.aliases(name).items()):
        target = before.get(alias)
        if target is None or target == holder:
            continue
        held = [e for e in meta.history(name, alias) if e.to_version == target]
        report = held[-1].gate_report_hash if held else None
        meta.move_alias(MoveRequest(name, alias, target, holder, who, why, "rollback", None, None, report))
        done.append(f"{name}@{alias}: v{holder} -> v{target} (rollback)")
    return done
