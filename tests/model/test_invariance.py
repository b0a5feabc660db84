"""Casing and whitespace must not change the decision (trinary: the label; taxonomy: the set of flagged categories)
on the hand-written messages of tests/model/cases.py. Failures name case numbers and decisions, never the text."""

from __future__ import annotations

import pytest

from tests.model.cases import INVARIANCE, PERTURBATIONS
from tests.model.loading import ModelUnderTest


@pytest.mark.parametrize("perturbation", list(PERTURBATIONS))
def test_decision_is_invariant_to(model: ModelUnderTest, perturbation: str) -> None:
    change = PERTURBATIONS[perturbation]
    before = model.decide(INVARIANCE)
    after = model.decide([change(text) for text in INVARIANCE])
    moves = {i: f"{a!r} -> {b!r}" for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}
    assert not moves, f"{model.name}: {perturbation} moved {len(moves)}/{len(INVARIANCE)} case(s): {moves}"
