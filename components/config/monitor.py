"""The ``monitor`` section: how the production log is cut into windows, how drift is tested, where alerts go.

Defaults are chosen so the calibration holds (tests/unit/test_drift_calibration.py): with windows of 500 predictions the
false-alarm rate stays under 5 % without drift and the power is above 80 % for a 0.20 -> 0.30 shift of one class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Frozen

AlertSinkName = Literal["log", "webhook", "prefect"]


class WindowConfig(Frozen):
    """How the production log is cut into windows (each one tested against the reference on its own)."""

    by: Literal["count", "time"] = Field(
        default="count", description="count: consecutive blocks of `size` predictions; time: fixed UTC periods."
    )
    size: int = Field(default=500, ge=1, description="Predictions per window when by=count (the last may be short).")
    seconds: int = Field(
        default=86_400, ge=60, description="Window length when by=time, aligned to the UTC epoch (86400 = a day)."
    )


class DriftConfig(Frozen):
    """Statistics and decision rule (components/drift/statistics.py): an alarm needs corrected p < alpha and
    effect >= floor."""

    alpha: float = Field(default=0.05, gt=0, lt=1, description="Family-wise (holm) or FDR (bh) level per window.")
    correction: Literal["holm", "bh"] = Field(
        default="holm", description="Multiple-testing correction over all signals of a window: holm or bh."
    )
    min_samples: int = Field(
        default=200,
        ge=10,
        description="Below this many predictions a window is INSUFFICIENT_SAMPLES (never 'no drift').",
    )
    min_cohens_w: float = Field(default=0.1, ge=0, description="Effect floor for the label chi-square (Cohen's w).")
    min_cohens_h: float = Field(
        default=0.1, ge=0, description="Effect floor for one proportion (borderline rate, a category): Cohen's h."
    )
    psi_epsilon: float = Field(
        default=1e-4, gt=0, le=0.01, description="Proportions are floored at this value before PSI's logarithm."
    )
    min_expected_count: float = Field(
        default=5.0, gt=0, description="Below this expected count in a cell, the p-value is Monte-Carlo."
    )
    monte_carlo_draws: int = Field(default=10_000, ge=999, description="Simulated windows per Monte-Carlo p-value.")
    account_for_reference_size: bool = Field(
        default=True,
        description="Test window vs reference as two samples (pooled 2 x K chi-square): the reference is finite too.",
    )


class AlertConfig(Frozen):
    """Where alarms go. Payloads carry window, signals and effect sizes, never message text."""

    sinks: tuple[AlertSinkName, ...] = Field(
        default=("log", "prefect"), description="log, webhook (HTTP POST JSON), prefect (an event, inside a flow only)."
    )
    webhook_url: str | None = Field(default=None, description="http(s) URL the webhook sink posts to.")
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60, description="Webhook request timeout in seconds.")

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> AlertConfig:
        if "webhook" in self.sinks and not self.webhook_url:
            raise ValueError("the webhook sink needs webhook_url")
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError("webhook_url must start with http:// or https://")
        return self


class MonitorConfig(Frozen):
    """Drift monitoring over the production log written by `emosafe predict`."""

    window: WindowConfig = WindowConfig()
    drift: DriftConfig = DriftConfig()
    alerts: AlertConfig = AlertConfig()
    output_dir: str = Field(default="reports/monitor", description="Where report.json, windows/*.json, report.html go.")
    history_db: str = Field(
        default=".emosafe/monitoring.db", description="SQLite history of every window (beside the registry store)."
    )

    @model_validator(mode="after")
    def _windows_can_be_tested(self) -> MonitorConfig:
        if self.window.by == "count" and self.window.size < self.drift.min_samples:
            raise ValueError(
                f"window.size ({self.window.size}) is below drift.min_samples ({self.drift.min_samples}): "
                "every window would be INSUFFICIENT_SAMPLES"
            )
        return self
