"""The promotion gate (components/release/promotion.py) on synthetic results: every way to pass and to fail."""

from __future__ import annotations

from typing import Any

import pytest

from components.config.register import GateConfig, QuantizedGateConfig
from components.errors import MetricsFormatError
from components.release.evidence import Binding
from components.release.promotion import Evidence, decide_promotion
from components.release.scorecard import scorecard_from_dict, scorecard_to_dict
from tests.fixtures.registry_runs import BOUND, DATA_HASH, taxonomy_metrics, trinary_metrics

GATE = GateConfig(default_f1_floor=0.5, trinary_macro_f1_floor=0.6, unsafe_recall_floor=0.7, regression_tolerance=0.02)


def evidence(
    metrics: dict[str, Any], version: int = 2, data_hash: str | None = DATA_HASH, binding: Binding = BOUND
) -> Evidence:
    return Evidence(version, "m" * 64, data_hash, scorecard_from_dict(metrics), binding)


def failed(decision: Any) -> set[str]:
    return {check.name for check in decision.checks if not check.passed}


def test_no_champion_passes_on_floors_alone() -> None:
    decision = decide_promotion(evidence(trinary_metrics()), None, GATE)
    assert decision.promote and decision.champion_version is None and not failed(decision)
    assert any("nothing to regress against" in reason for reason in decision.reasons)
    assert decision.candidate_manifest == "m" * 64 and len(decision.report_hash()) == 64


def test_a_category_below_its_floor_is_refused() -> None:
    decision = decide_promotion(evidence(taxonomy_metrics(suicide_self_harm=0.52)), None, GATE)
    # ci_low = 0.47 < 0.5 although the point estimate is above the floor
    assert not decision.promote and failed(decision) == {"f1_floor:suicide_self_harm"}
    assert "suicide_self_harm F1 ci_low 0.470 < floor 0.500" in decision.reasons


def test_point_basis_is_declared_and_used() -> None:
    gate = GATE.model_copy(update={"floor_on": "point"})
    assert decide_promotion(evidence(taxonomy_metrics(suicide_self_harm=0.52)), None, gate).promote


def test_per_category_floor_override() -> None:
    gate = GATE.model_copy(update={"f1_floors": {"borderline": 0.9}})
    assert failed(decide_promotion(evidence(trinary_metrics()), None, gate)) == {"f1_floor:borderline"}


@pytest.mark.parametrize(
    ("metrics", "check"),
    [
        (trinary_metrics(macro=0.6), "macro_f1_floor"),
        (trinary_metrics(recall=0.7), "unsafe_recall_floor"),
    ],
)
def test_trinary_macro_and_unsafe_recall_floors(metrics: dict[str, Any], check: str) -> None:
    assert failed(decide_promotion(evidence(metrics), None, GATE)) == {check}


def test_regression_against_production_is_refused() -> None:
    champion = evidence(trinary_metrics(unsafe=0.9), version=1)
    decision = decide_promotion(evidence(trinary_metrics(unsafe=0.85)), champion, GATE)
    assert not decision.promote and failed(decision) == {"regression"}
    row = next(c for c in decision.compared if c.name == "unsafe")
    assert row.regressed and row.delta == pytest.approx(-0.05) and decision.champion_version == 1
    assert "unsafe 0.850 vs 0.900" in " ".join(decision.reasons)


def test_a_drop_within_tolerance_passes() -> None:
    champion = evidence(trinary_metrics(unsafe=0.9), version=1)
    assert decide_promotion(evidence(trinary_metrics(unsafe=0.885)), champion, GATE).promote


def test_a_tie_with_production_passes() -> None:
    champion = evidence(taxonomy_metrics(), version=1)
    decision = decide_promotion(
        evidence(taxonomy_metrics()), champion, GATE.model_copy(update={"regression_tolerance": 0})
    )
    assert decision.promote and all(c.delta == 0 and not c.regressed for c in decision.compared)


def test_a_score_exactly_on_its_floor_passes() -> None:
    gate = GATE.model_copy(update={"floor_on": "point", "default_f1_floor": 0.8})
    assert decide_promotion(evidence(trinary_metrics(f1=0.8)), None, gate).promote


def test_a_missing_category_in_the_evaluation_is_refused() -> None:
    metrics = taxonomy_metrics()
    del metrics["test"]["per_class"]["guns_illegal_weapons"]
    decision = decide_promotion(evidence(metrics), evidence(taxonomy_metrics(), version=1), GATE)
    assert failed(decision) == {"f1_floor:guns_illegal_weapons"}
    assert "guns_illegal_weapons F1: missing from the evaluation" in decision.reasons
    row = next(c for c in decision.compared if c.name == "guns_illegal_weapons")
    assert row.candidate is None and row.delta is None


def test_an_undefined_score_counts_as_missing() -> None:
    metrics = trinary_metrics()
    metrics["splits"]["test"]["per_class"]["borderline"]["f1"] = {"value": None, "low": None, "high": None}
    assert failed(decide_promotion(evidence(metrics), None, GATE)) == {"f1_floor:borderline"}


def test_no_ci_fails_a_ci_low_floor() -> None:
    metrics = trinary_metrics()
    metrics["splits"]["test"]["per_class"]["safe"]["f1"] = 0.9
    decision = decide_promotion(evidence(metrics), None, GATE)
    assert failed(decision) == {"f1_floor:safe"} and "no confidence interval" in " ".join(decision.reasons)


@pytest.mark.parametrize(
    ("metric_hash", "registered", "words"),
    [
        ("e" * 64, DATA_HASH, "stale metrics"),
        (None, DATA_HASH, "evaluation carries no data hash"),
        (DATA_HASH, None, "registered version carries no data hash"),
    ],
)
def test_stale_or_unproven_metrics_are_refused(metric_hash: str | None, registered: str | None, words: str) -> None:
    decision = decide_promotion(evidence(trinary_metrics(data_hash=metric_hash), data_hash=registered), None, GATE)
    assert failed(decision) == {"fresh_metrics"} and words in " ".join(decision.reasons)
    lax = GATE.model_copy(update={"require_fresh_metrics": False})
    assert decide_promotion(evidence(trinary_metrics(data_hash=metric_hash), data_hash=registered), None, lax).promote


def quantized(metrics: dict[str, Any], **figures: Any) -> dict[str, Any]:
    return {**metrics, "quantized": {"macro_f1_drop": 0.001, "label_agreement": 0.995, **figures}}


@pytest.mark.parametrize(
    ("figures", "words"),
    [
        ({"macro_f1_drop": 0.02}, "macro-F1 drop"),
        ({"label_agreement": 0.9}, "label agreement"),
        ({"category_f1_drop": {"unsafe": 0.03}}, "unsafe F1 drop"),
    ],
)
def test_a_failed_quantization_check_is_refused(figures: dict[str, Any], words: str) -> None:
    decision = decide_promotion(evidence(quantized(trinary_metrics(), **figures)), None, GATE)
    assert failed(decision) == {"quantized"} and words in " ".join(decision.reasons)


def test_quantized_figures_within_tolerance_pass_and_are_required_only_when_declared() -> None:
    assert decide_promotion(evidence(quantized(trinary_metrics())), None, GATE).promote
    strict = GATE.model_copy(update={"quantized": QuantizedGateConfig(required=True)})
    assert failed(decide_promotion(evidence(trinary_metrics()), None, strict)) == {"quantized"}


def test_every_failure_is_reported_at_once() -> None:
    metrics = trinary_metrics(f1=0.3, recall=0.3, macro=0.3, data_hash="e" * 64)
    decision = decide_promotion(evidence(metrics), evidence(trinary_metrics(), version=1), GATE)
    assert {"fresh_metrics", "macro_f1_floor", "unsafe_recall_floor", "regression"} <= failed(decision)
    assert len(decision.reasons) == len(failed(decision))


def test_declared_figures_are_refused_however_good() -> None:
    """#20 item 11: figures not bound to the version's files fail the gate, even when every floor passes."""
    declared = Binding(False, "figures carry no evidence block: not computed by emosafe evaluate/export")
    decision = decide_promotion(
        evidence(trinary_metrics(f1=0.99, macro=0.99, recall=0.99), binding=declared), None, GATE
    )
    assert not decision.promote and failed(decision) == {"evidence"}
    assert decision.reasons == (declared.detail,)


def test_comparing_different_tasks_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="taxonomy"):
        decide_promotion(evidence(trinary_metrics()), evidence(taxonomy_metrics(), version=1), GATE)


def test_report_hash_is_stable_and_binds_the_artifacts() -> None:
    one = decide_promotion(evidence(trinary_metrics()), None, GATE)
    assert one.report_hash() == decide_promotion(evidence(trinary_metrics()), None, GATE).report_hash()
    other = Evidence(2, "n" * 64, DATA_HASH, scorecard_from_dict(trinary_metrics()), BOUND)
    assert decide_promotion(other, None, GATE).report_hash() != one.report_hash()


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"splits": {}}, "field 'task'"),
        ({"task": "trinary"}, "per_class"),
        ({"task": "taxonomy", "per_category": {"sexual_content": {"f1": {"value": 2}}}}, "fractions"),
        ({"task": "trinary", "per_class": {"safe": {"f1": {"value": "x"}}}}, "must be numbers"),
    ],
)
def test_malformed_metrics_name_the_field(payload: dict[str, Any], words: str) -> None:
    with pytest.raises(MetricsFormatError, match=words):
        scorecard_from_dict(payload, origin="m.json")


def test_scorecard_round_trips_through_the_canonical_shape() -> None:
    for metrics in (quantized(trinary_metrics()), taxonomy_metrics()):
        card = scorecard_from_dict(metrics)
        assert scorecard_from_dict(scorecard_to_dict(card)) == card


def test_ci_list_and_alternative_spellings_parse() -> None:
    unsafe = {"f1": {"mean": 0.7, "ci_low": 0.6, "ci_high": 0.8}, "recall": 0.9}
    payload = {
        "task": "trinary",
        "data_hash": "h",
        "metrics": {"macro_f1": {"point": 0.7, "ci": [0.6, 0.8]}, "per_class": {"unsafe": unsafe}},
    }
    card = scorecard_from_dict(payload)
    assert card.macro_f1 is not None and (card.macro_f1.low, card.macro_f1.high) == (0.6, 0.8)
    assert card.f1["unsafe"].low == 0.6 and card.unsafe_recall is not None and card.unsafe_recall.value == 0.9
