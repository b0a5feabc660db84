"""Long messages: windows cover every token with the special tokens kept, and the riskiest window decides."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from components.export.long_messages import MAX_WINDOWS, riskiest, special_layout, split, windows
from components.schema import LABELS
from components.training.batches import epoch_batches


def test_the_layout_is_read_from_a_probe() -> None:
    assert special_layout([101, 7, 8, 102], [7, 8]) == (1, 1)  # BERT: [CLS] ... [SEP]
    assert special_layout([7, 8], [7, 8]) == (0, 0)  # SmolLM2: no special tokens
    assert special_layout([1, 7, 8], [7, 8]) == (1, 0)  # a BOS only
    with pytest.raises(ValueError, match="not contiguous"):
        special_layout([7, 9, 8], [7, 8])


@pytest.mark.parametrize("length", [1, 8, 9, 10, 17, 40, 96])  # 96: the 16 windows of MAX_WINDOWS
def test_windows_cover_every_content_token_within_the_limit(length: int) -> None:
    content = list(range(1000, 1000 + length))
    ids = [101, *content, 102]
    pieces = split(ids, max_length=10, prefix=1, suffix=1)
    assert all(len(p) <= 10 and p[0] == 101 and p[-1] == 102 for p in pieces)
    assert {t for p in pieces for t in p[1:-1]} == set(content)
    if len(ids) <= 10:
        assert pieces == [ids]
    else:
        assert pieces[0] == [*ids[:9], 102]  # the first window is what truncation keeps
        # consecutive windows overlap by a quarter of their 8 content tokens
        assert all(set(a[1:-1]) & set(b[1:-1]) for a, b in itertools.pairwise(pieces))


def test_a_very_long_message_keeps_a_bounded_number_of_windows() -> None:
    pieces, owners = windows([list(range(5)), list(range(10_000))], max_length=8, prefix=0, suffix=0)
    assert owners.count(0) == 1 and owners.count(1) == MAX_WINDOWS and len(pieces) == 1 + MAX_WINDOWS


def test_the_riskiest_window_decides_and_rows_still_sum_to_one() -> None:
    safe, borderline, unsafe = (LABELS.index(name) for name in ("safe", "borderline", "unsafe"))
    window_scores = np.zeros((4, 3))
    window_scores[0, [safe, borderline, unsafe]] = [0.9, 0.08, 0.02]  # message 0: one calm window
    window_scores[1, [safe, borderline, unsafe]] = [0.9, 0.08, 0.02]  # message 1: calm opening ...
    window_scores[2, [safe, borderline, unsafe]] = [0.1, 0.2, 0.7]  # ... intent later on
    window_scores[3, [safe, borderline, unsafe]] = [0.2, 0.75, 0.05]  # ... and distress elsewhere
    out = riskiest(window_scores, [0, 1, 1, 1], 2, "trinary")
    assert np.allclose(out[0], window_scores[0])  # one window: its own scores
    assert out[1, unsafe] == pytest.approx(0.7) and out[1, safe] == pytest.approx(0.1)
    assert out[1, borderline] == pytest.approx(0.2) and np.allclose(out.sum(axis=1), 1.0)
    taxonomy = riskiest(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.3]]), [0, 0, 1], 2, "taxonomy")
    assert np.allclose(taxonomy, [[0.8, 0.9], [0.3, 0.3]])


def test_length_buckets_see_every_row_once_in_batches_of_similar_length() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 300, size=2000).tolist()
    plain = epoch_batches(2000, 16, seed=3, epoch=0)
    bucketed = epoch_batches(2000, 16, seed=3, epoch=0, lengths=lengths)
    assert bucketed == epoch_batches(2000, 16, seed=3, epoch=0, lengths=lengths)  # a function of seed and epoch
    assert len(bucketed) == len(plain) and all(len(b) == 16 for b in bucketed)
    assert len({i for b in bucketed for i in b}) == 2000  # 2000 = 125 full batches: nothing dropped
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in bucketed]
    plain_spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain]
    assert np.mean(spread) < np.mean(plain_spread) / 5  # padding waste: a fifth of the shuffled batches' or less
    assert bucketed != epoch_batches(2000, 16, seed=3, epoch=1, lengths=lengths)
