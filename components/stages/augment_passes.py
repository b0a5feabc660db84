"""The augment stage's passes: the main rewrite pass and one per aim, each generated (or read from the cache),
filtered and labelled the same way.

Kept apart from ``components.stages.augment`` so the stage module reads as load, run passes, write; everything here
works on one pass at a time and shares the generator, cache, filters and label policy between passes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.config.augment import AugmentAim, AugmentConfig
from components.data.augment import (
    FILTER_REASONS,
    Rewrite,
    RewriteSpec,
    cache_key,
    clean_output,
    filter_reason,
    rewrite_rows,
    select_parents,
)
from components.data.generators import GenerationRequest, Generator, Sampling
from components.data.prompts import Prompt, parse_label_answer, parse_prompt
from components.errors import EmosafeError
from components.io import sha256_bytes
from components.schema import CATEGORIES, LABELS
from components.stages.augment_cache import CacheStats, GenerationCache
from components.text import text_hash

log = logging.getLogger(__name__)

PROMPT_DIR = Path("prompts/augment")
LABEL_SAMPLING = Sampling(max_new_tokens=24, temperature=0.0, top_p=1.0)  # labels: greedy, short


def prompt_version(prompt: Prompt, label_prompt: Prompt | None) -> str:
    """What a rewrite records as its prompt: the rewrite prompt, plus the label prompt when one labelled it."""
    return prompt.version + (f"+{label_prompt.version}" if label_prompt else "")


@dataclass(frozen=True)
class Pass:
    """One round of rewrites: the main pass (``name`` None) or an aim."""

    name: str | None
    prompt: Prompt
    parents: pd.DataFrame
    rewrites_per_message: int


@dataclass(frozen=True)
class PassContext:
    config: AugmentConfig
    cache: GenerationCache
    get_generator: Callable[[], Generator]
    kind: str
    model: str


@dataclass(frozen=True)
class PassResult:
    name: str | None
    parents: int
    requested: int
    filtered: Counter[str]
    policies: Counter[str]
    rows: pd.DataFrame
    rewrite_stats: CacheStats
    label_stats: CacheStats | None


def plan_passes(root: Path, prepared: pd.DataFrame, config: AugmentConfig) -> list[Pass]:
    """The main pass, then one per aim in declaration order. Every prompt is loaded (and every aim's sources
    checked) before anything is generated, so a bad aim costs no generation."""
    main = Pass(
        None,
        load_prompt(root, config.prompt_version),
        select_parents(prepared, config.max_parents, config.seed),
        config.rewrites_per_message,
    )
    return [main, *(_aim_pass(root, prepared, name, aim, config.seed) for name, aim in config.aims.items())]


def _aim_pass(root: Path, prepared: pd.DataFrame, name: str, aim: AugmentAim, seed: int) -> Pass:
    present = set(prepared["source"].astype(str))
    unknown = sorted(set(aim.sources or ()) - present)
    if unknown:
        raise EmosafeError(
            f"augment.aims[{name}].sources: {unknown} not in the prepared data (its sources: {sorted(present)})"
        )
    eligible = prepared
    if aim.labels is not None:
        eligible = eligible[eligible["label"].isin([str(label) for label in aim.labels])]
    if aim.sources is not None:
        eligible = eligible[eligible["source"].isin(aim.sources)]
    parents = select_parents(eligible, aim.max_parents, seed)
    return Pass(name, load_prompt(root, aim.prompt_version), parents, aim.rewrites_per_message)


def run_pass(one: Pass, context: PassContext, label_prompt: Prompt | None, seen: set[str]) -> PassResult:
    """Generate (or read from the cache), filter and label one pass. ``seen`` grows with every kept rewrite, so a
    later pass never repeats a text an earlier one kept."""
    config, kind, model = context.config, context.kind, context.model
    specs = _specs(one.parents, config, one.prompt, kind, model, config.seed, one.rewrites_per_message)
    outputs, rewrite_stats = context.cache.fetch(
        [spec.key for spec in specs],
        [GenerationRequest(one.prompt.render(spec.parent_text), spec.seed) for spec in specs],
        context.get_generator,
        _sampling(config),
        {"task": "rewrite", "generator": kind, "model": model, "prompt_version": one.prompt.version},
        "rewrites" if one.name is None else f"rewrites ({one.name})",
    )
    kept, filtered = _filter(specs, [(o.text, o.truncated) for o in outputs], seen, config)
    rewrites, policies, label_stats = _label(
        kept, one.parents, config, label_prompt, context.cache, context.get_generator, kind, model
    )
    origin = {"aug_generator": kind, "aug_model": model, "aug_prompt_version": prompt_version(one.prompt, label_prompt)}
    rows = rewrite_rows(rewrites, one.parents, origin)
    return PassResult(one.name, len(one.parents), len(specs), filtered, policies, rows, rewrite_stats, label_stats)


def aim_summary(result: PassResult, config: AugmentConfig) -> dict[str, Any]:
    """Counts only, with the aim's reason: a reviewer sees what each aim added and why it exists."""
    aim = config.aims[str(result.name)]
    return {
        "why": aim.why,
        "prompt_version": aim.prompt_version,
        "parents": result.parents,
        "requested": result.requested,
        "kept": len(result.rows),
        "filtered": {reason: int(result.filtered[reason]) for reason in FILTER_REASONS},
        "label": {label: int((result.rows["label"] == label).sum()) for label in LABELS},
    }


def total_stats(stats: Iterable[CacheStats | None]) -> CacheStats:
    present = [one for one in stats if one is not None]
    return CacheStats(sum(one.hits for one in present), sum(one.generated for one in present))


def _sampling(config: AugmentConfig) -> Sampling:
    return Sampling(config.max_new_tokens, config.temperature, config.top_p)


def load_prompt(root: Path, version: str) -> Prompt:
    path = root / PROMPT_DIR / f"{version}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in (root / PROMPT_DIR).glob("*.txt"))
        raise EmosafeError(f"{path}: prompt version '{version}' not found (available: {available})")
    data = path.read_bytes()
    return parse_prompt(data.decode("utf-8"), version, str(path), sha256_bytes(data))


def _specs(
    parents: pd.DataFrame, config: AugmentConfig, prompt: Prompt, kind: str, model: str, seed: int, per_message: int
) -> list[RewriteSpec]:
    """One spec per (parent, rewrite index); the key covers everything that changes the generation."""
    sampling = _sampling(config)
    specs = []
    for row in parents.itertuples(index=False):
        for index in range(per_message):
            parts = {
                "parent_text_hash": row.text_hash,
                "prompt_version": prompt.version,
                "prompt_sha256": prompt.sha256,
                "generator": kind,
                "model": model,
                "seed": seed + index,
                "sampling": [sampling.max_new_tokens, sampling.temperature, sampling.top_p],
            }
            key = cache_key(parts)
            specs.append(RewriteSpec(str(row.id), str(row.text), str(row.text_hash), index, seed + index, key))
    return specs


def _filter(
    specs: list[RewriteSpec], outputs: list[tuple[str, bool]], seen: set[str], config: AugmentConfig
) -> tuple[list[tuple[RewriteSpec, str]], Counter[str]]:
    """Clean every output and drop garbage, counting each drop by reason; ``seen`` (text hashes) grows with every
    kept rewrite."""
    kept: list[tuple[RewriteSpec, str]] = []
    filtered: Counter[str] = Counter()
    for spec, (text, truncated) in zip(specs, outputs, strict=True):
        cleaned = clean_output(text)
        reason = filter_reason(cleaned, truncated, spec.parent_hash, config.max_chars, seen)
        if reason:
            filtered[reason] += 1
            log.debug("rewrite %s of %s dropped: %s", spec.key[:12], spec.parent_id, reason)
            continue
        seen.add(text_hash(cleaned))
        kept.append((spec, cleaned))
    log.info("rewrites: %d kept, %d filtered %s", len(kept), sum(filtered.values()), dict(sorted(filtered.items())))
    return kept, filtered


def _label(
    kept: list[tuple[RewriteSpec, str]],
    parents: pd.DataFrame,
    config: AugmentConfig,
    label_prompt: Prompt | None,
    cache: GenerationCache,
    get_generator: Callable[[], Generator],
    kind: str,
    model: str,
) -> tuple[list[Rewrite], Counter[str], CacheStats | None]:
    """Apply the label policy. ``generator``: ask, parse, and fall back to the parent's labels when unusable."""
    by_id = parents.set_index("id")
    inherited = [
        (str(by_id.at[spec.parent_id, "label"]), frozenset(c for c in CATEGORIES if by_id.at[spec.parent_id, c]))
        for spec, _ in kept
    ]
    if label_prompt is None:
        rewrites = [Rewrite(s, t, lab, cats, "inherit") for (s, t), (lab, cats) in zip(kept, inherited, strict=True)]
        return rewrites, Counter({"inherit": len(rewrites)}), None
    keys = [
        cache_key(
            {
                "task": "label",
                "text_hash": text_hash(text),
                "prompt_version": label_prompt.version,
                "prompt_sha256": label_prompt.sha256,
                "generator": kind,
                "model": model,
                "seed": spec.seed,
            }
        )
        for spec, text in kept
    ]
    requests = [GenerationRequest(label_prompt.render(text), spec.seed) for spec, text in kept]
    meta = {"task": "label", "generator": kind, "model": model, "prompt_version": label_prompt.version}
    answers, stats = cache.fetch(keys, requests, get_generator, LABEL_SAMPLING, meta, "labels")
    rewrites, policies = [], Counter[str]()
    for (spec, text), answer, (label, cats) in zip(kept, answers, inherited, strict=True):
        parsed = parse_label_answer(answer.text)
        if parsed.problem is None and parsed.label is not None:
            rewrites.append(Rewrite(spec, text, parsed.label, parsed.categories, "generator"))
            policies["generator"] += 1
        else:
            rewrites.append(Rewrite(spec, text, label, cats, "generator_fallback"))
            policies[f"generator_fallback_{parsed.problem}"] += 1
    return rewrites, policies, stats
