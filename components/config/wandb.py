"""Where a stage's W&B run goes: one settings block shared by `train.wandb` and `report.wandb`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.config.base import Frozen


class WandbRun(Frozen):
    """WANDB_MODE and WANDB_DIR win when set, so CI and users can redirect runs without editing params."""

    enabled: bool = Field(default=True, description="Log to W&B (offline unless WANDB_MODE says online).")
    project: str = Field(default="emosafe", description="W&B project.")
    mode: Literal["offline", "online", "disabled"] = Field(
        default="offline", description="Used when WANDB_MODE is unset; sync offline runs later with `wandb sync`."
    )
    dir: str = Field(default=".", description="Parent of the wandb/ run folders (WANDB_DIR overrides).")
