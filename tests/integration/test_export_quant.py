"""The int8 recipe against the gate: a deliberately damaging quantization is written, flagged and refused.

A tiny LLaMA gets the SmolLM2 failure planted on purpose: a few ``up_proj`` output channels scaled up, so the
``down_proj`` input carries activation outliers (the real model's reach ~3000 against ~2 typical). The export
stage runs for real with per-tensor dynamic quantization (the too-aggressive setting): it must still write the
bundle, with ``passed: false``, and the promotion gate must refuse it with a ``quantized`` reason. The same fp32
file quantized with per-channel ``dynamic`` and the outlier nodes excluded (recorded) passes
the check and the gate's quantized rule (tests/integration/test_export.py shows per-channel dynamic passing on the
unplanted model).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.config import parse_params
from components.export.bundle import label_map
from tests.fixtures import export_runs as fx
from tests.fixtures.registry_runs import BOUND

DAMAGING = {"method": "dynamic", "per_channel": False, "reduce_range": True, "smooth_alpha": None}
OUTLIER_SCALE = 1000.0


def plant_outliers(base: Path) -> None:
    """Scale 3 output channels of every up_proj by OUTLIER_SCALE and the matching down_proj input columns by its
    inverse: the fp32 function is unchanged, but the down_proj inputs now carry outliers (as in SmolLM2)."""
    from safetensors.torch import load_file, save_file

    path = base / "model.safetensors"
    weights = load_file(str(path))
    for name, tensor in weights.items():
        if name.endswith("mlp.up_proj.weight"):
            tensor[:3] *= OUTLIER_SCALE
        if name.endswith("mlp.down_proj.weight"):
            tensor[:, :3] /= OUTLIER_SCALE
    save_file(weights, str(path), metadata={"format": "pt"})


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from components.stages.export import export

    root = tmp_path_factory.mktemp("quant")
    fx.tiny_run(root, fx.save_tokenizer(root / "tokenizer"), decisive=True)
    plant_outliers(root / "models" / "base" / "tiny")
    fx.tiny_dataset(root / "data" / "dataset.parquet")
    params = parse_params(fx.params_dict(quantize=DAMAGING))
    return root, export(params, Path("models/tiny-trinary"), root=root)


def _gate(report: dict[str, Any]) -> Any:
    from components.config.register import GateConfig
    from components.release.promotion import Evidence, decide_promotion
    from components.release.scorecard import scorecard_from_dict

    card = scorecard_from_dict(report, origin="quantization.json")
    decision = decide_promotion(Evidence(1, "m", card.data_hash, card, BOUND), None, GateConfig(floor_on="point"))
    return decision, next(c for c in decision.checks if c.name == "quantized")


def test_damaging_quantization_is_written_flagged_and_refused_by_the_gate(damaged: Any) -> None:
    _, outcome = damaged
    report = json.loads((outcome.folder / "quantization.json").read_text())
    assert (outcome.folder / "model_int8.onnx").is_file() and (outcome.folder / "manifest.json").is_file()
    assert report["passed"] is False and report["comparison"]["problems"]
    assert report["label_agreement"] < 0.9  # real damage, not float noise (at most 1 flip is allowed)
    assert report["quantization"]["settings"]["method"] == "dynamic"
    assert report["quantization"]["quantized_nodes"].get("MatMulInteger", 0) > 0
    decision, quantized = _gate(report)
    assert not decision.promote and not quantized.passed and "label agreement" in quantized.detail
    assert quantized.detail in decision.reasons


def test_per_channel_dynamic_with_the_outliers_excluded_passes(damaged: Any, tmp_path: Path) -> None:
    from components.export.runtime import OnnxPredictor
    from components.stages.export import quantize_and_check

    root, outcome = damaged
    folder = shutil.copytree(outcome.folder, tmp_path / "bundle")
    fix = {"method": "dynamic", "exclude_modules": ["model.layers.*.mlp.down_proj"], "exclude_reason": "outliers"}
    fix |= {"smooth_alpha": None}
    params = parse_params(fx.params_dict(quantize=fix))
    frame = pd.read_parquet(root / "data" / "dataset.parquet")
    fp32 = OnnxPredictor(folder, "fp32", verify=False)
    report = quantize_and_check(params.export, params.evaluate, folder, frame, label_map("trinary", 32), fp32)
    assert report["passed"] and report["label_agreement"] >= 0.99, report["comparison"]["problems"]
    assert report["quantization"]["settings"]["method"] == "dynamic"
    assert report["quantization"]["quantized_nodes"].get("MatMulInteger", 0) > 0
    assert len(report["quantization"]["excluded_nodes"]) == 2 and report["quantization"]["excluded_reason"]
    _, quantized = _gate(report | {"data_hash": "d" * 64})
    assert quantized.passed


def test_exclude_modules_resolve_to_node_names_and_are_recorded(damaged: Any, tmp_path: Path) -> None:
    from components.config.export import QuantizeConfig
    from components.export.onnx import node_modules, quantize_int8

    _, outcome = damaged
    source = outcome.folder / "model_fp32.onnx"
    modules = node_modules(source)
    down = sorted(n for n, m in modules.items() if m.endswith("mlp.down_proj"))
    assert len(down) == 2 and modules["node_embedding"] == "model.embed_tokens"  # 2 layers
    patterns = ("model.layers.*.mlp.down_proj", "nothing.*")
    settings = QuantizeConfig(method="block8", exclude_modules=patterns, exclude_reason="test", smooth_alpha=None)
    info = quantize_int8(source, tmp_path / "int8.onnx", settings, 2_000_000_000)
    assert list(info.excluded_nodes) == down and info.unmatched == ("nothing.*",)
    assert info.quantized_nodes["MatMulNBits"] == sum(1 for m in modules.values() if "proj" in m or "score" in m) - 2
    with pytest.raises(ValueError, match="exclude_reason"):
        QuantizeConfig(exclude_modules=("x",))


def test_smoothing_before_export_keeps_parity_and_tames_the_planted_outliers(damaged: Any, tmp_path: Path) -> None:
    """``smooth_alpha``: the stage rescales the MLPs before the fp32 export; parity (against the torch logits taken
    before smoothing) still passes, the smoothing is recorded, and the same damaging int8 setting loses less."""
    from components.stages.export import export

    root, outcome = damaged
    project = shutil.copytree(root, tmp_path / "project", ignore=shutil.ignore_patterns("exports"))
    params = parse_params(fx.params_dict(quantize=DAMAGING | {"smooth_alpha": 0.5}))
    smoothed = export(params, Path("models/tiny-trinary"), root=project)
    report = json.loads((smoothed.folder / "quantization.json").read_text())
    parity = json.loads((smoothed.folder / "parity.json").read_text())
    damaged_report = json.loads((outcome.folder / "quantization.json").read_text())
    assert parity["passed"] and parity["max_abs_diff"] <= 1e-4
    record = report["quantization"]["smoothing"]
    assert record["alpha"] == 0.5 and record["layers"] == 2 and record["calibration_messages"] > 0
    assert record["max_activation_after"] < record["max_activation_before"] / 20
    assert report["label_agreement"] > damaged_report["label_agreement"]
    assert damaged_report["quantization"]["smoothing"] is None


def test_per_tensor_dynamic_fails_where_per_token_with_the_outlier_split_passes(damaged: Any, tmp_path: Path) -> None:
    """The issue's before/after on one fp32 file: per-tensor dynamic int8 fails the check (the fixture's export);
    ``per_token_split`` calibrates on train, splits off exactly the planted channels of every down_proj input, and
    passes the same check and the gate's quantized rule."""
    from components.export.runtime import OnnxPredictor
    from components.stages.export import quantize_and_check

    root, outcome = damaged
    before = json.loads((outcome.folder / "quantization.json").read_text())
    assert before["passed"] is False and before["quantization"]["settings"]["method"] == "dynamic"
    folder = shutil.copytree(outcome.folder, tmp_path / "bundle")
    params = parse_params(fx.params_dict(quantize={"method": "per_token_split", "smooth_alpha": 0.5}))
    frame = pd.read_parquet(root / "data" / "dataset.parquet")
    fp32 = OnnxPredictor(folder, "fp32", verify=False)
    after = quantize_and_check(params.export, params.evaluate, folder, frame, label_map("trinary", 32), fp32)
    assert after["passed"] and after["label_agreement"] >= 0.99, after["comparison"]["problems"]
    assert after["label_agreement"] > before["label_agreement"]
    record = after["quantization"]["activations"]
    split = record["calibration"]["by_module"]
    assert {m for m in split if m.endswith("mlp.down_proj")} == {f"model.layers.{i}.mlp.down_proj" for i in (0, 1)}
    assert all(split[f"model.layers.{i}.mlp.down_proj"]["channels"][:3] == [0, 1, 2] for i in (0, 1))
    assert record["calibration"]["messages"] == int((frame["split"] == "train").sum())  # train only, never val/test
    assert after["quantization"]["quantized_nodes"]["MatMulIntegerToFloat"] == record["activations_quantized"]
    _, quantized = _gate(after | {"data_hash": "d" * 64})
    assert quantized.passed
