"""The ``augment`` stage: prepared rows + emotion re-interpretation rewrites of train messages.

Reads ``<input_dir>/dataset.parquet`` (prepare's output) and the versioned prompts under ``prompts/augment/``;
writes ``<output_dir>/dataset.parquet`` (every prepared row unchanged, plus rewrites with ``aug_*`` provenance),
``summary.json`` (counts and provenance: byte-stable, a DVC metric) and ``run.json`` (this run's cache hits,
generations and timings: differs between a cold and a warm cache, so kept out of DVC). Generations are cached in
``<cache_dir>``; a second run with the same inputs generates nothing and loads no model.
"""

from __future__ import annotations

import importlib.metadata
import io
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import Params
from components.config.augment import AugmentAim, AugmentConfig
from components.data.augment import (
    AUG_COLUMNS,
    FILTER_REASONS,
    Rewrite,
    RewriteSpec,
    cache_key,
    clean_output,
    combine,
    filter_reason,
    rewrite_rows,
    select_parents,
    summarise,
)
from components.data.generators import GenerationRequest, Generator, Sampling, build_generator, generator_identity
from components.data.prompts import Prompt, parse_label_answer, parse_prompt
from components.errors import EmosafeError
from components.io import (
    atomic_write_bytes,
    atomic_write_json,
    read_parquet_input,
    sha256_bytes,
    sha256_file,
)
from components.provenance import provenance
from components.schema import CATEGORIES, COLUMNS, LABELS
from components.stages.augment_cache import CacheStats, GenerationCache
from components.text import text_hash

log = logging.getLogger(__name__)

PROMPT_DIR = Path("prompts/augment")
DATASET_FILE = "dataset.parquet"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
LABEL_SAMPLING = Sampling(max_new_tokens=24, temperature=0.0, top_p=1.0)  # labels: greedy, short


@dataclass(frozen=True)
class AugmentResult:
    dataset_path: Path
    summary: dict[str, Any]
    run: dict[str, Any]


def augment(params: Params, root: Path = Path(), generator: Generator | None = None) -> AugmentResult:
    """Rewrite selected train messages and write the augmented dataset.

    ``generator`` overrides the configured one (tests); otherwise it is built only if the cache misses. Raises
    EmosafeError for a missing input, a bad prompt file, a missing API key or an API failure, before writing
    any output (generations already obtained stay in the cache).
    """
    config, started = params.augment, time.monotonic()
    input_dir = config.input_dir if config.input_dir is not None else params.prepare.output_dir
    prepared_path = root / input_dir / DATASET_FILE
    prepared = _read_prepared(prepared_path)
    inputs = {str(Path(input_dir) / DATASET_FILE): sha256_file(prepared_path)}
    if not config.enabled:
        log.info("augment.enabled is false: passing %d prepared rows through", len(prepared))
        (root / config.cache_dir).mkdir(parents=True, exist_ok=True)  # the DVC out exists either way
        frame = combine(prepared, pd.DataFrame(columns=[*COLUMNS, *AUG_COLUMNS]))
        return _write(root, params, frame, summarise(frame, 0, Counter(), Counter()), inputs, {"enabled": False})
    label_prompt = _load_prompt(root, config.label_prompt_version) if config.label_policy == "generator" else None
    passes = _passes(root, prepared, config)
    for used in filter(None, (*(p.prompt for p in passes), label_prompt)):
        inputs[str(PROMPT_DIR / f"{used.version}.txt")] = used.sha256
    kind, model = (generator.kind, generator.model) if generator else generator_identity(config)
    context = _Context(config, GenerationCache(root / config.cache_dir), _lazy(generator, config), kind, model)
    seen = set(prepared["text_hash"])
    results = [_run_pass(one, context, label_prompt, seen) for one in passes]
    frame = combine(prepared, pd.concat([result.rows for result in results], ignore_index=True))
    summary = summarise(
        frame,
        sum(result.requested for result in results),
        sum((result.filtered for result in results), Counter[str]()),
        sum((result.policies for result in results), Counter[str]()),
    )
    version = passes[0].prompt.version + (f"+{label_prompt.version}" if label_prompt else "")
    summary["generator"] = {"kind": kind, "model": model, "prompt_version": version, **_revision(config, generator)}
    summary["aims"] = {result.name: _aim_summary(result, config) for result in results[1:]}
    run = _run_stats(
        _total(result.rewrite_stats for result in results),
        _total(result.label_stats for result in results) if label_prompt else None,
        time.monotonic() - started,
    )
    return _write(root, params, frame, summary, inputs, run)


@dataclass(frozen=True)
class _Pass:
    """One round of rewrites: the main pass (``name`` None) or an aim."""

    name: str | None
    prompt: Prompt
    parents: pd.DataFrame
    rewrites_per_message: int


@dataclass(frozen=True)
class _Context:
    config: AugmentConfig
    cache: GenerationCache
    get_generator: Callable[[], Generator]
    kind: str
    model: str


@dataclass(frozen=True)
class _PassResult:
    name: str | None
    parents: int
    requested: int
    filtered: Counter[str]
    policies: Counter[str]
    rows: pd.DataFrame
    rewrite_stats: CacheStats
    label_stats: CacheStats | None


def _passes(root: Path, prepared: pd.DataFrame, config: AugmentConfig) -> list[_Pass]:
    """The main pass, then one per aim in declaration order. Every prompt is loaded (and every aim's sources
    checked) before anything is generated, so a bad aim costs no generation."""
    main = _Pass(
        None,
        _load_prompt(root, config.prompt_version),
        select_parents(prepared, config.max_parents, config.seed),
        config.rewrites_per_message,
    )
    return [main, *(_aim_pass(root, prepared, name, aim, config.seed) for name, aim in config.aims.items())]


def _aim_pass(root: Path, prepared: pd.DataFrame, name: str, aim: AugmentAim, seed: int) -> _Pass:
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
    return _Pass(name, _load_prompt(root, aim.prompt_version), parents, aim.rewrites_per_message)


def _run_pass(one: _Pass, context: _Context, label_prompt: Prompt | None, seen: set[str]) -> _PassResult:
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
    version = one.prompt.version + (f"+{label_prompt.version}" if label_prompt else "")
    provenance = {"aug_generator": kind, "aug_model": model, "aug_prompt_version": version}
    rows = rewrite_rows(rewrites, one.parents, provenance)
    return _PassResult(one.name, len(one.parents), len(specs), filtered, policies, rows, rewrite_stats, label_stats)


def _aim_summary(result: _PassResult, config: AugmentConfig) -> dict[str, Any]:
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


def _total(stats: Iterable[CacheStats | None]) -> CacheStats:
    present = [one for one in stats if one is not None]
    return CacheStats(sum(one.hits for one in present), sum(one.generated for one in present))


def _sampling(config: AugmentConfig) -> Sampling:
    return Sampling(config.max_new_tokens, config.temperature, config.top_p)


def _lazy(generator: Generator | None, config: AugmentConfig) -> Callable[[], Generator]:
    """Build the configured generator on first use only: a fully cached run never loads a model."""
    built: list[Generator] = [generator] if generator else []

    def get() -> Generator:
        if not built:
            built.append(build_generator(config))
        return built[0]

    return get


def _read_prepared(path: Path) -> pd.DataFrame:
    frame = read_parquet_input(path, "not found; run `emosafe prepare` (or `dvc repro`) first")
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise EmosafeError(f"{path}: missing column(s) {missing}; expected prepare's schema (docs/data.md)")
    return frame[list(COLUMNS)]


def _load_prompt(root: Path, version: str) -> Prompt:
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


def _revision(config: AugmentConfig, injected: Generator | None) -> dict[str, str]:
    """The local model package's version (the GGUF's revision), when the model comes from a package."""
    if injected is not None or config.generator != "local" or not config.local.model.startswith("pkg:"):
        return {}
    package = config.local.model.removeprefix("pkg:")
    try:
        return {"package_version": importlib.metadata.version(package.replace("_", "-"))}
    except importlib.metadata.PackageNotFoundError:
        return {}


def _run_stats(rewrites: CacheStats, labels: CacheStats | None, seconds: float) -> dict[str, Any]:
    run: dict[str, Any] = {"rewrites": {"cache_hits": rewrites.hits, "generated": rewrites.generated}}
    if labels is not None:
        run["labels"] = {"cache_hits": labels.hits, "generated": labels.generated}
    run["seconds"] = round(seconds, 2)
    if rewrites.generated:
        run["rewrites_per_second_incl_load"] = round(rewrites.generated / max(seconds, 1e-9), 3)
    return run


def _write(
    root: Path,
    params: Params,
    frame: pd.DataFrame,
    summary: dict[str, Any],
    inputs: dict[str, str],
    run: dict[str, Any],
) -> AugmentResult:
    config = params.augment
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    summary["enabled"] = config.enabled
    summary["provenance"] = provenance(
        __name__,
        {
            "stage": "augment",
            "seed": config.seed,
            "params": {"seed": params.seed, "augment": config.model_dump(mode="json")},
            "inputs": inputs,
            "data_hash": sha256_bytes(data),
        },
    )
    out = root / config.output_dir
    atomic_write_bytes(out / DATASET_FILE, data)
    atomic_write_json(out / SUMMARY_FILE, summary)
    atomic_write_json(out / RUN_FILE, run)
    log.info(
        "wrote %s (%d rows, %d rewrites, sha256 %s)",
        out / DATASET_FILE,
        len(frame),
        summary["origin"]["augmented"],
        summary["provenance"]["data_hash"],
    )
    return AugmentResult(out / DATASET_FILE, summary, run)
