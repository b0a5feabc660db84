"""Training data for both tasks: targets, class-imbalance weights, deterministic batches with dynamic padding.

Both tasks share one path: ``trinary`` has one integer target per row (3 classes, cross-entropy); ``taxonomy`` has
six 0/1 targets per row (multi-label, BCE with ``pos_weight``). Batch order is a pure function of (seed, epoch),
so a resumed run replays exactly the batches an uninterrupted run would have seen, and ``n`` processes each take
an equal slice of the same global batch (DDP then averages to the single-process gradient).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from components.schema import CATEGORIES, LABELS

Task = str


@dataclass(frozen=True)
class Encoded:
    """One split, tokenised (unpadded) with its targets; never holds raw text."""

    input_ids: list[list[int]]
    targets: torch.Tensor  # long [n] (trinary) or float [n, 6] (taxonomy)
    ids: list[str]
    row_weights: torch.Tensor | None = None  # float [n]: each row's loss weight (train.weights); None: all 1

    def __len__(self) -> int:
        return len(self.input_ids)


def label_names(task: Task) -> tuple[str, ...]:
    return LABELS if task == "trinary" else CATEGORIES


def targets(frame: pd.DataFrame, task: Task) -> torch.Tensor:
    """Integer class ids (trinary) or a float 0/1 matrix over the six categories (taxonomy)."""
    if task == "trinary":
        index = {name: i for i, name in enumerate(LABELS)}
        return torch.tensor([index[str(label)] for label in frame["label"]], dtype=torch.long)
    matrix = frame[list(CATEGORIES)].astype(bool).to_numpy()
    return torch.tensor(matrix, dtype=torch.float32).reshape(-1, len(CATEGORIES))


def imbalance_weights(y: torch.Tensor, task: Task, policy: str, pos_weight_cap: float) -> torch.Tensor | None:
    """Trinary: inverse-frequency class weights (mean 1). Taxonomy: pos_weight = negatives / positives per
    category, capped; a category without positives gets 1. ``policy == "none"`` returns None."""
    if policy == "none":
        return None
    if task == "trinary":
        counts = torch.bincount(y, minlength=len(LABELS)).double().clamp(min=1)
        weights = counts.sum() / (len(LABELS) * counts)
        return weights.float()
    positives = y.sum(dim=0).double()
    negatives = len(y) - positives
    ratio = torch.where(positives > 0, negatives / positives.clamp(min=1), torch.ones_like(positives))
    return ratio.clamp(max=pos_weight_cap, min=1e-3).float()


def encode(frame: pd.DataFrame, tokenizer: Any, task: Task, max_length: int) -> Encoded:
    """Tokenise (truncating to ``max_length``) without padding; padding happens per batch."""
    if frame.empty:  # tokenizers reject an empty batch; a split may legitimately be empty (no val rows)
        return Encoded(input_ids=[], targets=targets(frame, task), ids=[])
    tokens = tokenizer(list(frame["text"].astype(str)), truncation=True, max_length=max_length)
    return Encoded(input_ids=list(tokens["input_ids"]), targets=targets(frame, task), ids=list(frame["id"]))


POOL_BATCHES = 32  # length buckets: each pool of 32 batches is sorted by length before it is cut into batches


def epoch_batches(
    n_rows: int, batch_size: int, seed: int, epoch: int, lengths: Sequence[int] | None = None
) -> list[list[int]]:
    """Row indices per global batch for one epoch: a seeded permutation; the last short batch is dropped when
    there is more than one batch, so every step has the same size (and DDP shards stay equal).

    With ``lengths`` (token counts per row; ``hyper.length_buckets``) the permutation is cut into pools of
    ``POOL_BATCHES`` batches, each pool sorted by length before it is cut, and the batches are then shuffled:
    a batch pads to messages of similar length, and every row is still seen once per epoch in a seeded order."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n_rows, generator=generator).tolist()
    if lengths is not None:
        pool = batch_size * POOL_BATCHES
        order = [i for s in range(0, n_rows, pool) for i in sorted(order[s : s + pool], key=lambda i: lengths[i])]
    batches = [order[i : i + batch_size] for i in range(0, n_rows, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    if lengths is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def shard(batch: list[int], rank: int, world: int) -> list[int]:
    """This process's share of a global batch (strided, so sizes differ by at most one)."""
    return batch[rank::world]


def collate(data: Encoded, rows: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest row of this batch (dynamic padding) and build the attention mask."""
    seqs = [data.input_ids[i] for i in rows]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    out = {"input_ids": ids, "attention_mask": mask, "labels": data.targets[rows]}
    if data.row_weights is not None:
        out["row_weights"] = data.row_weights[rows]
    return out


def loss_fn(logits: torch.Tensor, y: torch.Tensor, task: Task, weights: torch.Tensor | None) -> torch.Tensor:
    """Per-row losses (not reduced): the caller divides by the *global* batch size so DDP shards add up."""
    if task == "trinary":
        return torch.nn.functional.cross_entropy(logits.float(), y, weight=weights, reduction="none")
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=weights, reduction="none")
    return per.mean(dim=1)


def predictions(logits: torch.Tensor, task: Task) -> np.ndarray:
    """Class ids (trinary) or 0/1 decisions at 0.5 (taxonomy)."""
    if task == "trinary":
        return logits.argmax(dim=-1).cpu().numpy()
    return (torch.sigmoid(logits.float()) >= 0.5).int().cpu().numpy()
