"""Seeded percentile-bootstrap intervals over weighted counts: the engine under every metric with an interval.

A statistic is computed from *weighted counts*: a row-weight matrix ``W`` (resamples x messages) times a
per-message indicator matrix. The point estimate is the same computation with all weights equal to one, so point
values and their intervals can never disagree about a definition, and 1000 resamples over 1000 messages is one
matrix product. Used by the per-split reports (``metrics``) and the suites' binary view (``suites``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from components.config.evaluate import EvaluateConfig

FloatArray = NDArray[np.float64]
Stats = Callable[[FloatArray], dict[str, FloatArray]]
_MAX_CELLS = 20_000_000  # resample-weight cells per chunk (~160 MB of float64)


@dataclass(frozen=True)
class Bootstrap:
    """How intervals were drawn: percentile bootstrap over messages."""

    resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95

    @classmethod
    def of(cls, config: EvaluateConfig) -> Bootstrap:
        """The evaluation's bootstrap (resamples, seed, confidence), the one every stage that measures uses."""
        return cls(config.bootstrap_resamples, config.seed, config.confidence)


#: 1000 resamples, seed 0, 95%: the default where a caller passes none.
DEFAULT_BOOTSTRAP = Bootstrap()


def estimate(
    features: FloatArray, stats_of: Stats, bootstrap: Bootstrap
) -> tuple[dict[str, tuple[float, float | None, float | None]], FloatArray]:
    """Point value and percentile interval for every statistic ``stats_of`` derives from weighted counts.

    A trailing column of ones is appended so ``stats_of`` always sees each resample's total weight last.
    """
    features = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    point_counts = features.sum(axis=0)
    point = stats_of(point_counts[None, :])
    chunks = [stats_of(w @ features) for w in resample_weights(len(features), bootstrap)]
    tail = (1.0 - bootstrap.confidence) / 2.0 * 100.0
    out: dict[str, tuple[float, float | None, float | None]] = {}
    for name, values in point.items():
        if not chunks:
            out[name] = (float(values[0]), None, None)
            continue
        draws = np.concatenate([chunk[name] for chunk in chunks])
        finite = draws[np.isfinite(draws)]
        low, high = np.percentile(finite, [tail, 100.0 - tail]) if finite.size else (math.nan, math.nan)
        out[name] = (float(values[0]), float(low), float(high))
    return out, point_counts


def resample_weights(n: int, bootstrap: Bootstrap) -> Iterator[FloatArray]:
    """How often each message is drawn in each resample, in chunks so memory stays bounded."""
    rng = np.random.default_rng(bootstrap.seed)
    per_chunk = max(1, _MAX_CELLS // max(n, 1))
    done = 0
    while done < bootstrap.resamples:
        size = min(per_chunk, bootstrap.resamples - done)
        draws = rng.integers(0, n, size=(size, n))
        offsets = (np.arange(size) * n)[:, None]
        yield np.bincount((draws + offsets).ravel(), minlength=size * n).reshape(size, n).astype(float)
        done += size


def ratio(num: NDArray[Any], den: NDArray[Any], empty: float = 0.0) -> FloatArray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, empty, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out
