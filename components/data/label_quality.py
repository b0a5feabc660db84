"""Label quality of weak sources: confident learning on out-of-fold probe probabilities, agreement with a hand
audit, and what each source (and the flags) does to a probe on the other sources.

Why: the real-corpora profile labels DiaSafety, CounselChat and Davidson by mapping each source's categories to
trinary labels. A map is right on average and wrong on many rows, and a model trained on it learns the source, not
the risk. Three measurements, all pure functions over vectors and labels:

- ``screen``: a logistic-regression probe on frozen sentence vectors, fitted out of fold (rows of one parent, a
  message and its rewrites, stay in one fold), gives each row a probability for every label; cleanlab's confident
  learning (``find_label_issues``, prune by noise rate) flags rows whose given label the probe finds unlikely
  against the per-class noise it estimates.
- ``audit_figures``: per source, how often the weak label agrees with a hand-audited one (bootstrap interval), and
  how precise and complete the flags are on the audited rows.
- ``ablation``: for every source S, a probe trained on the others and scored on S (macro-F1 over the labels S
  contains), with the flags down-weighted and with each other source also left out: paired bootstrap intervals of
  the change. A cheap stand-in for the ladder's leave-one-source-out runs, so it can run before training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from components.evaluation.bootstrap import Bootstrap, estimate, ratio
from components.schema import LABELS

FloatArray = NDArray[np.float64]
N_LABELS = len(LABELS)


@dataclass(frozen=True)
class Screening:
    """Out-of-fold probabilities (n, 3), cleanlab's flags and label-quality scores (higher: more trustworthy)."""

    probabilities: FloatArray
    flagged: NDArray[np.bool_]
    quality: FloatArray


def _probe(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=seed)


def _fit_predict(
    vectors: FloatArray,
    labels: NDArray[np.int64],
    fit: NDArray[np.bool_],
    score: NDArray[np.bool_],
    seed: int,
    weights: FloatArray | None = None,
) -> FloatArray:
    """Probabilities over all labels for the ``score`` rows from a probe fitted on the ``fit`` rows."""
    probe = _probe(seed)
    probe.fit(vectors[fit], labels[fit], sample_weight=None if weights is None else weights[fit])
    out = np.full((int(score.sum()), N_LABELS), 1e-6)
    out[:, probe.classes_] = probe.predict_proba(vectors[score])
    return np.asarray(out / out.sum(axis=1, keepdims=True), dtype=np.float64)


def folds_of(labels: NDArray[np.int64], groups: Sequence[str], folds: int, seed: int) -> NDArray[np.int64]:
    """Each row's fold: stratified by label, and every row of one group (a parent and its rewrites) in one fold, so
    a rewrite never vouches for its parent's label."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = np.zeros(len(labels), dtype=np.int64)
    for fold, (_, score_rows) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups=list(groups))):
        out[score_rows] = fold
    return out


def out_of_fold(
    vectors: FloatArray, labels: NDArray[np.int64], groups: Sequence[str], folds: int, seed: int
) -> FloatArray:
    """Every row's probabilities from a probe that never saw it nor any row of its group."""
    fold_of = folds_of(labels, groups, folds, seed)
    out = np.zeros((len(labels), N_LABELS))
    for fold in range(folds):
        score = fold_of == fold
        out[score] = _fit_predict(vectors, labels, ~score, score, seed)
    return out


def screen(
    vectors: FloatArray, labels: NDArray[np.int64], groups: Sequence[str], folds: int, seed: int
) -> Screening:
    """Confident learning over out-of-fold probe probabilities (cleanlab)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probabilities = out_of_fold(vectors, labels, groups, folds, seed)
    flagged = np.asarray(find_label_issues(labels, probabilities, filter_by="prune_by_noise_rate"), dtype=bool)
    quality = np.asarray(get_label_quality_scores(labels, probabilities), dtype=float)
    return Screening(probabilities, flagged, quality)


def row_weights(flagged: NDArray[np.bool_], action: str, issue_weight: float) -> FloatArray:
    """The loss weight of every row: 1, or for a flagged row ``issue_weight`` (downweight), 0 (drop), 1 (report)."""
    low = {"downweight": issue_weight, "drop": 0.0, "report": 1.0}[action]
    return np.where(flagged, low, 1.0)


def _interval(values: tuple[float, float | None, float | None]) -> dict[str, float | None]:
    point, low, high = values
    rounded = [None if v is None else round(v, 4) for v in (low, high)]
    return {"value": round(point, 4), "low": rounded[0], "high": rounded[1]}


def audit_figures(
    weak: NDArray[np.int64], audited: NDArray[np.int64], flagged: NDArray[np.bool_], bootstrap: Bootstrap
) -> dict[str, Any]:
    """On audited rows of one source: agreement of the weak label with the audit (interval), and the flags'
    precision (a flagged row is one the audit disagrees with) and recall (a disagreement got flagged)."""
    wrong = weak != audited
    features = np.stack([~wrong, flagged & wrong, flagged, wrong], axis=1).astype(float)

    def stats(counts: FloatArray) -> dict[str, FloatArray]:
        return {"agreement": ratio(counts[:, 0], counts[:, -1])}

    figures, _ = estimate(features, stats, bootstrap)
    caught, flags, errors = int((flagged & wrong).sum()), int(flagged.sum()), int(wrong.sum())
    return {
        "n": len(weak),
        "agreement": _interval(figures["agreement"]),
        "disagreements": errors,
        "flagged": flags,
        "flag_precision": round(caught / flags, 4) if flags else None,
        "flag_recall": round(caught / errors, 4) if errors else None,
    }


def _f1_features(truth: NDArray[np.int64], predicted: NDArray[np.int64]) -> FloatArray:
    """Per row, per label: true positive, predicted, actual (so any resample's macro-F1 follows from sums)."""
    columns = []
    for label in range(N_LABELS):
        columns += [(predicted == label) & (truth == label), predicted == label, truth == label]
    return np.stack(columns, axis=1).astype(float)


def _macro_f1(counts: FloatArray, present: Sequence[int], offset: int = 0) -> FloatArray:
    """Macro-F1 over the labels ``present`` in the scored set (an absent label is not a zero)."""
    scores = [
        ratio(2 * counts[:, offset + 3 * c], counts[:, offset + 3 * c + 1] + counts[:, offset + 3 * c + 2])
        for c in present
    ]
    return np.asarray(np.mean(scores, axis=0), dtype=np.float64)


def paired_f1(
    truth: NDArray[np.int64], base: NDArray[np.int64], other: NDArray[np.int64], bootstrap: Bootstrap
) -> dict[str, Any]:
    """Macro-F1 of ``base`` and ``other`` predictions on the same rows and the change, with paired intervals."""
    present = sorted(int(c) for c in np.unique(truth))
    features = np.concatenate([_f1_features(truth, base), _f1_features(truth, other)], axis=1)
    width = 3 * N_LABELS

    def stats(counts: FloatArray) -> dict[str, FloatArray]:
        a, b = _macro_f1(counts, present), _macro_f1(counts, present, width)
        return {"base": a, "other": b, "change": b - a}

    figures, _ = estimate(features, stats, bootstrap)
    return {name: _interval(values) for name, values in figures.items()}


def ablation(
    vectors: FloatArray,
    labels: NDArray[np.int64],
    sources: NDArray[Any],
    scored: NDArray[np.bool_],
    weights: FloatArray,
    bootstrap: Bootstrap,
    seed: int,
) -> dict[str, Any]:
    """For each source S: a probe trained on the other sources scored on S's ``scored`` rows (human rows), against
    the same probe with the curation ``weights`` and against one trained without S and one more source T."""
    out: dict[str, Any] = {}
    names = sorted(str(s) for s in np.unique(sources))
    for held in names:
        test = scored & (sources == held)
        others = sources != held
        if not test.any() or len(np.unique(labels[others])) < 2:
            continue
        truth = labels[test]

        def predicted(fit: NDArray[np.bool_], w: FloatArray | None = None) -> NDArray[np.int64]:
            keep = fit if w is None else fit & (w > 0)  # a dropped row (weight 0) is left out, not fitted at 0
            return np.asarray(_fit_predict(vectors, labels, keep, test, seed, w).argmax(axis=1), dtype=np.int64)

        base = predicted(others)
        curated = paired_f1(truth, base, predicted(others, weights), bootstrap)
        row: dict[str, Any] = {"n": int(test.sum()), "curated": curated}
        row["without"] = {
            other: paired_f1(truth, base, predicted(others & (sources != other)), bootstrap)
            for other in names
            if other != held and len(np.unique(labels[others & (sources != other)])) >= 2
        }
        out[held] = row
    return out
