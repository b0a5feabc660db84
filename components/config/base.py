"""Shared building blocks of the typed configuration: the frozen base model, the category type, inherited seeds."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from components.schema import CATEGORIES

Category = Literal[
    "violence_hate",
    "sexual_content",
    "criminal_planning",
    "guns_illegal_weapons",
    "regulated_substances",
    "suicide_self_harm",
]
assert set(Category.__args__) == set(CATEGORIES)  # type: ignore[attr-defined]

#: The global ``seed`` when params.yaml has none; also what a section built on its own (a test) inherits.
DEFAULT_SEED = 13


class Frozen(BaseModel):
    """Base for every config object: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _inherit(value: Any, info: ValidationInfo) -> Any:
    """A section's own seed when it has one, else the global seed that ``parse_params`` passes as context."""
    if value is not None:
        return value
    inherited = (info.context or {}).get("seed")
    return DEFAULT_SEED if inherited is None else inherited


#: A per-section seed, resolved while params load: after ``parse_params`` it is always an int, so no stage or
#: helper falls back to the global seed on its own (and provenance records the seed that was used).
InheritedSeed = Annotated[int, BeforeValidator(_inherit), Field(ge=0)]


def inherited_seed(purpose: str) -> Any:
    """The field for an ``InheritedSeed``: null or absent takes the global ``seed``."""
    return Field(default=None, validate_default=True, description=f"{purpose}; null: the global `seed`.")


def section(**defaults: Any) -> Any:
    """A section's default, validated like a written section so that the seeds inside it are inherited too."""
    return Field(default_factory=lambda: dict(defaults), validate_default=True)
