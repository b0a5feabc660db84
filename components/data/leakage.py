"""Evaluation-suite leakage: which dataset rows repeat, or nearly repeat, a message of an evaluation suite.

A suite measures a model on messages it never learned from, so no suite message (or a light rewording of one) may
sit in any split: in train it would be learned, in val it would steer the thresholds, in test it would be counted
twice. Exact repeats share a ``text_hash``. Near-duplicates are pairs whose sets of word tokens (case-folded) have
a Jaccard similarity at or above a threshold (``validate.suite_near_duplicate``). The pairwise overlaps come from
one sparse matrix product, so a 35,000-row corpus against a few hundred suite messages takes well under a second.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from components.text import normalise

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?", flags=re.UNICODE)


def tokens(text: str) -> frozenset[str]:
    """The case-folded word tokens of a message (apostrophes inside a word kept: "don't", "I'm")."""
    return frozenset(_TOKEN.findall(normalise(text).casefold()))


def suite_overlap(texts: Sequence[str], suite_texts: Sequence[str], threshold: float) -> NDArray[np.bool_]:
    """For each of ``texts``, whether some suite message has a token-set Jaccard similarity >= ``threshold``
    with it (1.0: the same words; exact repeats always count). Empty inputs give all False."""
    if not len(texts) or not len(suite_texts):
        return np.zeros(len(texts), dtype=bool)
    left, right = [tokens(t) for t in texts], [tokens(t) for t in suite_texts]
    vocabulary: dict[str, int] = {}
    for group in (*left, *right):
        for token in group:
            vocabulary.setdefault(token, len(vocabulary))
    a, b = _matrix(left, vocabulary), _matrix(right, vocabulary)
    shared = (a @ b.T).tocoo()  # only the pairs with at least one token in common
    sizes_a = np.asarray(a.sum(axis=1)).ravel()
    sizes_b = np.asarray(b.sum(axis=1)).ravel()
    union = sizes_a[shared.row] + sizes_b[shared.col] - shared.data
    close = shared.data >= threshold * union
    hit = np.zeros(len(texts), dtype=bool)
    hit[shared.row[close]] = True
    return hit


def _matrix(groups: list[frozenset[str]], vocabulary: dict[str, int]) -> sparse.csr_matrix:
    rows = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    cols = np.fromiter((vocabulary[t] for g in groups for t in g), dtype=np.int64, count=int(sum(map(len, groups))))
    return sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(groups), len(vocabulary)))
