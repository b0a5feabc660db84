"""Merge, conflict policies and the split: deterministic, stratified, leakage-free."""

from __future__ import annotations

from collections import Counter

import pytest

from components.config import SplitConfig
from components.data.dataset import assign_splits, merge_records, summarise, to_frame
from components.data.sources import Record
from components.errors import DataRowError, LabelConflictError


def rec(i: int, text: str, label: str = "safe", cats: tuple[str, ...] = (), **kw: object) -> Record:
    return Record(f"s:{i}", text, label, frozenset(cats), "s", **kw)  # type: ignore[arg-type]


def test_exact_duplicates_after_normalisation_are_removed() -> None:
    kept, report = merge_records([rec(1, "Hello  there"), rec(2, "hello there "), rec(3, "other")], "error")
    assert [r.id for r in kept] == ["s:1", "s:3"]
    assert report.n_exact_duplicates == 1 and report.n_conflict_groups == 0


def conflicting() -> list[Record]:
    return [
        rec(1, "I feel awful", "borderline", ("suicide_self_harm",)),
        rec(2, "i feel awful", "unsafe", ("regulated_substances",)),
        rec(3, "fine", "safe"),
    ]


def test_conflict_policy_error_names_ids() -> None:
    with pytest.raises(LabelConflictError) as info:
        merge_records(conflicting(), "error")
    assert info.value.ids == ["s:1", "s:2"] and info.value.n_groups == 1


def test_conflict_policy_drop_and_most_severe() -> None:
    kept, report = merge_records(conflicting(), "drop")
    assert [r.id for r in kept] == ["s:3"] and report.conflict_ids == ("s:1", "s:2")
    kept, _ = merge_records(conflicting(), "most_severe")
    assert kept[0].id == "s:1" and kept[0].label == "unsafe"
    assert kept[0].categories == {"suicide_self_harm", "regulated_substances"}


def many() -> list[Record]:
    labels = ["safe"] * 60 + ["borderline"] * 30 + ["unsafe"] * 10
    return [rec(i, f"text {i}", label, () if label == "safe" else ("violence_hate",)) for i, label in enumerate(labels)]


def test_split_is_stratified_seeded_and_order_independent() -> None:
    config = SplitConfig(val_fraction=0.2, test_fraction=0.2)
    records = many()
    first = assign_splits(records, config, seed=1)
    assert assign_splits(list(reversed(records)), config, seed=1) == first
    assert assign_splits(records, config, seed=2) != first
    per = Counter((r.label, first[r.id]) for r in records)
    assert per[("safe", "test")] == 12 and per[("borderline", "test")] == 6 and per[("unsafe", "test")] == 2
    assert per[("unsafe", "val")] == 2 and per[("unsafe", "train")] == 6


def test_augmented_rows_follow_their_parent() -> None:
    records = many()
    kids = [
        rec(1000 + i, f"rewrite {i}", r.label, tuple(r.categories), origin="augmented", parent_id=r.id)
        for i, r in enumerate(records[:40])
    ]
    splits = assign_splits(records + kids, SplitConfig(), seed=3)
    assert all(splits[k.id] == splits[k.parent_id] for k in kids)  # type: ignore[index]
    with pytest.raises(DataRowError, match="parent 's:missing' is not in the dataset"):
        assign_splits([*records, rec(9, "x", origin="augmented", parent_id="s:missing")], SplitConfig(), 3)


def test_frame_has_schema_columns_and_no_hash_crosses_splits() -> None:
    kept, report = merge_records(many(), "error")
    frame = to_frame(kept, assign_splits(kept, SplitConfig(), seed=0))
    assert list(frame.columns)[:3] == ["id", "text", "label"]
    assert frame["violence_hate"].dtype == bool
    assert frame.groupby("text_hash")["split"].nunique().max() == 1
    summary = summarise(frame, report)
    assert summary["rows"] == 100 and summary["label"] == {"safe": 60, "borderline": 30, "unsafe": 10}
    assert sum(part["rows"] for part in summary["split"].values()) == 100
