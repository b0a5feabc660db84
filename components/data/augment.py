"""Emotion re-interpretation augmentation: which messages to rewrite, cache keys, garbage filters, rewrite rows.

Pure functions over pandas frames and strings; the stage (``components/stages/augment.py``) does the I/O and calls
the generator. Only human TRAIN rows are ever parents, and every rewrite takes its parent's split (train), so no
rewrite of a message can leak into val or test. Nothing here logs text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd

from components.schema import CATEGORIES, COLUMNS, LABELS, Origin, Split
from components.text import normalise, text_hash

#: Nullable provenance columns added after the schema's columns (null on human rows).
AUG_COLUMNS: Final[tuple[str, ...]] = (
    "aug_generator",
    "aug_model",
    "aug_prompt_version",
    "aug_seed",
    "aug_label_policy",
)
AUG_DTYPES: Final[dict[str, str]] = {name: "string" for name in AUG_COLUMNS} | {
    "aug_seed": "Int64",
    "parent_id": "string",
}

#: Why a generation is dropped, in the order the checks run.
FILTER_REASONS: Final[tuple[str, ...]] = (
    "empty",
    "refusal",
    "meta_commentary",
    "truncated",
    "too_long",
    "repetitive",
    "identical_to_parent",
    "duplicate",
)
_REFUSAL = re.compile(
    r"\bas an ai\b|\bas a (large )?language model\b|\bi('m| am) an ai\b"
    r"|\bi (can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to) "
    r"(help|assist|comply|provide|fulfil|fulfill|rewrite|do that|create|generate|write)\b"
    r"|^(i'm |i am )?sorry,? but i (can't|cannot|won't|will not) (help|assist|comply|provide|do|rewrite)\b",
    flags=re.IGNORECASE,
)
_META = re.compile(
    r"^(here('s| is) (the |a |your )?(rewritten|rewrite|re-?interpret|version)|(the|your|this) "
    r"(message|sentence|text|original)\b|(rewritten|rewrite|re-?interpreted)( message)?\s*:)",
    flags=re.IGNORECASE,
)
_PREFIX = re.compile(r"^(rewritten message|rewrite|message|answer)\s*:\s*", flags=re.IGNORECASE)
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"  # straight, curly and angle quotes


@dataclass(frozen=True)
class RewriteSpec:
    """One rewrite to obtain: its parent, its index among the parent's rewrites, its seed and its cache key."""

    parent_id: str
    parent_text: str
    parent_hash: str
    index: int
    seed: int
    key: str

    @property
    def row_id(self) -> str:
        return f"{self.parent_id}~aug~{self.key[:12]}"


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines a generation (never the raw text itself)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def select_parents(frame: pd.DataFrame, max_parents: int | None, seed: int) -> pd.DataFrame:
    """Human train rows, label-balanced round robin in a seeded hash order, capped at ``max_parents``.

    The order depends only on ids and the seed (not on file order), so raising the cap keeps earlier parents
    and their cached rewrites.
    """
    eligible = frame[(frame["split"] == Split.TRAIN) & (frame["origin"] == Origin.HUMAN)]
    order = eligible["id"].map(lambda value: hashlib.sha256(f"{seed}:{value}".encode()).hexdigest())
    eligible = eligible.assign(_order=order).sort_values("_order", kind="stable")
    eligible = eligible.assign(_rank=eligible.groupby("label").cumcount())
    label_rank = eligible["label"].map({label: i for i, label in enumerate(LABELS)})
    eligible = eligible.assign(_label=label_rank).sort_values(["_rank", "_label"], kind="stable")
    chosen = eligible if max_parents is None else eligible.head(max_parents)
    return chosen.drop(columns=["_order", "_rank", "_label"])


def clean_output(text: str) -> str:
    """Normalise and strip wrapping quotes and 'Rewrite:'-style prefixes that small models add."""
    cleaned = normalise(text)
    cleaned = _PREFIX.sub("", cleaned)
    if len(cleaned) >= 2 and cleaned[0] in _QUOTES and cleaned[-1] in _QUOTES:
        cleaned = cleaned[1:-1].strip()
    return cleaned


def filter_reason(cleaned: str, truncated: bool, parent_hash: str, max_chars: int, seen_hashes: set[str]) -> str | None:
    """The first FILTER_REASONS entry this (cleaned) generation hits, or None to keep it.

    ``seen_hashes`` holds every text hash already in the dataset or kept earlier: a rewrite equal to another
    message (perhaps one in test) would be a duplicate and a train/test leak.
    """
    if not cleaned:
        return "empty"
    if _REFUSAL.search(cleaned):
        return "refusal"
    if _META.search(cleaned):
        return "meta_commentary"
    if truncated:
        return "truncated"
    if len(cleaned) > max_chars:
        return "too_long"
    if _repetitive(cleaned):
        return "repetitive"
    digest = text_hash(cleaned)
    if digest == parent_hash:
        return "identical_to_parent"
    if digest in seen_hashes:
        return "duplicate"
    return None


def _repetitive(text: str) -> bool:
    """Degenerate loops ("no, no, no, ...") that small models fall into: few distinct word trigrams."""
    words = re.findall(r"\w+", text.casefold())
    if len(words) < 12:
        return False
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    return len(set(trigrams)) / len(trigrams) < 0.5


@dataclass(frozen=True)
class Rewrite:
    """A kept rewrite with its labels and provenance, ready to become a row."""

    spec: RewriteSpec
    text: str
    label: str
    categories: frozenset[str]
    label_policy: str  # inherit | generator | generator_fallback


def rewrite_rows(rewrites: list[Rewrite], parents: pd.DataFrame, provenance: dict[str, Any]) -> pd.DataFrame:
    """Rows in the dataset schema + ``AUG_COLUMNS``; source and split come from the parent (always train)."""
    by_id = parents.set_index("id")
    rows = []
    for item in rewrites:
        parent = by_id.loc[item.spec.parent_id]
        rows.append(
            {
                "id": item.spec.row_id,
                "text": item.text,
                "label": item.label,
                **{category: category in item.categories for category in CATEGORIES},
                "source": parent["source"],
                "origin": Origin.AUGMENTED.value,
                "parent_id": item.spec.parent_id,
                "split": parent["split"],
                "text_hash": text_hash(item.text),
                **provenance,
                "aug_seed": item.spec.seed,
                "aug_label_policy": item.label_policy,
            }
        )
    return pd.DataFrame(rows, columns=[*COLUMNS, *AUG_COLUMNS])


def combine(prepared: pd.DataFrame, rewrites: pd.DataFrame) -> pd.DataFrame:
    """Prepared rows untouched (null ``aug_*``) plus rewrites, sorted by id (a rewrite sorts after its parent)."""
    human = prepared.reindex(columns=[*COLUMNS, *AUG_COLUMNS]).astype(AUG_DTYPES)
    if rewrites.empty:
        return human
    frame = pd.concat([human, rewrites.astype(AUG_DTYPES)], ignore_index=True)
    return frame.sort_values("id", kind="stable").reset_index(drop=True).astype(AUG_DTYPES)


def summarise(frame: pd.DataFrame, requested: int, filtered: Counter[str], labels: Counter[str]) -> dict[str, Any]:
    """Counts only (no text): what reviewers and ``dvc metrics`` compare between runs."""
    augmented = frame[frame["origin"] == Origin.AUGMENTED]
    return {
        "rows": len(frame),
        "origin": {origin.value: int((frame["origin"] == origin).sum()) for origin in Origin},
        "split": {split.value: int((frame["split"] == split).sum()) for split in Split},
        "rewrites": {
            "requested": requested,
            "kept": len(augmented),
            "filtered": {reason: int(filtered[reason]) for reason in FILTER_REASONS},
            "label": {label: int((augmented["label"] == label).sum()) for label in LABELS},
            "category": {category: int(augmented[category].sum()) for category in CATEGORIES},
            "label_policy": dict(sorted(labels.items())),
            "outside_train": int((augmented["split"] != Split.TRAIN).sum()),
        },
    }
