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
    """onnxruntime int8 (docs/export.md "Choosing the int8 recipe").

    ``method: per_token_split`` (default): every MatMul with a constant weight becomes ``MatMulIntegerToFloat`` with
    int8 weights per output channel and uint8 activations scaled per token; input channels whose calibration peak
    exceeds ``outlier_threshold`` go through an fp32 MatMul beside it; SmoothQuant factors (``smooth_alpha``) are
    folded into the RMSNorm weights and up_proj. ``per_token`` / ``outlier_split``: one half of it.
    ``method: block8``: MatMul weights int8 in symmetric blocks of ``block_size`` (``MatMulNBits``, 8 bits), computed
    in fp32 (``accuracy_level`` 0): closest to fp32, slower than the fp32 file. ``method: dynamic``:
    ``quantize_dynamic``: one activation scale per tensor, which the LLaMA activation outliers crush.
    """

    method: Literal["dynamic", "block8", "per_token", "outlier_split", "per_token_split"] = Field(
        default="per_token_split",
        description="block8: blockwise int8 MatMul + dynamic int8 Gather; dynamic: quantize_dynamic; per_token / "
        "outlier_split / per_token_split: int8 activations with a scale per token, outlier channels kept fp32, or "
        "both (components/export/activation_int8.py).",
    )
    block_size: int = Field(default=16, ge=16, le=256, description="block8: weights (and activations) per int8 block.")
    accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        default=0, description="block8: MatMulNBits compute type (0/1 = fp32, weight-only; 4 = int8 activations)."
    )
    per_channel: bool = Field(default=True, description="One scale per output channel (accuracy) vs per tensor.")
    weight_type: Literal["qint8", "quint8"] = Field(default="qint8", description="Signed or unsigned int8 weights.")
    op_types: tuple[QuantOp, ...] = Field(
        default=("MatMul", "Gather"), description="Node kinds to quantize; Gather includes the token embeddings."
    )
    exclude_nodes: tuple[str, ...] = Field(
        default=(), description="ONNX node names kept in fp32 (only if a check needs it; recorded in the report)."
    )
    exclude_modules: tuple[str, ...] = Field(
        default=(),
        description="fnmatch patterns over the torch module path of each node (e.g. 'model.layers.*.mlp.down_proj'), "
        "resolved to node names at export time and recorded in quantization.json's excluded_nodes.",
    )
    exclude_reason: str | None = Field(default=None, description="Why nodes are excluded (recorded with them).")
    reduce_range: bool = Field(default=False, description="dynamic: 7-bit weights (old x86 without VNNI); less exact.")
    smooth_alpha: float | None = Field(
        default=0.8,
        gt=0,
        le=1,
        description="SmoothQuant factor alpha. dynamic/block8: every MLP's up_proj/down_proj rescaled in torch before "
        "the fp32 export (components/export/smoothing.py). per_token/outlier_split/per_token_split: 1/s folded into "
        "the node producing each int8 activation (RMSNorm weights, up_proj columns) in the graph; null: off.",
    )
    smooth_messages: int = Field(default=64, ge=1, description="Smoothing calibration: the first train messages.")
    outlier_threshold: float = Field(
        default=10.0,
        gt=0,
        description="outlier_split / per_token_split: input channels whose calibration peak max|x| exceeds this stay "
        "fp32 (a Gather + fp32 MatMul beside the int8 one).",
    )
    outlier_max_channels: int = Field(
        default=64, ge=1, description="outlier_split / per_token_split: at most this many channels per activation."
    )
    calibration_messages: int = Field(
        default=64,
        ge=1,
        description="per_token / outlier_split / per_token_split: the first train messages (by id) whose activation "
        "peaks choose the outlier channels and the smoothing factors.",
    )

    @property
    def rewrites_activations(self) -> bool:
        """The per-token / outlier-split recipes (components/export/activation_int8.py), which calibrate on train
        messages and fold ``smooth_alpha`` into the graph; ``dynamic`` and ``block8`` do neither."""
        return self.method in ("per_token", "outlier_split", "per_token_split")

    @model_validator(mode="after")
    def _block_is_a_power_of_two(self) -> QuantizeConfig:
        if self.block_size & (self.block_size - 1):
            raise ValueError(f"quantize.block_size {self.block_size} must be a power of two (16, 32, 64, ...)")
        if (self.exclude_nodes or self.exclude_modules) and not self.exclude_reason:
            raise ValueError("quantize.exclude_nodes/exclude_modules need quantize.exclude_reason (it is recorded)")
        return self


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
