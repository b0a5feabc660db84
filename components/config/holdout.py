"""The ``holdout`` section: leave-one-source-out runs (train without source S, evaluate on S).

A model that scores well on its own test split may have learnt which corpus a message came from rather than how
risky it is; scoring it on a whole corpus it never saw is the standard check of cross-corpus generalization. Each
(model, held-out source) is one ``holdout`` stage item: the ladder's training recipe on the dataset without S (and
without rewrites of S's messages), then S's human rows scored through the evaluation path. Off (no sources) in the
embedded default, which has a single source.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.config.base import Frozen


class HoldoutConfig(Frozen):
    sources: tuple[str, ...] = Field(
        default=(), description="Sources (prepare.sources names) held out one at a time; empty: no holdout runs."
    )
    models: tuple[str, ...] = Field(
        default=(), description="Ladder rungs trained per held-out source (train's names); empty: every rung."
    )
    task: Literal["trinary", "taxonomy"] = Field(default="trinary", description="The task the holdout runs learn.")
    max_test_rows: int | None = Field(
        default=2000, ge=1, description="Cap on a held-out source's rows scored (seeded choice by id); null: all."
    )
    output_dir: str = Field(
        default="models/holdout", description="Runs go to <output_dir>/<model>-without-<source>/ (DVC outs)."
    )
    reports_dir: str = Field(
        default="reports/holdout", description="<model>-without-<source>.json: metrics with CIs on S (no text)."
    )
