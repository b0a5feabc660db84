"""One fine-tuning run, from the dataset file to its finished folder: what the ``train`` and ``holdout`` stages share.

``run_training`` validates the request, reads and tokenises the data before the (slow) model load, trains, and writes
``<output_dir>/<model>-<task>/`` through a temp folder: ``adapter/`` (peft LoRA + head, safetensors),
``head.safetensors``, ``merged/`` when ``save_merged``, ``labels.json``, ``metrics.json``, ``curve.json`` +
``curve.png`` and ``meta.json`` (params, seed, data hash, base model + revision, and the code closure of the calling
stage). Resumable checkpoints live in ``<checkpoint_dir>/<model>-<task>/`` and are removed after success. Raw text
never reaches logs, W&B or these files.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.config.train import TrainConfig
from components.errors import ConfigError, DataRowError, EmosafeError, SourceFileError
from components.io import atomic_write_json, read_parquet_input, sha256_file, write_folder
from components.models import ModelSource, load_tokenizer, resolve
from components.provenance import provenance
from components.schema import CATEGORIES
from components.training.batches import label_names

log = logging.getLogger(__name__)

NEEDED = ("id", "text", "label", "split", *CATEGORIES)


@dataclass(frozen=True)
class TrainStageResult:
    folder: Path
    summary: str
    metrics: dict[str, Any]


def run_training(config: TrainConfig, model: str, task: str, root: Path, module: str) -> TrainStageResult:
    """Train ``model`` on ``task`` as ``config`` says; all checks run before the (slow) model load, nothing is
    written on error. ``module`` is the calling stage, whose code closure the run's provenance records.

    Under ``accelerate launch`` every rank trains; only rank 0 tracks and writes.
    """
    from components.training import finetune as training

    run, encoded, weights, tokenizer, data_hash = _plan(config, model, task, root)
    main = int(os.environ.get("RANK", "0")) == 0
    tracker = _tracker(config, run, data_hash, root, enabled=main)
    pad_id = int(tokenizer.pad_token_id)
    outcome = training.train(run, encoded["train"], encoded["val"], pad_id, weights, tracker.log_epoch)
    summary = _summary(model, task, outcome, run.spec.params_millions)
    folder = root / config.output_dir / f"{model}-{task}"
    metrics = {
        "final": outcome.final,
        "epochs": outcome.epochs,
        "steps": outcome.steps,
        "resumed_from": outcome.resumed_from,
        "seconds": round(outcome.seconds, 2),
        "tokens": outcome.tokens,
    }
    if main:
        names = label_names(task)
        tracker.log_curve(outcome.curve)
        tracker.log_final(outcome.final, names, task)
        meta = _meta(module, run, data_hash, {s: len(e) for s, e in encoded.items()}, weights)
        fill = functools.partial(
            _fill, outcome=outcome, tokenizer=tokenizer, names=names, metrics=metrics, merged=config.save_merged
        )
        write_folder(folder, fill, meta)
        if run.checkpoint_dir is not None:
            shutil.rmtree(run.checkpoint_dir, ignore_errors=True)
        if config.wandb.log_artifact:
            tracker.log_artifact(folder / "adapter", f"{model}-{task}", meta)
        info = tracker.finish()
        if info.enabled:
            meta["wandb"] = {"mode": info.mode, "run_dir": info.run_dir, "run_id": info.run_id}
            atomic_write_json(folder / "meta.json", meta)
        log.info("%s", summary)
    return TrainStageResult(folder, summary, metrics)


def _plan(config: TrainConfig, model: str, task: str, root: Path) -> tuple[Any, dict[str, Any], Any, Any, str]:
    """Validate the request, read and tokenise the data, and describe the run (nothing heavy is loaded yet)."""
    import torch

    from components.training import batches as td
    from components.training.finetune import RunSpec

    try:
        spec = config.model(model)
    except ValueError as exc:
        raise ConfigError(f"train: {exc}") from None
    if task not in config.tasks:
        raise ConfigError(f"train: task '{task}' is not one of train.tasks {list(config.tasks)}")
    frame, data_hash = _read(root / config.input)
    base_path = _base_path(config, model, root)
    profile = config.active.for_model(model)
    hyper, seed = profile.hyper, profile.hyper.seed
    run_params = {
        "seed": seed,
        "profile": config.profile,
        "model": model,
        "task": task,
        "spec": spec.model_dump(mode="json"),
    }
    run_params |= profile.model_dump(mode="json", exclude={"models"})
    parts = {s: frame[frame["split"] == s].reset_index(drop=True) for s in ("train", "val")}
    row_weights = None
    if config.weights is not None:
        row_weights, run_params["row_weights"] = _row_weights(root / config.weights, parts["train"])
    fingerprint = hashlib.sha256(json.dumps([run_params, data_hash], sort_keys=True).encode()).hexdigest()
    tokenizer = load_tokenizer(ModelSource(base_path))
    encoded = {s: td.encode(part, tokenizer, task, hyper.max_length) for s, part in parts.items()}
    if row_weights is not None:
        # float32 like the per-row losses: weights of 1 leave the loss, and so training, bit-identical
        weights32 = torch.tensor(row_weights, dtype=torch.float32)
        encoded["train"] = dataclasses.replace(encoded["train"], row_weights=weights32)
    weights = td.imbalance_weights(encoded["train"].targets, task, hyper.imbalance, hyper.pos_weight_cap)
    checkpoints = root / config.checkpoint_dir / f"{model}-{task}"
    n_labels = len(td.label_names(task))
    run = RunSpec(model, task, spec, profile, seed, base_path, n_labels, fingerprint, checkpoints, run_params)
    return run, encoded, weights, tokenizer, data_hash


def _row_weights(path: Path, train: pd.DataFrame) -> tuple[list[float], dict[str, Any]]:
    """Each train row's loss weight from ``train.weights`` (the curate stage's weights.parquet), and what the run
    records of it. Every train row must have one: weights written for another dataset are refused, not guessed."""
    table = read_parquet_input(path, "row weights not found; run `emosafe curate` (or `dvc repro`) first")
    if not {"id", "weight"} <= set(table.columns):
        raise SourceFileError(path, "missing column(s) id/weight (the curate stage writes them)")
    bad = table[~table["weight"].between(0.0, 1.0)]
    if len(bad):
        raise DataRowError(path, int(bad.index[0]) + 1, "weight", "must be a number in [0, 1]")
    weights = dict(zip(table["id"].astype(str), table["weight"].astype(float), strict=True))
    missing = [i for i in train["id"].astype(str) if i not in weights]
    if missing:
        raise SourceFileError(
            path, f"{len(missing)} train row(s) have no weight (e.g. id {missing[0]!r}); re-run `emosafe curate`"
        )
    values = [weights[i] for i in train["id"].astype(str)]
    record = {
        "file": path.name,
        "sha256": sha256_file(path),
        "rows_below_1": sum(v < 1.0 for v in values),
        "total": round(sum(values), 4),
    }
    return values, record


def _read(path: Path) -> tuple[pd.DataFrame, str]:
    frame = read_parquet_input(path, "training input not found; run `dvc repro` (prepare/augment) first")
    missing = [c for c in NEEDED if c not in frame.columns]
    if missing:
        raise SourceFileError(path, f"missing column(s) {missing} (schema: docs/data.md)")
    if not (frame["split"] == "train").any():
        raise SourceFileError(path, "no row has split == 'train'")
    return frame, sha256_file(path)


def _base_path(config: Any, model: str, root: Path) -> str:
    spec = config.model(model)
    if spec.convert:
        folder = root / config.base_dir / model
        if not (folder / "config.json").is_file():
            raise EmosafeError(f"{folder}: converted base model missing; run `emosafe convert` (or `dvc repro`)")
        return str(folder)
    local = root / spec.source
    if not spec.source.startswith("pkg:") and local.is_dir():
        return str(local)
    return resolve(ModelSource(spec.source, revision=spec.revision))


def _tracker(config: TrainConfig, run: Any, data_hash: str, root: Path, enabled: bool) -> Any:
    from components.tracking import Tracker

    settings = config.wandb
    return Tracker.start(
        enabled=settings.enabled and enabled,
        project=settings.project,
        mode=settings.mode,
        folder=str(root / settings.dir),
        name=f"{run.name}-{run.task}-lora",
        group=f"ladder-{config.profile}",
        config={**run.params, "data_hash": data_hash, "setting": "lora"},
    )


def _meta(module: str, run: Any, data_hash: str, rows: dict[str, int], weights: Any) -> dict[str, Any]:
    spec = run.spec
    return provenance(
        module,
        {
            "stage": "train",
            "params": run.params,
            "seed": run.seed,
            "data_hash": data_hash,
            "rows": rows,
            "imbalance_weights": None if weights is None else [round(float(w), 6) for w in weights],
            "base_model": {
                "name": run.name,
                "source": spec.source,
                "revision": spec.revision,
                "gguf_file": spec.gguf_file,
                "num_layers": spec.num_layers,
                "folder": run.base_path,
            },
            "fingerprint": run.fingerprint,
        },
    )


def _fill(
    tmp: Path, *, outcome: Any, tokenizer: Any, names: tuple[str, ...], metrics: dict[str, Any], merged: bool
) -> None:
    from safetensors.torch import save_file

    from components.training.finetune import trainable_state

    model = outcome.model
    model.save_pretrained(tmp / "adapter", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "adapter")
    head = {k: v.contiguous() for k, v in trainable_state(model).items() if "lora_" not in k}
    save_file(head, tmp / "head.safetensors")
    multi = names == CATEGORIES
    atomic_write_json(
        tmp / "labels.json", {"task": "taxonomy" if multi else "trinary", "labels": list(names), "multi_label": multi}
    )
    atomic_write_json(tmp / "metrics.json", metrics)
    atomic_write_json(tmp / "curve.json", {"train": outcome.curve, "val": outcome.epochs})
    _plot(outcome, tmp / "curve.png")
    if merged:
        model.merge_and_unload().save_pretrained(tmp / "merged", safe_serialization=True)


def _plot(outcome: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p["step"] for p in outcome.curve], [p["loss"] for p in outcome.curve], label="train loss")
    if outcome.epochs:
        ax.plot([e["step"] for e in outcome.epochs], [e["val_loss"] for e in outcome.epochs], "o-", label="val loss")
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _summary(model: str, task: str, outcome: Any, millions: float | None) -> str:
    final = outcome.final
    size = f" ({millions:g}M)" if millions else ""
    return (
        f"train {model}-{task}{size}: {outcome.steps} steps in {outcome.seconds / 60:.2f} min "
        f"({outcome.seconds / max(1, outcome.steps - outcome.resumed_from):.2f} s/step, resumed from "
        f"{outcome.resumed_from}); val macro_f1 {final.get('macro_f1', float('nan')):.3f} "
        f"accuracy {final.get('accuracy', float('nan')):.3f}"
    )
