"""Training on tiny models: both tasks, both families, outputs and provenance, no raw text, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from components.config import load_params
from components.errors import EmosafeError
from tests.fixtures.common import VENV_BIN
from tests.fixtures.tiny_training import CANARY, tiny_bert_folder, tiny_llama_folder, write_project

MODELS = {"tiny": {"family": "llama", "source": "tiny-llama"}, "bert": {"family": "bert", "source": "tiny-bert"}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from components.stages.train import train

    root = tmp_path_factory.mktemp("train")
    tiny_llama_folder(root / "tiny-llama")
    tiny_bert_folder(root / "tiny-bert")
    params = load_params(write_project(root, MODELS))
    for model in MODELS:
        for task in ("trinary", "taxonomy"):
            train(params, model, task, root)
    return root


@pytest.mark.parametrize("run", ["tiny-trinary", "tiny-taxonomy", "bert-trinary", "bert-taxonomy"])
def test_every_run_writes_adapter_head_curve_and_provenance(trained: Path, run: str) -> None:
    folder = trained / "models" / run
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()
    assert (folder / "adapter" / "adapter_config.json").is_file()
    head = load_file(folder / "head.safetensors")
    n_labels = 3 if run.endswith("trinary") else 6
    assert any(t.shape[0] == n_labels for t in head.values()), list(head)
    meta = json.loads((folder / "meta.json").read_text())
    assert len(meta["data_hash"]) == 64 and meta["seed"] == 7
    assert meta["base_model"]["source"] in {"tiny-llama", "tiny-bert"}
    assert meta["code"]["code_hash"] and meta["params"]["lora"]["r"] == 4
    assert meta["rows"] == {"train": 60, "val": 30}
    labels = json.loads((folder / "labels.json").read_text())
    assert len(labels["labels"]) == n_labels and labels["multi_label"] == run.endswith("taxonomy")
    curve = json.loads((folder / "curve.json").read_text())
    assert len(curve["train"]) == 14 and [e["epoch"] for e in curve["val"]] == [1, 2]
    assert (folder / "curve.png").stat().st_size > 1000
    assert not (trained / "models" / ".checkpoints" / run).exists(), "checkpoints are removed after success"


def test_trained_adapter_changes_predictions_and_reloads(trained: Path) -> None:
    """The saved adapter reloads onto the base and reproduces the trained head (not a stub)."""
    import torch
    from peft import PeftModel
    from transformers import LlamaForSequenceClassification

    folder = trained / "models" / "tiny-trinary" / "adapter"
    base = LlamaForSequenceClassification.from_pretrained(trained / "tiny-llama", num_labels=3, pad_token_id=0)
    model = PeftModel.from_pretrained(base, folder)
    saved = load_file(trained / "models" / "tiny-trinary" / "head.safetensors")
    loaded = dict(model.named_parameters())
    for name, tensor in saved.items():
        assert torch.equal(loaded[name].detach(), tensor), name
    lora = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora and any(float(p.abs().sum()) > 0 for p in lora), "LoRA B starts at zero: training must move it"


def test_no_raw_text_in_any_output(trained: Path) -> None:
    for path in (trained / "models").rglob("*"):
        if path.is_file() and path.suffix in {".json", ".md", ".txt"}:
            assert CANARY not in path.read_text(errors="ignore"), path


def test_checkpoints_hold_no_pickle(tmp_path: Path) -> None:
    import torch

    from components.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    path = save_checkpoint(tmp_path, 1, dict(model.named_parameters()), optimizer, scheduler, "fp")
    assert sorted(p.suffix for p in path.iterdir()) == [".json", ".safetensors", ".safetensors", ".safetensors"]
    (tmp_path / ".step-2.half").mkdir()  # a killed write leaves only a temp folder: ignored
    assert latest_checkpoint(tmp_path, "other") is None
    found = latest_checkpoint(tmp_path, "fp")
    assert found is not None and found.step == 1
    expected = torch.rand(1)
    fresh = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda step: 1.0)
    assert load_checkpoint(found, fresh, opt2, sched2)[0] == 1
    assert torch.equal(fresh.weight, model.weight)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.rand(1), expected), "the torch RNG state is restored"


def test_unknown_model_or_missing_input_is_a_user_error(trained: Path, tmp_path: Path) -> None:
    from components.stages.train import train

    params = load_params(trained / "params.yaml")
    with pytest.raises(EmosafeError, match="not in profile 'tiny'"):
        train(params, "nope", "trinary", trained)
    with pytest.raises(EmosafeError, match="training input not found"):
        train(params, "tiny", "trinary", tmp_path)


def _emosafe_train(root: Path, *extra: str) -> subprocess.Popen[str]:
    env = os.environ | {"PYTHONHASHSEED": "0"}
    cmd = [str(VENV_BIN / "emosafe"), "train", "--model", "tiny", "--task", "trinary", *extra]
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_kill_9_mid_training_then_rerun_resumes_to_the_same_adapter(tmp_path: Path) -> None:
    """Same adapter bit for bit: batches are a function of (seed, epoch) and every RNG (LoRA dropout) is restored."""
    import torch

    from components.stages.train import train

    long = {"hyper": {"epochs": 20}, "lora": {"dropout": 0.1}, "hardware": {"num_threads": 1, "checkpoint_every": 5}}
    reference = tmp_path / "reference"
    tiny_llama_folder(reference / "tiny-llama")
    train(load_params(write_project(reference, {"tiny": MODELS["tiny"]}, **long)), "tiny", "trinary", reference)

    root = tmp_path / "killed"
    tiny_llama_folder(root / "tiny-llama")
    write_project(root, {"tiny": MODELS["tiny"]}, **long)
    checkpoints = root / "models" / ".checkpoints" / "tiny-trinary"
    process = _emosafe_train(root)
    deadline = time.monotonic() + 120
    while not any(checkpoints.glob("step-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (root / "models" / "tiny-trinary").exists()

    rerun = _emosafe_train(root)
    output, _ = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, output
    assert "resuming from step" in output and "resumed from 0" not in output
    curve = json.loads((root / "models" / "tiny-trinary" / "curve.json").read_text())
    reference_curve = json.loads((reference / "models" / "tiny-trinary" / "curve.json").read_text())
    assert curve == reference_curve, "the resumed run's curve includes the steps before the kill"
    expected = load_file(reference / "models" / "tiny-trinary" / "adapter" / "adapter_model.safetensors")
    got = load_file(root / "models" / "tiny-trinary" / "adapter" / "adapter_model.safetensors")
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
