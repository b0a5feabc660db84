"""Directional checks on minimal pairs (tests/model/cases.py): added intent must not lower the risk score; an
alarming word in a harmless context must not be flagged nor raise the risk past the same message without it."""

from __future__ import annotations

import pytest

from components.schema import CATEGORIES, LABELS
from tests.model.cases import HARMLESS_PAIRS, INTENT_PAIRS, HarmlessPair, IntentPair
from tests.model.loading import ModelUnderTest

#: Scores are probabilities; differences below this are numerical noise (int8 ONNX included), not a direction.
TOLERANCE = 1e-3


def risk(model: ModelUnderTest, texts: list[str], category: str | None) -> list[float]:
    """Trinary: P(unsafe); taxonomy: the category's score (the highest category score when none is named)."""
    rows = model.scores(texts)
    if model.task == "trinary":
        return [float(row[LABELS.index("unsafe")]) for row in rows]
    if category is None:
        return [float(max(row)) for row in rows]
    return [float(row[CATEGORIES.index(category)]) for row in rows]


@pytest.mark.parametrize("pair", INTENT_PAIRS, ids=lambda p: p.id)
def test_added_intent_does_not_lower_risk(model: ModelUnderTest, pair: IntentPair) -> None:
    base, stronger = risk(model, [pair.base, pair.stronger], pair.category)
    what = "P(unsafe)" if model.task == "trinary" else pair.category
    assert stronger >= base - TOLERANCE, f"{model.name}: {pair.id}: {what} {base:.4f} -> {stronger:.4f} with intent"


@pytest.mark.parametrize("pair", HARMLESS_PAIRS, ids=lambda p: p.id)
def test_harmless_context_is_not_flagged(model: ModelUnderTest, pair: HarmlessPair) -> None:
    decided = model.decide([pair.alarming])[0]
    flagged = decided == "unsafe" if model.task == "trinary" else bool(decided)
    assert not flagged, f"{model.name}: {pair.id}: decided {decided!r}"


@pytest.mark.parametrize("pair", HARMLESS_PAIRS, ids=lambda p: p.id)
def test_harmless_context_does_not_raise_risk(model: ModelUnderTest, pair: HarmlessPair) -> None:
    base, alarming = risk(model, [pair.base, pair.alarming], None)
    what = "P(unsafe)" if model.task == "trinary" else "top category score"
    assert alarming <= base + TOLERANCE, f"{model.name}: {pair.id}: {what} {base:.4f} -> {alarming:.4f}"
