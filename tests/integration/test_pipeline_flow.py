"""The `pipeline` flow under a real (ephemeral) Prefect API and real DVC: each task skips a stage dvc.lock records as
up to date, records what it ran as `dvc repro` would, and a failure after `register` rolls the registry and dvc.lock
back.

The fast tests replace the stage functions by fakes that write each stage's dvc.yaml outputs (so DVC hashes real
files): they test the orchestration, not the stages. The slow test runs the real stages on a tiny rung.
"""

from __future__ import annotations

import importlib
import json
import logging
import logging.handlers
import re
import subprocess
import types
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.fixtures.common import VENV_BIN
from tests.fixtures.flow_project import MODEL, dvc_stages, make_project
from tests.fixtures.tiny_training import tiny_llama_folder, write_project

STAGE_MODULES = {  # stage -> (module, function) the flow's task calls
    "prepare": ("components.stages.prepare", "prepare"),
    "augment": ("components.stages.augment", "augment"),
    "validate": ("components.stages.validate", "validate"),
    "convert": ("components.stages.convert", "convert"),
    "curate": ("components.stages.curate", "curate"),
    "train": ("components.stages.train", "train"),
    "evaluate": ("components.stages.evaluate", "evaluate"),
    "report": ("components.stages.report", "report"),
    "register": ("components.stages.register", "register"),
    "export": ("components.stages.export", "export_all"),
    "ship": ("components.stages.ship", "ship"),
}


ALT = "configs/alt/params.yaml"


def dvc(root: Path, *args: str) -> str:
    done = subprocess.run([str(VENV_BIN / "dvc"), *args], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _outs(root: Path) -> dict[str, list[str]]:
    """Each dvc.yaml stage's output paths (matrix items resolved by DVC), by base stage name."""
    from dvc.repo import Repo

    outs: dict[str, list[str]] = {}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            outs.setdefault(stage.name.split("@")[0], []).extend(str(o.def_path) for o in stage.outs)
    return outs


def _fake(stage: str, root: Path, outs: list[str], calls: Counter[str], fail: set[str]) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        calls[stage] += 1
        if stage in fail:
            raise RuntimeError(f"injected failure in {stage}")
        for out in outs:
            path = root / out
            target = path if path.suffix else path / (MODEL if out == "models/base" else ".") / "part.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps({"stage": stage, "n": calls[stage]}))
        result = types.SimpleNamespace(
            summary={"stage": stage}, report={"totals": {}}, report_path=root / "r.json", folders={}, folder=root
        )
        return [result] if stage == "export" else result

    return run


def _install_fakes(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Counter[str], set[str]]:
    """Replace every stage function by a fake that writes the outputs of every pipeline in ``root``."""
    outs, calls, fail = _outs(root), Counter[str](), set[str]()
    for stage, (module_name, function) in STAGE_MODULES.items():
        module = importlib.import_module(module_name)  # the real module: flows.pipeline holds it, whatever ran first
        monkeypatch.setattr(module, function, _fake(stage, root, outs.get(stage, []), calls, fail))
    return calls, fail


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Counter[str], set[str]]:
    """A tiny project copy whose stage functions are fakes counting their calls; add a stage to the set to fail it."""
    root = make_project(tmp_path / "emosafe", tiny_model=False)
    return (root, *_install_fakes(root, monkeypatch))


def test_second_run_runs_no_stage_and_dvc_agrees(harness: None, fakes: tuple[Path, Counter[str], set[str]]) -> None:
    from flows.pipeline import pipeline

    root, calls, _ = fakes
    pushes = logging.handlers.BufferingHandler(capacity=10_000)  # Prefect's logging config stops propagation
    logging.getLogger("flows.dvc_tasks").addHandler(pushes)
    try:
        first = pipeline("params.yaml", str(root))
    finally:
        logging.getLogger("flows.dvc_tasks").removeHandler(pushes)
    assert set(STAGE_MODULES) <= set(calls) and calls["train"] == 1
    recorded = dvc_stages(root)
    assert {"prepare", "augment", "validate", "convert", "train", "evaluate", "export"} <= recorded
    assert {s.split("@")[0] for s in first["ran"]} == set(STAGE_MODULES)
    assert "up to date" in dvc(root, "status")  # dvc.lock is what `dvc repro` would have written
    assert first["data"]["data/prepared/dataset.parquet"] == _lock_md5(root, "data/prepared/dataset.parquet")
    assert (root / ".dvc-storage").is_dir() and first["pushed"] > 0
    # One push at the end sent every recorded output (logged with its count).
    assert [r.getMessage().split(" files")[0] for r in pushes.buffer if r.getMessage().startswith("push: ")] == [
        f"push: {first['pushed']}"
    ]
    assert "in sync" in dvc(root, "status", "--cloud")
    assert first["pushed"] == sum(1 for p in (root / ".dvc-storage").rglob("*") if p.is_file())

    calls.clear()
    second = pipeline("params.yaml", str(root))
    ran_again = {s.split("@")[0] for s in second["ran"]}
    assert not ran_again & recorded, second["ran"]  # stages in dvc.yaml: none ran (train trained nothing)
    assert not set(calls) & recorded and second["pushed"] == 0


def test_failure_after_register_restores_dvc_lock_and_fails_the_flow(
    harness: None, fakes: tuple[Path, Counter[str], set[str]]
) -> None:
    from flows.pipeline import pipeline

    root, calls, fail = fakes
    fail.add("ship")
    state = pipeline("params.yaml", str(root), return_state=True)
    assert state.is_failed()
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert "evaluate" in lock and "register" not in lock and not [s for s in lock if s.startswith("export")]
    fail.clear()
    calls.clear()
    from flows.retrain import retrain

    result = retrain("emosafe.monitor.drift.alarm on emosafe.model.x", "params.yaml", str(root))
    assert result["reason"].startswith("emosafe.monitor.drift.alarm")
    assert calls["register"] == 1 and calls["export"] == 1 and calls["train"] == 0  # rolled-back part runs again


def _moved(path: str) -> str:
    """A default output path moved to the profile's "-alt" folder (files keep their name)."""
    pure = PurePosixPath(path)
    return str(pure.parent.with_name(pure.parent.name + "-alt") / pure.name) if pure.suffix else f"{path}-alt"


def _alt_profile(root: Path) -> str:
    """configs/alt/params.yaml: the tiny params with every output moved, and its generated dvc.yaml."""
    from components.config import load_params
    from components.profile_pipeline import PATH_KEYS, pipeline_path, profile_pipeline, render

    base = load_params(root / "params.yaml")
    raw = yaml.safe_load((root / "params.yaml").read_text())
    for key in set(PATH_KEYS) - {"train.base_dir", "evaluate.canaries"}:  # shared inputs stay
        section, name = key.split(".")
        raw.setdefault(section, {})[name] = _moved(str(getattr(getattr(base, section), name)))
    raw["register"]["store"] = ".emosafe/registry-alt"
    (root / "configs" / "alt").mkdir(parents=True)
    (root / ALT).write_text(yaml.safe_dump(raw, sort_keys=False))
    main = yaml.safe_load((root / "dvc.yaml").read_text())
    (root / pipeline_path(ALT)).write_text(render(profile_pipeline(main, base, load_params(root / ALT), ALT), ALT))
    return ALT


def test_a_profile_runs_and_records_in_its_own_pipeline(
    harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.pipeline import pipeline

    root = make_project(tmp_path / "emosafe", tiny_model=False)
    profile = _alt_profile(root)
    calls, _ = _install_fakes(root, monkeypatch)
    converted_with: list[str] = []
    convert_module = importlib.import_module("components.stages.convert")
    fake_convert = convert_module.convert

    def convert(params: Any, *args: Any) -> Any:
        converted_with.append(params.register.store)
        return fake_convert(params, *args)

    monkeypatch.setattr(convert_module, "convert", convert)
    first = pipeline(profile, str(root))
    assert {s.split("@")[0] for s in first["ran"]} == set(STAGE_MODULES)
    # The shared convert stage ran with params.yaml, as `dvc repro` would, not with the profile's params.
    from components.config import load_params

    default_store, profile_store = (load_params(root / f).register.store for f in ("params.yaml", ALT))
    assert converted_with == [default_store] and default_store != profile_store
    own = yaml.safe_load((root / "configs" / "alt" / "dvc.lock").read_text())["stages"]
    assert {"prepare", "train@tiny-trinary", "evaluate", "ship"} <= set(own) and "convert" not in own
    # The shared base models are the default pipeline's convert stage, recorded where that pipeline keeps it.
    assert set(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == {"convert"}
    assert "up to date" in dvc(root, "status", "configs/alt/dvc.yaml")
    assert set(first["data"]) == {"data/prepared-alt/dataset.parquet", "data/augmented-alt/dataset.parquet"}
    calls.clear()
    second = pipeline(profile, str(root))
    assert second["ran"] == [] and not calls
    assert "prepare:" in dvc(root, "status", "dvc.yaml")  # the default pipeline itself never ran: still stale


def test_a_profile_without_its_own_pipeline_is_refused(tmp_path: Path) -> None:
    from components.errors import ConfigError
    from flows.common import pipeline_file

    (tmp_path / "configs").mkdir()
    assert pipeline_file("params.yaml", str(tmp_path)) == "dvc.yaml"
    with pytest.raises(ConfigError, match=re.escape("emosafe pipeline-file --params configs/paper.yaml")):
        pipeline_file("configs/paper.yaml", str(tmp_path))


def test_flagged_reevaluation_emits_the_event_the_retrain_trigger_expects(
    harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.reevaluate as module

    stage = types.ModuleType("components.stages.reevaluate")
    outcomes = iter([("unsafe_recall",), ()])
    stage.reevaluate = lambda params, root, feedback, ref: types.SimpleNamespace(  # type: ignore[attr-defined]
        flagged=next(outcomes), summary={"rows": 40, "feedback": feedback.name}
    )
    monkeypatch.setattr(module, "reevaluate_stage", stage)
    emitted: list[dict[str, Any]] = []
    monkeypatch.setattr(module, "emit_event", lambda **event: emitted.append(event))
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"prepare": {"sources": [{"name": "s", "kind": "emosafe", "path": "s.jsonl"}]}})
    )
    skipped = module.reevaluate_flow("feedback.jsonl", "emosafe-trinary@production", "params.yaml", str(tmp_path))
    assert skipped["flagged"] is False and "no labelled feedback" in skipped["skipped"] and not emitted
    (tmp_path / "feedback.jsonl").write_text("{}\n")  # the stage is replaced: only its presence matters here
    flagged = module.reevaluate_flow("feedback.jsonl", "emosafe-trinary@production", "params.yaml", str(tmp_path))
    assert flagged["flagged"] == ("unsafe_recall",) and len(emitted) == 1
    assert emitted[0]["event"] == module.FLAGGED_EVENT and emitted[0]["payload"]["summary"]["rows"] == 40
    module.reevaluate_flow("feedback.jsonl", "emosafe-trinary@production", "params.yaml", str(tmp_path))
    assert len(emitted) == 1  # not flagged: no event


def _adapters(root: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return {
        task: load_file(root / "models" / f"tiny-{task}" / "adapter" / "adapter_model.safetensors")
        for task in ("trinary", "taxonomy")
    }


def test_a_dask_cluster_trains_the_ladder_on_its_workers_with_the_sequential_results(
    harness: None, tmp_path: Path
) -> None:
    """`--cluster tcp://...`: each (model, task) training is submitted to an existing Dask cluster, runs on its
    worker processes, and gives the adapters the sequential run gives (same seeds)."""
    import torch
    from distributed import Client, LocalCluster, get_task_stream

    from flows.engine import task_runner
    from flows.train import train_flow

    sequential, spread = tmp_path / "sequential", tmp_path / "spread"
    for root in (sequential, spread):
        tiny_llama_folder(root / "tiny-llama")
        write_project(root, {"tiny": {"family": "llama", "source": "tiny-llama", "convert": True}}, hyper={"epochs": 1})
    train_flow("params.yaml", str(sequential))
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
    ):
        runner = task_runner(cluster.scheduler_address)
        runs = train_flow.with_options(task_runner=runner)("params.yaml", str(spread))  # type: ignore[arg-type]
        workers = set(client.scheduler_info()["workers"])
    assert [r.stage for r in runs] == ["train@tiny-trinary", "train@tiny-taxonomy"] and all(r.ran for r in runs)
    ran_on = {task["worker"] for task in stream.data}
    assert len(stream.data) >= 2 and ran_on <= workers  # the trainings ran on the cluster's worker processes
    spans = sorted(
        ((s["start"], s["stop"]) for t in stream.data for s in t["startstops"] if s["action"] == "compute"),
        key=lambda span: span[1] - span[0],
    )[-2:]  # the two trainings
    assert max(start for start, _ in spans) < min(stop for _, stop in spans)  # both were in flight at once
    for task, weights in _adapters(spread).items():
        expected = _adapters(sequential)[task]
        assert weights.keys() == expected.keys()
        for name, tensor in weights.items():
            torch.testing.assert_close(tensor, expected[name], atol=1e-5, rtol=1e-4, msg=f"{task} {name}")


def _lock_md5(root: Path, path: str) -> str:
    for entry in yaml.safe_load((root / "dvc.lock").read_text())["stages"].values():
        for out in entry.get("outs", []):
            if out["path"] == path:
                return str(out["md5"])
    raise AssertionError(f"{path} not in dvc.lock")


def _live_versions(root: Path) -> dict[str, list[int]]:
    """Registered versions per model that are not withdrawn (what a rollback must restore)."""
    from components.config import load_params
    from registry.core import open_registry

    registry = open_registry(load_params(root / "params.yaml").register, root)
    names = sorted({r.name for r in registry.meta.list_versions()})
    return {
        n: [r.version for r in registry.meta.list_versions(n) if r.version not in registry.meta.withdrawn(n)]
        for n in names
    }


@pytest.mark.slow
def test_real_stages_second_run_trains_nothing_and_failure_rolls_the_registry_back(
    harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.pipeline import pipeline

    root = make_project(tmp_path / "emosafe")
    first = pipeline("params.yaml", str(root))
    assert {s.split("@")[0] for s in first["ran"]} == set(STAGE_MODULES)
    shipped = _live_versions(root)
    assert shipped.get("emosafe-trinary"), shipped  # register and ship each created a version
    second = pipeline("params.yaml", str(root))
    assert second["ran"] == [] and _live_versions(root) == shipped
    lock = (root / "dvc.lock").read_bytes()
    assert "Running stage" not in dvc(root, "repro") and (root / "dvc.lock").read_bytes() == lock  # as repro wrote it

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["profiles"]["cpu"]["hyper"]["seed"] = 99  # a new model: register creates a version
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    import components.stages.export as export_stage

    monkeypatch.setattr(export_stage, "export_all", _fake("export", root, [], Counter(), {"export"}))
    state = pipeline("params.yaml", str(root), return_state=True)
    assert state.is_failed()
    assert _live_versions(root) == shipped  # the version registered before the failure is withdrawn
    assert "register" in dvc(root, "status")  # and dvc.lock no longer records it: the next run registers again
