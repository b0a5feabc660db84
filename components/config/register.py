"""The ``register`` section: where the model registry lives and the promotion gate's thresholds.

The gate (``components/release/promotion.py``) reads only ``register.gate``; the registry (``registry/``) reads
``store`` and ``wandb``. Floors are F1 scores in [0, 1]; tolerances are absolute F1 differences (0.02 = two points).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from components.config.base import Frozen
from components.schema import CATEGORIES, LABELS

#: Names an F1 floor may be declared for: the trinary classes and the six risk categories.
GATED_NAMES = frozenset(LABELS) | frozenset(CATEGORIES)


class QuantizedGateConfig(Frozen):
    """Figures the shipped (int8) file must meet against its fp32 parent; filled by the export stage."""

    max_macro_f1_drop: float = Field(default=0.005, ge=0, le=1, description="Largest macro-F1 loss allowed.")
    max_category_f1_drop: float = Field(default=0.015, ge=0, le=1, description="Largest loss in any one category.")
    min_label_agreement: float = Field(default=0.99, ge=0, le=1, description="Share of labels equal to fp32's.")
    required: bool = Field(
        default=False,
        description="Refuse versions without export figures. False until every promoted model is exported; the "
        "check is enforced whenever a candidate carries the figures either way.",
    )


class SuiteFloors(Frozen):
    """Floors on one evaluation suite's binary view (components/evaluation/suites.py); unset figures are not gated.

    Minimums read the figure's ``floor_on`` basis (the CI's lower bound by default); the maximum reads the upper
    bound under ``ci_low`` (conservative both ways) and the point value under ``point``."""

    min_unsafe_recall: float | None = Field(default=None, ge=0, le=1, description="Unsafe messages called unsafe.")
    min_unsafe_flagged: float | None = Field(default=None, ge=0, le=1, description="Unsafe messages flagged at all.")
    min_unsafe_f1: float | None = Field(default=None, ge=0, le=1, description="F1 of 'called unsafe'.")
    min_macro_f1: float | None = Field(default=None, ge=0, le=1, description="Mean F1 over the suite's classes.")
    max_flag_rate: float | None = Field(default=None, ge=0, le=1, description="Safe messages flagged, at most.")


class GateConfig(Frozen):
    """Thresholds of the promotion gate. A version moves to staging/production only when every check passes."""

    floor_on: Literal["ci_low", "point"] = Field(
        default="ci_low",
        description="Apply floors to the bootstrap CI's lower bound (conservative) or to the point estimate.",
    )
    default_f1_floor: float = Field(default=0.3, ge=0, le=1, description="Floor for any class/category not listed.")
    f1_floors: dict[str, float] = Field(
        default_factory=dict, description="Per class (trinary) or per category (taxonomy) F1 floor overrides."
    )
    trinary_macro_f1_floor: float = Field(default=0.5, ge=0, le=1, description="Floor on trinary macro-F1.")
    unsafe_recall_floor: float = Field(default=0.6, ge=0, le=1, description="Floor on the unsafe class's recall.")
    regression_tolerance: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="No category's point F1 may fall below production's by more than this (ties pass).",
    )
    require_fresh_metrics: bool = Field(
        default=True, description="Refuse metrics whose data hash differs from the version's registered data hash."
    )
    quantized: QuantizedGateConfig = QuantizedGateConfig()
    suites: dict[str, SuiteFloors] = Field(
        default_factory=dict,
        description="Floors per evaluation suite (names as in evaluate.suites); a candidate without the suite's "
        "figures is refused.",
    )

    @field_validator("f1_floors")
    @classmethod
    def _known_names(cls, floors: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(floors) - GATED_NAMES)
        if unknown:
            raise ValueError(f"unknown class/category {unknown}; allowed: {sorted(GATED_NAMES)}")
        bad = sorted(name for name, value in floors.items() if not 0 <= value <= 1)
        if bad:
            raise ValueError(f"F1 floors must lie in [0, 1]: {bad}")
        return floors


class RegisterConfig(Frozen):
    """Registry location, W&B linking and the promotion gate."""

    store: str = Field(
        default=".emosafe/registry",
        description="Registry folder (SQLite metadata + sha256 artifact store), or a shared PostgreSQL database "
        "(postgresql://host:port/db; the password from PGPASSWORD, never here); EMOSAFE_REGISTRY overrides it.",
    )
    artifacts: str | None = Field(
        default=None,
        description="Where artifacts live: null = the registry folder's objects/; s3://bucket/prefix = S3-compatible "
        "storage (credentials and endpoint from AWS_* variables). A PostgreSQL store needs it.",
    )
    cache: str = Field(
        default=".emosafe/registry-cache",
        description="Local folder for verified checkouts when the store is a server (a folder store keeps them).",
    )
    wandb_project: str = Field(default="emosafe", description="W&B project used to link versions when online.")
    report: str = Field(
        default="reports/register/register.json",
        description="The register stage's record: versions, created flags, gate verdicts (no text; a DVC out).",
    )
    gate: GateConfig = GateConfig()

    @field_validator("store")
    @classmethod
    def _no_password(cls, store: str) -> str:
        if re.match(r"^[a-z]+://[^/@:]+:[^/@]+@", store):
            raise ValueError("a password does not belong in params: put it in PGPASSWORD (or ~/.pgpass)")
        return store
