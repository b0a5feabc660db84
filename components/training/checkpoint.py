"""Resumable training checkpoints without pickle: safetensors for tensors, JSON for everything else.

A checkpoint folder holds ``trainable.safetensors`` (LoRA + head weights), ``optimizer.safetensors`` (AdamW moment
tensors), ``rng.safetensors`` (torch CPU/CUDA generator states as uint8 tensors) and ``state.json`` (step, optimizer
param groups, scheduler state, python/numpy RNG, the run fingerprint). It is written into a temporary sibling folder
and renamed into place, so a ``kill -9`` at any moment leaves either the previous complete checkpoint or the new one,
never half of one. A fingerprint (params + data hash + model + task) guards against resuming a different run.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
PREFIX = "step-"


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every RNG the loop touches: torch (CPU, CUDA) as tensors; python and numpy as JSON-able lists."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{index}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    scalars = {
        "python": _jsonable(random.getstate()),
        "numpy": [kind, np.asarray(keys).tolist(), pos, has_gauss, cached],
    }
    return tensors, scalars


def set_rng_state(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[key] for key in sorted(tensors) if key.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = scalars["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = scalars["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_checkpoint(
    root: Path,
    step: int,
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fingerprint: str,
    history: dict[str, Any] | None = None,
    keep: int = 1,
) -> Path:
    """Write checkpoint ``step`` atomically under ``root`` and prune older ones (``keep`` most recent stay).
    ``history`` (JSON-able: the loss curve, epoch reports) comes back from ``load_checkpoint``."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{PREFIX}{step}.", dir=root))
    try:
        opt_tensors, opt_json = _split_optimizer(optimizer.state_dict())
        rng_tensors, rng_json = rng_state()
        save_file({k: v.detach().cpu().contiguous() for k, v in trainable.items()}, tmp / "trainable.safetensors")
        save_file(opt_tensors, tmp / "optimizer.safetensors")
        save_file(rng_tensors, tmp / "rng.safetensors")
        state = {
            "step": step,
            "fingerprint": fingerprint,
            "optimizer": opt_json,
            "scheduler": _jsonable(scheduler.state_dict()),
            "rng": rng_json,
            "history": history or {},
        }
        (tmp / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
        _fsync_tree(tmp)
        final = root / f"{PREFIX}{step:08d}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Checkpoint]:
    """Complete checkpoints (those with state.json), oldest first; temp folders of killed writes are ignored."""
    if not root.is_dir():
        return []
    found = [
        Checkpoint(int(path.name.removeprefix(PREFIX)), path)
        for path in root.iterdir()
        if path.name.startswith(PREFIX) and (path / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(root: Path, fingerprint: str) -> Checkpoint | None:
    """The newest complete checkpoint of *this* run, or None (a different fingerprint is ignored with a warning)."""
    for checkpoint in reversed(list_checkpoints(root)):
        state = json.loads((checkpoint.path / STATE_FILE).read_text(encoding="utf-8"))
        if state.get("fingerprint") == fingerprint:
            return checkpoint
        log.warning("ignoring checkpoint %s: it belongs to a run with other params or data", checkpoint.path)
    return None


def load_checkpoint(
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, dict[str, Any]]:
    """Restore weights, optimizer, scheduler and RNG; returns the step to continue from and the saved history."""
    state = json.loads((checkpoint.path / STATE_FILE).read_text(encoding="utf-8"))
    trainable = load_file(checkpoint.path / "trainable.safetensors")
    missing = set(trainable) - {name for name, _ in model.named_parameters()}
    if missing:
        raise ValueError(f"{checkpoint.path}: weights for unknown parameters {sorted(missing)[:5]}")
    model.load_state_dict(trainable, strict=False)
    optimizer.load_state_dict(_join_optimizer(load_file(checkpoint.path / "optimizer.safetensors"), state["optimizer"]))
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(load_file(checkpoint.path / "rng.safetensors"), state["rng"])
    return int(state["step"]), {"curve": [], "epochs": [], "tokens": 0} | state.get("history", {})


def _split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": _jsonable(state_dict["param_groups"]), "state": {}}
    for index, per_param in state_dict["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars["state"].setdefault(str(index), {})[key] = value
    return tensors, scalars


def _join_optimizer(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in scalars["state"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": scalars["param_groups"]}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return None  # callables (lr lambdas) are rebuilt by the caller, not stored


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
