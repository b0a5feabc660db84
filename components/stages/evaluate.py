"""The ``evaluate`` stage: every (model, setting, task) scored on val and test through the one evaluation path.

Each setting builds a ``Predictor``: label-likelihood prompting (zero-shot, few-shot; each prompting model's
weights load once) or a fine-tuned training run with its LoRA merged
(``components.export.merged.run_predictor``). Taxonomy thresholds are tuned on val and applied unchanged to test
and to the canaries. Writes ``<output_dir>/<model>-<setting>-<task>.json`` atomically: metrics with CIs per split,
thresholds, confusion matrices, canary outcomes, data hash, provenance; never message text.
Every input (dataset, templates, canaries, model names, ``--data`` corpus) is checked before the first write.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import EmosafeSource, Params
from components.config.evaluate import EvaluateConfig, PromptModel
from components.data.dataset import to_frame
from components.data.sources import read_source
from components.data.tables import read_table_records
from components.errors import EvaluationError
from components.evaluation.canaries import parse_canaries
from components.evaluation.measure import check_frame
from components.evaluation.model_report import EvalInputs, run_one
from components.evaluation.predictors import Predictor
from components.evaluation.prompting import LikelihoodPredictor, draw_examples, parse_template, render
from components.evaluation.suites import read_suites
from components.io import atomic_write_json, read_parquet_input, sha256_file
from components.provenance import provenance

log = logging.getLogger(__name__)

PROMPT_SETTINGS = ("zero_shot", "few_shot")


@dataclass(frozen=True)
class EvaluateOutcome:
    written: tuple[Path, ...]
    summary: tuple[dict[str, Any], ...]  # model, setting, task, test accuracy / macro-F1 (for the CLI table)


def evaluate(
    params: Params,
    root: Path = Path(),
    models: Sequence[str] = (),
    settings: Sequence[str] = (),
    tasks: Sequence[str] = (),
    data: Path | None = None,
    source: str | None = None,
) -> EvaluateOutcome:
    """Run the selected (default: all configured) models, settings and tasks; returns the files written.

    ``data`` replaces the test split by a corpus read with a source adapter (``source`` names one of
    ``evaluate.sources``; without sources the file must be in emosafe's schema); reports then go to
    ``<external_dir>/<source>/``, outside the DVC-tracked output_dir. Raises an EmosafeError naming the bad input
    before anything is written.
    """
    config = params.evaluate
    names, chosen_settings, chosen_tasks = _selection(config, root, models, settings, tasks)
    inputs = _read_inputs(config, root, chosen_tasks, data, source)
    written, summary = [], []
    prompting = [s for s in chosen_settings if s in PROMPT_SETTINGS]
    jobs = [(n, s, t) for n in names if n in config.models for s in prompting for t in chosen_tasks]
    if "fine_tuned" in chosen_settings:
        jobs += [(n, "fine_tuned", t) for n in _fine_tuned_names(config, models) for t in chosen_tasks]
    loaded: tuple[Any, Any, dict[str, Any]] | None = None
    loaded_name = ""
    for name, setting, task in jobs:
        if setting in PROMPT_SETTINGS and loaded_name != name:
            loaded, loaded_name = None, name  # one prompting model in memory at a time
            loaded = _load(config.models[name], config)
        predictor, extra = _predictor(config, root, inputs, loaded, name, setting, task)
        payload = run_one(predictor, inputs, config) | extra | {"model": name, "setting": setting}
        payload["provenance"] = _provenance(params, inputs, name, setting, task)
        path = inputs.out / f"{name}-{setting}-{task}.json"
        atomic_write_json(path, payload)
        written.append(path)
        summary.append(_summary_row(payload))
        log.info("wrote %s", path)
    return EvaluateOutcome(tuple(written), tuple(summary))


def _predictor(
    config: EvaluateConfig,
    root: Path,
    inputs: EvalInputs,
    loaded: tuple[Any, Any, dict[str, Any]] | None,
    name: str,
    setting: str,
    task: str,
) -> tuple[Predictor, dict[str, Any]]:
    """The setting's Predictor and what the report says about it (prompt provenance, model size)."""
    if setting == "fine_tuned":
        from components.export.merged import run_predictor
        from components.release.evidence import evidence_block

        run_dir = root / config.fine_tuned_dir / f"{name}-{task}"
        evidence = evidence_block(run_dir, "evaluate")  # the files measured, for the registry's binding
        predictor, info = run_predictor(run_dir, task, root)
        return predictor, {"model_info": info, "evidence": evidence}
    assert loaded is not None  # loaded whenever a prompting setting is selected
    model, tokenizer, info = loaded
    examples = draw_examples(inputs.frame, config.k, config.seed) if setting == "few_shot" else ()
    prompt = render(inputs.templates[task], examples, config.max_example_chars)
    predictor = LikelihoodPredictor(model, tokenizer, prompt, config.hardware.batch_size, config.max_message_tokens)
    return predictor, {"prompt": predictor.describe(), "model_info": info}


# --- fine-tuned setting: training runs (models/<model>-<task>/), LoRA merged, through the same path ----------------
def _fine_tuned_names(config: EvaluateConfig, models: Sequence[str]) -> list[str]:
    return [name for name in config.fine_tuned_models if not models or name in models]


def _selection(
    config: EvaluateConfig, root: Path, models: Sequence[str], settings: Sequence[str], tasks: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    names, chosen_settings, chosen_tasks = (
        list(models or config.prompting_models or config.models),
        list(settings or config.settings),
        [],
    )
    chosen_tasks = list(tasks or config.tasks)
    unknown = [name for name in names if name not in config.models and name not in config.fine_tuned_models]
    if unknown:
        known = sorted({*config.models, *config.fine_tuned_models})
        raise EvaluationError(f"unknown model(s) {unknown}; evaluate.models and fine_tuned_models have {known}")
    bad = [s for s in chosen_settings if s not in (*PROMPT_SETTINGS, "fine_tuned")]
    if bad:
        raise EvaluationError(f"unknown setting(s) {bad}; use zero_shot, few_shot or fine_tuned")
    if any(task not in config.templates for task in chosen_tasks):
        raise EvaluationError(f"unknown task in {chosen_tasks}; evaluate.templates has {sorted(config.templates)}")
    if "fine_tuned" in chosen_settings:
        finetuned = _fine_tuned_names(config, models)
        runs = [root / config.fine_tuned_dir / f"{name}-{task}" for name in finetuned for task in chosen_tasks]
        missing = [str(run) for run in runs if not run.is_dir()]
        if missing:
            raise EvaluationError(f"training run folder(s) {missing} not found; run `emosafe train` first")
    return names, chosen_settings, chosen_tasks


def _read_inputs(
    config: EvaluateConfig, root: Path, tasks: Sequence[str], data: Path | None, source: str | None
) -> EvalInputs:
    path = root / config.input
    frame = read_parquet_input(path, "dataset not found; run `emosafe prepare` (or `dvc repro`) first")
    check_frame(frame)
    for split in ("train", "val", "test"):
        if not (frame["split"] == split).any():
            raise EvaluationError(f"{path}: the {split} split is empty (rule: evaluation needs train, val and test)")
    templates = {}
    for task in tasks:
        template_path = root / config.templates[task]  # type: ignore[index]
        if not template_path.is_file():
            raise EvaluationError(f"{template_path}: prompt template not found (evaluate.templates.{task})")
        templates[task] = parse_template(template_path.read_text(encoding="utf-8"), task, str(template_path))
    canary_path = root / config.canaries
    canaries = parse_canaries(read_table_records(canary_path, "jsonl"), canary_path)
    out = root / config.output_dir
    suites = read_suites(config.suites, root)
    if data is None:
        test = frame[frame["split"] == "test"]
        return EvalInputs(frame, test, sha256_file(path), "test", templates, canaries, out, suites)
    external, name = _external(config, root, data, source)
    where = root / config.external_dir / name
    return EvalInputs(frame, external, sha256_file(data), name, templates, canaries, where, suites)


def _external(config: EvaluateConfig, root: Path, data: Path, source: str | None) -> tuple[pd.DataFrame, str]:
    """Read ``data`` with the named source's adapter (its declared path replaced by ``data``), all as test rows."""
    sources = {s.name: s for s in config.sources}
    if source is None and len(sources) > 1:
        raise EvaluationError(f"--data needs --source, one of {sorted(sources)}")
    if source is not None and source not in sources:
        raise EvaluationError(f"unknown source '{source}'; evaluate.sources has {sorted(sources)}")
    declared = sources[source] if source else next(iter(sources.values()), None)
    if declared is None:  # no adapter declared: the file is in emosafe's schema, and its name names the reports
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", data.stem).strip("_")[:40] or "external"
        declared = EmosafeSource(name=name, kind="emosafe", path=str(data))
    elif hasattr(declared, "path"):
        declared = declared.model_copy(update={"path": str(data)})
    else:
        declared = declared.model_copy(update={"paths": (str(data),)})
    records = read_source(declared, root)
    frame = to_frame(records, {record.id: "test" for record in records})
    check_frame(frame)
    return frame, declared.name


def _load(spec: PromptModel, config: EvaluateConfig) -> tuple[Any, Any, dict[str, Any]]:
    import torch

    from components.models import ModelSource, load_causal_lm, load_tokenizer

    device = config.hardware.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(config.hardware.num_threads)
    source = ModelSource(spec.source, spec.gguf_file, spec.revision)
    started = time.perf_counter()
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, spec.num_layers)
    model.to(device)  # type: ignore[arg-type]
    parameters = sum(p.numel() for p in model.parameters())
    log.info(
        "loaded %s (%d layers, %.1fM params) in %.1fs",
        spec.source,
        model.config.num_hidden_layers,
        parameters / 1e6,
        time.perf_counter() - started,
    )
    info = {
        "source": spec.source,
        "gguf_file": spec.gguf_file,
        "revision": spec.revision,
        "num_layers": int(model.config.num_hidden_layers),
        "parameters": int(parameters),
        "params_millions": spec.params_millions or round(parameters / 1e6, 1),
        "weights_mb": round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 1),
        "device": device,
    }
    return model, tokenizer, info


def _provenance(params: Params, inputs: EvalInputs, name: str, setting: str, task: str) -> dict[str, Any]:
    return provenance(
        __name__,
        {
            "stage": "evaluate",
            "seed": params.evaluate.seed,
            "params": {"seed": params.seed, "evaluate": params.evaluate.model_dump(mode="json")},
            "data_hash": inputs.data_hash,
            "run": {"model": name, "setting": setting, "task": task},
        },
    )


def _summary_row(payload: dict[str, Any]) -> dict[str, Any]:
    test = payload["splits"]["test"]
    return {
        "model": payload["model"],
        "setting": payload["setting"],
        "task": payload["task"],
        "accuracy": test["accuracy"]["value"],
        "macro_f1": test["macro_f1"]["value"],
        "canaries_failed": payload["canaries"]["failed"],
    }
