"""The ``ship`` section: which exported bundles the ``ship`` stage registers and which alias it moves.

``ship`` registers each exported on-device bundle (``<export.output_dir>/<export.model>-<task>/``) as a version of
``emosafe-<task>`` with the shipped file's figures and its drift reference, runs the promotion gate, and moves
``alias`` only on a passing decision. Shipped bundles always need the int8 figures (``require_quantized``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Frozen


class ShipConfig(Frozen):
    """Decide-then-act release of the exported bundles."""

    enabled: bool = Field(default=True, description="False: the stage writes its report and moves nothing.")
    alias: Literal["staging", "production"] = Field(
        default="production", description="Guarded alias a passing bundle moves to (compare-and-swap, audited)."
    )
    tasks: tuple[Literal["trinary", "taxonomy"], ...] = Field(
        default=("trinary", "taxonomy"), description="Tasks whose bundle is shipped (each must be in export.tasks)."
    )
    require_quantized: bool = Field(
        default=True,
        description="Refuse a bundle without int8 figures (forces register.gate.quantized.required for shipping).",
    )
    output: str = Field(default="reports/ship/ship.json", description="Decisions and moves (no text; a DVC out).")

    @model_validator(mode="after")
    def _distinct_tasks(self) -> ShipConfig:
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks {list(self.tasks)} repeat a task")
        return self
