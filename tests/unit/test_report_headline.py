"""The headline metrics (`dvc metrics show`): the shipped model only, short names, one screen."""

from __future__ import annotations

from components.release.scorecard import Estimate, SuiteCard
from components.report.scaling import ScalingRow, headline_metrics


def row(model: str, setting: str, task: str, f1: float, suites: dict[str, SuiteCard] | None = None) -> ScalingRow:
    return ScalingRow(model, setting, task, 1.0, 1.0, 100, None, Estimate(f1), None, {}, None, 0, 0, 0, suites or {})


def test_only_the_shipped_models_fine_tuned_figures_and_the_gated_suite_figures() -> None:
    suites = {
        "crisis": SuiteCard(40, {"unsafe_recall": Estimate(0.81234), "safe_flag_rate": Estimate(0.2)}),
        "benign_lookalikes": SuiteCard(40, {"safe_flag_rate": Estimate(0.43), "unsafe_recall": Estimate(0.9)}),
    }
    rows = [
        row("big", "fine_tuned", "trinary", 0.82401, suites),
        row("big", "fine_tuned", "taxonomy", 0.64),
        row("big", "zero_shot", "trinary", 0.2),
        row("small", "fine_tuned", "trinary", 0.7),
    ]
    gated = {"crisis": {"min_unsafe_recall": 0.85, "max_flag_rate": None}, "benign_lookalikes": {"max_flag_rate": 0.1}}
    assert headline_metrics(rows, "big", gated) == {
        "trinary": {"f1": 0.824},
        "taxonomy": {"f1": 0.64},
        "crisis": {"recall": 0.8123},
        "benign_lookalikes": {"flagged": 0.43},
    }
    assert headline_metrics(rows, "absent", gated) == {}
