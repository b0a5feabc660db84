"""The dataset schema: one row per message, the same for every source and every later stage.

Columns: ``id, text, label, <six category booleans>, source, origin, parent_id, split, text_hash``.
``text_hash`` (sha256 of the case-folded normalised text) is the key for de-duplication and leakage checks, so
later stages can compare texts without ever logging them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from components.errors import shown


class Label(StrEnum):
    """Trinary emotional-safety label, ordered by severity."""

    SAFE = "safe"
    BORDERLINE = "borderline"
    UNSAFE = "unsafe"


#: Severity order used when a conflict policy keeps the most severe label.
SEVERITY: Final[dict[str, int]] = {Label.SAFE: 0, Label.BORDERLINE: 1, Label.UNSAFE: 2}

#: The six risk categories (Llama Guard v1 taxonomy, as in the study).
CATEGORIES: Final[tuple[str, ...]] = (
    "violence_hate",
    "sexual_content",
    "criminal_planning",
    "guns_illegal_weapons",
    "regulated_substances",
    "suicide_self_harm",
)

LABELS: Final[tuple[str, ...]] = tuple(label.value for label in Label)


class Origin(StrEnum):
    """Whether a row was written by a person or produced by the augmentation stage."""

    HUMAN = "human"
    AUGMENTED = "augmented"


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


COLUMNS: Final[tuple[str, ...]] = (
    "id",
    "text",
    "label",
    *CATEGORIES,
    "source",
    "origin",
    "parent_id",
    "split",
    "text_hash",
)


def consistency_problem(label: str, categories: frozenset[str]) -> str | None:
    """Return why a (label, categories) pair breaks the taxonomy rules, or None if it is consistent.

    Rules: a safe row has no category; an unsafe row has at least one; borderline may carry categories (the
    study leaves this open and allowing it keeps distress-with-topic information).
    """
    if label not in LABELS:
        return f"label {shown(label)} is not one of {', '.join(LABELS)}"
    unknown = sorted(categories - set(CATEGORIES))
    if unknown:
        names = ", ".join(shown(name) for name in unknown)
        return f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {names}; allowed: {list(CATEGORIES)}"
    if label == Label.SAFE and categories:
        return f"a safe row must carry no category, got {sorted(categories)}"
    if label == Label.UNSAFE and not categories:
        return "an unsafe row must carry at least one category"
    return None
