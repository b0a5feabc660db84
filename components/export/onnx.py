"""ONNX export, external-data safety, int8 quantization and the ONNX Runtime predictor: the one module that
imports ``onnx``/``onnxruntime``, so an upgrade of either touches this file only.

The predictor needs only onnxruntime, tokenizers, onnx and numpy (no torch): it is what a server ships. Before a
session is created it verifies every file of the bundle against its sha256 manifest and refuses graphs whose
external-data locations could escape the model folder (absolute paths, ``..``, symlinks): ONNX Runtime would
otherwise read whatever file such a location names.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from numpy.typing import NDArray

from components.config.export import QuantizeConfig
from components.export.bundle import MODEL_FILES, BundleError, LabelMap, read_label_map, verify_bundle

log = logging.getLogger(__name__)


class UnsafeModelError(BundleError):
    """An ONNX file's external data points outside its folder (absolute path, '..', symlink) or is missing."""


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


def quantize_int8(source: Path, target: Path, settings: QuantizeConfig, external_over: int) -> QuantizeInfo:
    """int8 weights, activations quantized at run time (``settings.method``, components/config/export.py).

    ``block8``: Gather (token embeddings, most of a 1B's bytes) dynamic int8 per channel, then every MatMul with a
    constant weight as ``MatMulNBits`` 8-bit symmetric blocks. ``dynamic``: ``quantize_dynamic`` on ``op_types``.
    Nodes named by ``exclude_nodes``/``exclude_modules`` stay fp32. Raises onnxruntime's errors unchanged.
    """
    started = time.perf_counter()
    excluded, unmatched = resolve_exclusions(source, settings)
    large = model_bytes(source) > 4 * external_over
    quiet = [logging.getLogger(), logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # the quantizers log one line per tensor
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        if settings.method == "dynamic":
            _dynamic(source, target, settings, settings.op_types, excluded, large)
        else:
            _block8(source, target, settings, excluded, large, model_bytes(source) > external_over)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    counts = op_counts(target)
    quantized = {op: n for op, n in counts.items() if op in _QUANT_OPS}
    return QuantizeInfo(target, model_bytes(target), time.perf_counter() - started, quantized, excluded, unmatched)


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
}


def op_counts(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def check_external_data(path: Path, folder: Path) -> list[str]:
    """The external-data files ``path`` references (relative, inside ``folder``). Raises UnsafeModelError for an
    absolute location, a '..' part, a symlink on the way, a location resolving outside ``folder``, or a missing file."""
    import onnx

    if path.is_symlink():
        raise UnsafeModelError(f"{path}: the ONNX file is a symlink (rule: regular files inside the model folder)")
    model = onnx.load(str(path), load_external_data=False)
    root = folder.resolve()
    found: set[str] = set()
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        found.add(_safe_location(path, tensor.name, location, folder, root))
    return sorted(found)


def _safe_location(path: Path, tensor: str, location: str, folder: Path, root: Path) -> str:
    where = f"{path}: tensor '{tensor}' external data location '{location}'"
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if not location or posix.is_absolute() or windows.is_absolute() or windows.drive or location.startswith("\\"):
        raise UnsafeModelError(f"{where} is absolute or empty (rule: a relative file inside the model folder)")
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafeModelError(f"{where} contains '..' (rule: it may not leave the model folder)")
    step = folder
    for part in posix.parts:
        step = step / part
        if step.is_symlink():
            raise UnsafeModelError(f"{where} goes through a symlink ({step}) (rule: regular files only)")
    target = (folder / location).resolve()
    if not target.is_relative_to(root):
        raise UnsafeModelError(f"{where} resolves outside the model folder {root}")
    if not target.is_file():
        raise UnsafeModelError(f"{where} does not exist")
    return posix.as_posix()


def _tensors(graph: Any) -> Any:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for sub in attribute.graphs:
                yield from _tensors(sub)


class OnnxPredictor:
    """The evaluation ``Predictor`` over an exported bundle (ONNX Runtime + tokenizers; no torch).

    Scores follow the Predictor contract: trinary (n, 3) softmax, taxonomy (n, 6) sigmoid. Messages are sorted by
    length into batches so padding stays short; int8 activations are quantized per batch, so a message's int8
    scores can move by float noise with its batch neighbours (never enough to fail the agreement check in tests).
    """

    def __init__(
        self,
        folder: Path,
        variant: str = "int8",
        batch_size: int = 32,
        num_threads: int = 2,
        verify: bool = True,
        progress: bool = False,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if variant not in MODEL_FILES:
            raise BundleError(f"unknown variant '{variant}' (rule: one of {sorted(MODEL_FILES)})")
        self.folder, self.variant, self.batch_size, self.progress = folder, variant, batch_size, progress
        self.manifest = verify_bundle(folder) if verify else {}
        path = folder / MODEL_FILES[variant]
        if not path.is_file():
            raise BundleError(f"{path}: this bundle has no {variant} model")
        check_external_data(path, folder)
        self.labels: LabelMap = read_label_map(folder)
        self.task = self.labels.task
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.pad_id = int(config.get("pad_token_id") or 0)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.labels.max_length)
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def logits(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Raw logits in input order, (n, number of labels)."""
        encoded = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(encoded), len(self.labels.labels)), dtype=np.float32)
        starts = range(0, len(order), self.batch_size)
        if self.progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"predict ({self.variant})", unit="batch")
        for start in starts:
            rows = order[start : start + self.batch_size]
            out[rows] = self.run_ids([encoded[i] for i in rows])
        return out

    def run_ids(self, sequences: Sequence[Sequence[int]]) -> NDArray[np.float32]:
        """Logits for already tokenised messages, right-padded with the model's pad id (as in training)."""
        width = max(1, *(len(s) for s in sequences))
        ids = np.full((len(sequences), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(sequences), width), dtype=np.int64)
        for i, seq in enumerate(sequences):
            ids[i, : len(seq)] = seq
            mask[i, : len(seq)] = 1
        result: NDArray[np.float32] = self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
        return result

    def predict(self, texts: Sequence[str]) -> NDArray[np.float64]:
        return probabilities(self.logits(texts), self.task)

    def decide(self, scores: NDArray[np.float64]) -> list[Any]:
        """Trinary: one label per message; taxonomy: the list of categories at or above their threshold."""
        names = self.labels.labels
        if self.task == "trinary":
            return [names[i] for i in scores.argmax(axis=1)]
        limits = np.array([self.labels.thresholds[c] for c in names])
        return [[names[j] for j in np.flatnonzero(row >= limits)] for row in scores]


def probabilities(logits: NDArray[Any], task: str) -> NDArray[np.float64]:
    values = np.asarray(logits, dtype=np.float64)
    if task == "taxonomy":
        return np.asarray(1.0 / (1.0 + np.exp(-values)))
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def model_bytes(path: Path) -> int:
    """Size of an ONNX file plus its external data files (what a device must hold)."""
    return sum(os.path.getsize(p) for p in path.parent.glob(path.name + "*") if p.is_file())
