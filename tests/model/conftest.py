"""The behavioural suite's model: loaded once from ``--model`` through the same paths ``emosafe predict`` and
``evaluate`` use; every test here skips when no ``--model`` is given (so plain ``pytest`` stays model-free)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from components.schema import CATEGORIES, LABELS

DEFAULT_THRESHOLD = 0.5


@dataclass
class ModelUnderTest:
    """A scorer plus its own decision rule (the bundle's tuned thresholds for the taxonomy)."""

    name: str
    task: str
    predictor: Any
    thresholds: dict[str, float]

    def scores(self, texts: Sequence[str]) -> NDArray[np.float64]:
        return np.asarray(self.predictor.predict(list(texts)), dtype=np.float64)

    def decide(self, texts: Sequence[str]) -> list[Any]:
        """Trinary: the label; taxonomy: the sorted tuple of flagged categories."""
        rows = self.scores(texts)
        if self.task == "trinary":
            return [LABELS[int(np.argmax(row))] for row in rows]
        limits = [self.thresholds.get(c, DEFAULT_THRESHOLD) for c in CATEGORIES]
        return [tuple(c for c, s, t in zip(CATEGORIES, row, limits, strict=True) if s >= t) for row in rows]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--model", default=None):
        return
    skip = pytest.mark.skip(reason="behavioural suite: give a model with --model (name@alias or a folder)")
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(skip)


def _load(reference: str, params_path: Path) -> ModelUnderTest:
    from components.config import load_params
    from components.errors import EmosafeError
    from components.export.onnx import OnnxPredictor
    from components.stages.predict import resolve_model

    params = load_params(params_path)
    folder = Path(reference)
    try:
        if (folder / "labels.json").is_file() and not (folder / "manifest.json").is_file():
            from components.export.merged import run_predictor

            task = json.loads((folder / "labels.json").read_text())["task"]
            predictor, _ = run_predictor(folder, task)
            return ModelUnderTest(reference, task, predictor, {})
        folder, name, version = resolve_model(params, reference, Path())
        onnx = OnnxPredictor(folder, params.predict.variant, params.predict.batch_size, params.predict.num_threads)
    except EmosafeError as exc:
        pytest.fail(f"--model {reference}: {exc}", pytrace=False)
    thresholds = dict(onnx.labels.thresholds or {})
    return ModelUnderTest(f"{name}@{version}", onnx.task, onnx, thresholds)


@pytest.fixture(scope="session")
def model(pytestconfig: pytest.Config) -> ModelUnderTest:
    reference = pytestconfig.getoption("--model")
    return _load(str(reference), Path(pytestconfig.getoption("--model-params")))
