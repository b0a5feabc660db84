"""The register and ship stages, the version's drift reference, and flow checkpoint/rollback in the registry.

Register/rollback tests use synthetic run folders (no model); the ship tests share one tiny exported ONNX bundle
(2-layer LLaMA, built once per module) copied into a fresh project per test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from components.config import Params, parse_params
from components.errors import RegistryError
from components.export.bundle import MANIFEST, build_manifest
from components.release.evidence import evidence_block
from registry.core import Registry
from registry.names import ModelRef
from tests.fixtures import export_runs as fx
from tests.fixtures.registry_runs import DATA_HASH, bound, make_run, register_run, taxonomy_metrics, trinary_metrics

LAX = {"default_f1_floor": 0.0, "trinary_macro_f1_floor": 0.0, "unsafe_recall_floor": 0.0}
CANARY = "CANARY-nobody-reads-this-CANARY"


def ladder_project(root: Path, models: tuple[str, ...] = ("small", "large")) -> Params:
    """models/<m>-<task>/ runs and reports/evaluate/<m>-fine_tuned-<task>.json for both tasks, no model weights."""
    for model in models:
        for task, metrics in (("trinary", trinary_metrics()), ("taxonomy", taxonomy_metrics())):
            run = make_run(root / "models", f"{model}-{task}")
            run.rename(root / "models" / f"{model}-{task}")
            report = root / "reports" / "evaluate" / f"{model}-fine_tuned-{task}.json"
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(json.dumps(bound(metrics, run.parent / f"{model}-{task}") | {"model": model}))
    raw = {
        "prepare": {"sources": [{"name": "t", "kind": "emosafe", "path": "x.jsonl"}]},
        "evaluate": {"fine_tuned_models": list(models), "tasks": ["trinary", "taxonomy"]},
        "register": {"store": "store", "gate": LAX},
    }
    return parse_params(raw)


@pytest.fixture(autouse=True)
def _no_env_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMOSAFE_REGISTRY", raising=False)
    monkeypatch.setenv("EMOSAFE_USER", "tester")


def test_register_stage_registers_the_ladder_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    from components.stages.register import register

    params = ladder_project(tmp_path)
    first = register(params, tmp_path)
    assert [(n, c) for n, _, c in first.versions] == [("emosafe-trinary", True), ("emosafe-taxonomy", True)] * 2
    registry = Registry(tmp_path / "store")
    assert registry.meta.aliases("emosafe-trinary") == {"candidate": 2}  # the last registered run of the task
    record = registry.resolve(ModelRef("emosafe-trinary", version=1))
    assert record.lineage["ladder_model"] == "small" and record.lineage["data_hash"] == DATA_HASH
    assert registry.meta.latest_report("emosafe-trinary", 1) is not None  # the gate ran and its report is stored
    history = registry.meta.history()
    report = json.loads(first.report.read_bytes())
    assert report["created"] == 4 and all(v["gate"]["promote"] for v in report["versions"])
    second = register(params, tmp_path)
    assert [c for _, _, c in second.versions] == [False] * 4 and second.versions[0][:2] == first.versions[0][:2]
    assert registry.meta.history() == history and len(registry.meta.list_versions()) == 4
    assert json.loads(second.report.read_bytes())["created"] == 0


def test_register_links_training_data_to_the_evaluated_data_only_when_proven(tmp_path: Path) -> None:
    from components.stages.register import register

    params = ladder_project(tmp_path, ("m",))
    for task in ("trinary", "taxonomy"):  # evaluation ran on the prepared file, training on the augmented one
        path = tmp_path / "reports" / "evaluate" / f"m-fine_tuned-{task}.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"data_hash": "e" * 64, "provenance": {}}))
    stale = register(params, tmp_path).registered[0]
    assert not stale.promote and any("stale" in r for r in stale.reasons)
    summary = tmp_path / "data" / "augmented" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"provenance": {"data_hash": DATA_HASH, "inputs": {"prepared": "e" * 64}}}))
    shutil.rmtree(tmp_path / "store")
    linked = register(params, tmp_path).registered[0]
    assert linked.promote, linked.reasons
    lineage = Registry(tmp_path / "store").resolve(ModelRef("emosafe-trinary", version=1)).lineage
    assert lineage["data_hash"] == "e" * 64 and lineage["train_data_hash"] == DATA_HASH


def test_register_cli_and_missing_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml
    from typer.testing import CliRunner

    from components.cli import app

    params = ladder_project(tmp_path, ("m",))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["register"])
    assert result.exit_code == 0, result.output
    assert "m-trinary: emosafe-trinary@1 new; passes the gate" in result.output
    shutil.rmtree(tmp_path / "models" / "m-taxonomy")
    result = CliRunner().invoke(app, ["register"])
    assert result.exit_code != 0 and "training run not found" in str(result.exception)


# --- ship: a toy ONNX bundle (fast) and a tiny really exported one (slow) -----------------------------------------
def toy_bundle(folder: Path) -> Path:
    """A bundle in the export layout whose int8 file is a 2-node ONNX graph (embedding lookup, mean over tokens):
    real enough for OnnxPredictor, the manifest checks and the registry; figures as the export stage writes them."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer, models, pre_tokenizers

    from components.export.bundle import label_map

    folder.mkdir(parents=True)
    vocab = {"[PAD]": 0, "[UNK]": 1, "calm": 2, "hurt": 3, "maybe": 4}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    weights = numpy_helper.from_array(np.eye(5, 3, dtype=np.float32) * 4, "W")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["W", "input_ids"], ["e"]),
            helper.make_node("ReduceMean", ["e"], ["logits"], axes=[1], keepdims=0),
        ],
        "toy",
        [
            helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
            for n in ("input_ids", "attention_mask")
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(folder / "model_int8.onnx"))
    (folder / "config.json").write_text(json.dumps({"pad_token_id": 0}))
    (folder / "labels.json").write_text(json.dumps(label_map("trinary", 16).to_dict()))
    test = trinary_metrics()["splits"]["test"] | {"confusion": {"label": [[30, 5, 1], [4, 25, 7], [0, 6, 30]]}}
    quant = {
        "task": "trinary",
        "data_hash": DATA_HASH,
        "splits": {"test": test},
        "passed": True,
        "quantized": {"macro_f1_drop": 0.001, "label_agreement": 0.995, "category_f1_drop": {"unsafe": 0.002}},
        "comparison": {"problems": []},
    }
    (folder / "meta.json").write_text(
        json.dumps({"stage": "export", "data_hash": DATA_HASH, "train": {"data_hash": DATA_HASH}})
    )
    quant["evidence"] = evidence_block(folder, "export")  # as the export stage writes it
    (folder / "quantization.json").write_text(json.dumps(quant))
    (folder / MANIFEST).write_text(json.dumps(build_manifest(folder)))
    return folder


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    run = make_run(root / "models", "x")
    meta = json.loads((run / "meta.json").read_text()) | {"wandb": {"mode": "offline", "run_id": "trainrun7"}}
    (run / "meta.json").write_text(json.dumps(meta))
    run.rename(root / "models" / "tiny-trinary")
    toy_bundle(root / "exports" / "tiny-trinary")
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from components.stages.export import export

    root = tmp_path_factory.mktemp("ship")
    fx.tiny_run(root, fx.save_tokenizer(root / "tokenizer"))
    fx.tiny_dataset(root / "data" / "dataset.parquet")
    export(parse_params(fx.params_dict()), Path("models/tiny-trinary"), root=root)
    shutil.rmtree(root / "tokenizer")
    return root


def ship_project(source: Path, tmp_path: Path) -> tuple[Path, Params]:
    """A copy of ``source`` with the ladder (just `tiny`) evaluated and registered."""
    from components.stages.register import register

    root = tmp_path / "project"
    shutil.copytree(source, root)
    report = root / "reports" / "evaluate" / "tiny-fine_tuned-trinary.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps(bound(trinary_metrics(), root / "models" / "tiny-trinary")))
    raw = fx.params_dict() | {"register": {"store": "store", "gate": LAX}, "ship": {"tasks": ["trinary"]}}
    raw["evaluate"] |= {"fine_tuned_models": ["tiny"], "tasks": ["trinary"]}
    params = parse_params(raw)
    register(params, root)
    return root, params


def damage_int8_check(bundle: Path) -> None:
    """What a too-aggressive quantization leaves (the export stage records it and no longer fails)."""
    path = bundle / "quantization.json"
    quant: dict[str, Any] = json.loads(path.read_text())
    quant["quantized"] = {"macro_f1_drop": 0.2, "label_agreement": 0.8, "category_f1_drop": {"unsafe": 0.3}}
    quant["passed"], quant["comparison"]["problems"] = False, ["macro-F1 drop 0.2 > 0.005"]
    path.write_text(json.dumps(quant))
    (bundle / MANIFEST).write_text(json.dumps(build_manifest(bundle)))


def test_ship_promotes_a_passing_bundle_with_its_reference_and_predict_uses_it(toy: Path, tmp_path: Path) -> None:
    ships_and_predicts(*ship_project(toy, tmp_path))


@pytest.mark.slow
def test_ship_a_really_exported_bundle(exported: Path, tmp_path: Path) -> None:
    ships_and_predicts(*ship_project(exported, tmp_path))


def ships_and_predicts(root: Path, params: Params) -> None:
    from components.stages.predict import predict
    from components.stages.ship import ship
    from monitoring.monitor import load_reference

    outcome = ship(params, root)
    (row,) = outcome.shipped
    assert row.status == "promoted" and row.created and row.previous is None, row.reasons
    assert row.exported_from is not None and row.exported_from["version"] == 1  # the registered training run
    assert json.loads(outcome.report.read_text())["tasks"][0]["moved"] is True
    registry = Registry(root / "store")
    record = registry.resolve(ModelRef("emosafe-trinary", alias="production"))
    assert record.version == row.version == 2 and record.metrics["quantized"]["label_agreement"] >= 0.99
    trained = registry.resolve(ModelRef("emosafe-trinary", version=1)).lineage["wandb_run"]
    assert record.lineage["wandb_run"] == row.exported_from["wandb_run"] == trained  # linked to its training run
    assert record.lineage["evidence"]["status"] == "bound"  # the bundle's own figures, sha256-matched
    assert registry.meta.latest_report("emosafe-trinary", 2)["gate"]["quantized"]["required"] is True
    quant = json.loads((root / "exports" / "tiny-trinary" / "quantization.json").read_text())
    predicted = [sum(col) for col in zip(*quant["splits"]["test"]["confusion"]["label"], strict=True)]
    reference = load_reference(Path("emosafe-trinary@production"), _rooted(params, root))
    assert (reference.model, reference.version, reference.n) == ("emosafe-trinary", "2", sum(predicted))
    assert list(reference.label_distribution.values()) == pytest.approx([c / sum(predicted) for c in predicted])
    messages = root / "msgs.jsonl"
    messages.write_text("".join(json.dumps({"id": f"m{i}", "text": f"{CANARY} {i}"}) + "\n" for i in range(5)))
    done = predict(_rooted(params, root), "emosafe-trinary@production", messages, root / "preds.jsonl", root=root)
    logged = [json.loads(line) for line in done.log.read_text().splitlines()]
    assert {(x["model"], x["version"]) for x in logged} == {("emosafe-trinary", "2")} and len(logged) == 5
    history = registry.meta.history()
    again = ship(params, root).shipped[0]
    assert (again.status, again.version, again.created) == ("already", 2, False)
    assert registry.meta.history() == history
    assert CANARY not in outcome.report.read_text() + done.log.read_text()


def test_ship_refuses_a_failed_int8_check_and_leaves_production_alone(toy: Path, tmp_path: Path) -> None:
    from components.stages.ship import ship

    root, params = ship_project(toy, tmp_path)
    assert ship(params, root).shipped[0].status == "promoted"
    registry = Registry(root / "store")
    history = registry.meta.history(alias="production")
    damage_int8_check(root / "exports" / "tiny-trinary")
    outcome = ship(params, root)
    (row,) = outcome.shipped
    assert row.status == "refused" and row.version == 3 and row.previous == 2
    assert any("int8 check failed" in r for r in row.reasons) and any("quantized file fails" in r for r in row.reasons)
    assert registry.meta.aliases("emosafe-trinary")["production"] == 2
    assert registry.meta.history(alias="production") == history
    assert registry.meta.latest_report("emosafe-trinary", 3)["promote"] is False  # the refusal is stored too
    saved = json.loads(outcome.report.read_text())["tasks"][0]
    assert saved["status"] == "refused" and saved["moved"] is False and saved["reasons"]


def _rooted(params: Params, root: Path) -> Params:
    """Params whose registry store is absolute, for callers that resolve it against the working directory."""
    register = params.register.model_copy(update={"store": str(root / "store")})
    return params.model_copy(update={"register": register})


# --- checkpoint / rollback_to -----------------------------------------------------------------------------------
def test_rollback_to_restores_aliases_and_withdraws_later_versions(tmp_path: Path) -> None:
    from components.config.register import GateConfig

    registry = Registry(tmp_path / "store", GateConfig(**LAX))  # type: ignore[arg-type]
    name = "emosafe-trinary"
    register_run(registry, tmp_path, "a", trinary_metrics())
    registry.promote(ModelRef(name, version=1), "production")
    saved = registry.checkpoint([name, "emosafe-taxonomy"])
    v2, _ = register_run(registry, tmp_path, "b", trinary_metrics())
    registry.promote(ModelRef(name, version=2), "production")
    register_run(registry, tmp_path, "c", trinary_metrics())
    register_run(registry, tmp_path, "t", taxonomy_metrics())  # a name unset at the checkpoint
    done = registry.rollback_to(saved, "flow failed after registering")
    assert registry.meta.aliases(name) == {"candidate": 1, "production": 1}
    assert registry.meta.aliases("emosafe-taxonomy") == {}
    assert set(registry.meta.withdrawn(name)) == {2, 3} and "emosafe-trinary v2: withdrawn" in done
    assert [e.action for e in registry.meta.history(name)][-2:] == ["rollback", "rollback"]
    assert registry.verify() == []
    with pytest.raises(RegistryError, match="withdrawn"):
        registry.load(ModelRef(name, version=2))
    with pytest.raises(RegistryError, match="withdrawn"):
        registry.promote(ModelRef(name, version=3), "production")
    assert registry.rollback_to(saved, "again") == []  # idempotent
    again, created = registry.register(tmp_path / "run-b", trinary_metrics(), project=tmp_path)  # the same files
    assert (again.version, created) == (2, False)
    assert registry.meta.aliases(name)["candidate"] == 2 and 2 not in registry.meta.withdrawn(name)
    assert registry.load(ModelRef(name, alias="candidate")).record.version == v2.version
    assert registry.verify() == []
