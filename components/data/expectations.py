"""The data gate's suites, as code: which expectations hold for a dataset, built from the typed ``validate`` config.

Pure and library-free: an expectation is described by its rule name, the Great Expectations class name and its
keyword arguments; ``components/data/validation.py`` (the one module that imports GX) turns them into real GX objects.
Checks that span rows (text-hash leakage across splits, evaluation-suite messages in the dataset, per-split
label/category coverage, per-source counts) are
first computed here into small derived frames, so that they too are checked by ordinary GX expectations and show
up in the Data Docs with ids: a row id, a ``split/kind/key`` group id, or a source name. Never raw text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd

from components.config.validate import ValidateConfig
from components.data.leakage import suite_overlap
from components.schema import CATEGORIES, COLUMNS, LABELS, Origin, Split

#: Columns that must hold strings (nulls allowed only in ``parent_id``).
STRING_COLUMNS: Final = ("id", "text", "label", "source", "origin", "split", "text_hash")
#: Type names GX accepts for a string column: per-value ``str`` (object dtype) or pandas' string dtype.
STRING_TYPES: Final = ["str", "StringDtype"]
BOOL_TYPES: Final = ["bool", "BooleanDtype"]
#: Derived row columns (computed here, checked by GX).
HAS_CATEGORY: Final = "has_category"
HASH_SPLITS: Final = "text_hash_split_count"
SUITE_OVERLAP: Final = "repeats_an_evaluation_suite"
#: The (label, has a category) pairs the taxonomy allows.
TAXONOMY_PAIRS: Final = [("safe", False), ("borderline", False), ("borderline", True), ("unsafe", True)]
SUITE_NAMES: Final = ("rows", "coverage", "sources")


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation: ``expectation`` is a GX class name in ``great_expectations.expectations``.

    ``when`` restricts it to rows where a column equals a value (a GX row condition).
    """

    rule: str
    expectation: str
    kwargs: Mapping[str, Any]
    description: str
    when: tuple[str, str] | None = None


@dataclass(frozen=True)
class SuiteSpec:
    """A named suite and the expectations it runs on the frame of the same name (whose ``id`` column names rows)."""

    name: str
    expectations: tuple[ExpectationSpec, ...] = field(default_factory=tuple)


def build_suites(config: ValidateConfig, evaluation_suites: bool = False) -> tuple[SuiteSpec, ...]:
    """Every suite the gate runs, in a stable order (the order of the report and the Data Docs);
    ``evaluation_suites``: also check that no row repeats a message of an evaluation suite."""
    leakage = _suite_leakage(config) if evaluation_suites else ()
    return (
        SuiteSpec("rows", _schema() + _values(config) + _cross_row() + leakage),
        SuiteSpec("coverage", _coverage()),
        SuiteSpec("sources", _sources(config)),
    )


def _spec(
    rule: str, expectation: str, description: str, when: tuple[str, str] | None = None, **kwargs: Any
) -> ExpectationSpec:
    return ExpectationSpec(rule, expectation, kwargs, description, when)


def _schema() -> tuple[ExpectationSpec, ...]:
    exist = tuple(
        _spec("required_columns", "ExpectColumnToExist", f"column '{name}' is present", column=name) for name in COLUMNS
    )
    strings = tuple(
        _spec(
            "column_types",
            "ExpectColumnValuesToBeInTypeList",
            f"'{name}' holds strings",
            column=name,
            type_list=STRING_TYPES,
        )
        for name in (*STRING_COLUMNS, "parent_id")
    )
    bools = tuple(
        _spec(
            "category_types",
            "ExpectColumnValuesToBeInTypeList",
            f"category '{name}' is boolean",
            column=name,
            type_list=BOOL_TYPES,
        )
        for name in CATEGORIES
    )
    not_null = tuple(
        _spec("no_missing_values", "ExpectColumnValuesToNotBeNull", f"'{name}' has no missing value", column=name)
        for name in COLUMNS
        if name != "parent_id"
    )
    return exist + strings + bools + not_null


def _values(config: ValidateConfig) -> tuple[ExpectationSpec, ...]:
    low, high = config.min_text_chars, config.max_text_chars
    return (
        _spec("id_unique", "ExpectColumnValuesToBeUnique", "every id is unique", column="id"),
        _spec(
            "text_length",
            "ExpectColumnValueLengthsToBeBetween",
            f"text has {low} to {high} characters",
            column="text",
            min_value=low,
            max_value=high,
        ),
        _spec(
            "text_not_blank",
            "ExpectColumnValuesToMatchRegex",
            "text has a non-space character",
            column="text",
            regex=r"\S",
        ),
        _spec(
            "label_values",
            "ExpectColumnValuesToBeInSet",
            f"label is one of {', '.join(LABELS)}",
            column="label",
            value_set=list(LABELS),
        ),
        _spec(
            "split_values",
            "ExpectColumnValuesToBeInSet",
            "split is train, val or test",
            column="split",
            value_set=[s.value for s in Split],
        ),
        _spec(
            "origin_values",
            "ExpectColumnValuesToBeInSet",
            "origin is human or augmented",
            column="origin",
            value_set=[o.value for o in Origin],
        ),
        _spec(
            "text_hash_format",
            "ExpectColumnValuesToMatchRegex",
            "text_hash is a sha256 hex digest",
            column="text_hash",
            regex=r"^[0-9a-f]{64}$",
        ),
    )


def _cross_row() -> tuple[ExpectationSpec, ...]:
    augmented = ("origin", Origin.AUGMENTED.value)
    return (
        _spec(
            "taxonomy_consistency",
            "ExpectColumnPairValuesToBeInSet",
            "a safe row has no category; an unsafe row has at least one",
            column_A="label",
            column_B=HAS_CATEGORY,
            value_pairs_set=TAXONOMY_PAIRS,
        ),
        _spec(
            "no_split_leakage",
            "ExpectColumnValuesToBeBetween",
            "each normalised text (text_hash) lives in exactly one split",
            column=HASH_SPLITS,
            min_value=1,
            max_value=1,
        ),
        _spec(
            "augmented_train_only",
            "ExpectColumnValuesToBeInSet",
            "augmented rows are only in train",
            augmented,
            column="split",
            value_set=[Split.TRAIN.value],
        ),
        _spec(
            "augmented_has_parent",
            "ExpectColumnValuesToNotBeNull",
            "augmented rows name their parent",
            augmented,
            column="parent_id",
        ),
    )


def _suite_leakage(config: ValidateConfig) -> tuple[ExpectationSpec, ...]:
    return (
        _spec(
            "no_suite_leakage",
            "ExpectColumnValuesToBeInSet",
            "no row repeats or nearly repeats an evaluation suite message (token Jaccard >= "
            f"{config.suite_near_duplicate:g}; evaluate.suites are for evaluation only)",
            column=SUITE_OVERLAP,
            value_set=[False],
        ),
    )


def _coverage() -> tuple[ExpectationSpec, ...]:
    return tuple(
        _spec(
            f"{kind}_coverage",
            "ExpectColumnPairValuesAToBeGreaterThanB",
            f"each {kind} reaches its minimum count of human rows in each checked split",
            ("kind", kind),
            column_A="count",
            column_B="minimum",
            or_equal=True,
        )
        for kind in ("label", "category")
    )


def _sources(config: ValidateConfig) -> tuple[ExpectationSpec, ...]:
    if not config.source_row_bounds:
        return ()
    return (
        _spec(
            "source_declared",
            "ExpectColumnValuesToBeInSet",
            "every source has declared row bounds",
            column="id",
            value_set=sorted(config.source_row_bounds),
        ),
        _spec(
            "source_min_rows",
            "ExpectColumnPairValuesAToBeGreaterThanB",
            "each source has at least its minimum of human rows",
            column_A="count",
            column_B="minimum",
            or_equal=True,
        ),
        _spec(
            "source_max_rows",
            "ExpectColumnPairValuesAToBeGreaterThanB",
            "each source has at most its maximum of human rows",
            column_A="maximum",
            column_B="count",
            or_equal=True,
        ),
    )


def build_frames(
    dataset: pd.DataFrame, config: ValidateConfig, suite_texts: Sequence[str] = ()
) -> dict[str, pd.DataFrame]:
    """The frame each suite runs on. Derived columns are added only when their inputs exist, so a dataset with a
    missing column still reaches GX, whose ``required_columns`` rule then names it. ``suite_texts``: the evaluation
    suites' messages, compared here and never stored in a frame."""
    rows = _rows(dataset)
    if "text" in rows:
        texts = rows["text"].astype(str).tolist()
        rows[SUITE_OVERLAP] = suite_overlap(texts, suite_texts, config.suite_near_duplicate)
    return {
        "rows": rows,
        "coverage": _coverage_frame(dataset, config),
        "sources": _source_frame(dataset, config),
    }


def _rows(dataset: pd.DataFrame) -> pd.DataFrame:
    rows = dataset.copy()
    if "label" in rows and all(name in rows for name in CATEGORIES):
        rows[HAS_CATEGORY] = rows[list(CATEGORIES)].eq(True).any(axis=1)
    if "text_hash" in rows and "split" in rows:
        rows[HASH_SPLITS] = rows.groupby("text_hash", dropna=False)["split"].transform("nunique").astype("int64")
    return rows


def _human(dataset: pd.DataFrame) -> pd.DataFrame:
    return dataset[dataset["origin"] == Origin.HUMAN.value] if "origin" in dataset else dataset.iloc[0:0]


def _coverage_frame(dataset: pd.DataFrame, config: ValidateConfig) -> pd.DataFrame:
    """One row per (checked split, label or category): ``id`` like ``test/category/sexual_content``."""
    human = _human(dataset)
    records = []
    for split in config.coverage_splits:
        part = human[human["split"] == split] if "split" in human else human.iloc[0:0]
        for label in LABELS:
            count = int((part["label"] == label).sum()) if "label" in part else 0
            records.append((f"{split}/label/{label}", "label", count, config.min_per_label_per_split))
        for category in CATEGORIES:
            count = int(part[category].eq(True).sum()) if category in part else 0
            records.append((f"{split}/category/{category}", "category", count, config.category_floor(category)))
    return pd.DataFrame.from_records(records, columns=["id", "kind", "count", "minimum"])


def _source_frame(dataset: pd.DataFrame, config: ValidateConfig) -> pd.DataFrame:
    """One row per source seen in the data or declared in the bounds: ``id`` = the source name."""
    human = _human(dataset)
    counts = human["source"].value_counts() if "source" in human else pd.Series(dtype="int64")
    names = sorted(set(counts.index.astype(str)) | set(config.source_row_bounds))
    records = []
    for name in names:
        low, high = config.source_row_bounds.get(name, (0, 2**62))
        records.append((name, int(counts.get(name, 0)), low, high))
    return pd.DataFrame.from_records(records, columns=["id", "count", "minimum", "maximum"])
