"""The one interface every scorer implements, so a single evaluation path serves them all.

Torch models (fine-tuned classifiers), prompted causal LMs (``components.evaluation.prompting.LikelihoodPredictor``) and
ONNX Runtime sessions all expose ``task`` and ``predict(texts) -> scores``; ``components.evaluation.measure``
turns scores into decisions and metrics, so no setting can drift into its own metric code.

Scores: trinary = (n, 3) probabilities over ``LABELS`` order (rows sum to 1); taxonomy = (n, 6) independent
probabilities over ``CATEGORIES`` order (decided by per-category thresholds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from components.errors import EvaluationError
from components.schema import CATEGORIES, LABELS

WIDTH = {"trinary": len(LABELS), "taxonomy": len(CATEGORIES)}


@runtime_checkable
class Predictor(Protocol):
    """Anything that scores messages for one task. Implementations batch internally and never log text."""

    task: str

    def predict(self, texts: Sequence[str]) -> NDArray[np.float64]: ...


def checked_scores(scores: Any, n: int, task: str) -> NDArray[np.float64]:
    """Validate a predictor's output against the contract above; EvaluationError says which rule broke."""
    array = np.asarray(scores, dtype=float)
    if task not in WIDTH:
        raise EvaluationError(f"unknown task '{task}' (rule: trinary or taxonomy)")
    if array.shape != (n, WIDTH[task]):
        raise EvaluationError(f"{task} scores must have shape ({n}, {WIDTH[task]}), got {array.shape}")
    if not np.isfinite(array).all() or array.min(initial=0.0) < 0.0 or array.max(initial=0.0) > 1.0:
        raise EvaluationError(f"{task} scores must be finite probabilities in [0, 1]")
    if task == "trinary" and n and not np.allclose(array.sum(axis=1), 1.0, atol=1e-4):
        raise EvaluationError("trinary scores must sum to 1 per message (probabilities over LABELS)")
    return array
