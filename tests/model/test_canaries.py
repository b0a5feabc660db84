"""The canaries (data/canaries.jsonl) against the model under test, one test each, judged by the same rule the
evaluate stage reports (components/evaluation/canaries.py)."""

from __future__ import annotations

import json

import pytest

from components.evaluation.canaries import Canary, check_canaries, parse_canaries
from tests.conftest import REPO
from tests.model.conftest import ModelUnderTest

ROWS = [json.loads(line) for line in (REPO / "data" / "canaries.jsonl").read_text().splitlines() if line.strip()]
CANARIES = parse_canaries(ROWS, REPO / "data" / "canaries.jsonl")


@pytest.mark.parametrize("canary", CANARIES, ids=lambda c: c.id)
def test_canary(model: ModelUnderTest, canary: Canary) -> None:
    result = check_canaries(model.predictor, [canary], model.thresholds).results[0]
    assert result.passed, f"{model.name}: canary {canary.id} (expect {canary.expect}) got '{result.predicted}'"
