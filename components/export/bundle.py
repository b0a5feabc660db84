"""The exported bundle's layout, its sha256 manifest and its label map: what a server needs besides the graph.

A bundle is a Hugging Face-style folder that plain ``onnxruntime`` + ``tokenizers`` can serve with no torch:

    model_int8.onnx        the shipped file (int8)              model_fp32.onnx (+ .data)  its fp32 parent
    config.json            the model's HF config                tokenizer.json, tokenizer_config.json, ...
    labels.json            task, label order, decision rule (softmax argmax | sigmoid >= per-category threshold)
    parity.json            fp32 ONNX vs torch                    quantization.json  int8 vs fp32 on test
    meta.json              provenance                            manifest.json  sha256 + size of every other file

Loading verifies every file against ``manifest.json`` first and refuses extra, missing, changed or symlinked files,
so a tampered graph or external-data file never reaches ONNX Runtime. Pure hashlib/json: no torch, no onnx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.errors import EmosafeError
from components.evaluation.operating_point import TRINARY_KEYS
from components.export.long_messages import LONG_MESSAGES
from components.io import sha256_file
from components.schema import CATEGORIES, LABELS

MANIFEST = "manifest.json"
LABELS_FILE = "labels.json"
MODEL_FILES = {"int8": "model_int8.onnx", "fp32": "model_fp32.onnx"}
TASKS = ("trinary", "taxonomy")


class BundleError(EmosafeError):
    """An exported bundle is incomplete, tampered with, or breaks the layout rules (names the file and rule)."""


@dataclass(frozen=True)
class LabelMap:
    """How scores become decisions (``components.evaluation.operating_point.decide``): trinary = softmax, then argmax,
    or the operating point's ``unsafe``/``flagged`` thresholds when present; taxonomy = sigmoid then >= threshold."""

    task: str
    labels: tuple[str, ...]
    thresholds: dict[str, float]
    max_length: int
    long_messages: str = "truncate"  # windows: longer messages scored by their riskiest window (export.long_messages)

    @property
    def multi_label(self) -> bool:
        return self.task == "taxonomy"

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "labels": list(self.labels),
            "multi_label": self.multi_label,
            "activation": "sigmoid" if self.multi_label else "softmax",
            "thresholds": self.thresholds,
            "max_length": self.max_length,
            "long_messages": self.long_messages,
        }


def label_map(
    task: str, max_length: int, thresholds: dict[str, float] | None = None, long_messages: str = "truncate"
) -> LabelMap:
    """The label map of ``task``. Taxonomy thresholds default to 0.5 and must name known categories; trinary
    thresholds are both of ``unsafe`` and ``flagged`` (an operating point) or none (argmax)."""
    if task not in TASKS:
        raise BundleError(f"unknown task '{task}' (rule: one of {list(TASKS)})")
    if long_messages not in LONG_MESSAGES:
        raise BundleError(f"long_messages '{long_messages}' (rule: one of {list(LONG_MESSAGES)})")
    if task == "trinary":
        given = dict(thresholds or {})
        if given and sorted(given) != sorted(TRINARY_KEYS):
            raise BundleError(f"trinary thresholds {sorted(given)} must be exactly {list(TRINARY_KEYS)} or none")
        if any(not 0.0 < float(v) <= 1.0 for v in given.values()):
            raise BundleError(f"trinary thresholds {given} must lie in (0, 1]")
        return LabelMap(task, LABELS, {k: float(v) for k, v in given.items()}, max_length, long_messages)
    unknown = sorted(set(thresholds or {}) - set(CATEGORIES))
    if unknown:
        raise BundleError(f"thresholds name unknown categories {unknown} (rule: one of {list(CATEGORIES)})")
    chosen = {c: float((thresholds or {}).get(c, 0.5)) for c in CATEGORIES}
    return LabelMap(task, CATEGORIES, chosen, max_length, long_messages)


def read_label_map(folder: Path) -> LabelMap:
    raw = _json(folder / LABELS_FILE)
    try:
        task, max_length = str(raw["task"]), int(raw["max_length"])
        thresholds = {str(k): float(v) for k, v in dict(raw.get("thresholds") or {}).items()}
        long_messages = str(raw.get("long_messages", "truncate"))  # bundles exported before windows truncate
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise BundleError(
            f"{folder / LABELS_FILE}: needs task, max_length (and thresholds); problem: {type(exc).__name__}"
        ) from None
    try:
        mapped = label_map(task, max_length, thresholds, long_messages)
    except BundleError as exc:
        raise BundleError(f"{folder / LABELS_FILE}: {exc}") from None
    if raw.get("labels", []) != list(mapped.labels):
        raise BundleError(f"{folder / LABELS_FILE}: field 'labels' must be {list(mapped.labels)} in that order")
    return mapped


def file_digest(path: Path) -> str:
    """sha256 of a file (components.io's, re-exported so the torch-free loader needs only this module)."""
    return sha256_file(path)


def build_manifest(folder: Path) -> dict[str, Any]:
    """sha256 and size of every regular file under ``folder`` except the manifest itself; symlinks refused."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise BundleError(f"{path}: symlink in a bundle (rule: regular files only)")
        if path.is_file() and relative != MANIFEST:
            files[relative] = {"sha256": file_digest(path), "size": path.stat().st_size}
    return {"algorithm": "sha256", "files": files}


def verify_bundle(folder: Path) -> dict[str, Any]:
    """Check every file against ``manifest.json`` before anything is loaded; returns the manifest.

    Raises BundleError naming the file: manifest missing or unreadable, a file missing, changed (both hashes
    shown), unlisted, or a symlink anywhere in the folder.
    """
    if not folder.is_dir():
        raise BundleError(f"{folder}: model folder not found")
    manifest = _json(folder / MANIFEST)
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        raise BundleError(f"{folder / MANIFEST}: field 'files' must map each file to its sha256")
    present = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise BundleError(f"{path}: symlink in the model folder (rule: regular files only, nothing may escape)")
        if path.is_file() and relative != MANIFEST:
            present[relative] = path
    extra = sorted(set(present) - set(listed))
    missing = sorted(set(listed) - set(present))
    if extra or missing:
        raise BundleError(f"{folder}: files differ from {MANIFEST} (unlisted: {extra}; missing: {missing})")
    for relative, path in present.items():
        entry = listed[relative]
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise BundleError(f"{folder / MANIFEST}: files.{relative} must be an object with a sha256 string")
        expected = entry["sha256"]
        got = file_digest(path)
        if got != expected:
            raise BundleError(
                f"{path}: sha256 {got[:12]} but {MANIFEST} records {expected[:12]} (tampered or truncated); "
                "refusing to load"
            )
    return manifest


def _json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: missing (rule: an exported bundle carries it)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    except (OSError, RecursionError) as exc:
        raise BundleError(f"{path}: cannot be read ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{path}: must be a JSON object")
    return raw
