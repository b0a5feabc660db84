"""The ``export`` section: ONNX export of a fine-tuned run, its parity proof, int8 quantization and its gate figures.

Tolerances are stated here (not in code) so a reviewer sees what "parity" means: fp32 ONNX logits within
``parity_atol`` of torch on a fixed batch with every label equal; the int8 file within the ``quantized`` drops of the
fp32 ONNX file on test, measured through the one evaluation path. The registry's gate re-checks the same figures.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Frozen

#: Node kinds whose weights ``quantize_dynamic`` may quantize. Gather = token embeddings (most of a 1B's bytes).
QuantOp = Literal["MatMul", "Gather", "Gemm", "Attention", "LSTM", "EmbedLayerNormalization"]


class QuantizeConfig(Frozen):
    """onnxruntime dynamic quantization: int8 weights, activations quantized on the fly at inference."""

    per_channel: bool = Field(default=True, description="One scale per output channel (accuracy) vs per tensor.")
    weight_type: Literal["qint8", "quint8"] = Field(default="qint8", description="Signed or unsigned int8 weights.")
    op_types: tuple[QuantOp, ...] = Field(
        default=("MatMul", "Gather"), description="Node kinds to quantize; Gather includes the token embeddings."
    )
    exclude_nodes: tuple[str, ...] = Field(
        default=(), description="ONNX node names kept in fp32 (only if a check needs it; recorded in the report)."
    )
    reduce_range: bool = Field(default=False, description="7-bit weights (older x86 without VNNI); costs accuracy.")


class QuantizedLimits(Frozen):
    """What the int8 file may lose against the fp32 ONNX file on test (same numbers as register.gate.quantized)."""

    max_macro_f1_drop: float = Field(default=0.005, ge=0, le=1, description="Largest macro-F1 loss (0.005 = 0.5 pt).")
    max_category_f1_drop: float = Field(default=0.015, ge=0, le=1, description="Largest F1 loss of one class/category.")
    min_label_agreement: float = Field(default=0.99, ge=0, le=1, description="Share of messages decided as fp32 did.")


class ExportConfig(Frozen):
    """Which run is exported, the parity and quantization rules, and where the bundle goes."""

    model: str = Field(default="smollm2-30l", description="The on-device model of the train profile to export.")
    tasks: tuple[Literal["trinary", "taxonomy"], ...] = Field(
        default=("trinary", "taxonomy"), description="Tasks exported (one bundle each)."
    )
    runs_dir: str = Field(default="models", description="Training runs: <runs_dir>/<model>-<task>/ (train.output_dir).")
    input: str = Field(default="data/augmented/dataset.parquet", description="Dataset: parity batch and test split.")
    output_dir: str = Field(default="exports", description="Bundles go to <output_dir>/<model>-<task>/.")
    thresholds_report: str | None = Field(
        default=None,
        description="Evaluation report whose tuned taxonomy thresholds are shipped ({model}, {task} filled in); "
        "null: 0.5 for every category.",
    )
    max_length: int | None = Field(default=None, ge=8, description="Tokens per message; null: the run's max_length.")
    opset: int = Field(default=18, ge=17, le=23, description="ONNX opset of the exported graph.")
    external_data_bytes: int = Field(
        default=2_000_000_000,
        ge=1,
        description="Weights above this size go to an external .data file (protobuf limit).",
    )
    parity_messages: int = Field(default=32, ge=2, description="Fixed batch (first test ids in order) for parity.")
    parity_atol: float = Field(default=1e-4, gt=0, description="Largest |logit(ONNX fp32) - logit(torch)| allowed.")
    quantize: QuantizeConfig = QuantizeConfig()
    limits: QuantizedLimits = QuantizedLimits()
    keep_fp32: bool = Field(default=True, description="Ship model_fp32.onnx beside the int8 file (for audits).")
    batch_size: int = Field(default=32, ge=1, description="Hardware: messages per ONNX Runtime call.")
    num_threads: int = Field(default=2, ge=1, description="Hardware: intra-op threads for torch and ONNX Runtime.")

    @model_validator(mode="after")
    def _quantizes_something(self) -> ExportConfig:
        if not self.quantize.op_types:
            raise ValueError("quantize.op_types is empty: nothing would be quantized (rule: list MatMul and/or Gather)")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks {list(self.tasks)} repeat a task")
        return self
