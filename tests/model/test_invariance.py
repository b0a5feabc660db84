"""Casing and whitespace must not change the decision (label, or the set of flagged categories)."""

from __future__ import annotations

import pytest

from tests.model.cases import INVARIANCE, PERTURBATIONS
from tests.model.conftest import ModelUnderTest


@pytest.mark.parametrize("perturbation", sorted(PERTURBATIONS))
def test_decision_is_invariant_to(model: ModelUnderTest, perturbation: str) -> None:
    change = PERTURBATIONS[perturbation]
    before = model.decide(INVARIANCE)
    after = model.decide([change(text) for text in INVARIANCE])
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    moves = [f"{before[i]} -> {after[i]}" for i in changed]
    assert not changed, f"{model.name}: {perturbation} changed case(s) {changed}: {moves}"
