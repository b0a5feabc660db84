"""The ``train`` flow: convert the base models once, then fine-tune every (model, task) of the active profile.

Thin Prefect wrapper over the same stage functions the CLI and DVC call. A retry of ``train`` resumes from the
latest checkpoint, so it never repeats finished steps. Returns the one-line summaries as data.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from components.config import load_params


@task(name="convert")
def convert_task(params_path: str, root: str = ".") -> list[str]:
    """Base models -> safetensors folders (once); returns the converted model names."""
    from components.stages.convert import convert

    return list(convert(load_params(Path(root) / params_path), Path(root)).folders)


@task(name="train", retries=1, retry_delay_seconds=5)
def train_task(params_path: str, model: str, task_name: str, root: str = ".") -> str:
    """Fine-tune one (model, task); returns its summary line (no text)."""
    from components.stages.train import train

    return train(load_params(Path(root) / params_path), model, task_name, Path(root)).summary


@flow(name="train")
def train_flow(params_path: str = "params.yaml", root: str = ".", models: list[str] | None = None) -> list[str]:
    """The whole ladder of the active profile (or ``models``) on every task in ``train.tasks``."""
    config = load_params(Path(root) / params_path).train
    convert_task(params_path, root)
    names = models or list(config.active.models)
    return [train_task(params_path, model, task_name, root) for model in names for task_name in config.tasks]


if __name__ == "__main__":
    train_flow()
