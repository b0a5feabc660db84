"""The ``predict`` section: batch predictions on ONNX Runtime and the production log that monitoring reads."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.config.base import Frozen


class PredictConfig(Frozen):
    """Serving settings. The log gets one JSON line per prediction (docs/export.md), never text by default."""

    log: str = Field(default="logs/predictions.jsonl", description="Production log (JSONL) appended by every run.")
    variant: Literal["int8", "fp32"] = Field(default="int8", description="Which ONNX file of the bundle serves.")
    batch_size: int = Field(default=64, ge=1, description="Hardware: messages per ONNX Runtime call.")
    num_threads: int = Field(default=2, ge=1, description="Hardware: ONNX Runtime intra-op threads.")
    id_column: str = Field(default="id", description="Input column holding message ids (row numbers if absent).")
    text_column: str = Field(default="text", description="Input column holding the message text.")
