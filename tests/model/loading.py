"""The model under test: loaded through the paths the project itself uses, scored, and decided by its own rule.

A registry reference (``emosafe-trinary@production``, ``name@3``) is resolved and verified by
``components.stages.predict.resolve_model`` and scored by ``OnnxPredictor``, exactly as ``emosafe predict`` does; so
is an exported bundle folder (``exports/<model>-<task>``). A training run folder (``models/<model>-<task>``) is scored
by ``components.export.merged.run_predictor`` as ``evaluate`` does, with the taxonomy thresholds ``export`` would ship
(``export.thresholds_report``; 0.5 when it is null). Every failure to load is an EmosafeError naming what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from components.config import Params
from components.evaluation.operating_point import decide
from components.evaluation.predictors import Predictor, checked_scores
from components.schema import CATEGORIES, LABELS


@dataclass(frozen=True)
class ModelUnderTest:
    """A scorer and its own decision rule (the thresholds it ships or was fitted with; trinary without: argmax)."""

    name: str
    task: str
    predictor: Predictor
    thresholds: Mapping[str, float] | None

    def scores(self, texts: Sequence[str]) -> NDArray[np.float64]:
        return checked_scores(self.predictor.predict(list(texts)), len(texts), self.task)

    def decide(self, texts: Sequence[str]) -> list[str | tuple[str, ...]]:
        """Trinary: the label; taxonomy: the flagged categories (``components.evaluation.operating_point.decide``)."""
        decided = decide(self.scores(texts), self.task, self.thresholds)
        if self.task == "trinary":
            return [LABELS[int(i)] for i in decided]
        return [tuple(c for c, hit in zip(CATEGORIES, row, strict=True) if hit) for row in decided]


def load_model_under_test(reference: str, params_path: Path) -> ModelUnderTest:
    """Raises EmosafeError (ConfigError, RegistryError, BundleError, ...) naming what could not be loaded."""
    from components.config import load_params

    params = load_params(params_path)
    folder = Path(reference)
    if folder.is_dir() and not (folder / "manifest.json").is_file() and (folder / "adapter").is_dir():
        return _training_run(params, folder)
    return _bundle(params, reference)


def _bundle(params: Params, reference: str) -> ModelUnderTest:
    """A registry version or an exported bundle: the loading and scoring path of ``emosafe predict``."""
    from components.export.runtime import OnnxPredictor
    from components.stages.predict import resolve_model

    folder, name, version = resolve_model(params.register, reference, Path())  # read-only: never creates a registry
    config = params.predict
    onnx = OnnxPredictor(folder, config.variant, config.batch_size, config.num_threads)
    return ModelUnderTest(f"{name}@{version}", onnx.task, onnx, onnx.labels.thresholds)


def _training_run(params: Params, folder: Path) -> ModelUnderTest:
    """``models/<model>-<task>/``: merged LoRA on torch, as ``evaluate`` scores it; its project is two levels up."""
    import json

    from components.errors import EmosafeError
    from components.export.merged import run_predictor
    from components.stages.export import _thresholds

    project = folder.resolve().parents[1] if folder.resolve().parent.name == "models" else Path()
    try:
        task = str(json.loads((folder / "labels.json").read_text(encoding="utf-8"))["task"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise EmosafeError(f"{folder / 'labels.json'}: not a finished `emosafe train` run ({exc})") from None
    predictor, _ = run_predictor(folder, task, project)
    thresholds = _thresholds(params.export.thresholds_report, folder.name, task, project)
    return ModelUnderTest(folder.name, task, predictor, thresholds)
