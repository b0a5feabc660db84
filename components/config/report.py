"""The ``report`` section: where the scaling report reads the evaluation reports and writes its table and plots.

W&B settings mirror ``train.wandb`` (offline unless ``WANDB_MODE`` says otherwise); the report run is one W&B run
with ``job_type: report``.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Frozen
from components.config.wandb import WandbRun


class ReportConfig(Frozen):
    input_dir: str = Field(
        default="reports/evaluate", description="The evaluate stage's <model>-<setting>-<task>.json files."
    )
    output_dir: str = Field(
        default="reports/scaling", description="scaling.md, metrics.json, meta.json and plots/ (data + PNG)."
    )
    split: Literal["test", "val"] = Field(default="test", description="Which split's figures the report shows.")
    wandb: WandbRun = WandbRun()

    @model_validator(mode="after")
    def _separate_folders(self) -> ReportConfig:
        inside, outside = PurePosixPath(self.input_dir), PurePosixPath(self.output_dir)
        if inside == outside or outside in inside.parents or inside in outside.parents:
            raise ValueError("output_dir must not be, contain or lie inside input_dir (the report replaces it)")
        return self
