"""The ``prepare`` section: which corpora to read, how to map their labels, how to split."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from components.config.base import Category, Frozen, InheritedSeed, inherited_seed
from components.schema import Label, consistency_problem

_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
FileFormat = Literal["auto", "csv", "jsonl", "json", "parquet"]


class LabelMapping(Frozen):
    """What one raw label of a source means in emosafe's schema."""

    label: Label = Field(description="Trinary label given to rows with this raw label.")
    categories: tuple[Category, ...] = Field(default=(), description="Risk categories always given.")
    keywords: bool = Field(
        default=False, description="Also add categories whose keyword list matches the text (see `keywords`)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> LabelMapping:
        problem = consistency_problem(self.label.value, frozenset(self.categories))
        if problem:
            raise ValueError(problem)
        if self.keywords and self.label == Label.SAFE:
            raise ValueError("a safe mapping cannot add keyword categories (safe rows carry none)")
        return self


class _SourceBase(Frozen):
    name: str = Field(description="Short slug; prefixes every row id so ids stay unique across sources.")
    keywords: dict[Category, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Category -> phrases; a case-insensitive word-prefix match adds the category to rows "
        "whose mapping sets keywords: true.",
    )

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SOURCE_NAME.match(value):
            raise ValueError("must be a lower-case slug: a letter, then letters, digits or _ (max 40)")
        return value


class EmosafeSource(_SourceBase):
    """A corpus already in emosafe's schema (the bundled sample): id, text, label, categories."""

    kind: Literal["emosafe"]
    path: str = Field(description="CSV, JSONL, JSON or Parquet file.")
    format: FileFormat = "auto"


class Replacement(Frozen):
    """One regular-expression substitution applied to a source's text before it is normalised."""

    pattern: str = Field(min_length=1, description="Python regular expression (re.sub).")
    repl: str = Field(default="", description="What each match becomes (backreferences allowed).")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class TextCleanup(Frozen):
    """Source-specific text cleanup, declared beside the mapping (the corpus file itself is never edited)."""

    html_unescape: bool = Field(default=False, description="Turn HTML entities (&amp;, &#8220;) into characters.")
    replace: tuple[Replacement, ...] = Field(default=(), description="Substitutions, applied in order.")


class TableSource(_SourceBase):
    """Any CSV / JSONL / JSON / Parquet corpus, described entirely here so no code is needed."""

    kind: Literal["table"]
    path: str
    format: FileFormat = "auto"
    text_columns: tuple[str, ...] = Field(min_length=1, description="Joined with a newline to form the text.")
    label_column: str = Field(description="Column holding the raw label looked up in `label_map`.")
    label_map: dict[str, LabelMapping] = Field(min_length=1)
    default: LabelMapping | None = Field(default=None, description="Mapping for raw labels not in label_map.")
    id_column: str | None = Field(default=None, description="Native id; the 1-based row number if absent.")
    dedupe_column: str | None = Field(default=None, description="Keep only the first row per value.")
    text_cleanup: TextCleanup = TextCleanup()
    max_rows_per_label: dict[str, int] = Field(
        default_factory=dict,
        description="Raw label -> the most rows kept, a seeded choice by native id (e.g. to balance a large class).",
    )
    seed: InheritedSeed = inherited_seed("Seed of the max_rows_per_label choice")

    @model_validator(mode="after")
    def _quota_labels_known(self) -> TableSource:
        unknown = sorted(set(self.max_rows_per_label) - set(self.label_map))
        if unknown:
            raise ValueError(f"max_rows_per_label names raw label(s) {unknown} that label_map does not map")
        if any(count < 1 for count in self.max_rows_per_label.values()):
            raise ValueError("max_rows_per_label counts must be at least 1")
        return self


class DiaSafetySource(_SourceBase):
    """DiaSafety JSON files (list of {context, response, category, label})."""

    kind: Literal["diasafety"]
    paths: tuple[str, ...] = Field(min_length=1)
    text_field: Literal["context", "response"] = Field(
        default="context", description="emosafe classifies user messages, so the user's context by default."
    )
    category_map: dict[str, LabelMapping] = Field(min_length=1, description="DiaSafety category -> mapping.")
    default: LabelMapping | None = None


class CounselChatSource(_SourceBase):
    """CounselChat CSV: one help-seeker question per questionID, weakly labelled from its topic."""

    kind: Literal["counsel_chat"]
    path: str
    topic_map: dict[str, LabelMapping] = Field(min_length=1)
    default: LabelMapping | None = None


SourceConfig = Annotated[EmosafeSource | TableSource | DiaSafetySource | CounselChatSource, Field(discriminator="kind")]


class SplitConfig(Frozen):
    val_fraction: float = Field(default=0.15, gt=0, lt=1)
    test_fraction: float = Field(default=0.15, gt=0, lt=1)
    stratify_by: tuple[Literal["label", "category", "source"], ...] = Field(
        default=("label", "category"),
        min_length=1,
        description="Keys whose combinations are split proportionally; `category` is a row's rarest category.",
    )

    @model_validator(mode="after")
    def _room_for_train(self) -> SplitConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must be below 0.9 to leave a training split")
        return self


class PrepareConfig(Frozen):
    sources: tuple[SourceConfig, ...] = Field(min_length=1)
    conflict_policy: Literal["error", "drop", "most_severe"] = Field(
        default="most_severe",
        description="Same text, different labels: fail, drop every copy, or keep the most severe label with "
        "the union of categories.",
    )
    split: SplitConfig = SplitConfig()
    output_dir: str = "data/prepared"

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: tuple[SourceConfig, ...]) -> tuple[SourceConfig, ...]:
        names = [source.name for source in sources]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"source names must be unique, repeated: {duplicated}")
        return sources
