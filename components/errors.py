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


class MetricsFormatError(EmosafeError):
    """An evaluation metrics file lacks a field the promotion gate needs, or has it in an unknown shape."""


class RegistryError(EmosafeError):
    """A registry request cannot be served: unknown model/version/alias, bad name, refused artifact."""


class ArtifactIntegrityError(RegistryError):
    """A stored artifact's bytes no longer match the sha256 recorded at registration (tampered or truncated)."""


class AliasConflictError(RegistryError):
    """Compare-and-swap failed: the alias no longer points where the caller expected (someone moved it)."""


class GateRefusedError(RegistryError):
    """The promotion gate refused the move and no ``--force --reason`` override was given."""


class LogLineError(EmosafeError):
    """One line of a production log breaks the log contract. ``line`` is 1-based; the line's content is never
    quoted, because a log may carry message text."""

    def __init__(self, path: str | Path, line: int, field: str, rule: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.rule = rule
        super().__init__(f"{self.path} line {line}, field '{field}': {rule}")


class EvaluationError(EmosafeError):
    """Evaluation inputs break a rule: wrong score shape from a predictor, an empty split, an unknown model."""


class ValidationFailed(EmosafeError):
    """The dataset breaks the data gate (``validate``): nothing downstream may use it.

    ``summary`` is the one-screen text the CLI prints: each failed rule, how many rows, example ids; never text.
    """

    def __init__(self, summary: str, failed_rules: list[str]) -> None:
        self.summary = summary
        self.failed_rules = failed_rules
        super().__init__(summary)


def shown(value: object) -> str:
    """The one rule for echoing a data value in an error: only when it looks like a name (a category, a column
    header): at most 24 characters of letters, digits, ``_`` and ``-``. Anything else could be a message, so only
    its type and length are told."""
    if isinstance(value, str) and 0 < len(value) <= 24 and value.replace("_", "").replace("-", "").isalnum():
        return f"'{value}'"
    size = f" of {len(value)} characters" if isinstance(value, str) else ""
    return f"a {type(value).__name__}{size} (not shown: it could be message text)"
