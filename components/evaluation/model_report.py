"""One model's evaluation: val (thresholds fitted there by the operating-point policy), test with them applied
unchanged, the suites and the canaries, with bootstrap CIs and the trinary recall vs flag-rate curves.

Shared by the ``evaluate`` stage (every model x setting x task) and the ``holdout`` stage (a run trained without one
source, tested on it), so both report the same figures the same way. Never message text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.config.evaluate import EvaluateConfig
from components.evaluation.bootstrap import Bootstrap
from components.evaluation.canaries import Canary, check_canaries
from components.evaluation.measure import assess, category_matrix, decisions, label_indices
from components.evaluation.measure import evaluate as evaluate_frame
from components.evaluation.memory import read_peak, reset_peak
from components.evaluation.metrics import tune_thresholds
from components.evaluation.operating_point import fit, frontier, measure_point, trinary_candidates
from components.evaluation.predictors import Predictor
from components.evaluation.prompting import PromptTemplate
from components.evaluation.suites import Suite, suite_figures, suite_section


@dataclass(frozen=True)
class EvalInputs:
    """What one evaluation scores besides the model: the dataset (val fits thresholds), the test rows, canaries,
    suites, and where reports go."""

    frame: pd.DataFrame
    test: pd.DataFrame
    data_hash: str
    test_source: str
    templates: dict[str, PromptTemplate]
    canaries: tuple[Canary, ...]
    out: Path
    suites: dict[str, Suite]


def run_one(predictor: Predictor, inputs: EvalInputs, config: EvaluateConfig) -> dict[str, Any]:
    """Val (thresholds tuned here), test (thresholds applied unchanged), canaries: one report's figures."""
    task = predictor.task
    bootstrap = Bootstrap.of(config)
    val_frame = inputs.frame[inputs.frame["split"] == "val"]
    was_reset = reset_peak()  # the model is loaded: the peak below is weights + inference, not earlier models
    start = time.perf_counter()
    val = evaluate_frame(predictor, val_frame, task, bootstrap=bootstrap)
    thresholds, chosen, point = _fit_thresholds(config, val_frame, val.scores, task)
    if thresholds is not None:
        val = assess(val_frame, val.scores, task, thresholds, bootstrap)
    test = evaluate_frame(predictor, inputs.test, task, thresholds, bootstrap)
    suites = {
        name: suite_section(predictor, suite, task, thresholds, bootstrap) for name, suite in inputs.suites.items()
    }
    canaries = check_canaries(predictor, inputs.canaries, thresholds)
    seconds = time.perf_counter() - start
    peak = read_peak(was_reset)
    return {
        "task": task,
        "data_hash": inputs.data_hash,
        "test_source": inputs.test_source,
        "splits": {"val": val.report.to_dict(), "test": test.report.to_dict()},
        # The binary view a safety team reads first (unsafe recall, safe messages flagged), as the suites report it.
        "figures": {
            "test": suite_figures(
                label_indices(inputs.test), category_matrix(inputs.test), decisions(test), task, bootstrap
            ).to_dict()
        },
        "thresholds": chosen,
        "operating_point": point
        | _curves(task, config, {"val": (val_frame, val.scores), "test": (inputs.test, test.scores)}, thresholds),
        "suites": suites,
        "canaries": canaries.to_dict(),
        "inference": {
            "messages": len(val_frame)
            + len(inputs.test)
            + len(inputs.canaries)
            + sum(len(suite.frame) for suite in inputs.suites.values()),
            "seconds": round(seconds, 3),
            "peak_rss_mb": peak.peak_rss_mb,  # whole process (Python, torch) while this model scored
            "peak_rss_method": peak.method,
        },
    }


def _fit_thresholds(
    config: EvaluateConfig, val_frame: pd.DataFrame, scores: Any, task: str
) -> tuple[dict[str, float] | None, dict[str, Any], dict[str, Any]]:
    """The decision thresholds fitted on val by ``evaluate.operating_point``: (thresholds to apply, the report's
    ``thresholds`` section, the report's ``operating_point`` section). Default policy: trinary argmax (None),
    taxonomy max-F1 per category."""
    policy = config.operating_point
    if policy.policy == "default":
        if task == "trinary":
            return None, {}, {"policy": "default", "thresholds": {}}
        choices = tune_thresholds(category_matrix(val_frame), scores, config.threshold_grid)
        thresholds = {c: choice.threshold for c, choice in choices.items()}
        return (
            thresholds,
            {c: vars(choice) for c, choice in choices.items()},
            {"policy": "default", "thresholds": thresholds},
        )
    fitted = fit(
        policy.policy,
        task,
        label_indices(val_frame),
        category_matrix(val_frame),
        scores,
        config.threshold_grid,
        policy.max_flag_rate,
        policy.min_recall,
    )
    chosen = {name: {"threshold": value} for name, value in fitted.thresholds.items()}
    return fitted.thresholds, chosen, fitted.to_dict()


def _curves(
    task: str, config: EvaluateConfig, splits: dict[str, tuple[pd.DataFrame, Any]], thresholds: dict[str, float] | None
) -> dict[str, Any]:
    """Trinary: per split, the unsafe-recall vs safe-flag-rate frontier over the threshold grid and where the
    applied thresholds sit on it (the scaling report draws both). Taxonomy: nothing (per-category figures are in
    the metrics)."""
    if task != "trinary":
        return {}
    curves, applied = {}, {}
    for split, (frame, scores) in splits.items():
        labels = label_indices(frame)
        curves[split] = frontier(trinary_candidates(labels, scores, config.threshold_grid))
        point = measure_point(task, labels, category_matrix(frame), scores, thresholds or {})
        applied[split] = None if point is None else {"recall": point.recall, "flag_rate": point.flag_rate}
    return {"curve": curves, "applied": applied}
