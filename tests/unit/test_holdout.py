"""Leave-one-source-out: the fold (components/data/holdout.py) and the scaling report's table
(components/report/holdout_table.py)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pandas as pd
import pytest

from components.data.holdout import leave_out
from components.errors import EmosafeError, MetricsFormatError
from components.report.holdout_table import holdout_markdown, holdout_metrics, holdout_row


def _frame() -> pd.DataFrame:
    rows = []
    for source, count in (("a", 12), ("b", 9)):
        for i in range(count):
            split = ("train", "train", "val", "test")[i % 4]
            rows.append({"id": f"{source}{i:02d}", "source": source, "origin": "human", "split": split})
    rows.append({"id": "b01~aug~1", "source": "b", "origin": "augmented", "split": "train"})
    rows.append({"id": "a00~aug~1", "source": "a", "origin": "augmented", "split": "train"})
    return pd.DataFrame(rows)


def test_the_held_out_source_becomes_the_test_split_and_leaves_train() -> None:
    fold = leave_out(_frame(), "b", None, 13)
    held = fold[fold["source"] == "b"]
    assert len(held) == 9 and set(held["split"]) == {"test"} and set(held["origin"]) == {"human"}
    assert "b01~aug~1" not in set(fold["id"])  # a rewrite of a held-out message would leak it into train
    assert "a00~aug~1" in set(fold["id"])  # the other sources' rewrites stay
    others = fold[fold["source"] == "a"]
    assert set(others["split"]) == {"train", "val"}  # their test rows are not the fold's test


def test_the_cap_is_a_seeded_choice_by_id_not_by_row_order() -> None:
    frame = _frame()
    first = leave_out(frame, "a", 5, 13)
    shuffled = leave_out(frame.sample(frac=1.0, random_state=1), "a", 5, 13)
    chosen = set(first.loc[first["split"] == "test", "id"])
    assert len(chosen) == 5 and chosen == set(shuffled.loc[shuffled["split"] == "test", "id"])
    assert chosen != set(leave_out(frame, "a", 5, 14).query("split == 'test'")["id"])


@pytest.mark.parametrize(
    ("source", "drop", "message"),
    [
        ("c", None, "source 'c' has no human rows"),
        ("b", "val", "without source 'b' the val split is empty"),
    ],
)
def test_a_fold_that_cannot_train_or_test_is_refused(source: str, drop: str | None, message: str) -> None:
    frame = _frame()
    if drop:
        frame = frame[~((frame["source"] == "a") & (frame["split"] == drop))]
    with pytest.raises(EmosafeError, match=message):
        leave_out(frame, source, None, 13)


def _estimate(value: float) -> dict[str, float]:
    return {"value": value, "low": value - 0.1, "high": value + 0.05}


def _payload(model: str, source: str) -> dict[str, Any]:
    figures = {
        "n": 40,
        "unsafe_recall": _estimate(0.5),
        "unsafe_flagged": _estimate(0.8),
        "unsafe_f1": _estimate(0.55),
        "safe_flag_rate": _estimate(0.25),
        "macro_f1": _estimate(0.45),
    }
    split = {
        "n": 40,
        "accuracy": _estimate(0.6),
        "macro_f1": _estimate(0.45),
        "per_class": {"safe": {"f1": _estimate(0.7)}},
    }
    return {
        "model": model,
        "setting": "holdout",
        "task": "trinary",
        "splits": {"test": split, "val": split},
        "holdout": {"source": source, "rows": {"test": 40}},
        "suites": {f"holdout:{source}": {"figures": figures}},
        "model_info": {"params_millions": 22.7},
    }


def test_the_table_shows_each_rung_and_source_with_intervals() -> None:
    rows = [holdout_row(_payload("minilm", s), f"minilm-without-{s}.json") for s in ("davidson", "diasafety")]
    table = holdout_markdown(rows)
    assert "| trinary | minilm | davidson | 40 | 0.500 [0.400, 0.550] |" in table
    assert table.index("davidson") < table.index("diasafety")
    assert holdout_metrics(rows)["minilm"]["diasafety"]["safe_flag_rate"] == 0.25
    assert holdout_markdown([]) == ""


def test_a_report_without_its_held_out_figures_is_refused() -> None:
    payload = copy.deepcopy(_payload("minilm", "davidson"))
    payload["suites"] = {}
    with pytest.raises(MetricsFormatError, match=re.escape("suites.holdout:davidson is missing")):
        holdout_row(payload, "x.json")
    del payload["holdout"]
    with pytest.raises(MetricsFormatError, match=re.escape("holdout.source")):
        holdout_row(payload, "x.json")


def _seeded(model: str, source: str, seed: int, safe_flagged: float) -> dict[str, Any]:
    payload = copy.deepcopy(_payload(model, source))
    payload["holdout"]["seed"] = seed
    payload["suites"][f"holdout:{source}"]["figures"]["safe_flag_rate"] = _estimate(safe_flagged)
    return payload


def test_seeded_runs_get_a_seed_column_and_their_mean_and_range() -> None:
    rows = [
        holdout_row(_seeded("minilm", "davidson", seed, flagged), f"minilm-without-davidson-seed{seed}.json")
        for seed, flagged in ((14, 0.95), (13, 0.85), (15, 0.90))
    ]
    table = holdout_markdown(rows)
    assert "| trinary | minilm | davidson | 13 | 40 | 0.500 [0.400, 0.550] |" in table
    assert table.index("| 13 |") < table.index("| 14 |") < table.index("| 15 |")
    across = table[table.index("### Across training seeds") :]
    assert "| trinary | minilm | davidson | 13, 14, 15 | 0.500 [0.500, 0.500] |" in across
    assert "0.900 [0.850, 0.950]" in across  # safe flagged: mean 0.90 over seeds 0.85-0.95
    metrics = holdout_metrics(rows)["minilm"]
    assert set(metrics) == {"davidson-seed13", "davidson-seed14", "davidson-seed15"}
    assert "Across training seeds" not in holdout_markdown([holdout_row(_payload("minilm", "davidson"), "x.json")])


def test_a_seed_that_is_not_an_integer_is_refused() -> None:
    payload = _seeded("minilm", "davidson", 13, 0.5)
    payload["holdout"]["seed"] = "13"
    with pytest.raises(MetricsFormatError, match=re.escape("holdout.seed")):
        holdout_row(payload, "x.json")
