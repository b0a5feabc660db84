"""The ``reevaluate`` section: continuous evaluation of the production version on labelled feedback.

Bootstrap settings come from ``evaluate`` (resamples, confidence, seed) and the floors from ``register.gate``, so a
re-evaluation is measured and judged exactly like the evaluation that let the version in. The ONNX Runtime settings
(variant, batch size, threads) are ``predict``'s: re-evaluation scores with the file that serves.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Frozen

TASK_PLACEHOLDER = "{task}"


class ReevaluateConfig(Frozen):
    """Which registered version is re-evaluated and where the reports go."""

    model: str = Field(
        default="emosafe-{task}@production",
        description="Registry reference re-evaluated when --model is not given; {task} is replaced by each task.",
    )
    tasks: tuple[Literal["trinary", "taxonomy"], ...] = Field(
        default=("trinary", "taxonomy"),
        description="Tasks whose model is re-evaluated (the feedback carries both labellings).",
    )
    output_dir: str = Field(
        default="reports/reevaluate", description="Writes <name>-v<version>-<timestamp>.json here (no text)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ReevaluateConfig:
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError("tasks must name trinary and/or taxonomy, each once")
        if "@" not in self.model:
            raise ValueError(
                f"model {self.model!r} must be a registry reference name@alias (e.g. emosafe-{{task}}@production)"
            )
        if len(self.tasks) > 1 and TASK_PLACEHOLDER not in self.model:
            raise ValueError("model must contain {task} when several tasks are listed (one registered model per task)")
        return self

    def refs(self) -> list[tuple[str, str]]:
        """(task, reference) for every configured task."""
        return [(task, self.model.replace(TASK_PLACEHOLDER, task)) for task in self.tasks]
