"""Evaluation suites: the binary-view figures, leakage detection, and the gate's suite floors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from components.config import ConfigError, parse_params
from components.config.register import GateConfig, SuiteFloors
from components.data.leakage import suite_overlap, tokens
from components.evaluation.bootstrap import Bootstrap
from components.evaluation.suites import FIGURES, suite_figures
from components.release.promotion import Evidence, decide_promotion
from components.release.scorecard import SUITE_FIGURES, scorecard_from_dict, scorecard_to_dict
from components.schema import CATEGORIES, LABELS
from tests.fixtures.registry_runs import BOUND, DATA_HASH, trinary_metrics

NO_CI = Bootstrap(resamples=0)
SAFE, BORDERLINE, UNSAFE = (LABELS.index(name) for name in ("safe", "borderline", "unsafe"))


def categories(*rows: tuple[str, ...]) -> np.ndarray:
    return np.array([[c in row for c in CATEGORIES] for row in rows], dtype=bool)


def test_trinary_figures_by_hand() -> None:
    # gold: 4 unsafe, 2 borderline, 4 safe
    gold = np.array([UNSAFE] * 4 + [BORDERLINE] * 2 + [SAFE] * 4)
    said = np.array([UNSAFE, UNSAFE, BORDERLINE, SAFE, BORDERLINE, SAFE, SAFE, SAFE, BORDERLINE, UNSAFE])
    cats = categories(*[("suicide_self_harm",)] * 4, (), (), (), (), (), ())
    figures = suite_figures(gold, cats, said, "trinary", NO_CI)
    assert figures.n == 10 and figures.support == {"safe": 4, "borderline": 2, "unsafe": 4}
    assert figures.unsafe_recall.value == 0.5  # 2 of 4 called unsafe
    assert figures.unsafe_flagged.value == 0.75  # 3 of 4 flagged at all
    assert figures.safe_flag_rate.value == 0.5  # 2 of 4 safe flagged
    assert figures.unsafe_f1.value == pytest.approx(2 * 2 / (3 + 4), abs=1e-6)  # tp 2, called 3, positives 4
    per_class_f1 = [
        2 * 2 / (2 * 2 + 2 + 2),
        2 * 1 / (2 * 1 + 2 + 1),
        2 * 2 / (2 * 2 + 1 + 2),
    ]  # safe, borderline, unsafe
    assert figures.macro_f1.value == pytest.approx(np.mean(per_class_f1), abs=1e-6)
    assert figures.unsafe_recall.low is None  # no resamples: no interval


def test_macro_f1_averages_only_the_classes_a_suite_contains() -> None:
    gold = np.array([UNSAFE, UNSAFE, SAFE, SAFE])
    said = np.array([UNSAFE, UNSAFE, SAFE, SAFE])
    figures = suite_figures(gold, categories(("violence_hate",), ("violence_hate",), (), ()), said, "trinary", NO_CI)
    assert figures.macro_f1.value == 1.0 and figures.classes == ("safe", "unsafe")  # no borderline row: left out


def test_taxonomy_flags_any_category_and_averages_present_categories() -> None:
    gold = np.array([UNSAFE, UNSAFE, SAFE, SAFE])
    cats = categories(("suicide_self_harm",), ("violence_hate",), (), ())
    decided = categories(("suicide_self_harm",), (), ("criminal_planning",), ())
    figures = suite_figures(gold, cats, decided, "taxonomy", NO_CI)
    assert figures.unsafe_recall.value == 0.5 and figures.unsafe_flagged.value == 0.5
    assert figures.safe_flag_rate.value == 0.5
    assert figures.classes == ("violence_hate", "suicide_self_harm")
    assert figures.macro_f1.value == 0.5  # suicide 1.0, violence 0.0; criminal_planning (absent) not averaged


def test_a_suite_without_unsafe_rows_has_no_unsafe_figures_and_intervals_are_seeded() -> None:
    gold = np.array([SAFE] * 6)
    figures = suite_figures(gold, categories(*[()] * 6), np.array([SAFE] * 5 + [UNSAFE]), "trinary", Bootstrap(200))
    assert figures.unsafe_recall.value is None and figures.unsafe_f1.value is None
    assert figures.safe_flag_rate.value == pytest.approx(1 / 6, abs=1e-6)
    low, high = figures.safe_flag_rate.low, figures.safe_flag_rate.high
    assert low is not None and high is not None and low <= 1 / 6 <= high
    again = suite_figures(gold, categories(*[()] * 6), np.array([SAFE] * 5 + [UNSAFE]), "trinary", Bootstrap(200))
    assert again == figures


def test_the_figures_written_are_the_figures_the_gate_reads() -> None:
    assert FIGURES == SUITE_FIGURES


@pytest.mark.parametrize(
    ("row", "hit"),
    [
        ("I want to END my life  tonight", True),  # casing and spacing: the same message
        ("i want to end my life tonight please", True),  # 7 of 8 words shared: Jaccard 0.875
        ("I want to end my career tonight", False),  # 6 of 8 words: 0.75 < 0.8
        ("how do I kill a process on linux", False),
    ],
)
def test_suite_overlap_finds_copies_and_near_copies_only(row: str, hit: bool) -> None:
    assert suite_overlap([row], ["I want to end my life tonight"], 0.8).tolist() == [hit]


def test_suite_overlap_handles_empty_inputs_and_apostrophes() -> None:
    assert suite_overlap([], ["x"], 0.8).tolist() == []
    assert suite_overlap(["a b"], [], 0.8).tolist() == [False]
    assert tokens("I'm done, don't") == frozenset({"i'm", "done", "don't"})


def suite_metrics(**figures: float | None) -> dict[str, Any]:
    """Evaluation metrics carrying one suite, ``crisis``, whose figures have a ±0.05 interval."""
    values = {name: figures.get(name, 0.9) for name in SUITE_FIGURES}
    written = {
        name: None if value is None else {"value": value, "low": value - 0.05, "high": value + 0.05}
        for name, value in values.items()
    }
    return trinary_metrics() | {"suites": {"crisis": {"data_hash": "s" * 64, "figures": {"n": 40, **written}}}}


def decide(metrics: dict[str, Any], **floors: float) -> Any:
    gate = GateConfig(suites={"crisis": SuiteFloors(**floors)})
    return decide_promotion(Evidence(2, "m" * 64, DATA_HASH, scorecard_from_dict(metrics), BOUND), None, gate)


def test_a_suite_floor_refuses_with_the_suite_figure_and_interval() -> None:
    decision = decide(suite_metrics(unsafe_recall=0.85), min_unsafe_recall=0.85)
    assert not decision.promote
    assert "suite crisis (n=40) unsafe_recall ci_low 0.800 < floor 0.850" in decision.reasons
    assert decide(suite_metrics(unsafe_recall=0.95), min_unsafe_recall=0.85).promote


def test_a_flag_rate_maximum_reads_the_upper_bound() -> None:
    decision = decide(suite_metrics(safe_flag_rate=0.08), max_flag_rate=0.10)
    assert not decision.promote and "suite crisis (n=40) safe_flag_rate ci_high 0.130 > max 0.100" in decision.reasons
    assert decide(suite_metrics(safe_flag_rate=0.05), max_flag_rate=0.10).promote


def test_a_candidate_without_the_suite_or_the_figure_is_refused() -> None:
    assert "suite crisis: not evaluated" in decide(trinary_metrics(), min_macro_f1=0.5).reasons[0]
    decision = decide(suite_metrics(unsafe_recall=None), min_unsafe_recall=0.5)
    assert "suite crisis (n=40) unsafe_recall: missing from the evaluation" in decision.reasons


def test_suites_survive_the_registry_round_trip() -> None:
    card = scorecard_from_dict(suite_metrics(unsafe_recall=0.7))
    again = scorecard_from_dict(scorecard_to_dict(card))
    assert again.suites == card.suites and card.suites["crisis"].data_hash == "s" * 64
    estimate = card.suites["crisis"].figures["unsafe_recall"]
    assert estimate is not None and estimate.value == 0.7


def test_a_gate_floor_on_an_undefined_suite_fails_at_load() -> None:
    raw = {
        "prepare": {"sources": [{"name": "s", "kind": "emosafe", "path": "x.jsonl"}]},
        "register": {"gate": {"suites": {"crisiss": {"min_unsafe_recall": 0.85}}}},
    }
    with pytest.raises(ConfigError, match=r"crisiss.*evaluate.suites"):
        parse_params(raw)
