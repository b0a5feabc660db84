"""The ``train`` stage: fine-tune one (model, task) of the active profile and write ``<output_dir>/<model>-<task>/``.

The run itself (checks, tokenising, training, the folder's files, resumable checkpoints) is
``components.training.runner.run_training``, shared with the ``holdout`` stage; this stage runs it on
``train.input`` with the stage's own code closure as provenance.
"""

from __future__ import annotations

from pathlib import Path

from components.config import Params
from components.training.runner import TrainStageResult, run_training

__all__ = ["TrainStageResult", "train"]


def train(params: Params, model: str, task: str, root: Path = Path()) -> TrainStageResult:
    """Train ``model`` on ``task``; all checks run before the (slow) model load, nothing is written on error."""
    return run_training(params.train, model, task, root, __name__)
