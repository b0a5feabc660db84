"""Evidence binding: proof that a version's figures were computed on exactly the files the version stores.

The promotion gate must rest on figures the platform computed on the artifact being promoted, not on numbers someone
typed into a JSON file. The stages that measure a model folder (``evaluate`` for a training run, ``export`` for an
on-device bundle) write an ``evidence`` block beside their figures: which stage measured, and the sha256 of every
file of the folder they measured. At registration the registry compares that block with the files it stores
(``bind``): figures are *bound* when the two sets agree file for file, *declared* otherwise. The gate refuses
declared figures; only ``--force --reason`` moves a guarded alias on them, recorded as a force.

What this proves and what it does not: a bound version cannot carry figures of another model, of an earlier state
of the same folder, or figures written by hand without the file list. A user who deliberately copies the sha256 of
every file into a hand-written block forges evidence; that is an insider act the audit history (who registered
what) answers, not this check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.io import sha256_file

#: The stages whose figures can be bound (the value of the block's ``by``).
MEASURING_STAGES = ("evaluate", "export")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Binding:
    """Whether a version's figures are bound to its files, and why (one line for the gate and the model card)."""

    bound: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"status": "bound" if self.bound else "declared", "detail": self.detail}


def measured_files(folder: Path, skip: Set[str] = frozenset()) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every regular file under ``folder`` except ``skip`` (symlinks are left
    out: the registry refuses them anyway, so a folder with one never binds)."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink() and path.relative_to(folder).as_posix() not in skip
    }


def evidence_block(folder: Path, by: str, skip: Set[str] = frozenset()) -> dict[str, Any]:
    """What a measuring stage writes beside its figures: the stage and the files it measured."""
    if by not in MEASURING_STAGES:
        raise ValueError(f"evidence by {by!r}: not a measuring stage {MEASURING_STAGES}")
    return {"by": by, "files": measured_files(folder, skip)}


def bind(figures: Mapping[str, Any], artifacts: Mapping[str, str], exempt: Set[str] = frozenset()) -> Binding:
    """Compare the figures' ``evidence`` block with the version's ``artifacts`` (path -> sha256).

    ``exempt``: artifacts written after the measurement by the same stage (the figures file itself, the bundle's
    manifest), which cannot be listed in the block they follow. Every other artifact must be listed with its
    sha256, and nothing else may be listed. Never raises: a malformed block is declared, with the reason.
    """
    block = figures.get("evidence")
    if not isinstance(block, Mapping):
        return Binding(
            False, "figures carry no evidence block: not computed by emosafe evaluate/export (hand-supplied?)"
        )
    by, files = block.get("by"), block.get("files")
    if by not in MEASURING_STAGES:
        return Binding(False, f"evidence block 'by' is {_short(by)}, not one of {list(MEASURING_STAGES)}")
    if not isinstance(files, Mapping) or not all(
        isinstance(p, str) and isinstance(h, str) and _SHA256.fullmatch(h) for p, h in files.items()
    ):
        return Binding(False, "evidence block 'files' must map paths to sha256 hex digests")
    stored = {path: sha for path, sha in artifacts.items() if path not in exempt}
    changed = sorted(p for p in stored.keys() & files.keys() if stored[p] != files[p])
    unmeasured = sorted(stored.keys() - files.keys())
    missing = sorted(files.keys() - stored.keys())
    problems = [
        *(f"{p} differs from the file {by} measured" for p in changed[:3]),
        *(f"{p} was not measured" for p in unmeasured[:3]),
        *(f"{p} was measured but is not stored" for p in missing[:3]),
    ]
    if problems:
        return Binding(False, f"figures were computed on other files than these ({'; '.join(problems)})")
    return Binding(True, f"figures computed by emosafe {by} on these {len(stored)} file(s), sha256-matched")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
