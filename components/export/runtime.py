"""The ONNX Runtime side of a bundle: the predictor a server ships, and the checks made before a session opens.

The predictor needs only onnxruntime, tokenizers, onnx and numpy (no torch). Before a session is created it
verifies every file of the bundle against its sha256 manifest and refuses graphs whose external-data locations
could escape the model folder (absolute paths, ``..``, symlinks): ONNX Runtime would otherwise read whatever file
such a location names. ``components/export/onnx.py`` writes the files this module reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from numpy.typing import NDArray

from components.evaluation.operating_point import decide, probabilities
from components.export.bundle import MODEL_FILES, BundleError, LabelMap, read_label_map, verify_bundle


class UnsafeModelError(BundleError):
    """An ONNX file's external data points outside its folder (absolute path, '..', symlink) or is missing."""


def check_external_data(path: Path, folder: Path) -> list[str]:
    """The external-data files ``path`` references (relative, inside ``folder``). Raises UnsafeModelError for an
    absolute location, a '..' part, a symlink on the way, a location resolving outside ``folder``, or a missing file."""
    import onnx

    if path.is_symlink():
        raise UnsafeModelError(f"{path}: the ONNX file is a symlink (rule: regular files inside the model folder)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends: a damaged file, whatever the manifest says
        raise BundleError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    root = folder.resolve()
    found: set[str] = set()
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = _safe_location(path, tensor.name, entries.get("location", ""), folder, root)
        _check_range(path, tensor.name, entries, (folder / location).stat().st_size)
        found.add(location)
    return sorted(found)


def _check_range(path: Path, tensor: str, entries: dict[str, str], size: int) -> None:
    """``offset`` and ``length`` are decimal byte counts inside the data file: ONNX Runtime would otherwise fail
    deep inside a session, or read past what the exporter wrote."""
    where = f"{path}: tensor '{tensor}' external data"
    numbers = {}
    for key in ("offset", "length"):
        text = entries.get(key, "0" if key == "offset" else None)
        if text is None:
            continue
        if not (text.isascii() and text.isdigit()):
            raise UnsafeModelError(f"{where} {key} {text[:40]!r} is not a byte count (rule: decimal digits)")
        numbers[key] = int(text)
    end = numbers["offset"] + numbers.get("length", 0)
    if numbers["offset"] > size or end > size:
        raise UnsafeModelError(
            f"{where} spans bytes {numbers['offset']}..{end} of a {size}-byte file (rule: inside the data file)"
        )


def _safe_location(path: Path, tensor: str, location: str, folder: Path, root: Path) -> str:
    where = f"{path}: tensor '{tensor}' external data location {location[:200]!r}"
    if "\x00" in location:
        raise UnsafeModelError(f"{where} contains a NUL character (rule: a plain relative file name)")
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


def _pad_id(path: Path) -> int:
    """The padding id from the bundle's HF ``config.json`` (0 when unset); a damaged file is a BundleError."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        return int(config.get("pad_token_id") or 0)
    except FileNotFoundError:
        raise BundleError(f"{path}: missing (rule: a bundle carries its model config)") from None
    except (OSError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise BundleError(f"{path}: not a model config with an integer pad_token_id ({type(exc).__name__})") from None


def _tokenizer(path: Path) -> Any:
    """``tokenizer.json`` as a padding-free ``tokenizers.Tokenizer``; a damaged file is a BundleError."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable JSON
        raise BundleError(f"{path}: not a readable tokenizers file ({type(exc).__name__})") from None
    tokenizer.no_padding()
    return tokenizer


class OnnxPredictor:
    """The evaluation ``Predictor`` over an exported bundle (ONNX Runtime + tokenizers; no torch).

    Scores follow the Predictor contract: trinary (n, 3) softmax, taxonomy (n, 6) sigmoid. Messages are sorted by
    length into batches so padding stays short. With the per-tensor int8 recipes (``dynamic``, ``block8`` at
    accuracy level 4) activations are quantized per batch, so a message's int8 scores can move by float noise with its
    batch neighbours; the per-token recipes give every message its own scales.
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
        self.pad_id = _pad_id(folder / "config.json")
        self.tokenizer, self.whole = _tokenizer(folder / "tokenizer.json"), _tokenizer(folder / "tokenizer.json")
        self.tokenizer.enable_truncation(self.labels.max_length)
        # The whole message for `long_messages: windows`: tokenizer.json carries the export's truncation setting,
        # which would silently cut every message to its first window.
        self.whole.no_truncation()
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's Fail/InvalidGraph/...: a damaged graph behind a valid manifest
            raise BundleError(f"{path}: ONNX Runtime cannot load it ({type(exc).__name__})") from None

    def logits(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Raw logits in input order, (n, number of labels); each message truncated to the bundle's max_length."""
        return self.ids_logits([e.ids for e in self.tokenizer.encode_batch(list(texts))])

    def ids_logits(self, encoded: Sequence[Sequence[int]]) -> NDArray[np.float32]:
        """Logits for tokenised messages in input order, batched by length."""
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
        result: NDArray[np.float32] = self.session.run(["logits"], self.feed(sequences))[0]
        return result

    def feed(self, sequences: Sequence[Sequence[int]]) -> dict[str, NDArray[np.int64]]:
        """The session inputs for tokenised messages: ``input_ids`` right-padded with the pad id, ``attention_mask``."""
        width = max(1, *(len(s) for s in sequences))
        ids = np.full((len(sequences), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(sequences), width), dtype=np.int64)
        for i, seq in enumerate(sequences):
            ids[i, : len(seq)] = seq
            mask[i, : len(seq)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def feeds(self, texts: Sequence[str]) -> list[dict[str, NDArray[np.int64]]]:
        """``feed`` batches of ``batch_size`` messages, each truncated to max_length (int8 calibration)."""
        encoded = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        return [self.feed(encoded[i : i + self.batch_size]) for i in range(0, len(encoded), self.batch_size)]

    def predict(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Probabilities per message; with the bundle's ``long_messages: windows``, a message longer than
        max_length is scored by its riskiest window (``components.export.long_messages``), as the torch scorer does."""
        if self.labels.long_messages != "windows":
            return probabilities(self.logits(texts), self.task)
        from components.export import long_messages as w

        probe = self.whole.encode(w.PROBE).ids, self.whole.encode(w.PROBE, add_special_tokens=False).ids
        layout = w.special_layout(*probe)
        encoded = [e.ids for e in self.whole.encode_batch(list(texts))]
        pieces, owners = w.windows(encoded, self.labels.max_length, *layout)
        return w.riskiest(probabilities(self.ids_logits(pieces), self.task), owners, len(texts), self.task)

    def decide(self, scores: NDArray[np.float64]) -> list[Any]:
        """Trinary: one label per message; taxonomy: the list of categories at or above their threshold. The rule and
        thresholds are the bundle's ``labels.json`` (``operating_point.decide``: argmax without trinary thresholds)."""
        names = self.labels.labels
        decided = decide(scores, self.task, self.labels.thresholds)
        if self.task == "trinary":
            return [names[int(i)] for i in decided]
        return [[names[j] for j in np.flatnonzero(row)] for row in decided]
