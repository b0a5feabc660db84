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
from components.evaluation.bootstrap import Bootstrap
from components.evaluation.canaries import Canary, check_canaries, parse_canaries
from components.evaluation.measure import assess, category_matrix, check_frame, label_indices
from components.evaluation.measure import evaluate as evaluate_frame
from components.evaluation.memory import read_peak, reset_peak
from components.evaluation.metrics import tune_thresholds
from components.evaluation.operating_point import fit, frontier, measure_point, trinary_candidates
from components.evaluation.predictors import Predictor
from components.evaluation.prompting import LikelihoodPredictor, PromptTemplate, draw_examples, parse_template, render
from components.evaluation.suites import Suite, read_suites, suite_section
from components.io import atomic_write_json, read_parquet_input, sha256_file
from components.provenance import provenance

log = logging.getLogger(__name__)

PROMPT_SETTINGS = ("zero_shot", "few_shot")


@dataclass(frozen=True)
class EvaluateOutcome:
    written: tuple[Path, ...]
    summary: tuple[dict[str, Any], ...]  # model, setting, task, test accuracy / macro-F1 (for the CLI table)


@dataclass(frozen=True)
class _Inputs:
    frame: pd.DataFrame
    test: pd.DataFrame
    data_hash: str
    test_source: str
    templates: dict[str, PromptTemplate]
    canaries: tuple[Canary, ...]
    out: Path
    suites: dict[str, Suite]


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
    ``<output_dir>/external/<source>/``. Raises an EmosafeError naming the bad input before anything is written.
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
    inputs: _Inputs,
    loaded: tuple[Any, Any, dict[str, Any]] | None,
    name: str,
    setting: str,
    task: str,
) -> tuple[Predictor, dict[str, Any]]:
    """The setting's Predictor and what the report says about it (prompt provenance, model size)."""
    if setting == "fine_tuned":
        from components.export.merged import run_predictor

        predictor, info = run_predictor(root / config.fine_tuned_dir / f"{name}-{task}", task, root)
        return predictor, {"model_info": info}
    assert loaded is not None  # loaded whenever a prompting setting is selected
    model, tokenizer, info = loaded
    examples = draw_examples(inputs.frame, config.k, config.seed) if setting == "few_shot" else ()
    prompt = render(inputs.templates[task], examples, config.max_example_chars)
    predictor = LikelihoodPredictor(model, tokenizer, prompt, config.hardware.batch_size, config.max_message_tokens)
    return predictor, {"prompt": predictor.describe(), "model_info": info}


def run_one(predictor: Predictor, inputs: _Inputs, config: EvaluateConfig) -> dict[str, Any]:
    """Val (thresholds tuned here), test (thresholds applied unchanged), canaries: one report's figures."""
    task = predictor.task
    bootstrap = Bootstrap.of(config)
    val_frame = inputs.frame[inputs.frame["split"] == "val"]
    was_reset = reset_peak()  # the model is loaded: the peak below is weights + inference, not earlier models
    start = time.perf_counter()
    val = evaluate_frame(predictor, val_frame, task, bootstrap=bootstrap)
    thresholds, chosen, point = _fit_thresholds(config, val_frame, val.scores, task)
    if thresholds is not None:
        val = assess(val_frame, val.scores, task, thresholds, bootstrap)
    test = evaluate_frame(predictor, inputs.test, task, thresholds, bootstrap)
    suites = {
        name: suite_section(predictor, suite, task, thresholds, bootstrap) for name, suite in inputs.suites.items()
    }
    canaries = check_canaries(predictor, inputs.canaries, thresholds)
    seconds = time.perf_counter() - start
    peak = read_peak(was_reset)
    return {
        "task": task,
        "data_hash": inputs.data_hash,
        "test_source": inputs.test_source,
        "splits": {"val": val.report.to_dict(), "test": test.report.to_dict()},
        "thresholds": chosen,
        "operating_point": point
        | _curves(task, config, {"val": (val_frame, val.scores), "test": (inputs.test, test.scores)}, thresholds),
        "suites": suites,
        "canaries": canaries.to_dict(),
        "inference": {
            "messages": len(val_frame)
            + len(inputs.test)
            + len(inputs.canaries)
            + sum(len(suite.frame) for suite in inputs.suites.values()),
            "seconds": round(seconds, 3),
            "peak_rss_mb": peak.peak_rss_mb,  # whole process (Python, torch) while this model scored
            "peak_rss_method": peak.method,
        },
    }


def _fit_thresholds(
    config: EvaluateConfig, val_frame: pd.DataFrame, scores: Any, task: str
) -> tuple[dict[str, float] | None, dict[str, Any], dict[str, Any]]:
    """The decision thresholds fitted on val by ``evaluate.operating_point``: (thresholds to apply, the report's
    ``thresholds`` section, the report's ``operating_point`` section). Default policy: trinary argmax (None),
    taxonomy max-F1 per category."""
    policy = config.operating_point
    if policy.policy == "default":
        if task == "trinary":
            return None, {}, {"policy": "default", "thresholds": {}}
        choices = tune_thresholds(category_matrix(val_frame), scores, config.threshold_grid)
        thresholds = {c: choice.threshold for c, choice in choices.items()}
        return (
            thresholds,
            {c: vars(choice) for c, choice in choices.items()},
            {"policy": "default", "thresholds": thresholds},
        )
    fitted = fit(
        policy.policy,
        task,
        label_indices(val_frame),
        category_matrix(val_frame),
        scores,
        config.threshold_grid,
        policy.max_flag_rate,
        policy.min_recall,
    )
    chosen = {name: {"threshold": value} for name, value in fitted.thresholds.items()}
    return fitted.thresholds, chosen, fitted.to_dict()


def _curves(
    task: str, config: EvaluateConfig, splits: dict[str, tuple[pd.DataFrame, Any]], thresholds: dict[str, float] | None
) -> dict[str, Any]:
    """Trinary: per split, the unsafe-recall vs safe-flag-rate frontier over the threshold grid and where the
    applied thresholds sit on it (the scaling report draws both). Taxonomy: nothing (per-category figures are in
    the metrics)."""
    if task != "trinary":
        return {}
    curves, applied = {}, {}
    for split, (frame, scores) in splits.items():
        labels = label_indices(frame)
        curves[split] = frontier(trinary_candidates(labels, scores, config.threshold_grid))
        point = measure_point(task, labels, category_matrix(frame), scores, thresholds or {})
        applied[split] = None if point is None else {"recall": point.recall, "flag_rate": point.flag_rate}
    return {"curve": curves, "applied": applied}


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
) -> _Inputs:
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
        return _Inputs(frame, test, sha256_file(path), "test", templates, canaries, out, suites)
    external, name = _external(config, root, data, source)
    return _Inputs(frame, external, sha256_file(data), name, templates, canaries, out / "external" / name, suites)


def _external(config: EvaluateConfig, root: Path, data: Path, source: str | None) -> tuple[pd.DataFrame, str]:
    """Read ``data`` with the named source's adapter (its declared path replaced by ``data``), all as test rows."""
    sources = {s.name: s for s in config.sources}
    if source is None and len(sources) > 1:
        raise EvaluationError(f"--data needs --source, one of {sorted(sources)}")
    if source is not None and source not in sources:
        raise EvaluationError(f"unknown source '{source}'; evaluate.sources has {sorted(sources)}")
    declared = sources[source] if source else next(iter(sources.values()), None)
    if declared is None:
        declared = EmosafeSource(name="external", kind="emosafe", path=str(data))
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


def _provenance(params: Params, inputs: _Inputs, name: str, setting: str, task: str) -> dict[str, Any]:
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
