"""The ``validate`` section: the bounds the data gate enforces before anything is trained on the dataset."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Category, Frozen

SplitName = Literal["train", "val", "test"]


class CategoryExemption(Frozen):
    """A declared, reasoned lower floor for a category too thin to reach the general minimum."""

    min_count: int = Field(ge=0, description="Floor for this category in each checked split (0 = may be absent).")
    reason: str = Field(min_length=1, description="Why the category is exempt; recorded in the report.")


class ValidateConfig(Frozen):
    input: str = Field(
        default="data/augmented/dataset.parquet", description="Dataset to validate (the augment stage's output)."
    )
    output_dir: str = Field(default="data/validated", description="report.json and data_docs/ go here.")
    min_text_chars: int = Field(default=1, ge=1, description="Shortest allowed message, in characters.")
    max_text_chars: int = Field(default=4000, ge=1, description="Longest allowed message, in characters.")
    suite_near_duplicate: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Token-set Jaccard at or above which a row counts as a copy of an evaluation-suite message.",
    )
    coverage_splits: tuple[SplitName, ...] = Field(
        default=("train", "test"),
        min_length=1,
        description="Splits where every label and category must reach its floor.",
    )
    min_per_label_per_split: int = Field(
        default=20, ge=1, description="Human rows each label needs in each of `coverage_splits`."
    )
    min_per_category_per_split: int = Field(
        default=5, ge=1, description="Human rows each category needs in each of `coverage_splits`."
    )
    category_exemptions: dict[Category, CategoryExemption] = Field(
        default_factory=dict, description="Thin categories with their own declared floor and reason."
    )
    source_row_bounds: dict[str, tuple[int, int]] = Field(
        default_factory=dict,
        description="Source name -> [min, max] human rows. When set, every source in the data must be listed.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> ValidateConfig:
        if self.min_text_chars > self.max_text_chars:
            raise ValueError("min_text_chars must not exceed max_text_chars")
        for category, exemption in self.category_exemptions.items():
            if exemption.min_count >= self.min_per_category_per_split:
                raise ValueError(
                    f"category_exemptions.{category}.min_count ({exemption.min_count}) must be below "
                    f"min_per_category_per_split ({self.min_per_category_per_split}), or it is no exemption"
                )
        for name, (low, high) in self.source_row_bounds.items():
            if not 0 <= low <= high:
                raise ValueError(
                    f"source_row_bounds.{name} must be [min, max] with 0 <= min <= max, got [{low}, {high}]"
                )
        return self

    def category_floor(self, category: str) -> int:
        """The minimum count for ``category``: its exemption's floor if declared, else the general one."""
        exemption = self.category_exemptions.get(category)  # type: ignore[call-overload]
        return exemption.min_count if exemption else self.min_per_category_per_split
