"""The real corpora in ../shared/data merge with the sample (skips on a fresh clone without ../shared)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from components.config import load_params
from components.stages.prepare import prepare
from tests.fixtures.common import REPO, needs_shared


@needs_shared
def test_shared_corpora_merge_into_one_leakage_free_dataset(tmp_path: Path) -> None:
    root = tmp_path / "emosafe"
    (root / "data" / "sample").mkdir(parents=True)
    shutil.copy(REPO / "data" / "sample" / "messages.jsonl", root / "data" / "sample")
    (tmp_path / "shared").symlink_to(REPO.parent / "shared")
    result = prepare(load_params(REPO / "configs" / "real" / "params.yaml"), root)

    summary = result.summary
    assert set(summary["source"]) == {"sample", "diasafety", "counsel_chat", "davidson"}
    assert summary["source"]["counsel_chat"] > 700  # 815 questions, a few duplicates
    assert summary["source"]["diasafety"] > 5000  # 10,114 rows, many repeated contexts
    assert 4300 <= summary["source"]["davidson"] <= 4430  # 1,430 hate + 1,500 + 1,500 sampled, repeats merged
    assert summary["merge"]["exact_duplicates_removed"] > 0
    for split in ("train", "val", "test"):
        assert all(summary["split"][split]["label"][label] > 0 for label in ("safe", "borderline", "unsafe"))
    frame = pd.read_parquet(result.dataset_path)
    assert frame["id"].is_unique
    assert frame.groupby("text_hash")["split"].nunique().max() == 1
    assert not frame.loc[frame["label"] == "safe", list(summary["category"])].any(axis=None)
    tweets = frame.loc[frame["source"] == "davidson", "text"]
    assert not tweets.str.contains("&amp;", regex=False).any() and not tweets.str.contains(r"\bRT @").any()
    assert not tweets.str.contains(r"@(?!user\b)\w+").any()  # every handle masked by the declared cleanup
