"""Leave-one-source-out folds: the dataset without one source, and that source's messages as the test split.

Why a fold is a dataset: the ladder's training and the evaluation path then run unchanged on it, so a holdout
figure differs from the ladder's own only by what the model was allowed to see. Rewrites of the held-out source's
messages (augmentation keeps the parent's source) leave with it: a paraphrase of a test message in train would
leak it. The held-out rows are its human rows of every split, since the model saw none of them; a cap keeps the
scoring cost bounded, chosen by the sha256 of (seed, id) so it does not depend on row order.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from components.errors import EmosafeError
from components.schema import Origin


def leave_out(frame: pd.DataFrame, source: str, max_test_rows: int | None, seed: int) -> pd.DataFrame:
    """``frame`` (dataset schema with ``split``) as a fold: other sources keep their rows and splits; ``source``'s
    human rows become ``test`` (at most ``max_test_rows``); its rewrites and the others' test rows are dropped.

    Raises EmosafeError when the fold cannot train or test: the source is absent, or leaves no train or val row."""
    held = frame["source"] == source
    human = frame["origin"] == Origin.HUMAN.value
    test = frame[held & human]
    if test.empty:
        raise EmosafeError(f"holdout: source '{source}' has no human rows in the dataset")
    if max_test_rows is not None and len(test) > max_test_rows:
        rank = test["id"].map(lambda value: hashlib.sha256(f"{seed}:{value}".encode()).hexdigest())
        test = test.loc[rank.sort_values(kind="stable").index[:max_test_rows]]
    rest = frame[~held & frame["split"].isin(["train", "val"])]
    for split in ("train", "val"):
        if not (rest["split"] == split).any():
            raise EmosafeError(f"holdout: without source '{source}' the {split} split is empty")
    fold = pd.concat([rest, test.assign(split="test")])
    return fold.sort_values("id", kind="stable").reset_index(drop=True)
