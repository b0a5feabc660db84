"""What a version carries besides its files: lineage gathered from the run folder, dvc.lock and git.

Every field is best-effort but explicit: a field that cannot be found is recorded as None, never guessed, so the
model card shows what is unknown. Files are collected without following symlinks, and pickle-based formats are
refused (the registry stores safetensors, JSON, ONNX, tokenizer files).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.errors import RegistryError
from components.provenance import git_commit, lock_out_hashes

#: Pickle-based (or possibly pickle-based) formats never enter the store: loading them can run arbitrary code.
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".bin", ".npy", ".npz"})
#: Dataset outputs in dvc.lock whose hash identifies the training data, most specific first.
DATA_OUTS = ("data/augmented/dataset.parquet", "data/prepared/dataset.parquet")


def collect_files(run_dir: Path) -> list[Path]:
    """Every regular file under ``run_dir`` (sorted). Raises RegistryError on symlinks, pickle or an empty folder."""
    if not run_dir.is_dir():
        raise RegistryError(f"{run_dir}: run folder not found")
    files = []
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir).as_posix()
        if path.is_symlink():
            raise RegistryError(f"{run_dir}: {relative} is a symlink; the registry stores regular files only")
        if path.is_file():
            if path.suffix.lower() in PICKLE_SUFFIXES or _looks_pickled(path):
                raise RegistryError(f"{run_dir}: {relative} is a pickle-based format; save safetensors/ONNX/JSON")
            files.append(path)
    if not files:
        raise RegistryError(f"{run_dir}: no files to register")
    return files


def _looks_pickled(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def gather_lineage(run_dir: Path, project: Path, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Lineage from ``run_dir/meta.json`` (written by train/export), ``project/dvc.lock`` and git; ``overrides``
    (CLI flags) win over what was found. Never raises for missing sources: absent fields are None."""
    meta = _read_json(run_dir / "meta.json")
    code, wandb, base = (_mapping(meta.get(key)) for key in ("code", "wandb", "base_model"))
    params = meta.get("params") if isinstance(meta.get("params"), Mapping) else None
    lineage: dict[str, Any] = {
        "code_commit": code.get("commit") or meta.get("code_commit") or git_commit(project, mark_dirty=True),
        "code_hash": code.get("code_hash") or meta.get("code_hash"),
        "data_hash": meta.get("data_hash") or _mapping(meta.get("provenance")).get("data_hash"),
        "dvc_data": dvc_data_hashes(project / "dvc.lock"),
        "params": params,
        "params_hash": _canonical_hash(params) if params is not None else None,
        "seed": meta.get("seed"),
        "base_model": base.get("source") or base.get("name") or _text(meta.get("base_model")),
        "base_revision": base.get("revision") or meta.get("base_revision"),
        "wandb_run": wandb.get("run_path") or wandb.get("run_id") or meta.get("wandb_run"),
        "thresholds": meta.get("thresholds"),
    }
    lineage.update({key: value for key, value in overrides.items() if value is not None})
    return lineage


def dvc_data_hashes(lock: Path) -> dict[str, str]:
    """``{path: md5}`` of the dataset outputs recorded in dvc.lock (empty when there is no lock)."""
    return lock_out_hashes(lock, DATA_OUTS)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path}: not valid JSON ({exc})") from None
    return payload if isinstance(payload, dict) else {}


def _canonical_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
