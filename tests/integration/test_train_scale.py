"""Scale paths on tiny models: 2-process DDP (gloo) under `accelerate launch`, QLoRA on CPU, the paper ladder's
architectures (1 layer each, on the meta device), W&B offline runs, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file

from components.config import load_params
from tests.fixtures.common import REPO, VENV_BIN
from tests.fixtures.tiny_training import CANARY, tiny_llama_folder, write_project
from tests.fixtures.wandb_files import history_rows

TINY = {"tiny": {"family": "llama", "source": "tiny-llama"}}
NO_DROPOUT = {"lora": {"dropout": 0.0}, "hardware": {"num_threads": 1, "checkpoint_every": 100}}


def test_two_process_ddp_matches_single_process(tmp_path: Path) -> None:
    """Each rank takes half of every global batch and DDP averages gradients: same adapter within float noise."""
    from components.stages.train import train

    single, double = tmp_path / "single", tmp_path / "double"
    for root in (single, double):
        tiny_llama_folder(root / "tiny-llama")
        write_project(root, TINY, **NO_DROPOUT)
    train(load_params(single / "params.yaml"), "tiny", "trinary", single)
    cmd = [
        str(VENV_BIN / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "components",
        "train",
        "--model",
        "tiny",
        "--task",
        "trinary",
    ]
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=double, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 process(es) on cpu" in result.stderr and "MULTI_CPU" in result.stderr
    expected = load_file(single / "models" / "tiny-trinary" / "adapter" / "adapter_model.safetensors")
    got = load_file(double / "models" / "tiny-trinary" / "adapter" / "adapter_model.safetensors")
    assert expected.keys() == got.keys()
    for name in expected:
        assert (expected[name] - got[name]).abs().max() < 1e-4, name


def test_qlora_4bit_steps_on_cpu(tmp_path: Path) -> None:
    """bitsandbytes NF4 base + prepare_model_for_kbit_training + LoRA: a few steps run and the adapter moves."""
    from components.stages.train import train

    tiny_llama_folder(tmp_path / "tiny-llama", hidden_size=64)  # NF4 blocks need rows of >= 64 values
    quantized = {"tiny": {"family": "llama", "source": "tiny-llama", "quantization": "4bit"}}
    params = load_params(write_project(tmp_path, quantized, hyper={"epochs": 1, "max_steps": 2}))
    train(params, "tiny", "trinary", tmp_path)
    adapter = load_file(tmp_path / "models" / "tiny-trinary" / "adapter" / "adapter_model.safetensors")
    assert any("lora_B" in name and float(t.abs().sum()) > 0 for name, t in adapter.items())
    meta = json.loads((tmp_path / "models" / "tiny-trinary" / "meta.json").read_text())
    assert meta["params"]["spec"]["quantization"] == "4bit"


def test_quantization_configs_are_nf4_double_quant_and_int8() -> None:
    from components.training.finetune import quantization_config

    nf4 = quantization_config("4bit", on_cuda=True)
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4" and nf4.bnb_4bit_use_double_quant
    assert str(nf4.bnb_4bit_compute_dtype) == "torch.bfloat16"
    assert quantization_config("8bit", on_cuda=True).load_in_8bit
    assert quantization_config("none", on_cuda=True) is None


def test_paper_profile_loads_and_pins_every_model() -> None:
    params = load_params(REPO / "configs" / "paper.yaml")
    assert params.train.profile == "paper" and "cpu" in params.train.profiles
    models = params.train.active.models
    for name in ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b"):
        assert models[name].source.startswith("meta-llama/") and models[name].source.endswith("-Instruct")
        assert models[name].revision and len(models[name].revision) == 40
    assert models["llama-3.1-8b"].quantization == models["llama-3.1-70b"].quantization == "4bit"
    accelerate_config = REPO / str(params.train.active.hardware.accelerate_config)
    import yaml

    assert yaml.safe_load(accelerate_config.read_text())["distributed_type"] == "FSDP"


@pytest.mark.parametrize("name", ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b"])
def test_paper_architecture_with_one_layer_runs_the_lora_code_path(name: str) -> None:
    """The real shapes (hidden, heads, GQA, vocab 128256) on the meta device: no memory, same add_lora path."""
    import torch
    from transformers import LlamaForSequenceClassification

    from components.models import PAPER_LLAMA_SHAPES, paper_llama_config
    from components.training.finetune import add_lora

    profile = load_params(REPO / "configs" / "paper.yaml").train.active
    spec = profile.models[name].model_copy(update={"quantization": "none"})  # bitsandbytes cannot quantize meta
    config = paper_llama_config(name, num_hidden_layers=1, num_labels=6, pad_token_id=128004)
    with torch.device("meta"):
        model = add_lora(LlamaForSequenceClassification(config), spec, profile.for_model(name).lora)
        logits = model(input_ids=torch.randint(0, 1000, (2, 9))).logits
    assert logits.shape == (2, 6)
    logits.float().sum().backward()
    shape = PAPER_LLAMA_SHAPES[name]
    h, i, d = shape["hidden_size"], shape["intermediate_size"], shape["head_dim"]
    q, kv = shape["num_attention_heads"] * d, shape["num_key_value_heads"] * d
    dims = {
        "q_proj": (h, q),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (q, h),
        "gate_proj": (h, i),
        "up_proj": (h, i),
        "down_proj": (i, h),
    }
    lora = sum(profile.lora.r * (a + b) for a, b in (dims[m] for m in profile.lora.target_modules))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == lora + 6 * h  # adapters of the single layer + the full score head


def test_wandb_offline_run_has_metrics_table_confusion_and_artifact(tmp_path: Path) -> None:
    from components.stages.train import train

    os.environ["WANDB_DATA_DIR"] = str(tmp_path / "wandb-data")
    os.environ["WANDB_CACHE_DIR"] = str(tmp_path / "wandb-cache")
    tiny_llama_folder(tmp_path / "tiny-llama")
    params = load_params(write_project(tmp_path, TINY, wandb={"enabled": True, "dir": "runs"}))
    train(params, "tiny", "taxonomy", tmp_path)
    runs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    tables = {p.name.split("_1")[0] for p in (runs[0] / "files" / "media" / "table" / "final").glob("*.table.json")}
    assert tables == {"per_category", "confusion_matrix"}
    per_category = next((runs[0] / "files" / "media" / "table" / "final").glob("per_category*.json"))
    assert len(json.loads(per_category.read_text())["data"]) == 6
    log = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert b"adapter_model.safetensors" in log and b"val/macro_f1" in log
    assert CANARY.encode() not in log
    # One history row per training step, on its own axis: the curve once vanished because W&B dropped every row
    # whose step went back behind the epoch rows logged first.
    curve = json.loads((tmp_path / "models" / "tiny-taxonomy" / "curve.json").read_text())["train"]
    rows = history_rows(next(runs[0].glob("run-*.wandb")))
    logged = [(r["train/step"], r["train/loss"]) for r in rows if "train/loss" in r]
    assert logged == [(p["step"], pytest.approx(p["loss"])) for p in curve] and len(curve) >= 2
    assert any("val/macro_f1" in r and "train/step" in r for r in rows)
    meta = json.loads((tmp_path / "models" / "tiny-taxonomy" / "meta.json").read_text())
    assert meta["wandb"]["mode"] == "offline" and meta["wandb"]["run_id"] in runs[0].name


def test_cli_train_rejects_an_unknown_model_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from components.cli import main

    write_project(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["emosafe", "train", "--model", "nope", "--task", "trinary"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "model 'nope' is not in profile 'tiny'" in err and "Traceback" not in err


def test_train_flow_tasks_wrap_the_stage_functions(tmp_path: Path) -> None:
    from flows.train import convert_task, train_task

    tiny_llama_folder(tmp_path / "tiny-llama")
    write_project(tmp_path, {"tiny": {"family": "llama", "source": "tiny-llama", "convert": True}}, hyper={"epochs": 1})
    assert convert_task.fn(load_params(tmp_path / "params.yaml"), str(tmp_path)).summary == [
        "tiny"
    ]  # no dvc.yaml here: always runs
    assert (tmp_path / "models" / "base" / "tiny" / "meta.json").is_file()
    summary = train_task.fn(load_params(tmp_path / "params.yaml"), "tiny", "taxonomy", str(tmp_path)).summary
    assert summary.startswith("train tiny-taxonomy: 7 steps")
    meta = json.loads((tmp_path / "models" / "tiny-taxonomy" / "meta.json").read_text())
    assert meta["base_model"]["folder"].endswith("models/base/tiny")


def test_merged_weights_give_the_adapter_s_logits(tmp_path: Path) -> None:
    """`save_merged: true` folds LoRA into full weights (for export); merged logits equal base + adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    from components.stages.train import train

    tiny_llama_folder(tmp_path / "tiny-llama")
    params = load_params(write_project(tmp_path, TINY, hyper={"epochs": 1}, save_merged=True))
    train(params, "tiny", "trinary", tmp_path)
    folder = tmp_path / "models" / "tiny-trinary"
    tokenizer = AutoTokenizer.from_pretrained(folder / "adapter")
    batch = tokenizer(["a calm day", "I feel unsafe tonight"], return_tensors="pt", padding=True)
    merged = LlamaForSequenceClassification.from_pretrained(folder / "merged").eval()
    base = LlamaForSequenceClassification.from_pretrained(
        tmp_path / "tiny-llama", num_labels=3, pad_token_id=tokenizer.pad_token_id
    )
    adapted = PeftModel.from_pretrained(base, folder / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(merged(**batch).logits, adapted(**batch).logits, atol=1e-5)
