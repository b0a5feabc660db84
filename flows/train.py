"""The ``train`` flow: convert the base models once, then fine-tune every (model, task) of the active profile.

Thin Prefect wrapper over the same stage functions the CLI and DVC call. Each task is DVC-aware: it skips a stage
that dvc.lock records as up to date and records what it ran (flows/dvc_tasks.py). A retry of ``train`` resumes from
the latest checkpoint, so it never repeats finished steps. Returns what each task did as data.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from components.config import Params
from components.profile_pipeline import shares_base_dir
from components.stages import convert as convert_stage
from components.stages import holdout as holdout_stage
from components.stages import train as train_stage
from flows.common import DEFAULT_PARAMS, pipeline_file, read_params, retry_unless_input_error, stage
from flows.dvc_tasks import PIPELINE_FILE, StageRun


@task(name="convert", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_unless_input_error)
def convert_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    """Base models -> safetensors folders (once); the summary is the converted model names.

    A profile that shares the default's ``train.base_dir`` has no convert stage of its own (``emosafe
    pipeline-file`` checked that its rungs are the default's): the root pipeline's stage runs, with params.yaml, as
    ``dvc repro`` would. Converting only the profile's rungs and recording that under the root stage would leave a
    dvc.lock claiming base models the folder lacks, and the default's next run would find them missing."""
    converting = params
    if pipeline != PIPELINE_FILE:
        default = read_params(DEFAULT_PARAMS, root)
        if shares_base_dir(default, params):
            converting = default
    return stage(
        "convert", root, lambda: sorted(convert_stage.convert(converting, Path(root)).folders), pipeline=pipeline
    )


@task(name="train", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_unless_input_error)
def train_task(params: Params, model: str, task_name: str, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    """Fine-tune one (model, task) = DVC stage ``train@<model>-<task>``; the summary is one line (no text)."""
    target = f"train@{model}-{task_name}"
    run = stage(
        "train",
        root,
        lambda: train_stage.train(params, model, task_name, Path(root)).summary,
        target,
        pipeline,
    )
    return StageRun(target, run.ran, run.targets, run.summary)


@task(name="holdout", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_unless_input_error)
def holdout_task(
    params: Params, model: str, source: str, root: str = ".", pipeline: str = PIPELINE_FILE, seed: int | None = None
) -> StageRun:
    """Train one rung without one source and score it on that source = DVC stage ``holdout@<model>-<source>``
    (``holdout@<model>-<source>-<seed>`` with ``holdout.seeds``)."""
    target = holdout_target(model, source, seed)
    run = stage(
        "holdout",
        root,
        lambda: holdout_stage.holdout(params, model, source, Path(root), seed).summary,
        target,
        pipeline,
    )
    return StageRun(target, run.ran, run.targets, run.summary)


def holdout_target(model: str, source: str, seed: int | None) -> str:
    """The DVC name of one holdout item: DVC joins a matrix item's values with '-' in dvc.yaml's axis order."""
    return f"holdout@{model}-{source}" + ("" if seed is None else f"-{seed}")


def holdouts(params: Params) -> list[tuple[str, str, int | None]]:
    """(model, held-out source, seed) of every leave-one-source-out run, in dvc.yaml's matrix order; seed None
    when ``holdout.seeds`` is empty; none when ``holdout.sources`` is empty."""
    config = params.holdout
    seeds: tuple[int | None, ...] = config.seeds or (None,)
    models = config.models or list(params.train.active.models)
    return [(model, source, seed) for model in models for source in config.sources for seed in seeds]


def ladder(params: Params, root: str, models: list[str] | None = None) -> list[tuple[str, str]]:
    """(model, task) of every run of the active profile (or of ``models``), in params order."""
    config = params.train
    return [(model, name) for model in models or list(config.active.models) for name in config.tasks]


def _in_process() -> bool:
    """True when the running flow's task runner is the in-process thread pool (Prefect's default)."""
    context = FlowRunContext.get()
    return context is None or isinstance(context.task_runner, ThreadPoolTaskRunner)


def run_ladder(
    params: Params, root: str, entries: list[tuple[str, str]], pipeline: str = PIPELINE_FILE
) -> list[StageRun]:
    """One ``train`` task run per (model, task): inline with the in-process runner, submitted with any other.

    Inline because torch threads, accelerate and W&B hold process-wide state, two cores gain nothing from sharing,
    and the same trainings read 13-60% slower in the pool's worker thread than in the flow's (docs/decisions.md).
    A Dask runner (``flows/engine.py``, ``python -m flows --cluster``) gets them submitted to its worker processes.
    """
    if _in_process():
        return [train_task(params, model, name, root, pipeline) for model, name in entries]
    runs = [train_task.submit(params, model, name, root, pipeline) for model, name in entries]
    return [run.result() for run in runs]


@flow(name="train")
def train_flow(params_path: str = "params.yaml", root: str = ".", models: list[str] | None = None) -> list[StageRun]:
    """The whole ladder of the active profile (or ``models``) on every task in ``train.tasks``."""
    params, dvcfile = read_params(params_path, root), pipeline_file(params_path, root)
    convert_task(params, root, dvcfile)
    return run_ladder(params, root, ladder(params, root, models), dvcfile)


if __name__ == "__main__":
    train_flow()
