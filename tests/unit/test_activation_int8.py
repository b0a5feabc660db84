"""The per-token int8 rewrite on small hand-built graphs (components/export/activation_int8.py): numbers against the
fp32 graph, not node counts alone. The tiny-LLaMA end-to-end checks are in tests/integration/test_export_quant.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from components.export import activation_int8 as ai  # noqa: E402

K, N, HIDDEN = 32, 24, 48
OUTLIERS = (3, 17)  # input channels of the "down" MatMul made ~1000x larger than the rest
THRESHOLD = 2000.0  # between the down input's ordinary peaks (~10^2) and the planted ones (~10^4-10^5)


def _block(path: Path, external: bool = False, seed: int = 0, planted: bool = True) -> Path:
    """A LLaMA-block-shaped graph: ``h = x * g`` (the norm's weight), q/k/up read ``h`` (one shared input),
    ``m = q * up`` (down_proj's input, with planted outlier channels), ``y = m @ Wd``; a 3-output head reads y."""
    rng = np.random.default_rng(seed)
    up = rng.normal(size=(K, HIDDEN)).astype(np.float32)
    down = rng.normal(size=(HIDDEN, N)).astype(np.float32)
    if planted:
        up[:, list(OUTLIERS)] *= 1000.0  # the m channels these feed become outliers in every token
        down[list(OUTLIERS)] /= 1000.0  # ... and the function stays in range
    weights = {
        "g": rng.uniform(0.5, 2.0, size=K).astype(np.float32),
        "Wq": rng.normal(size=(K, HIDDEN)).astype(np.float32),
        "Wk": rng.normal(size=(K, 16)).astype(np.float32),
        "Wup": up,
        "Wd": down,
        "Whead": rng.normal(size=(N, 3)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Mul", ["x", "g"], ["h"], name="norm"),
        helper.make_node("MatMul", ["h", "Wq"], ["q"], name="q_proj"),
        helper.make_node("MatMul", ["h", "Wk"], ["k"], name="k_proj"),
        helper.make_node("MatMul", ["h", "Wup"], ["u"], name="up_proj"),
        helper.make_node("Mul", ["q", "u"], ["m"], name="gate"),
        helper.make_node("MatMul", ["m", "Wd"], ["y"], name="down_proj"),
        helper.make_node("MatMul", ["y", "Whead"], ["logits"], name="head"),
    ]
    graph = helper.make_graph(
        nodes,
        "block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", K])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("k", TensorProto.FLOAT, None),
        ],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, location=f"{path.name}.data", size_threshold=0)
    else:
        onnx.save_model(model, str(path))
    return path


def _run(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(["logits", "k"], session.run(["logits", "k"], {"x": x}), strict=True))


def _inputs(seed: int = 1, batch: int = 4, tokens: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, tokens, K)).astype(np.float32)


def _feeds(seed: int = 2) -> list[dict[str, np.ndarray]]:
    x = _inputs(seed, batch=8)
    return [{"x": x, "attention_mask": np.ones(x.shape[:2], np.int64)}]


def _error(path: Path, reference: Path, x: np.ndarray) -> float:
    got, want = _run(path, x)["logits"], _run(reference, x)["logits"]
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_calibration_finds_the_planted_channels_of_the_down_input_only(tmp_path: Path) -> None:
    source = _block(tmp_path / "fp32.onnx")
    found = ai.calibrate(source, _feeds(), threshold=THRESHOLD, max_channels=8)
    assert found.channels == {"h": (), "m": OUTLIERS}  # the head (3 outputs) is not quantized, so not calibrated
    assert found.messages == 8 and set(found.activation_peaks) == {"h", "m"}
    assert min(found.peaks["m"]) > 10 * float(np.delete(found.activation_peaks["m"], OUTLIERS).max())
    assert found.to_dict()["by_module"]["down_proj"]["channels"] == list(OUTLIERS)  # no module names: node name
    capped = ai.calibrate(source, _feeds(), threshold=THRESHOLD, max_channels=1)
    assert len(capped.channels["m"]) == 1 and capped.channels["m"][0] in OUTLIERS


def test_per_token_with_the_split_tracks_fp32_and_per_tensor_without_it_does_not(tmp_path: Path) -> None:
    source = _block(tmp_path / "fp32.onnx")
    found = ai.calibrate(source, _feeds(), threshold=THRESHOLD, max_channels=8)
    x = _inputs()
    split = ai.rewrite(source, tmp_path / "split.onnx", True, found.channels, found.activation_peaks, alpha=0.5)
    plain = ai.rewrite(source, tmp_path / "tensor.onnx", False)
    assert (split.matmuls, split.activations, split.split_tensors, split.smoothed_tensors) == (4, 2, 1, 2)
    assert plain.kept_fp32 == ("head",) and plain.split_tensors == 0
    assert _error(tmp_path / "split.onnx", source, x) < 0.02
    assert _error(tmp_path / "tensor.onnx", source, x) > 5 * _error(tmp_path / "split.onnx", source, x)
    assert (
        np.abs(_run(tmp_path / "split.onnx", x)["k"] - _run(source, x)["k"]).max()
        < 0.05 * np.abs(_run(source, x)["k"]).max()
    )


def test_shared_inputs_are_quantized_once_into_one_gemm_and_smoothing_is_folded(tmp_path: Path) -> None:
    source = _block(tmp_path / "fp32.onnx")
    found = ai.calibrate(source, _feeds(), threshold=THRESHOLD, max_channels=8)
    ai.rewrite(source, tmp_path / "int8.onnx", True, found.channels, found.activation_peaks, alpha=0.5)
    model = onnx.load(str(tmp_path / "int8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulIntegerToFloat") == 2  # q|k|up side by side, and down
    assert ops.count("QuantizeLinear") == 2 and ops.count("Split") == 1
    multiplies = [n for n in model.graph.node if n.op_type == "Mul" and n.input[0] in ("h", "m")]
    assert [n.input[1] for n in multiplies] == ["i8_1_mask"]  # only the split's mask: 1/s went into g and up_proj
    folded = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "g"))
    original = numpy_helper.to_array(next(t for t in onnx.load(str(source)).graph.initializer if t.name == "g"))
    assert not np.allclose(folded, original)  # the norm weight carries 1/s
    assert "Wq" not in {t.name for t in model.graph.initializer}  # the fp32 weights are gone


def test_a_message_gets_the_same_int8_scores_whatever_its_batch_neighbours(tmp_path: Path) -> None:
    """Per token, each message has its own scales; one scale per tensor lets a loud neighbour move a message."""
    source = _block(tmp_path / "fp32.onnx", planted=False)
    ai.rewrite(source, tmp_path / "token.onnx", True)
    ai.rewrite(source, tmp_path / "tensor.onnx", False)
    x = _inputs(batch=1)
    loud = np.concatenate([x, 20.0 * _inputs(seed=9, batch=1)])
    moved = {}
    for name in ("token.onnx", "tensor.onnx"):
        alone, together = _run(tmp_path / name, x)["logits"], _run(tmp_path / name, loud)["logits"][:1]
        moved[name] = float(np.abs(alone - together).max() / np.abs(alone).max())
    assert moved["token.onnx"] < 1e-5 and moved["tensor.onnx"] > 1e-2, moved


def test_embedding_rows_are_int8_with_one_scale_per_row(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = (rng.normal(size=(50, 8)) * rng.uniform(0.01, 10, size=(50, 1))).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "ids"], ["rows"], name="embed")],
        "embed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "t"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(table, "E")],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "e.onnx"))
    info = ai.rewrite(tmp_path / "e.onnx", tmp_path / "e8.onnx", True)
    ids = np.array([[0, 7, 49], [3, 3, 12]], np.int64)
    got = ort.InferenceSession(str(tmp_path / "e8.onnx"), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
    step = np.abs(table).max(axis=1) / 127
    assert info.gathers == 1 and np.all(np.abs(got - table[ids]) <= step[ids][..., None] / 2 + 1e-6)


def test_external_data_in_and_out(tmp_path: Path) -> None:
    """Sources over protobuf's limit carry their weights in a .data file: read tensor by tensor, written the same."""
    source = _block(tmp_path / "fp32.onnx", external=True)
    target = tmp_path / "out" / "int8.onnx"
    ai.rewrite(source, target, True, external=True)
    inline = ai.rewrite(_block(tmp_path / "inline.onnx"), tmp_path / "inline8.onnx", True)
    assert (target.parent / "int8.onnx.data").is_file()
    locations = {
        entry.value
        for tensor in onnx.load(str(target), load_external_data=False).graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    assert locations == {"int8.onnx.data"}  # nothing points back at the fp32 file
    assert inline.matmuls == 4
    x = _inputs()
    assert np.array_equal(_run(target, x)["logits"], _run(tmp_path / "inline8.onnx", x)["logits"])


def test_smoothing_factors_follow_smoothquant() -> None:
    peaks = np.array([4.0, 0.0, 100.0], np.float32)
    weights = np.array([1.0, 2.0, 0.25], np.float32)
    factors = ai.smoothing_factors(peaks, weights, 0.5)
    assert factors[1] == 1.0  # never active: left alone
    assert factors[0] == pytest.approx(2.0) and factors[2] == pytest.approx(20.0)


def test_excluded_and_narrow_matmuls_stay_fp32(tmp_path: Path) -> None:
    source = _block(tmp_path / "fp32.onnx")
    model: Any = onnx.load(str(source))
    assert [n.name for n in ai.quantizable(model)] == ["q_proj", "k_proj", "up_proj", "down_proj"]
    assert [n.name for n in ai.quantizable(model, excluded=("k_proj",))] == ["q_proj", "up_proj", "down_proj"]
    info = ai.rewrite(source, tmp_path / "int8.onnx", True, excluded=("down_proj",))
    assert set(info.kept_fp32) == {"down_proj", "head"} and info.matmuls == 3
