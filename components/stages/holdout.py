"""The ``holdout`` stage: leave one source out. Train a ladder rung without source S, then score it on S.

One item per (model, held-out source) of ``holdout``. The fold (``components.data.holdout.leave_out``: the other
sources' train and val rows, S's human rows as test) is written beside the run, the training recipe is the
ladder's own (``components.training.runner``, the active profile's hyper-parameters) and the figures come from the
evaluation path every other report uses (``components.evaluation.model_report``), with the operating point fitted on the
other sources' val rows. Writes ``<output_dir>/without-<S>/<model>-<task>/`` (the run) and
``<reports_dir>/<model>-without-<S>.json`` (metrics with CIs on S, no text); the scaling report tabulates them.
With ``holdout.seeds`` an item is also one seed: ``without-<S>/seed-<N>/`` and ``<model>-without-<S>-seed<N>.json``.
``held_out_rows`` writes a fold's test rows as a corpus, so any other model (the embedded default's, a registry
version) can be scored on exactly the rows a holdout report used, with ``emosafe evaluate --data``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import Params
from components.config.train import TrainConfig
from components.data.holdout import leave_out
from components.data.tables import read_table_records
from components.errors import ConfigError
from components.evaluation.canaries import parse_canaries
from components.evaluation.model_report import EvalInputs, run_one
from components.evaluation.suites import read_suites
from components.io import atomic_write_bytes, atomic_write_json, read_parquet_input, sha256_file
from components.provenance import provenance
from components.schema import CATEGORIES
from components.training.runner import run_training

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HoldoutOutcome:
    run: Path
    report: Path
    summary: dict[str, Any]  # model, held-out source, rows, test macro-F1 and unsafe recall (no text)


def holdout(params: Params, model: str, source: str, root: Path = Path(), seed: int | None = None) -> HoldoutOutcome:
    """Train ``model`` without ``source`` and score it on ``source``; checks run before anything is written.

    ``seed`` (one of ``holdout.seeds``) replaces the training seed only: the held-out rows and the fold stay the
    ones ``params.seed`` chooses, so the runs of one item differ by their training alone."""
    config = params.holdout
    if source not in config.sources:
        raise ConfigError(f"holdout: source '{source}' is not in holdout.sources {list(config.sources)}")
    if model not in (config.models or tuple(params.train.active.models)):
        raise ConfigError(f"holdout: model '{model}' is not in holdout.models {list(config.models)}")
    if seed not in (config.seeds or (None,)):
        raise ConfigError(
            f"holdout: seed {seed} does not match holdout.seeds {list(config.seeds)} (give one of them, or none "
            "when the list is empty)"
        )
    data = root / params.train.input
    frame = read_parquet_input(data, "training input not found; run `dvc repro` (prepare/augment) first")
    fold = leave_out(frame, source, config.max_test_rows, params.seed)
    canary_path = root / params.evaluate.canaries
    canaries = parse_canaries(read_table_records(canary_path, "jsonl"), canary_path)
    runs = root / config.output_dir / config.fold_dir(source, seed)
    runs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=runs, prefix=".fold-") as tmp:
        fold_path = Path(tmp) / "dataset.parquet"
        fold.to_parquet(fold_path, index=False)
        fold_config = _fold_config(params, fold_path, runs, root, config.fold_dir(source, seed), seed)
        trained = run_training(fold_config, model, config.task, root, __name__)
    from components.export.merged import run_predictor

    predictor, info = run_predictor(trained.folder, config.task, root)
    test = fold[fold["split"] == "test"]
    suites = read_suites(params.evaluate.suites, root)  # the shipped suites too: the same yardstick as the ladder
    inputs = EvalInputs(fold, test, sha256_file(data), f"holdout:{source}", {}, canaries, root, suites)
    payload = run_one(predictor, inputs, params.evaluate) | {
        "model": model,
        "setting": "holdout",
        "holdout": {
            "source": source,
            "seed": seed,
            "rows": _rows(fold),
            "run": str(trained.folder.relative_to(root)),
        },
        "model_info": info,
    }
    held_out = {  # the held-out source as a suite: the binary view the scaling report's holdout table reads
        "purpose": f"leave-one-source-out: {source}'s human rows, none trained on",
        "data_hash": inputs.data_hash,
        "figures": payload["figures"]["test"],
        "metrics": payload["splits"]["test"],
    }
    payload["suites"] = {f"holdout:{source}": held_out, **payload["suites"]}
    payload["provenance"] = provenance(
        __name__,
        {
            "stage": "holdout",
            "seed": params.seed,
            "params": {"seed": params.seed, "holdout": config.model_dump(mode="json")},
            "data_hash": inputs.data_hash,
            "run": {"model": model, "held_out": source, "task": config.task, "training_seed": _seed(fold_config)},
        },
    )
    report = root / config.reports_dir / f"{config.run_name(model, source, seed)}.json"
    atomic_write_json(report, payload)
    summary = _summary(payload)
    log.info("holdout %s without %s: %s", model, source, summary)
    return HoldoutOutcome(trained.folder, report, summary)


def held_out_rows(params: Params, source: str, output: Path, root: Path = Path()) -> int:
    """Write ``source``'s held-out rows (the fold's test split: same cap, same seeded choice) to ``output`` as
    emosafe-schema JSONL; returns the row count. The file holds message text: it belongs beside the data, not in
    reports."""
    config = params.holdout
    if source not in config.sources:
        raise ConfigError(f"holdout: source '{source}' is not in holdout.sources {list(config.sources)}")
    data = root / params.train.input
    frame = read_parquet_input(data, "training input not found; run `dvc repro` (prepare/augment) first")
    test = leave_out(frame, source, config.max_test_rows, params.seed)
    test = test[test["split"] == "test"]
    lines = [
        json.dumps(
            {
                "id": str(row["id"]),
                "text": str(row["text"]),
                "label": str(row["label"]),
                "categories": [name for name in CATEGORIES if bool(row[name])],
            },
            ensure_ascii=False,
        )
        for _, row in test.iterrows()
    ]
    atomic_write_bytes(output, ("\n".join(lines) + "\n").encode())
    return len(lines)


def _fold_config(
    params: Params, fold_path: Path, runs: Path, root: Path, fold_dir: str, seed: int | None
) -> TrainConfig:
    """The ladder's training section pointed at the fold: its own input, output and checkpoint folders, no W&B
    artifact (the run is a measurement, never shipped), and ``seed`` as the training seed when given."""
    train = params.train
    profiles = dict(train.profiles)
    if seed is not None:
        active = train.active
        profiles[train.profile] = active.model_copy(update={"hyper": active.hyper.model_copy(update={"seed": seed})})
    return train.model_copy(
        update={
            "input": str(fold_path.relative_to(root)),
            "output_dir": str(runs.relative_to(root)),
            "checkpoint_dir": str(Path(train.checkpoint_dir) / fold_dir),
            "profiles": profiles,
            "wandb": train.wandb.model_copy(update={"log_artifact": False}),
        }
    )


def _seed(train: TrainConfig) -> int:
    return int(train.active.hyper.seed)


def _rows(fold: Any) -> dict[str, int]:
    return {str(split): int(count) for split, count in fold["split"].value_counts().sort_index().items()}


def _summary(payload: dict[str, Any]) -> dict[str, Any]:
    """What the log line shows. Macro-F1 is the one over the classes the held-out rows have (``figures.test``), as
    the scaling report's table shows it: a source with no unsafe rows would otherwise enter a 0 for that class and
    read about a third lower than the report."""
    figures = payload["figures"]["test"]
    return {
        "model": payload["model"],
        "held_out": payload["holdout"]["source"],
        "seed": payload["holdout"].get("seed"),
        "test_rows": payload["holdout"]["rows"].get("test", 0),
        "classes": list(figures["classes"]),
        "macro_f1": figures["macro_f1"]["value"],
        "unsafe_recall": figures["unsafe_recall"]["value"],
        "safe_flag_rate": figures["safe_flag_rate"]["value"],
    }
