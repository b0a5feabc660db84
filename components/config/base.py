"""Shared building blocks of the typed configuration: the frozen base model and the category type."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

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


class Frozen(BaseModel):
    """Base for every config object: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")
