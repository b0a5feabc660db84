"""Messages longer than a model's window: score overlapping windows apart, and let the riskiest window decide.

Why: a forum post's one line of intent can sit anywhere in it. Truncation keeps the first ``max_length`` tokens and
drops the rest; averaging windows dilutes the one that matters. A crisis product wants a message to be as unsafe as
its most unsafe part, so windows are aggregated by maximum risk. Training still truncates (a row's label belongs
to the whole message, not to each of its windows); only scoring splits. Pure functions over token ids, shared by
the torch scorer (``merged``) and ONNX Runtime (``runtime``), so both split a message the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from components.schema import LABELS

LONG_MESSAGES = ("truncate", "windows")
OVERLAP_DIVISOR = 4  # consecutive windows share a quarter of their content tokens
MAX_WINDOWS = 16  # a message longer than this many windows keeps its first 16 (bounded cost per message)
PROBE = "a b"  # any short text: its encodings with and without special tokens give the tokenizer's layout
_BORDERLINE, _UNSAFE = LABELS.index("borderline"), LABELS.index("unsafe")


def special_layout(with_specials: Sequence[int], without: Sequence[int]) -> tuple[int, int]:
    """How many special tokens a tokenizer puts before and after a message's content: (prefix, suffix).

    Found from one probe text encoded with and without special tokens (BERT: [CLS] ... [SEP] = (1, 1); SmolLM2's
    tokenizer adds none = (0, 0)). Raises ValueError when the content is not a contiguous run of the encoding."""
    n, m = len(with_specials), len(without)
    for start in range(n - m + 1):
        if list(with_specials[start : start + m]) == list(without):
            return start, n - m - start
    raise ValueError("the tokenizer's content tokens are not contiguous in its encoding; windows cannot split it")


def split(ids: Sequence[int], max_length: int, prefix: int, suffix: int) -> list[list[int]]:
    """``ids`` (one message with its special tokens) as windows of at most ``max_length`` tokens, each keeping the
    special tokens; one window (the message itself) when it fits."""
    if len(ids) <= max_length:
        return [list(ids)]
    head, content, tail = list(ids[:prefix]), list(ids[prefix : len(ids) - suffix]), list(ids[len(ids) - suffix :])
    width = max_length - prefix - suffix
    if width < OVERLAP_DIVISOR:
        raise ValueError(f"max_length {max_length} leaves {width} content tokens per window")
    stride = width - width // OVERLAP_DIVISOR
    starts = list(range(0, max(1, len(content) - width + stride), stride))[:MAX_WINDOWS]
    return [head + content[start : start + width] + tail for start in starts]


def windows(
    encoded: Sequence[Sequence[int]], max_length: int, prefix: int, suffix: int
) -> tuple[list[list[int]], list[int]]:
    """Every message's windows in order, and for each window the index of its message."""
    pieces: list[list[int]] = []
    owners: list[int] = []
    for index, ids in enumerate(encoded):
        for piece in split(ids, max_length, prefix, suffix):
            pieces.append(piece)
            owners.append(index)
    return pieces, owners


def riskiest(scores: NDArray[np.float64], owners: Sequence[int], n: int, task: str) -> NDArray[np.float64]:
    """Per-message scores from per-window probabilities (the ``Predictor`` contract) by maximum risk.

    Taxonomy: each category's maximum over the windows. Trinary (safe, borderline, unsafe): P(unsafe) is the
    largest unsafe probability of any window, P(flagged at all) the largest P(borderline) + P(unsafe), so
    borderline = flagged - unsafe and safe = 1 - flagged; rows still sum to one and a one-window message keeps its
    own scores exactly."""
    owner = np.asarray(owners, dtype=np.int64)
    if task == "taxonomy":
        out = np.zeros((n, scores.shape[1]), dtype=np.float64)
        np.maximum.at(out, owner, scores)
        return out
    unsafe, flagged = np.zeros(n), np.zeros(n)
    np.maximum.at(unsafe, owner, scores[:, _UNSAFE])
    np.maximum.at(flagged, owner, scores[:, _BORDERLINE] + scores[:, _UNSAFE])
    flagged = np.clip(flagged, unsafe, 1.0)
    out = np.zeros((n, len(LABELS)), dtype=np.float64)
    out[:, _UNSAFE], out[:, _BORDERLINE] = unsafe, flagged - unsafe
    out[:, LABELS.index("safe")] = 1.0 - flagged
    return out
