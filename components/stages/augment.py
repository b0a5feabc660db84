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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import Params
from components.config.augment import AugmentConfig
from components.data.augment import (
    AUG_COLUMNS,
    combine,
    summarise,
)
from components.data.generators import Generator, build_generator, generator_identity
from components.errors import EmosafeError
from components.io import (
    atomic_write_bytes,
    atomic_write_json,
    read_parquet_input,
    sha256_bytes,
    sha256_file,
)
from components.provenance import provenance
from components.schema import COLUMNS
from components.stages.augment_cache import CacheStats, GenerationCache
from components.stages.augment_passes import (
    PROMPT_DIR,
    PassContext,
    aim_summary,
    load_prompt,
    plan_passes,
    prompt_version,
    run_pass,
    total_stats,
)

log = logging.getLogger(__name__)

DATASET_FILE = "dataset.parquet"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"


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
    label_prompt = load_prompt(root, config.label_prompt_version) if config.label_policy == "generator" else None
    passes = plan_passes(root, prepared, config)
    for used in filter(None, (*(p.prompt for p in passes), label_prompt)):
        inputs[str(PROMPT_DIR / f"{used.version}.txt")] = used.sha256
    kind, model = (generator.kind, generator.model) if generator else generator_identity(config)
    context = PassContext(config, GenerationCache(root / config.cache_dir), _lazy(generator, config), kind, model)
    seen = set(prepared["text_hash"])
    results = [run_pass(one, context, label_prompt, seen) for one in passes]
    frame = combine(prepared, pd.concat([result.rows for result in results], ignore_index=True))
    summary = summarise(
        frame,
        sum(result.requested for result in results),
        sum((result.filtered for result in results), Counter[str]()),
        sum((result.policies for result in results), Counter[str]()),
    )
    version = prompt_version(passes[0].prompt, label_prompt)
    summary["generator"] = {"kind": kind, "model": model, "prompt_version": version, **_revision(config, generator)}
    summary["aims"] = {result.name: aim_summary(result, config) for result in results[1:]}
    run = _run_stats(
        total_stats(result.rewrite_stats for result in results),
        total_stats(result.label_stats for result in results) if label_prompt else None,
        time.monotonic() - started,
    )
    return _write(root, params, frame, summary, inputs, run)


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
