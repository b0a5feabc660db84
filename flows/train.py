"""The ``train`` flow: convert the base models once, then fine-tune every (model, task) of the active profile.

Thin Prefect wrapper over the same stage functions the CLI and DVC call. Each task is DVC-aware: it skips a stage
that dvc.lock records as up to date and records what it ran (flows/dvc_tasks.py). A retry of ``train`` resumes from
the latest checkpoint, so it never repeats finished steps. Returns what each task did as data.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from flows.common import params, stage
from flows.dvc_tasks import StageRun


@task(name="convert", retries=1, retry_delay_seconds=5)
def convert_task(params_path: str, root: str = ".") -> StageRun:
    """Base models -> safetensors folders (once); the summary is the converted model names."""
    from components.stages.convert import convert

    return stage("convert", root, lambda: sorted(convert(params(params_path, root), Path(root)).folders))


@task(name="train", retries=1, retry_delay_seconds=5)
def train_task(params_path: str, model: str, task_name: str, root: str = ".") -> StageRun:
    """Fine-tune one (model, task) = DVC stage ``train@<model>-<task>``; the summary is one line (no text)."""
    from components.stages.train import train

    target = f"train@{model}-{task_name}"
    items = [t for t in _train_targets(root) if t == target]
    run = stage("train", root, lambda: train(params(params_path, root), model, task_name, Path(root)).summary, items)
    return StageRun(target, run.ran, run.targets, run.summary)


def _train_targets(root: str) -> list[str]:
    from flows.dvc_tasks import stage_targets

    return stage_targets(Path(root), "train")


def ladder(params_path: str, root: str, models: list[str] | None = None) -> list[tuple[str, str]]:
    """(model, task) of every run of the active profile (or of ``models``), in params order."""
    config = params(params_path, root).train
    return [(model, name) for model in models or list(config.active.models) for name in config.tasks]


@flow(name="train")
def train_flow(params_path: str = "params.yaml", root: str = ".", models: list[str] | None = None) -> list[StageRun]:
    """The whole ladder of the active profile (or ``models``) on every task in ``train.tasks``."""
    convert_task(params_path, root)
    runs = [train_task.submit(params_path, model, name, root) for model, name in ladder(params_path, root, models)]
    return [run.result() for run in runs]


if __name__ == "__main__":
    train_flow()
