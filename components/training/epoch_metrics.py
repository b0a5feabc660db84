"""Validation metrics reported during training (the evaluate stage owns the study's final metrics).

Trinary: accuracy, macro-F1, per-class F1 and a 3x3 confusion matrix. Taxonomy: per-category precision, recall,
F1, accuracy and a 2x2 confusion (tn, fp, fn, tp) at a 0.5 threshold, plus micro/macro F1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from components.schema import CATEGORIES, LABELS
from components.training.batches import predictions


def evaluate_logits(logits: torch.Tensor, y: torch.Tensor, task: str) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    pred = predictions(logits, task)
    truth = y.cpu().numpy()
    if task == "trinary":
        labels = list(range(len(LABELS)))
        class_f1 = f1_score(truth, pred, labels=labels, average=None, zero_division=0)
        return {
            "accuracy": float(accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0)),
            "per_class": {name: {"f1": float(class_f1[i])} for i, name in enumerate(LABELS)},
            "confusion": confusion_matrix(truth, pred, labels=labels).tolist(),
        }
    truth = truth.astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(truth, pred, average=None, zero_division=0)
    per_class: dict[str, dict[str, float]] = {}
    confusion: dict[str, list[int]] = {}
    for i, name in enumerate(CATEGORIES):
        t, p = truth[:, i], pred[:, i]
        per_class[name] = {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "accuracy": float(np.mean(t == p)),
            "support": int(support[i]),
        }
        confusion[name] = [int(np.sum((t == a) & (p == b))) for a in (0, 1) for b in (0, 1)]
    return {
        "micro_f1": float(f1_score(truth, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
        "accuracy": float(np.mean([v["accuracy"] for v in per_class.values()])),
        "per_class": per_class,
        "confusion": confusion,
    }
