"""One exception family for user-facing failures.

The CLI turns any ``EmosafeError`` into one clear line and a non-zero exit; anything else is a bug and keeps its
traceback. Messages name the file, row, field and the rule broken so a user can fix the input without reading code.
"""

from __future__ import annotations

from pathlib import Path


class EmosafeError(Exception):
    """Base class: a mistake in input, configuration or state that the user can fix."""


class ConfigError(EmosafeError):
    """``params.yaml`` (or another params file) is missing, malformed or breaks a rule."""


class SourceFileError(EmosafeError):
    """A source file cannot be read at all (missing, unreadable encoding, wrong format, missing column)."""

    def __init__(self, path: str | Path, rule: str) -> None:
        self.path = str(path)
        self.rule = rule
        super().__init__(f"{self.path}: {rule}")


class DataRowError(EmosafeError):
    """One row of a source breaks a data rule. ``row`` is 1-based over the file's records."""

    def __init__(self, path: str | Path, row: int, field: str, rule: str) -> None:
        self.path = str(path)
        self.row = row
        self.field = field
        self.rule = rule
        super().__init__(f"{self.path} row {row}, field '{field}': {rule}")


class EmptyCorpusError(EmosafeError):
    """A source (or the merged dataset) has no rows left."""


class LabelConflictError(EmosafeError):
    """The same normalised text carries different labels and the conflict policy is ``error``."""

    def __init__(self, n_groups: int, ids: list[str]) -> None:
        self.n_groups = n_groups
        self.ids = ids
        shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
        super().__init__(
            f"{n_groups} text(s) appear with conflicting labels (rule: prepare.conflict_policy=error); ids: {shown}"
        )
