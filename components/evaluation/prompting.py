"""Zero-shot and k-shot prompting of causal LMs, scored by label likelihood (never by parsing free text).

Templates are versioned text files (``prompts/evaluate/<task>.v<N>.txt``) with three sections: ``prefix``
(instructions and definitions), ``example`` (one demonstration) and ``query`` (the message to score). The rendered
prefix (instructions + the k examples) is the same for every message, which is what lets
``components.evaluation.likelihood`` compute it once. Few-shot examples come from the train split only, drawn with a
seed and balanced over labels; reports record their ids (never their text) and the template's sha256.

Trinary: the probability of each label is the softmax over the summed log-probabilities of " safe",
" borderline", " unsafe" after the query. Taxonomy: one query per category, P(yes) = softmax over " yes" / " no",
turned into a decision by a per-category threshold tuned on val.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from components.errors import EmosafeError
from components.evaluation.likelihood import score_options
from components.schema import CATEGORIES, LABELS, Origin, Split

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TASK_ANSWERS: dict[str, tuple[str, ...]] = {"trinary": LABELS, "taxonomy": ("yes", "no")}
_SECTION = re.compile(r"^### (prefix|example|query)\s*$", re.MULTILINE)
_PLACEHOLDERS: dict[str, dict[str, tuple[str, ...]]] = {
    "trinary": {"example": ("{text}", "{answer}"), "query": ("{text}",)},
    "taxonomy": {"example": ("{text}", "{answers}"), "query": ("{text}", "{category}")},
}


@dataclass(frozen=True)
class PromptTemplate:
    task: str
    name: str
    sha256: str
    prefix: str
    example: str
    query: str


@dataclass(frozen=True)
class Example:
    """A few-shot demonstration drawn from train (its text goes into the prompt, never into a report)."""

    id: str
    text: str
    label: str
    categories: frozenset[str]


@dataclass(frozen=True)
class RenderedPrompt:
    """A template filled with examples: the shared prefix, one query per question, and the answer words."""

    task: str
    prefix: str
    queries: tuple[str, ...]
    answers: tuple[str, ...]
    example_ids: tuple[str, ...]
    template: str
    template_sha256: str


def parse_template(text: str, task: str, name: str) -> PromptTemplate:
    """Parse a template file's text. Raises EmosafeError naming ``name`` when a section or placeholder is missing.

    Lines before the first section are comments.
    """
    if task not in _PLACEHOLDERS:
        raise EmosafeError(f"{name}: unknown task '{task}' (rule: trinary or taxonomy)")
    parts = _SECTION.split(text)
    sections = {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}
    missing = [s for s in ("prefix", "example", "query") if not sections.get(s, "").strip()]
    if missing:
        raise EmosafeError(f"{name}: section(s) {missing} missing or empty (rule: '### prefix/example/query')")
    for section, placeholders in _PLACEHOLDERS[task].items():
        absent = [p for p in placeholders if p not in sections[section]]
        if absent:
            raise EmosafeError(f"{name}: section '{section}' lacks {absent} (rule: needed for the {task} task)")
    if sections["query"].count("{text}") != 1:
        raise EmosafeError(f"{name}: the query must contain {{text}} exactly once")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return PromptTemplate(task, name, digest, sections["prefix"].strip(), sections["example"], sections["query"])


def draw_examples(frame: pd.DataFrame, k: int, seed: int) -> tuple[Example, ...]:
    """``k`` human-written train rows, balanced over labels (k // 3 each, the remainder to seeded-random labels),
    in a seeded-shuffled order. Raises EmosafeError when a label has too few train rows.
    """
    if k == 0:
        return ()
    rng = np.random.default_rng(seed)
    pool = frame[(frame["split"] == Split.TRAIN.value) & (frame["origin"] == Origin.HUMAN.value)]
    quota = dict.fromkeys(LABELS, k // len(LABELS))
    for index in rng.permutation(len(LABELS))[: k % len(LABELS)]:
        quota[LABELS[index]] += 1
    chosen: list[Example] = []
    for label in LABELS:
        rows = pool[pool["label"] == label].sort_values("id")
        if len(rows) < quota[label]:
            raise EmosafeError(f"few-shot: {quota[label]} train row(s) with label '{label}' needed, {len(rows)} found")
        for _, row in rows.iloc[rng.choice(len(rows), size=quota[label], replace=False)].iterrows():
            cats = frozenset(c for c in CATEGORIES if bool(row[c]))
            chosen.append(Example(str(row["id"]), str(row["text"]), label, cats))
    return tuple(chosen[i] for i in rng.permutation(len(chosen)))


def render(template: PromptTemplate, examples: Sequence[Example], max_example_chars: int = 400) -> RenderedPrompt:
    """Fill the template: prefix + demonstrations (texts clipped to ``max_example_chars``) + one query per question."""
    blocks = [template.prefix]
    for example in examples:
        text = example.text[:max_example_chars]
        if template.task == "trinary":
            block = template.example.replace("{answer}", example.label)
        else:
            answers = "\n".join(f"{c}: {'yes' if c in example.categories else 'no'}" for c in CATEGORIES)
            block = template.example.replace("{answers}", answers)
        blocks.append(block.replace("{text}", text))
    prefix = "\n\n".join(blocks) + "\n\n"
    if template.task == "trinary":
        queries: tuple[str, ...] = (template.query,)
    else:
        queries = tuple(template.query.replace("{category}", c) for c in CATEGORIES)
    return RenderedPrompt(
        template.task,
        prefix,
        queries,
        TASK_ANSWERS[template.task],
        tuple(e.id for e in examples),
        template.name,
        template.sha256,
    )


class LikelihoodPredictor:
    """A ``Predictor`` over a causal LM and a rendered prompt: (n, 3) label or (n, 6) P(yes) probabilities."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompt: RenderedPrompt,
        batch_size: int = 8,
        max_message_tokens: int = 256,
        use_prefix_cache: bool = True,
    ) -> None:
        self.task = prompt.task
        self.prompt = prompt
        self._model, self._tokenizer = model, tokenizer
        self._batch_size, self._max_tokens, self._cached = batch_size, max_message_tokens, use_prefix_cache
        self._prefix = list(tokenizer(prompt.prefix, add_special_tokens=True)["input_ids"])
        self._options = [self._encode(" " + answer) for answer in prompt.answers]
        self._queries = [self._split_query(query) for query in prompt.queries]

    def predict(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Probabilities in LABELS order (trinary) or P(yes) per category in CATEGORIES order (taxonomy)."""
        if not texts:
            return np.zeros((0, len(LABELS) if self.task == "trinary" else len(CATEGORIES)))
        bodies = []
        for text in texts:
            message = self._encode(" " + text)[: self._max_tokens]
            bodies += [before + message + after for before, after in self._queries]
        logp = score_options(self._model, self._prefix, bodies, self._options, self._batch_size, self._cached)
        logp = logp.reshape(len(texts), len(self._queries), len(self._options))
        probs = np.exp(logp - logp.max(axis=2, keepdims=True))
        probs /= probs.sum(axis=2, keepdims=True)
        chosen: NDArray[np.float64] = probs[:, 0, :] if self.task == "trinary" else probs[:, :, 0]
        return chosen

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _split_query(self, query: str) -> tuple[list[int], list[int]]:
        """Tokens before and after ``{text}``; a space before the placeholder moves onto the message."""
        before, after = query.split("{text}")
        return self._encode(before.rstrip(" ")), self._encode(after)

    def describe(self) -> dict[str, Any]:
        """Provenance for reports: template, its hash, example ids, prefix length in tokens (no text)."""
        return {
            "template": self.prompt.template,
            "template_sha256": self.prompt.template_sha256,
            "example_ids": list(self.prompt.example_ids),
            "prefix_tokens": len(self._prefix),
            "max_message_tokens": self._max_tokens,
        }
