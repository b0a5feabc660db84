"""The curate stage on a tiny project: row weights for every train row, audit figures, no text anywhere, bad audits
refused before anything is written, and training that really applies the weights (or refuses foreign ones)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.config import load_params
from components.errors import DataRowError, SourceFileError
from tests.fixtures.tiny_training import CANARY, tiny_bert_folder, tiny_llama_folder, write_project


def _project(root: Path, **curate: object) -> Path:
    path = write_project(
        root, {"tiny": {"family": "llama", "source": "tiny-llama"}}, weights="data/curated/weights.parquet"
    )
    frame = pd.read_parquet(root / "data" / "dataset.parquet")
    frame.loc[frame.index % 2 == 1, "source"] = "other"  # two sources, so the ablation has a held-out source
    frame.to_parquet(root / "data" / "dataset.parquet", index=False)
    params = yaml.safe_load(path.read_text())
    settings = {"enabled": True, "input": "data/dataset.parquet", "embedder": "tiny-bert", "folds": 2}
    params["curate"] = settings | {"bootstrap_resamples": 50} | curate
    path.write_text(yaml.safe_dump(params))
    return path


def _audit(root: Path, rows: list[dict[str, str]]) -> str:
    path = root / "audit.jsonl"
    base = {"auditor": "test", "audited_at": "2026-12-06", "rubric": "x"}
    path.write_text("".join(json.dumps(base | row) + "\n" for row in rows))
    return "audit.jsonl"


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from components.stages.curate import curate

    root = tmp_path_factory.mktemp("curate")
    tiny_bert_folder(root / "tiny-bert")
    write_project(root, {})  # the dataset, to read hashes from
    frame = pd.read_parquet(root / "data" / "dataset.parquet")
    train = frame[frame["split"] == "train"]
    rows = [{"id": r.id, "text_hash": r.text_hash, "label": "unsafe"} for r in train.head(6).itertuples()]
    params = load_params(_project(root, audit=_audit(root, rows)))
    curate(params, root)
    return root


def test_every_train_row_gets_a_weight_and_the_report_adds_up(curated: Path) -> None:
    out = curated / "data" / "curated"
    table = pd.read_parquet(out / "weights.parquet")
    frame = pd.read_parquet(curated / "data" / "dataset.parquet")
    assert sorted(table["id"]) == sorted(frame.loc[frame["split"] == "train", "id"])
    assert set(table["weight"]) <= {0.2, 1.0}
    assert (table["weight"] < 1).sum() == table["flagged"].sum()
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["rows"] == len(table) and report["totals"]["flagged"] == int(table["flagged"].sum())
    assert sum(s["rows"] for s in report["sources"].values()) == len(table)
    assert set(report["audit"]) == {"tiny", "other"} and sum(a["n"] for a in report["audit"].values()) == 6
    assert set(report["ablation"]) == {"tiny", "other"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["data_hash"] and meta["audit_sha256"] and meta["code"]["code_hash"]
    assert "| source | rows | flagged | weight |" in (out / "report.md").read_text()
    for path in out.iterdir():
        assert CANARY not in path.read_bytes().decode("utf-8", errors="ignore"), path.name


def test_an_audit_row_whose_message_changed_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    from components.stages.curate import curate

    tiny_bert_folder(tmp_path / "tiny-bert")
    write_project(tmp_path, {})
    first = pd.read_parquet(tmp_path / "data" / "dataset.parquet").iloc[0]
    rows = [
        {"id": "nope", "text_hash": "0", "label": "safe"},
        {"id": first["id"], "text_hash": "f" * 64, "label": "safe"},
    ]
    audit = _audit(tmp_path, rows)
    params = load_params(_project(tmp_path, audit=audit))
    with pytest.raises(DataRowError) as error:
        curate(params, tmp_path)
    assert "audit.jsonl" in str(error.value) and error.value.row == 2 and error.value.field == "text_hash"
    assert not (tmp_path / "data" / "curated").exists()


def test_disabled_writes_weight_one_for_every_train_row_without_an_encoder(tmp_path: Path) -> None:
    from components.stages.curate import curate

    params = load_params(_project(tmp_path, enabled=False, embedder="no-such-folder"))
    result = curate(params, tmp_path)
    table = pd.read_parquet(result.weights_path)
    assert (table["weight"] == 1.0).all() and not table["flagged"].any() and result.report["enabled"] is False


def test_training_applies_the_weights_and_refuses_weights_of_another_dataset(tmp_path: Path) -> None:
    """All-zero weights make every step's loss exactly 0 (the weights reach the loss); a missing id is refused."""
    from components.stages.curate import curate
    from components.stages.train import train

    tiny_llama_folder(tmp_path / "tiny-llama")
    params = load_params(_project(tmp_path, enabled=False))
    result = curate(params, tmp_path)
    table = pd.read_parquet(result.weights_path)
    table.assign(weight=0.0).to_parquet(result.weights_path, index=False)
    folder = train(params, "tiny", "trinary", tmp_path).folder
    curve = json.loads((folder / "curve.json").read_text())["train"]
    assert curve and all(point["loss"] == 0.0 for point in curve)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["params"]["row_weights"]["rows_below_1"] == len(table) and meta["params"]["row_weights"]["sha256"]
    table.iloc[1:].to_parquet(result.weights_path, index=False)
    with pytest.raises(SourceFileError, match="1 train row"):
        train(params, "tiny", "trinary", tmp_path)
    table.assign(weight=[2.0] + [1.0] * (len(table) - 1)).to_parquet(result.weights_path, index=False)
    with pytest.raises(DataRowError, match="weight"):
        train(params, "tiny", "trinary", tmp_path)


def test_weights_of_one_train_exactly_as_no_weights(tmp_path: Path) -> None:
    """The embedded default points train.weights at curate's all-ones file: its training must not move at all."""
    from components.stages.curate import curate
    from components.stages.train import train

    tiny_llama_folder(tmp_path / "tiny-llama")
    params = load_params(_project(tmp_path, enabled=False))
    curate(params, tmp_path)
    weighted = json.loads((train(params, "tiny", "trinary", tmp_path).folder / "curve.json").read_text())["train"]
    plain = load_params(write_project(tmp_path, {"tiny": {"family": "llama", "source": "tiny-llama"}}))
    unweighted = json.loads((train(plain, "tiny", "trinary", tmp_path).folder / "curve.json").read_text())["train"]
    assert [p["loss"] for p in weighted] == [p["loss"] for p in unweighted]
