"""An evaluation suite's headline figures: the binary view a safety team reads first, with bootstrap intervals.

A suite (``evaluate.suites``) is a labelled corpus kept apart from training, such as benign look-alikes or crisis
messages. Besides the full per-split report, each suite gets these figures, computed for both tasks from the
decisions the model made:
- ``unsafe_recall``: the share of unsafe messages the model calls unsafe (taxonomy: any category flagged);
- ``unsafe_flagged``: the share of unsafe messages flagged at all (trinary: borderline or unsafe);
- ``unsafe_f1``: F1 of "called unsafe" against "is unsafe" over every message;
- ``safe_flag_rate``: the share of safe messages flagged (trinary: anything but safe; taxonomy: any category);
- ``macro_f1``: the mean F1 over the classes (trinary) or categories (taxonomy) the suite contains. A class with no
  message in the suite is left out, not counted as 0, because a suite is written to test some classes only.
A figure without the messages it is about (no unsafe message in the suite, say: then ``unsafe_f1`` too) is None,
and a gate floor on it fails.
``read_suites`` reads the corpora (checked before a stage writes anything) and ``suite_section`` is the part of a
report one suite fills; the evaluate and export stages both use them, so a model and its int8 file are measured
the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from components.config.evaluate import SuiteConfig
from components.data.dataset import to_frame
from components.data.sources import read_source, source_paths
from components.evaluation.bootstrap import Bootstrap, FloatArray, estimate, ratio
from components.evaluation.measure import category_matrix, check_frame, decisions, label_indices
from components.evaluation.measure import evaluate as evaluate_frame
from components.evaluation.metrics import Estimate
from components.evaluation.predictors import Predictor
from components.io import sha256_bytes, sha256_file
from components.schema import CATEGORIES, LABELS

_SAFE, _UNSAFE = LABELS.index("safe"), LABELS.index("unsafe")
#: The figures, in the order the feature columns hold their counts.
FIGURES = ("unsafe_recall", "unsafe_flagged", "unsafe_f1", "safe_flag_rate", "macro_f1")


@dataclass(frozen=True)
class Suite:
    """An evaluation suite read and checked before anything is written: its rows (all test) and data hash."""

    purpose: str
    frame: pd.DataFrame
    data_hash: str


def read_suites(suites: Mapping[str, SuiteConfig], root: Path) -> dict[str, Suite]:
    """Every suite's corpus through its source adapter, all rows as test; a bad row fails naming the file, row and
    rule. The data hash is the file's sha256 (for several files, the sha256 of their sorted hashes)."""
    read = {}
    for name, suite in suites.items():
        records = read_source(suite.source, root)
        frame = to_frame(records, {record.id: "test" for record in records})
        check_frame(frame)
        hashes = sorted(sha256_file(root / path) for path in source_paths([suite.source]))
        data_hash = hashes[0] if len(hashes) == 1 else sha256_bytes("".join(hashes).encode())
        read[name] = Suite(suite.purpose, frame, data_hash)
    return read


def suite_section(
    predictor: Predictor, suite: Suite, task: str, thresholds: Mapping[str, float] | None, bootstrap: Bootstrap
) -> dict[str, Any]:
    """One suite's part of a report: purpose, data hash, binary-view figures and the full metrics, scored with
    the thresholds already chosen on val (never tuned here)."""
    result = evaluate_frame(predictor, suite.frame, task, thresholds, bootstrap)
    figures = suite_figures(
        label_indices(suite.frame), category_matrix(suite.frame), decisions(result), task, bootstrap
    )
    return {
        "purpose": suite.purpose,
        "data_hash": suite.data_hash,
        "figures": figures.to_dict(),
        "metrics": result.report.to_dict(),
    }


@dataclass(frozen=True)
class SuiteFigures:
    """One model on one suite: message counts per label and the binary-view figures with intervals."""

    n: int
    support: dict[str, int]
    classes: tuple[str, ...]  # the classes or categories ``macro_f1`` averages over
    unsafe_recall: Estimate
    unsafe_flagged: Estimate
    unsafe_f1: Estimate
    safe_flag_rate: Estimate
    macro_f1: Estimate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def suite_figures(
    labels: NDArray[np.int64],
    categories: NDArray[np.bool_],
    decided: NDArray[Any],
    task: str,
    bootstrap: Bootstrap,
) -> SuiteFigures:
    """Figures from gold ``labels`` (indices in ``LABELS``), gold ``categories`` (n, 6) and the model's decisions:
    predicted label indices (trinary) or the (n, 6) flagged matrix (taxonomy)."""
    if task == "trinary":
        predicted = np.asarray(decided, dtype=np.int64)
        flagged, called_unsafe = predicted != _SAFE, predicted == _UNSAFE
        truth = np.eye(len(LABELS), dtype=bool)[labels]
        guess = np.eye(len(LABELS), dtype=bool)[predicted]
        names = LABELS
    else:
        guess = np.asarray(decided, dtype=bool)
        flagged = called_unsafe = guess.any(axis=1)
        truth, names = np.asarray(categories, dtype=bool), CATEGORIES
    unsafe, safe = labels == _UNSAFE, labels == _SAFE
    present: NDArray[np.bool_] = np.asarray(truth.any(axis=0), dtype=bool)
    binary = [unsafe & called_unsafe, unsafe & flagged, unsafe, called_unsafe, safe & flagged, safe]
    columns = np.column_stack([*binary, truth & guess, ~truth & guess, truth & ~guess]).astype(float)
    k = truth.shape[1]

    def stats(counts: FloatArray) -> dict[str, FloatArray]:
        hit, flag, positives, called, safe_flag, safes = (counts[:, i] for i in range(6))
        tp, fp, fn = (counts[:, 6 + i * k : 6 + (i + 1) * k] for i in range(3))
        f1 = ratio(2.0 * tp, 2.0 * tp + fp + fn)
        return {
            "unsafe_recall": ratio(hit, positives, empty=math.nan),
            "unsafe_flagged": ratio(flag, positives, empty=math.nan),
            "unsafe_f1": np.where(positives > 0, ratio(2.0 * hit, called + positives), math.nan),
            "safe_flag_rate": ratio(safe_flag, safes, empty=math.nan),
            "macro_f1": f1[:, present].mean(axis=1) if present.any() else np.full(len(counts), math.nan),
        }

    values, _ = estimate(columns, stats, bootstrap)

    def est(name: str) -> Estimate:
        return Estimate(*(None if v is None or math.isnan(v) else round(v, 6) for v in values[name]))

    support = {label: int((labels == i).sum()) for i, label in enumerate(LABELS)}
    chosen = tuple(name for name, kept in zip(names, present.tolist(), strict=True) if kept)
    return SuiteFigures(len(labels), support, chosen, *(est(name) for name in FIGURES))
