"""The canaries (data/canaries.jsonl) against the model under test, one test each, judged by the rule the evaluate
stage reports (components/evaluation/canaries.py: risk -> not safe / its category flagged; benign -> not unsafe /
nothing flagged). They do not gate promotion; this suite is where a miss fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.evaluation.canaries import Canary, check_canaries, parse_canaries
from tests.model.loading import ModelUnderTest

PATH = Path(__file__).resolve().parents[2] / "data" / "canaries.jsonl"
CANARIES = parse_canaries([json.loads(line) for line in PATH.read_text().splitlines() if line.strip()], PATH)


@pytest.mark.parametrize("canary", CANARIES, ids=lambda c: c.id)
def test_canary(model: ModelUnderTest, canary: Canary) -> None:
    result = check_canaries(model.predictor, [canary], model.thresholds).results[0]
    expect = f"{canary.expect} {canary.category}" if canary.category else canary.expect
    assert result.passed, f"{model.name}: canary {canary.id} (expect {expect}) predicted {result.predicted!r}"
