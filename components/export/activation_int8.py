"""int8 with activation scales per token and an outlier-channel split: a graph rewrite of the fp32 ONNX file.

Why not ``quantize_dynamic``: its ``DynamicQuantizeMatMul`` gives a whole activation tensor one scale, and the
``down_proj`` inputs of SmolLM2 carry a few channels near 3000 against about 2 elsewhere, so every other channel
rounds to zero (docs/export.md). Here each MatMul with a constant weight becomes standard ONNX ops plus onnxruntime's
contrib ``MatMulIntegerToFloat`` (the u8s8 QGEMM, VNNI/AMX where the CPU has them), which takes a scale per row of A:

* **per token**: ``s = max(|x|, last axis) / 127`` for every token, ``q = round(x / s) + 128`` (uint8, zero point
  128), ``y = MatMulIntegerToFloat(q, W8, s, w_scale)``. An outlier *token* no longer costs the others precision.
* **outlier split** (LLM.int8()-style): input channels whose calibration peak (max |x| over the real tokens of a
  few TRAIN messages) exceeds ``outlier_threshold`` are taken out (``Gather`` + an fp32 ``MatMul`` with those
  weight rows) and the rest is quantized with those channels zeroed. Outliers that sit in fixed channels of every
  token (where per-token scales cannot help) then no longer set the scale.

Weights are symmetric int8 with one scale per output channel, computed without the split rows. The token embedding
``Gather`` becomes an int8 table with one scale per row (``Gather`` int8 rows, ``Cast``, ``Mul`` by the gathered
row scale). Inputs read by several MatMuls (q/k/v, gate/up) are quantized once. MatMuls with fewer than
``MIN_OUTPUTS`` output channels (the classification head) stay fp32: nothing to gain, one more rounding.

Memory: the source is read tensor by tensor from its external data (never the whole fp32 file at once), so the
peak is about the int8 result plus the largest fp32 tensor (the 1B shape: ~1.3 GB + 1.05 GB), not the 3x of
``quantize_dynamic``. Calibration opens the fp32 file in onnxruntime once, before any of this.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from components.export.smoothing import smoothing_factors

#: MatMuls whose weight has fewer output channels stay fp32 (the classification head: 3 or 6 outputs).
MIN_OUTPUTS = 16
#: Smallest activation scale: an all-zero row (padding) would otherwise divide by zero.
EPSILON = 1e-8
ZERO_POINT = 128  # uint8 activations, symmetric around 128
ROWS_PER_STEP = 8192  # embedding rows quantized per step


@dataclass(frozen=True)
class Outliers:
    """Calibration: per activation tensor, the input channels split off, with their peaks (what quantization.json
    records) and the calibration's overall figures."""

    channels: dict[str, tuple[int, ...]]  # activation tensor name -> input channels kept fp32
    peaks: dict[str, tuple[float, ...]]  # the same channels' calibration peaks (max |x|)
    modules: dict[str, str]  # activation tensor name -> module path of one consumer (for the record)
    messages: int
    threshold: float
    activation_peaks: dict[str, NDArray[np.float32]] = field(default_factory=dict, repr=False)  # every channel

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "threshold": self.threshold,
            "tensors_split": len([c for c in self.channels.values() if c]),
            "channels_split": sum(len(c) for c in self.channels.values()),
            "by_module": {
                self.modules.get(name, name): {"channels": list(ch), "peaks": [round(p, 2) for p in self.peaks[name]]}
                for name, ch in sorted(self.channels.items())
                if ch
            },
        }


@dataclass(frozen=True)
class RewriteInfo:
    matmuls: int  # MatMuls now int8
    activations: int  # distinct activation tensors quantized (shared inputs once)
    split_tensors: int
    smoothed_tensors: int
    gathers: int
    kept_fp32: tuple[str, ...] = field(default=())  # constant-weight MatMuls left fp32 (excluded or too small)


def quantizable(model: Any, excluded: Sequence[str] = ()) -> list[Any]:
    """MatMul nodes whose second input is a 2-D float initializer with at least MIN_OUTPUTS columns, not excluded."""
    import onnx

    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    return _quantizable(list(model.graph.node), shapes, excluded)


def _quantizable(nodes: Sequence[Any], shapes: Mapping[str, tuple[int, ...]], excluded: Sequence[str]) -> list[Any]:
    return [
        node
        for node in nodes
        if node.op_type == "MatMul"
        and node.name not in excluded
        and len(shapes.get(node.input[1], ())) == 2
        and shapes[node.input[1]][1] >= MIN_OUTPUTS
    ]


def calibrate(
    source: Path,
    feeds: Sequence[Mapping[str, NDArray[Any]]],
    threshold: float,
    max_channels: int,
    excluded: Sequence[str] = (),
    modules: Mapping[str, str] | None = None,
) -> Outliers:
    """Run the fp32 file on ``feeds`` (``input_ids``/``attention_mask`` batches of TRAIN messages) and pick, per
    input of a quantizable MatMul, the channels whose peak over the real tokens exceeds ``threshold`` (at most
    ``max_channels``, the largest first)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(source), load_external_data=False)
    modules = modules or {}
    names: dict[str, str] = {}
    for node in quantizable(model, excluded):
        names.setdefault(node.input[0], modules.get(node.name) or node.name)
    known = {o.name for o in model.graph.output}
    for name in names:
        if name not in known:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    # The probe graph sits beside the source so its external-data locations resolve to the same file.
    handle, probe_name = tempfile.mkstemp(suffix=".onnx", prefix=".calibrate.", dir=source.parent)
    os.close(handle)
    probe = Path(probe_name)
    try:
        onnx.save(model, str(probe))
        options = ort.SessionOptions()
        options.add_session_config_entry("session.disable_prepacking", "1")  # no packed second copy of the weights
        session = ort.InferenceSession(str(probe), options, providers=["CPUExecutionProvider"])
    finally:
        probe.unlink(missing_ok=True)
    order = list(names)
    accepted = {i.name for i in session.get_inputs()}
    peaks: dict[str, NDArray[np.float32]] = {}
    messages = 0
    for feed in feeds:
        mask = np.asarray(feed["attention_mask"]).astype(bool)
        messages += int(mask.shape[0])
        inputs = {k: v for k, v in feed.items() if k in accepted}  # attention_mask may be only for masking
        for name, value in zip(order, session.run(order, inputs), strict=True):
            tokens = _real_tokens(value, mask)
            peak = np.abs(tokens).max(axis=0) if tokens.size else np.zeros(value.shape[-1], np.float32)
            peaks[name] = np.maximum(peaks[name], peak) if name in peaks else peak
    del session
    channels: dict[str, tuple[int, ...]] = {}
    chosen_peaks: dict[str, tuple[float, ...]] = {}
    for name, peak in peaks.items():
        over = np.flatnonzero(peak > threshold)
        top = over[np.argsort(-peak[over], kind="stable")][:max_channels]
        channels[name] = tuple(sorted(int(c) for c in top))
        chosen_peaks[name] = tuple(float(peak[c]) for c in channels[name])
    return Outliers(channels, chosen_peaks, names, messages, threshold, peaks)


def _real_tokens(value: NDArray[Any], mask: NDArray[np.bool_]) -> NDArray[np.float32]:
    """[tokens, channels] of an activation, padding dropped when it has the batch's [batch, sequence] layout."""
    if value.ndim == 3 and value.shape[:2] == mask.shape:
        return np.asarray(value[mask], np.float32)
    return np.asarray(value.reshape(-1, value.shape[-1]), np.float32)


def rewrite(
    source: Path,
    target: Path,
    per_token: bool,
    outliers: Mapping[str, Sequence[int]] | None = None,
    peaks: Mapping[str, NDArray[np.float32]] | None = None,
    alpha: float | None = None,
    excluded: Sequence[str] = (),
    quantize_gather: bool = True,
    external: bool = False,
) -> RewriteInfo:
    """Write ``target``: ``source`` with every quantizable MatMul int8 (see the module docstring) and, with
    ``quantize_gather``, the embedding Gather int8 per row. ``per_token``: one activation scale per token, else one
    per tensor. ``outliers``: activation tensor -> channels split off;
    ``peaks`` + ``alpha``: SmoothQuant factors per activation channel (both from ``calibrate``). ``external``:
    weights to ``<target>.data`` (sources over protobuf's 2 GB)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source), load_external_data=False)
    graph, base = model.graph, str(source.parent)
    outliers, peaks = outliers or {}, peaks or {}
    initializers = {t.name: t for t in graph.initializer}
    originals = list(graph.node)  # one wrapper per node: positions below are by identity of these objects
    position = {id(node): i for i, node in enumerate(originals)}
    consumers: dict[str, int] = {}
    for node in originals:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    shapes = {t.name: tuple(t.dims) for t in graph.initializer if t.data_type == TensorProto.FLOAT}
    targets = _quantizable(originals, shapes, excluded)
    new_nodes: dict[int, list[Any]] = {}  # index of the node replaced -> nodes in its place
    constants: list[Any] = [
        numpy_helper.from_array(np.array(1.0 / 127.0, np.float32), "i8_inv127"),
        numpy_helper.from_array(np.array(EPSILON, np.float32), "i8_eps"),
        numpy_helper.from_array(np.array(ZERO_POINT, np.uint8), "i8_zp"),
        numpy_helper.from_array(np.array([-1], np.int64), "i8_last_axis"),
        numpy_helper.from_array(np.array([-1], np.int64), "i8_flat"),
    ]
    replaced: set[str] = set()
    groups: dict[str, list[Any]] = {}  # activation -> its quantized readers, in graph order
    for node in targets:
        groups.setdefault(node.input[0], []).append(node)
    producers = {out: node for node in originals for out in node.output}
    plans = _plan_smoothing(groups, producers, consumers, initializers, base, outliers, peaks, alpha)
    column_scales = {p.fold_columns: p.smooth for p in plans.values() if p.fold_columns}
    folded_constants: dict[str, Any] = {}
    for plan in plans.values():
        if plan.fold_constant:  # the norm's weight absorbs 1/s: no extra pass over the activation at run time
            tensor = initializers[plan.fold_constant]
            folded = (_array(tensor, base) / plan.smooth).astype(np.float32)
            folded_constants[plan.fold_constant] = numpy_helper.from_array(folded, tensor.name)
    split = 0
    for g, (x, readers) in enumerate(groups.items()):
        prefix, plan = f"i8_{g}", plans[x]
        channels = list(plan.channels)
        block: list[Any] = []
        rest = x
        if channels:  # the split channels leave the int8 path (and its scale)
            split += 1
            mask = np.ones(plan.width, np.float32)
            mask[channels] = 0.0
            constants += [
                numpy_helper.from_array(mask, f"{prefix}_mask"),
                numpy_helper.from_array(np.array(channels, np.int64), f"{prefix}_outlier_idx"),
            ]
            rest = f"{prefix}_rest"
            block += [
                helper.make_node("Mul", [x, f"{prefix}_mask"], [rest], name=f"{prefix}_Mask"),
                helper.make_node(
                    "Gather", [x, f"{prefix}_outlier_idx"], [f"{prefix}_outliers"], name=f"{prefix}_Split", axis=-1
                ),
            ]
        quantize, zero_point, rows = _quantize_nodes(rest, prefix, per_token, plan.width)
        block += quantize
        constants += [rows] if rows is not None else []
        # One GEMM for all readers (q/k/v, gate/up): their int8 weights side by side, the output split after.
        # Fewer, wider GEMMs: measured faster at 128 tokens, and the activation is read once.
        parts_kept, parts_rows, widths = [], [], []
        for node in readers:
            w = _array(initializers[node.input[1]], base)
            if node.input[1] in column_scales:  # a later activation's smoothing, folded into this output
                w = w / column_scales[node.input[1]][None, :]
            # x @ W == (x / s) @ (s W): the activation arrives divided by s (folded upstream); split rows leave
            kept = w * plan.smooth[:, None]
            kept[channels] = 0.0
            parts_kept.append(kept)
            parts_rows.append(w[channels].astype(np.float32))  # smooth is 1 on split channels: original rows
            widths.append(w.shape[1])
            del w
            if consumers.get(node.input[1], 0) == 1:
                replaced.add(node.input[1])
        joined_weights = np.concatenate(parts_kept, axis=1)
        del parts_kept
        w_scale = (np.maximum(np.abs(joined_weights).max(axis=0), EPSILON) / 127.0).astype(np.float32)
        w_int8 = np.clip(np.rint(joined_weights / w_scale), -127, 127).astype(np.int8)
        del joined_weights
        name = f"{prefix}_w"
        constants += [
            numpy_helper.from_array(w_int8, f"{name}_q"),
            numpy_helper.from_array(w_scale, f"{name}_scale"),
        ]
        outputs = [node.output[0] for node in readers]
        joined = outputs[0] if len(readers) == 1 else f"{name}_y"
        y_int = f"{name}_yq" if channels else joined
        block.append(
            helper.make_node(
                "MatMulIntegerToFloat",
                [f"{prefix}_u8", f"{name}_q", f"{prefix}_scale", f"{name}_scale", zero_point],
                [y_int],
                name=f"{readers[0].name}_int8",
                domain="com.microsoft",
            )
        )
        if channels:
            constants.append(numpy_helper.from_array(np.concatenate(parts_rows, axis=1), f"{name}_outlier_rows"))
            block += [
                helper.make_node(
                    "MatMul", [f"{prefix}_outliers", f"{name}_outlier_rows"], [f"{name}_yo"], name=f"{prefix}_fp32"
                ),
                helper.make_node("Add", [y_int, f"{name}_yo"], [joined], name=f"{prefix}_Sum"),
            ]
        if len(readers) > 1:
            constants.append(numpy_helper.from_array(np.array(widths, np.int64), f"{name}_widths"))
            block.append(
                helper.make_node("Split", [joined, f"{name}_widths"], outputs, name=f"{prefix}_Unjoin", axis=-1)
            )
        del parts_rows
        new_nodes[position[id(readers[0])]] = block
        for node in readers[1:]:
            new_nodes[position[id(node)]] = []
    smoothed = sum(1 for p in plans.values() if p.fold_constant or p.fold_columns)

    gathers = 0
    for node in originals if quantize_gather else []:
        table = node.input[0] if node.op_type == "Gather" else ""
        tensor = initializers.get(table)
        if (
            tensor is None
            or tensor.data_type != TensorProto.FLOAT
            or consumers.get(table) != 1
            or len(tensor.dims) != 2
        ):
            continue
        if any(a.name == "axis" and a.i != 0 for a in node.attribute):
            continue
        values = _array(tensor, base)
        row_scale = (np.maximum(np.abs(values).max(axis=1), EPSILON) / 127.0).astype(np.float32)
        table_int8 = np.empty(values.shape, np.int8)
        for start in range(0, len(values), ROWS_PER_STEP):  # a 1B's table is 1 GB: no full-size temporaries
            rows = slice(start, start + ROWS_PER_STEP)
            table_int8[rows] = np.clip(np.rint(values[rows] / row_scale[rows, None]), -127, 127)
        del values
        name = f"i8_table{gathers}"
        constants += [
            numpy_helper.from_array(table_int8, f"{name}_q"),
            numpy_helper.from_array(row_scale, f"{name}_scale"),
        ]
        ids, y = node.input[1], node.output[0]
        new_nodes[position[id(node)]] = [
            helper.make_node("Gather", [f"{name}_q", ids], [f"{name}_rows"], name=f"{name}_Gather"),
            helper.make_node("Gather", [f"{name}_scale", ids], [f"{name}_rs"], name=f"{name}_GatherScale"),
            helper.make_node("Unsqueeze", [f"{name}_rs", "i8_last_axis"], [f"{name}_rs1"], name=f"{name}_Unsqueeze"),
            helper.make_node("Cast", [f"{name}_rows"], [f"{name}_rowsf"], name=f"{name}_Cast", to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{name}_rowsf", f"{name}_rs1"], [y], name=f"{name}_Dequantize"),
        ]
        replaced.add(table)
        gathers += 1

    kept_initializers = [folded_constants.get(t.name, t) for t in graph.initializer if t.name not in replaced]
    for tensor in kept_initializers:  # the fp32 ones left (norms, rotary tables, the head) are read into the proto
        if tensor.data_location == TensorProto.EXTERNAL:
            onnx.external_data_helper.load_external_data_for_tensor(tensor, base)
            tensor.data_location = TensorProto.DEFAULT
            del tensor.external_data[:]
    # Blocks sit where the node they replace sat; a shared input's quantization sits in its first reader's block,
    # after the producer of that input: the order stays topological.
    del graph.node[:]
    graph.node.extend(n for i, node in enumerate(originals) for n in new_nodes.get(i, [node]))
    del graph.initializer[:]
    graph.initializer.extend(kept_initializers + constants)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    target.parent.mkdir(parents=True, exist_ok=True)
    if external:
        location = f"{target.name}.data"
        onnx.save_model(model, str(target), save_as_external_data=True, location=location, size_threshold=1024)
    else:
        onnx.save_model(model, str(target))
    fp32_kept = tuple(n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in initializers)
    return RewriteInfo(len(targets), len(groups), split, smoothed, gathers, fp32_kept)


@dataclass(frozen=True)
class _Plan:
    """How one activation is prepared: its SmoothQuant factors (1 where none) and where 1/s is folded, the
    channels split off."""

    width: int
    smooth: NDArray[np.float32]  # s per input channel; the activation arrives divided by it
    channels: tuple[int, ...]
    fold_constant: str | None = None  # the producer is Mul(x, constant[K]): the constant is divided by s
    fold_columns: str | None = None  # the producer is Mul(a, MatMul(., W)): W's columns are divided by s


def _plan_smoothing(
    groups: Mapping[str, Sequence[Any]],
    producers: Mapping[str, Any],
    consumers: Mapping[str, int],
    initializers: Mapping[str, Any],
    base: str,
    outliers: Mapping[str, Sequence[int]],
    peaks: Mapping[str, NDArray[np.float32]],
    alpha: float | None,
) -> dict[str, _Plan]:
    """Per activation: smoothing only where 1/s can be folded into the node that produces it (the RMSNorm weight
    before q/k/v and gate/up; up_proj's output columns before down_proj), so it costs nothing at run time. The
    attention output before o_proj has no such place and is quantized per token as it is."""
    from onnx import TensorProto

    readers_of = {node.output[0]: node for nodes in groups.values() for node in nodes}
    plans = {}
    for x, readers in groups.items():
        width = int(initializers[readers[0].input[1]].dims[0])
        channels = tuple(sorted(int(c) for c in outliers.get(x, ())))
        smooth = np.ones(width, np.float32)
        fold_constant = fold_columns = None
        producer = producers.get(x)
        if alpha is not None and x in peaks and producer is not None and producer.op_type == "Mul":
            if consumers.get(x, 0) == len(readers):
                for name in producer.input:
                    tensor = initializers.get(name)
                    if tensor is not None and tensor.data_type == TensorProto.FLOAT and tuple(tensor.dims) == (width,):
                        fold_constant = name if consumers.get(name) == 1 else None
                    matmul = readers_of.get(name)
                    if matmul is not None and consumers.get(name) == 1 and consumers.get(matmul.input[1]) == 1:
                        fold_columns = matmul.input[1]
            if fold_constant or fold_columns:
                rows = np.max([np.abs(_array(initializers[n.input[1]], base)).max(axis=1) for n in readers], axis=0)
                smooth = smoothing_factors(peaks[x], rows, alpha)
                smooth[list(channels)] = 1.0
                fold_columns = None if fold_constant else fold_columns
        plans[x] = _Plan(width, smooth, channels, fold_constant, fold_columns)
    return plans


def _quantize_nodes(x: str, prefix: str, per_token: bool, width: int) -> tuple[list[Any], str, Any]:
    """``x`` -> ``<prefix>_u8`` (uint8) and ``<prefix>_scale``; returns the nodes and the zero point's name.

    Per token: symmetric around 128, scale ``max|x| / 127`` per row ([..., tokens, 1]); ``Div`` then one
    ``QuantizeLinear`` (rounding, shift and saturation in one pass; a Round/Add/Cast chain measured 2x slower).
    Per tensor: ``DynamicQuantizeLinear`` (one fused node: asymmetric, min/max of the whole tensor)."""
    from onnx import helper, numpy_helper

    p = prefix
    if not per_token:
        node = helper.make_node(
            "DynamicQuantizeLinear", [x], [f"{p}_u8", f"{p}_scale", f"{p}_zp"], name=f"{p}_Quantize"
        )
        return [node], f"{p}_zp", None
    return (
        [
            helper.make_node("Abs", [x], [f"{p}_abs"], name=f"{p}_Abs"),
            helper.make_node("ReduceMax", [f"{p}_abs", "i8_last_axis"], [f"{p}_max"], name=f"{p}_Max", keepdims=1),
            helper.make_node("Max", [f"{p}_max", "i8_eps"], [f"{p}_maxe"], name=f"{p}_Floor"),
            helper.make_node("Mul", [f"{p}_maxe", "i8_inv127"], [f"{p}_scale"], name=f"{p}_Scale"),  # [..., tokens, 1]
            # QuantizeLinear per axis 0 of [tokens, channels]: its zero point must have the scale's shape.
            helper.make_node("Reshape", [f"{p}_scale", "i8_flat"], [f"{p}_scale1"], name=f"{p}_FlatScale"),
            helper.make_node("Shape", [f"{p}_scale1"], [f"{p}_tokens"], name=f"{p}_Tokens"),
            helper.make_node("Expand", ["i8_zp", f"{p}_tokens"], [f"{p}_zp1"], name=f"{p}_ZeroPoints"),
            helper.make_node("Shape", [x], [f"{p}_shape"], name=f"{p}_Shape"),
            helper.make_node("Reshape", [x, f"{p}_rows"], [f"{p}_2d"], name=f"{p}_Rows"),
            helper.make_node(
                "QuantizeLinear", [f"{p}_2d", f"{p}_scale1", f"{p}_zp1"], [f"{p}_u8_2d"], name=f"{p}_Quantize", axis=0
            ),
            helper.make_node("Reshape", [f"{p}_u8_2d", f"{p}_shape"], [f"{p}_u8"], name=f"{p}_Unflatten"),
        ],
        "i8_zp",
        numpy_helper.from_array(np.array([-1, width], np.int64), f"{p}_rows"),
    )


def _array(tensor: Any, base: str) -> NDArray[np.float32]:
    """One float initializer, read from its external data file when it has one. ``numpy_helper.to_array`` would
    load the bytes into the proto, and keep every fp32 weight of a 1B model in memory until the end."""
    from onnx import TensorProto, numpy_helper

    if tensor.data_location != TensorProto.EXTERNAL:
        return numpy_helper.to_array(tensor).astype(np.float32, copy=False)
    entries = {e.key: e.value for e in tensor.external_data}
    count = int(np.prod(tensor.dims))
    values = np.fromfile(Path(base) / entries["location"], np.float32, count, offset=int(entries.get("offset", "0")))
    return values.reshape(tuple(tensor.dims))
