"""Real weights (slow): convert the SmolLM2 GGUF and MiniLM, reload fast, and train a few steps of the cpu ladder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from components.config import parse_params
from tests.fixtures.common import REPO
from tests.fixtures.tiny_training import tiny_frame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from components.stages.convert import convert

    root = tmp_path_factory.mktemp("real")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"]["input"] = "dataset.parquet"
    raw["train"]["wandb"]["enabled"] = False
    raw["train"]["profiles"]["cpu"]["hyper"]["max_steps"] = 3
    params = parse_params(raw)
    tiny_frame().to_parquet(root / "dataset.parquet", index=False)
    convert(params, root, names=["smollm2-8l", "minilm"])
    return root, params


def test_converted_cut_reloads_in_under_a_second_with_its_layer_count(converted: tuple[Path, object]) -> None:
    from transformers import LlamaForSequenceClassification

    root, _ = converted
    folder = root / "models" / "base" / "smollm2-8l"
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 8
    start = time.perf_counter()
    model = LlamaForSequenceClassification.from_pretrained(folder, num_labels=3)
    assert time.perf_counter() - start < 3.0  # well under a second on an idle machine; slack for a busy one
    assert 50e6 < sum(p.numel() for p in model.parameters()) < 60e6
    assert json.loads((folder / "meta.json").read_text())["source"]["gguf_file"].endswith(".gguf")


@pytest.mark.parametrize(("model", "task"), [("smollm2-8l", "trinary"), ("minilm", "taxonomy")])
def test_real_ladder_models_train_a_few_steps(converted: tuple[Path, object], model: str, task: str) -> None:
    from components.stages.train import train

    root, params = converted
    result = train(params, model, task, root)  # type: ignore[arg-type]
    assert result.metrics["steps"] == 3
    assert (root / "models" / f"{model}-{task}" / "adapter" / "adapter_model.safetensors").is_file()
