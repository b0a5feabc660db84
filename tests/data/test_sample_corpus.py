"""The bundled sample is the embedded default: big enough, every label and category, consistent."""

from __future__ import annotations

from collections import Counter

from components.config import EmosafeSource
from components.data.sources import read_emosafe
from components.schema import CATEGORIES, LABELS
from components.text import text_hash
from tests.fixtures.common import REPO


def test_sample_covers_every_label_and_category() -> None:
    config = EmosafeSource(name="sample", kind="emosafe", path="data/sample/messages.jsonl")
    records = read_emosafe(REPO / config.path, config)  # raises on any inconsistent row
    assert len(records) >= 600
    labels = Counter(r.label for r in records)
    assert all(labels[label] >= 150 for label in LABELS)
    categories = Counter(c for r in records for c in r.categories)
    assert all(categories[category] >= 30 for category in CATEGORIES)
    assert len({text_hash(r.text) for r in records}) == len(records)
