"""The holdout stage on a tiny LLaMA: train without one source (and without its rewrites), score that source
through the evaluation path, write the run and a text-free report; the scaling report tabulates it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.config import load_params
from components.errors import ConfigError
from components.provenance import code_hash
from tests.fixtures.common import REPO
from tests.fixtures.tiny_training import CANARY, tiny_frame, tiny_llama_folder, write_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sources (a: even rows, b: odd rows), one rewrite of a b message, the tiny rung."""
    root = tmp_path_factory.mktemp("holdout")
    tiny_llama_folder(root / "tiny-llama")
    path = write_project(root, {"tiny": {"family": "llama", "source": "tiny-llama"}}, hyper={"epochs": 1})
    frame = tiny_frame()
    frame["source"] = ["a" if i % 2 == 0 else "b" for i in range(len(frame))]
    parent = frame[(frame["source"] == "b") & (frame["split"] == "train")].iloc[0]
    rewrite = parent.to_frame().T.assign(id=f"{parent['id']}~aug~1", origin="augmented", parent_id=parent["id"])
    pd.concat([frame, rewrite]).to_parquet(root / "data" / "dataset.parquet", index=False)
    shutil.copy(REPO / "data" / "canaries.jsonl", root / "data" / "canaries.jsonl")
    params = yaml.safe_load(path.read_text())
    params["prepare"]["sources"] = [{"name": name, "kind": "emosafe", "path": f"{name}.jsonl"} for name in ("a", "b")]
    params["train"]["tasks"] = ["trinary"]
    params["evaluate"] = {"suites": {}, "bootstrap_resamples": 20, "canaries": "data/canaries.jsonl"}
    params["register"] = {"gate": {"suites": {}}}
    params["holdout"] = {"sources": ["b"], "models": ["tiny"], "max_test_rows": 12}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def outcome(project: Path) -> object:
    from components.stages.holdout import holdout

    return holdout(load_params(project / "params.yaml"), "tiny", "b", project)


def test_the_run_never_saw_the_held_out_source(project: Path, outcome: object) -> None:
    frame = pd.read_parquet(project / "data" / "dataset.parquet")
    meta = json.loads((project / "models" / "holdout" / "without-b" / "tiny-trinary" / "meta.json").read_text())
    others = frame[frame["source"] == "a"]
    assert meta["rows"] == {
        "train": int((others["split"] == "train").sum()),
        "val": int((others["split"] == "val").sum()),
    }
    assert meta["code"]["code_hash"] == code_hash("components.stages.holdout")  # the calling stage's closure
    assert not list((project / "models" / "holdout" / "without-b").glob(".fold-*"))  # the fold file is gone


def test_the_report_scores_the_source_with_intervals_and_no_text(project: Path, outcome: object) -> None:
    path = project / "reports" / "holdout" / "tiny-without-b.json"
    payload = json.loads(path.read_text())
    assert payload["setting"] == "holdout" and payload["holdout"]["source"] == "b"
    assert payload["holdout"]["rows"]["test"] == 12  # the cap: 12 of b's human rows
    figures = payload["suites"]["holdout:b"]["figures"]
    assert figures["n"] == 12 and figures["unsafe_recall"]["low"] is not None
    assert payload["figures"]["test"]["n"] == 12 and payload["splits"]["test"]["n"] == 12
    assert CANARY not in path.read_text() and "what a lovely morning" not in path.read_text()


def test_the_scaling_report_tabulates_it(project: Path, outcome: object) -> None:
    from components.report.holdout_table import holdout_markdown, holdout_row

    path = project / "reports" / "holdout" / "tiny-without-b.json"
    table = holdout_markdown([holdout_row(json.loads(path.read_text()), str(path))])
    assert "| trinary | tiny | b | 12 |" in table


def test_a_source_or_rung_outside_the_section_is_refused(project: Path) -> None:
    from components.stages.holdout import holdout

    params = load_params(project / "params.yaml")
    with pytest.raises(ConfigError, match=re.escape("not in holdout.sources")):
        holdout(params, "tiny", "a", project)
    with pytest.raises(ConfigError, match=re.escape("not in holdout.models")):
        holdout(params, "other", "b", project)


def test_the_held_out_rows_are_the_reports_rows_and_read_back_as_a_corpus(project: Path, outcome: object) -> None:
    """`--write-rows` gives another model the exact rows of the report: the ids its provenance hashed."""
    from components.config import EmosafeSource
    from components.data.sources import read_source
    from components.stages.holdout import held_out_rows

    path = project / "held-out-b.jsonl"
    assert held_out_rows(load_params(project / "params.yaml"), "b", path, project) == 12
    records = read_source(EmosafeSource(name="b", kind="emosafe", path=str(path)), project)
    frame = pd.read_parquet(project / "data" / "dataset.parquet")
    human_b = frame[(frame["source"] == "b") & (frame["origin"] == "human")]
    ids = [r.id.removeprefix("b:") for r in records]  # the adapter prefixes the source name
    assert len(records) == 12 and set(ids) <= set(human_b["id"])
    labels = dict(zip(human_b["id"], human_b["label"], strict=True))
    assert [r.label for r in records] == [labels[i] for i in ids]


def test_the_logged_summary_averages_over_the_classes_the_source_has() -> None:
    """A source with no unsafe rows: the log line shows the report's macro-F1 (two classes), not the 3-class one."""
    from components.stages.holdout import _summary

    def interval(value: float) -> dict[str, float]:
        return {"value": value, "low": value - 0.05, "high": value + 0.05}

    payload = {
        "model": "tiny",
        "holdout": {"source": "b", "rows": {"test": 12}},
        "splits": {"test": {"macro_f1": interval(0.34), "n": 12}},
        "figures": {
            "test": {
                "classes": ["safe", "borderline"],
                "macro_f1": interval(0.51),
                "unsafe_recall": interval(0.0),
                "safe_flag_rate": interval(0.25),
            }
        },
    }
    summary = _summary(payload)
    assert summary["macro_f1"] == 0.51 and summary["classes"] == ["safe", "borderline"]
    assert summary["safe_flag_rate"] == 0.25 and summary["test_rows"] == 12


def test_seeds_train_again_on_the_same_held_out_rows(project: Path) -> None:
    """holdout.seeds: one run per seed, the same fold and held-out rows, only the training seed differs; the
    scaling report's reader accepts the seeded names, and a seed outside the list is refused before any work."""
    from components.stages.holdout import holdout
    from components.stages.report import _read_holdouts

    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["holdout"] |= {"seeds": [3, 4], "output_dir": "models/holdout-seeds", "reports_dir": "reports/holdout-seeds"}
    (project / "params-seeds.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(project / "params-seeds.yaml")
    for wrong in (None, 5):
        with pytest.raises(ConfigError, match=re.escape("does not match holdout.seeds [3, 4]")):
            holdout(params, "tiny", "b", project, wrong)
    assert not (project / "models" / "holdout-seeds").exists()
    outcomes = {seed: holdout(params, "tiny", "b", project, seed) for seed in (3, 4)}
    reports = {seed: json.loads(outcome.report.read_text()) for seed, outcome in outcomes.items()}
    assert {outcome.report.name for outcome in outcomes.values()} == {
        "tiny-without-b-seed3.json",
        "tiny-without-b-seed4.json",
    }
    metas = {
        seed: json.loads(
            (project / "models/holdout-seeds/without-b" / f"seed-{seed}/tiny-trinary/meta.json").read_text()
        )
        for seed in (3, 4)
    }
    assert metas[3]["seed"] == 3 and metas[4]["seed"] == 4 and metas[3]["data_hash"] == metas[4]["data_hash"]
    assert reports[3]["holdout"]["seed"] == 3 and reports[3]["holdout"]["rows"] == reports[4]["holdout"]["rows"]
    assert reports[3]["suites"]["holdout:b"]["data_hash"] == reports[4]["suites"]["holdout:b"]["data_hash"]
    assert outcomes[4].summary["seed"] == 4
    held = _read_holdouts(project / "reports" / "holdout-seeds", "test")
    assert sorted(item.seed for _, _, item in held) == [3, 4]
