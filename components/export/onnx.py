"""ONNX export and int8 quantization: the graph side of a bundle (``onnx``, ``onnxruntime.quantization``).

Together with ``components/export/runtime.py`` (the ONNX Runtime predictor a server ships) and
``components/export/activation_int8.py`` (the per-token rewrite) these are the only modules that import
``onnx``/``onnxruntime``, so an upgrade of either touches this folder only.
"""

from __future__ import annotations

import ast
import fnmatch
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config.export import QuantizeConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportInfo:
    path: Path
    external_data: bool
    bytes: int
    seconds: float


@dataclass(frozen=True)
class QuantizeInfo:
    path: Path
    bytes: int
    seconds: float
    quantized_nodes: dict[str, int]
    excluded_nodes: tuple[str, ...]
    unmatched: tuple[str, ...] = ()  # exclude patterns/names that named no quantizable node
    activations: dict[str, Any] | None = None  # per_token / outlier_split: calibration and rewrite (quantization.json)


def export_onnx(
    model: Any, input_ids: Any, attention_mask: Any, path: Path, opset: int, external_over: int
) -> ExportInfo:
    """Export a sequence classifier (inputs ``input_ids``/``attention_mask`` -> ``logits``) with the dynamo
    exporter, batch and sequence axes dynamic; weights go to ``<name>.data`` when they exceed ``external_over``
    bytes (protobuf's 2 GB limit). Raises torch's export errors unchanged: they are bugs, not user mistakes."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    external = weights > external_over
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    started = time.perf_counter()
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # one INFO line per de-duplicated initializer
    torch.onnx.export(
        LogitsOnly(model).eval(),
        (input_ids, attention_mask),
        str(path),
        dynamo=True,
        opset_version=opset,
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        external_data=external,
        dynamic_shapes={"input_ids": dims, "attention_mask": dims},
        verbose=False,
    )
    size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + ".data"))
    return ExportInfo(path, external, size, time.perf_counter() - started)


def quantize_int8(
    source: Path,
    target: Path,
    settings: QuantizeConfig,
    external_over: int,
    calibration: Sequence[Mapping[str, Any]] = (),
) -> QuantizeInfo:
    """int8 weights, activations quantized at run time (``settings.method``, components/config/export.py).

    ``block8``: Gather (token embeddings, most of a 1B's bytes) dynamic int8 per channel, then every MatMul with a
    constant weight as ``MatMulNBits`` 8-bit symmetric blocks. ``dynamic``: ``quantize_dynamic`` on ``op_types``.
    ``per_token`` / ``outlier_split`` / ``per_token_split``: the graph rewrite of components/export/activation_int8.py,
    calibrated on ``calibration`` (``input_ids``/``attention_mask`` batches of train messages).
    Nodes named by ``exclude_nodes``/``exclude_modules`` stay fp32. Raises onnxruntime's errors unchanged.
    """
    started = time.perf_counter()
    excluded, unmatched = resolve_exclusions(source, settings)
    large = model_bytes(source) > 4 * external_over
    quiet = [logging.getLogger(), logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # the quantizers log one line per tensor
        logger.setLevel(max(logger.level, logging.WARNING))
    activations = None
    try:
        if settings.method == "dynamic":
            _dynamic(source, target, settings, settings.op_types, excluded, large)
        elif settings.method == "block8":
            _block8(source, target, settings, excluded, large, model_bytes(source) > external_over)
        else:
            activations = _activation_int8(source, target, settings, excluded, large, calibration)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    counts = op_counts(target)
    quantized = {op: n for op, n in counts.items() if op in _QUANT_OPS}
    seconds = time.perf_counter() - started
    return QuantizeInfo(target, model_bytes(target), seconds, quantized, excluded, unmatched, activations)


def _activation_int8(
    source: Path,
    target: Path,
    settings: QuantizeConfig,
    excluded: Sequence[str],
    large: bool,
    calibration: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Calibrate (when the recipe splits or smooths), then rewrite; returns what quantization.json records."""
    from components.export import activation_int8

    split = settings.method in ("outlier_split", "per_token_split")
    outliers = None
    if split or settings.smooth_alpha is not None:
        if not calibration:
            raise ValueError(f"quantize.method {settings.method} needs calibration batches (train messages)")
        outliers = activation_int8.calibrate(
            source,
            calibration,
            settings.outlier_threshold if split else float("inf"),
            settings.outlier_max_channels,
            excluded,
            node_modules(source),
        )
    info = activation_int8.rewrite(
        source,
        target,
        per_token=settings.method != "outlier_split",
        outliers=outliers.channels if outliers else None,
        peaks=outliers.activation_peaks if outliers else None,
        alpha=settings.smooth_alpha,
        excluded=excluded,
        quantize_gather="Gather" in settings.op_types,
        external=large,
    )
    return {
        "calibration": outliers.to_dict() if outliers else None,
        "int8_matmuls": info.matmuls,
        "activations_quantized": info.activations,
        "activations_split": info.split_tensors,
        "activations_smoothed": info.smoothed_tensors,
        "embedding_tables": info.gathers,
        "matmuls_kept_fp32": list(info.kept_fp32),
    }


def _dynamic(
    source: Path, target: Path, settings: QuantizeConfig, op_types: Sequence[str], excluded: Sequence[str], large: bool
) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        model_input=source,
        model_output=target,
        per_channel=settings.per_channel,
        reduce_range=settings.reduce_range,
        op_types_to_quantize=list(op_types),
        weight_type=QuantType.QInt8 if settings.weight_type == "qint8" else QuantType.QUInt8,
        nodes_to_exclude=list(excluded),
        use_external_data_format=large,
    )


def _block8(
    source: Path, target: Path, settings: QuantizeConfig, excluded: Sequence[str], large: bool, staged_large: bool
) -> None:
    """``staged_large``: the Gather-only intermediate keeps fp32 MatMul weights (about the source's size), so it needs
    external data whenever the source is over protobuf's 2 GB limit, not only when the int8 result is."""
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    staged = source
    if "Gather" in settings.op_types:
        staged = target.with_name(f".{target.name}.gather.onnx")
        _dynamic(source, staged, settings, ["Gather"], excluded, staged_large)
    try:
        if "MatMul" in settings.op_types:
            options = {
                "bits": 8,
                "block_size": settings.block_size,
                "is_symmetric": True,
                "accuracy_level": settings.accuracy_level,
                "op_types_to_quantize": ("MatMul",),
            }
            quantizer = MatMulNBitsQuantizer(
                str(staged),
                nodes_to_exclude=list(excluded),
                algo_config=DefaultWeightOnlyQuantConfig(**options),
                **options,
            )
            quantizer.process()
            quantizer.model.save_model_to_file(str(target), large)
        elif staged != source:
            staged.replace(target)
    finally:
        for leftover in target.parent.glob(f".{target.name}.gather.onnx*"):
            leftover.unlink()


def resolve_exclusions(path: Path, settings: QuantizeConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(node names to keep fp32, patterns/names that matched no MatMul/Gather node).

    A node's module path comes from the dynamo exporter's ``pkg.torch.onnx.name_scopes`` metadata with the export
    wrapper's ``inner.`` dropped (``model.layers.3.mlp.down_proj``), so patterns read like the torch model."""
    if not settings.exclude_nodes and not settings.exclude_modules:
        return (), ()
    modules = node_modules(path)
    names = set(settings.exclude_nodes) & set(modules)
    unmatched = [name for name in settings.exclude_nodes if name not in modules]
    for pattern in settings.exclude_modules:
        hits = {node for node, module in modules.items() if fnmatch.fnmatchcase(module, pattern)}
        names |= hits
        unmatched += [] if hits else [pattern]
    if unmatched:
        log.warning("quantize exclusions matched no MatMul/Gather node: %s", unmatched)
    return tuple(sorted(names)), tuple(unmatched)


def node_modules(path: Path) -> dict[str, str]:
    """MatMul/Gather node name -> torch module path ('' when the graph carries no dynamo metadata)."""
    import onnx

    found = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type not in ("MatMul", "Gather"):
            continue
        raw = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "[]")
        try:
            scopes = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            scopes = []
        module = str(scopes[-2]) if isinstance(scopes, list) and len(scopes) >= 2 else ""
        found[node.name] = module.removeprefix("inner.")
    return found


_QUANT_OPS = {
    "MatMulInteger",
    "MatMulNBits",
    "DynamicQuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeMatMul",
    "GatherBlockQuantized",
    "MatMulIntegerToFloat",
    "QuantizeLinear",
}


def op_counts(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def model_bytes(path: Path) -> int:
    """Size of an ONNX file plus its external data files (what a device must hold)."""
    return sum(os.path.getsize(p) for p in path.parent.glob(path.name + "*") if p.is_file())
