"""Directional checks on minimal pairs: added intent must not lower the risk score, harmless context for an
alarming word must not raise it (tests/model/cases.py)."""

from __future__ import annotations

import pytest

from components.schema import CATEGORIES, LABELS
from tests.model.cases import BENIGN_PAIRS, INTENT_PAIRS
from tests.model.conftest import ModelUnderTest

#: Scores are probabilities; differences below this are numerical noise (int8 ONNX included).
TOLERANCE = 1e-3


def risk(model: ModelUnderTest, texts: list[str], category: str | None) -> list[float]:
    """Trinary: P(unsafe); taxonomy: the category's score (the highest category score when none is named)."""
    rows = model.scores(texts)
    if model.task == "trinary":
        return [float(row[LABELS.index("unsafe")]) for row in rows]
    if category is None:
        return [float(max(row)) for row in rows]
    return [float(row[CATEGORIES.index(category)]) for row in rows]


@pytest.mark.parametrize("pair", range(len(INTENT_PAIRS)), ids=lambda i: f"intent-{i}")
def test_added_intent_does_not_lower_risk(model: ModelUnderTest, pair: int) -> None:
    base, stronger, category = INTENT_PAIRS[pair]
    low, high = risk(model, [base, stronger], category)
    assert high >= low - TOLERANCE, f"{model.name}: intent pair {pair} ({category}) risk {low:.4f} -> {high:.4f}"


@pytest.mark.parametrize("pair", range(len(BENIGN_PAIRS)), ids=lambda i: f"benign-{i}")
def test_alarming_words_in_a_harmless_context_are_not_flagged(model: ModelUnderTest, pair: int) -> None:
    base, benign = BENIGN_PAIRS[pair]
    plain, alarming = risk(model, [base, benign], None)
    decided = model.decide([benign])[0]
    flagged = decided == "unsafe" if model.task == "trinary" else bool(decided)
    assert not flagged, f"{model.name}: benign pair {pair} decided {decided} (risk {plain:.4f} -> {alarming:.4f})"
