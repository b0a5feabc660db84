"""The ``holdout`` section: leave-one-source-out runs (train without source S, evaluate on S).

A model that scores well on its own test split may have learnt which corpus a message came from rather than how
risky it is; scoring it on a whole corpus it never saw is the standard check of cross-corpus generalization. Each
(model, held-out source) is one ``holdout`` stage item: the ladder's training recipe on the dataset without S (and
without rewrites of S's messages), then S's human rows scored through the evaluation path. Off (no sources) in the
embedded default, which has a single source. ``seeds`` repeats every item with other training seeds: one run per
seed says nothing about how much of a difference is run-to-run noise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from components.config.base import Frozen


class HoldoutConfig(Frozen):
    sources: tuple[str, ...] = Field(
        default=(), description="Sources (prepare.sources names) held out one at a time; empty: no holdout runs."
    )
    models: tuple[str, ...] = Field(
        default=(), description="Ladder rungs trained per held-out source (train's names); empty: every rung."
    )
    task: Literal["trinary", "taxonomy"] = Field(default="trinary", description="The task the holdout runs learn.")
    seeds: tuple[int, ...] = Field(
        default=(),
        description="Training seeds: each (rung, source) runs once per seed on the same held-out rows, and the "
        "scaling report gives the mean and range across them. Empty: one run with the training seed.",
    )
    max_test_rows: int | None = Field(
        default=2000, ge=1, description="Cap on a held-out source's rows scored (seeded choice by id); null: all."
    )
    output_dir: str = Field(
        default="models/holdout", description="Runs go to <output_dir>/<model>-without-<source>/ (DVC outs)."
    )
    reports_dir: str = Field(
        default="reports/holdout", description="<model>-without-<source>.json: metrics with CIs on S (no text)."
    )

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(seeds)) < len(seeds) or any(seed < 0 for seed in seeds):
            raise ValueError(f"must be distinct non-negative integers, got {list(seeds)}")
        return seeds

    @staticmethod
    def run_name(model: str, source: str, seed: int | None) -> str:
        """A report's stem: ``<model>-without-<source>``, with ``-seed<N>`` when it is one of ``seeds``."""
        return f"{model}-without-{source}" + ("" if seed is None else f"-seed{seed}")

    @staticmethod
    def fold_dir(source: str, seed: int | None) -> str:
        """Where a fold's runs go under ``output_dir`` (and the checkpoint folder)."""
        return f"without-{source}" + ("" if seed is None else f"/seed-{seed}")
