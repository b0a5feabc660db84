"""Merge sources into one de-duplicated dataset and split it without leakage.

De-duplication keys on the normalised-text hash, so no text can sit in two splits; rows whose texts match but
whose labels differ are *conflicts*, counted, reported by id and resolved by the declared policy. The split is
stratified and seeded, and computed on sorted ids so it does not depend on file order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from components.config import SplitConfig
from components.errors import DataRowError, EmptyCorpusError, LabelConflictError
from components.schema import CATEGORIES, COLUMNS, LABELS, SEVERITY, Origin, Split
from components.data.sources import Record
from components.text import text_hash


@dataclass(frozen=True)
class MergeReport:
    """What merging did, in counts and ids (never text)."""

    n_input: int
    n_output: int
    n_exact_duplicates: int
    n_conflict_groups: int
    conflict_ids: tuple[str, ...]
    conflict_policy: str


def merge_records(records: Sequence[Record], policy: str) -> tuple[list[Record], MergeReport]:
    """Drop exact duplicates (first one wins, in source order) and resolve label conflicts by ``policy``."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        groups[text_hash(record.text)].append(record)
    kept: list[Record] = []
    duplicates = 0
    conflict_groups: list[list[Record]] = []
    for group in groups.values():
        first = group[0]
        if len({(r.label, r.categories) for r in group}) == 1:
            duplicates += len(group) - 1
            kept.append(first)
            continue
        conflict_groups.append(group)
        if policy == "most_severe":
            label = max((r.label for r in group), key=SEVERITY.__getitem__)
            categories = frozenset().union(*(r.categories for r in group)) if label != "safe" else frozenset()
            kept.append(replace(first, label=label, categories=categories))
    conflict_ids = tuple(r.id for group in conflict_groups for r in group)
    if conflict_groups and policy == "error":
        raise LabelConflictError(len(conflict_groups), list(conflict_ids))
    if not kept:
        raise EmptyCorpusError("the merged dataset is empty (rule: at least one row must survive merging)")
    report = MergeReport(len(records), len(kept), duplicates, len(conflict_groups), conflict_ids, policy)
    return kept, report


def assign_splits(records: Sequence[Record], config: SplitConfig, seed: int) -> dict[str, str]:
    """Stratified, seeded train/val/test assignment; augmented rows follow their parent's split.

    Each stratum (e.g. one label, or one label within one source) is shuffled on its own and cut by the
    declared fractions, so a thin label still reaches val and test when it has at least three rows.
    """
    rng = np.random.default_rng(seed)
    frequency = Counter(category for record in records for category in record.categories)
    strata: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for record in records:
        if record.origin == Origin.HUMAN:
            key = tuple(_stratum(record, column, frequency) for column in config.stratify_by)
            strata[key].append(record.id)
    splits: dict[str, str] = {}
    for key in sorted(strata):
        ids = sorted(strata[key])
        order = [ids[i] for i in rng.permutation(len(ids))]
        n_test, n_val = _cut(len(ids), config.test_fraction), _cut(len(ids), config.val_fraction)
        for position, record_id in enumerate(order):
            if position < n_test:
                splits[record_id] = Split.TEST
            elif position < n_test + n_val:
                splits[record_id] = Split.VAL
            else:
                splits[record_id] = Split.TRAIN
    for record in records:
        if record.origin != Origin.HUMAN:
            if record.parent_id not in splits:
                raise DataRowError(
                    record.path,
                    record.row,
                    "parent_id",
                    f"parent '{record.parent_id}' is not in the dataset "
                    "(rule: an augmented row needs its human parent)",
                )
            splits[record.id] = splits[record.parent_id]
    return splits


def _stratum(record: Record, column: str, frequency: Counter[str]) -> str:
    """A row's value for one stratification column. For ``category`` that is its rarest category, so thin
    categories are spread over the splits first (a cheap stand-in for iterative multi-label stratification)."""
    if column == "label":
        return record.label
    if column == "source":
        return record.source
    return min(record.categories, key=lambda c: (frequency[c], c)) if record.categories else "none"


def _cut(n: int, fraction: float) -> int:
    return max(1, round(n * fraction)) if n >= 3 else 0


def to_frame(records: Iterable[Record], splits: dict[str, str]) -> pd.DataFrame:
    """Build the dataset table in schema column order, sorted by id so the file is byte-stable."""
    rows = [
        {
            "id": r.id,
            "text": r.text,
            "label": r.label,
            **{category: category in r.categories for category in CATEGORIES},
            "source": r.source,
            "origin": r.origin,
            "parent_id": r.parent_id,
            "split": splits[r.id],
            "text_hash": text_hash(r.text),
        }
        for r in records
    ]
    frame = pd.DataFrame(rows, columns=list(COLUMNS)).sort_values("id", kind="stable").reset_index(drop=True)
    return frame.astype({"parent_id": "string"})


def summarise(frame: pd.DataFrame, report: MergeReport) -> dict[str, Any]:
    """Counts per source, label, category and split: what a reviewer checks first, with no text."""

    def counts(column: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in sorted(Counter(frame[column]).items())}

    by_split: dict[str, Any] = {}
    for split in (Split.TRAIN, Split.VAL, Split.TEST):
        part = frame[frame["split"] == split]
        by_split[split.value] = {
            "rows": len(part),
            "label": {label: int((part["label"] == label).sum()) for label in LABELS},
            "category": {category: int(part[category].sum()) for category in CATEGORIES},
        }
    return {
        "rows": len(frame),
        "source": counts("source"),
        "origin": counts("origin"),
        "label": {label: int((frame["label"] == label).sum()) for label in LABELS},
        "category": {category: int(frame[category].sum()) for category in CATEGORIES},
        "split": by_split,
        "merge": {
            "input_rows": report.n_input,
            "exact_duplicates_removed": report.n_exact_duplicates,
            "conflict_groups": report.n_conflict_groups,
            "conflict_policy": report.conflict_policy,
            "conflict_ids": list(report.conflict_ids[:50]),
        },
    }
