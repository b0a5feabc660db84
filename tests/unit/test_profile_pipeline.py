"""A params profile's own DVC pipeline (components/profile_pipeline.py): derived from dvc.yaml, kept current, and
refused when the profile would share or scatter outputs."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import Params, load_params, parse_params
from components.errors import ConfigError
from components.profile_pipeline import missing_params, pipeline_path, profile_pipeline, render
from components.provenance import stage_code_deps
from tests.fixtures.common import REPO, VENV_BIN

REAL = "configs/real/params.yaml"


def _main() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "dvc.yaml").read_text()))


def _raw(path: str) -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / path).read_text()))


def _profile(raw: dict[str, Any]) -> Params:
    return parse_params(raw, "profile")


def test_the_committed_real_pipeline_is_what_the_generator_writes() -> None:
    expected = render(
        profile_pipeline(_main(), load_params(REPO / "params.yaml"), load_params(REPO / REAL), REAL), REAL
    )
    assert (REPO / pipeline_path(REAL)).read_text() == expected, f"stale: run `emosafe pipeline-file --params {REAL}`"


def test_every_stage_runs_the_profile_on_its_own_paths() -> None:
    stages = yaml.safe_load((REPO / "configs/real/dvc.yaml").read_text())["stages"]
    main = _main()["stages"]
    assert "convert" not in stages  # the shared base models come from the default pipeline's convert stage
    assert set(stages) == (set(main) - {"convert"}) | {"holdout"}
    for name, stage in stages.items():
        assert stage["wdir"] == "../.." and f"--params {REAL}" in stage["cmd"], name
        assert [list(entry) for entry in stage["params"]] == [[REAL]], name
        # The same code deps as the default stage (holdout: its own closure): only data paths move.
        code = stage_code_deps(name) if name == "holdout" else main[name].get("deps", [])
        code = [d for d in code if str(d).startswith(("components/", "registry/"))]
        assert [d for d in stage.get("deps", []) if str(d).startswith(("components/", "registry/"))] == code, name
    assert "../shared/data/davidson_hate/labeled_data.csv" in stages["prepare"]["deps"]
    assert stages["train"]["outs"] == ["models-real/${item.model}-${item.task}"]
    assert "models/base/${item.model}" in stages["train"]["deps"]
    assert "exports-real/smollm2-15l-trinary" in stages["ship"]["deps"]  # the profile ships its largest rung
    holdout = stages["holdout"]
    assert holdout["matrix"] == {
        "model": ["smollm2-8l", "smollm2-15l", "minilm"],  # the 2-core ladder leaves out 30 layers
        "source": ["sample", "diasafety", "counsel_chat", "davidson"],
    }
    assert holdout["outs"] == [
        "models-real/holdout/without-${item.source}/${item.model}-trinary",
        {"reports/holdout-real/${item.model}-without-${item.source}.json": {"cache": False}},
    ]
    assert "reports/holdout-real" in stages["report"]["deps"]  # the scaling report waits for every holdout item


def test_the_real_profile_writes_every_params_key_its_stages_record() -> None:
    """DVC reads params from the file, not from the typed defaults: a key left out fails the commit after a run."""
    pipeline = profile_pipeline(_main(), load_params(REPO / "params.yaml"), load_params(REPO / REAL), REAL)
    assert missing_params(pipeline, _raw(REAL)) == []
    raw = _raw(REAL)
    del raw["train"]["save_merged"]
    assert missing_params(pipeline, raw) == ["train.save_merged"]


def test_a_profile_in_the_root_folder_is_refused() -> None:
    with pytest.raises(ConfigError, match="its own folder"):
        profile_pipeline(_main(), load_params(REPO / "params.yaml"), load_params(REPO / REAL), "real.yaml")


def test_a_folder_moved_to_two_places_is_refused() -> None:
    raw = _raw(REAL)
    raw["export"]["input"] = "data/augmented/dataset.parquet"  # the default's data, while train reads the profile's
    with pytest.raises(ConfigError, match=re.escape("export.input")):
        profile_pipeline(_main(), load_params(REPO / "params.yaml"), _profile(raw), REAL)


def test_outputs_shared_with_the_default_pipeline_are_refused() -> None:
    raw = _raw(REAL)
    raw["report"]["output_dir"] = "reports/scaling"
    with pytest.raises(ConfigError, match="reports/scaling/"):
        profile_pipeline(_main(), load_params(REPO / "params.yaml"), _profile(raw), REAL)


def test_shared_base_models_must_be_the_defaults() -> None:
    raw = copy.deepcopy(_raw(REAL))
    raw["train"]["profiles"]["cpu"]["models"]["smollm2-8l"]["num_layers"] = 9
    with pytest.raises(ConfigError, match="smollm2-8l"):
        profile_pipeline(_main(), load_params(REPO / "params.yaml"), _profile(raw), REAL)
    raw["train"]["base_dir"] = "models/base-real"  # its own base models: then it converts them itself
    own = profile_pipeline(_main(), load_params(REPO / "params.yaml"), _profile(raw), REAL)["stages"]
    assert own["convert"]["outs"] == ["models/base-real"]


def test_the_command_checks_and_writes() -> None:
    done = subprocess.run(
        [str(VENV_BIN / "emosafe"), "pipeline-file", "--params", REAL, "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "current" in done.stdout, done.stdout + done.stderr


def test_holdout_seeds_add_an_axis_whose_items_dvc_names_as_the_flow_does(tmp_path: Path) -> None:
    """With holdout.seeds every (rung, source) runs once per seed; the flow asks DVC for the item by name, so the
    name DVC gives a matrix item is checked with DVC itself."""
    from flows.train import holdout_target, holdouts

    raw = _raw(REAL)
    raw["holdout"]["seeds"] = [13, 14]
    raw["holdout"]["models"] = ["minilm"]
    profile = _profile(raw)
    holdout = profile_pipeline(_main(), load_params(REPO / "params.yaml"), profile, REAL)["stages"]["holdout"]
    assert holdout["matrix"]["seed"] == [13, 14] and holdout["cmd"].endswith("--seed ${item.seed}")
    assert holdout["outs"] == [
        "models-real/holdout/without-${item.source}/seed-${item.seed}/${item.model}-trinary",
        {"reports/holdout-real/${item.model}-without-${item.source}-seed${item.seed}.json": {"cache": False}},
    ]
    (tmp_path / "configs" / "real").mkdir(parents=True)
    (tmp_path / "configs" / "real" / "dvc.yaml").write_text(render({"stages": {"holdout": holdout}}, REAL))
    subprocess.run([str(VENV_BIN / "dvc"), "init", "--no-scm", "-q"], cwd=tmp_path, check=True, timeout=120)
    listed = subprocess.run(
        [str(VENV_BIN / "dvc"), "stage", "list", "--name-only", "-R", "configs/real"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    names = {line.split(":")[-1].strip() for line in listed.stdout.splitlines() if line.strip()}
    flow = {holdout_target(model, source, seed) for model, source, seed in holdouts(profile)}
    assert names == flow and "holdout@minilm-counsel_chat-14" in names
