"""The ``export`` stage: a training run -> an ONNX bundle whose shipped int8 file is proven, not assumed.

Steps (docs/export.md): merge LoRA into the base (torch) -> fp32 ONNX (dynamo exporter) -> parity against torch on
a fixed batch of test messages -> int8 (``export.quantize``) -> fp32 and int8 scored on test through the evaluation
path, and the int8 file on every evaluation suite -> ``parity.json``, ``quantization.json`` (the registry gate's
``quantized`` and ``suites`` figures), ``meta.json``, ``manifest.json``. Everything is built in a temp sibling
folder and swapped in at the end. Failed parity raises ExportCheckError and writes nothing (the fp32 graph is
wrong). A failed int8 check does NOT fail the stage: the bundle is written with ``quantization.json`` ``passed:
false`` and its problems, a warning is logged, and the registry's promotion gate (which reads these figures)
refuses such a version: the gate, not the exporter, decides shipping.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import Params
from components.config.evaluate import EvaluateConfig
from components.config.export import ExportConfig
from components.errors import EmosafeError, SourceFileError
from components.evaluation.suites import Suite, read_suites, suite_section
from components.export.bundle import LABELS_FILE, MANIFEST, MODEL_FILES, build_manifest, label_map
from components.io import atomic_write_json, read_parquet_input, replace_dir, sha256_file
from components.provenance import provenance
from components.release.evidence import evidence_block

log = logging.getLogger(__name__)
QUANTIZATION = "quantization.json"  # the int8 check's figures: what the registry gate reads for a bundle


class ExportCheckError(EmosafeError):
    """Parity failed: the bundle is not written (the message carries the figures)."""


@dataclass(frozen=True)
class ExportOutcome:
    folder: Path
    parity: dict[str, Any]
    quantization: dict[str, Any]
    sizes: dict[str, int]
    seconds: float


def export_all(params: Params, root: Path = Path(), tasks: Sequence[str] = ()) -> list[ExportOutcome]:
    """Every configured task of ``export.model``: ``<runs_dir>/<model>-<task>`` -> ``<output_dir>/<model>-<task>``."""
    config = params.export
    return [
        export(params, root / config.runs_dir / f"{config.model}-{task}", root=root) for task in (tasks or config.tasks)
    ]


def export(
    params: Params, run_dir: Path, root: Path = Path(), name: str | None = None, source: str | None = None
) -> ExportOutcome:
    """Export one run folder (``source`` records where it came from, e.g. a registry reference)."""
    import torch

    from components.export.merged import load_merged, read_run

    config, started = params.export, time.perf_counter()
    run_dir = root / run_dir  # relative to the project (an absolute path stays as it is)
    run = read_run(run_dir, root)
    frame, data_hash = _read_dataset(root / config.input)
    suites = read_suites(params.evaluate.suites, root)
    thresholds = _thresholds(config.thresholds_report, run_dir.name, run.task, root)
    labels = label_map(run.task, config.max_length or run.max_length, thresholds, run.long_messages)
    final = root / config.output_dir / (name or run_dir.name)
    torch.set_num_threads(config.num_threads)
    model, tokenizer = load_merged(run)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        figures = _build(params, tmp, model, tokenizer, labels, frame, data_hash, suites)
        meta = _meta(params, run, data_hash, source or str(run_dir), figures["sizes"])
        atomic_write_json(tmp / "meta.json", meta)
        if not config.keep_fp32:
            for path in tmp.glob(MODEL_FILES["fp32"] + "*"):
                path.unlink()
        # The figures name the files they belong to (the registry binds them: components/release/evidence.py).
        figures["quantization"]["evidence"] = evidence_block(tmp, "export", {QUANTIZATION, MANIFEST})
        atomic_write_json(tmp / QUANTIZATION, figures["quantization"])
        atomic_write_json(tmp / MANIFEST, build_manifest(tmp))
        # mkdtemp, the atomic writes and onnx's external-data writer make everything private (0700 / 0600); a
        # bundle is meant to be read by a server that may run as another user
        for path in tmp.iterdir():
            path.chmod(0o644)
        tmp.chmod(0o755)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    log.info("exported %s in %.1fs: %s", final, seconds, figures["sizes"])
    return ExportOutcome(final, figures["parity"], figures["quantization"], figures["sizes"], seconds)


def _build(
    params: Params,
    tmp: Path,
    model: Any,
    tokenizer: Any,
    labels: Any,
    frame: pd.DataFrame,
    data_hash: str,
    suites: Mapping[str, Suite],
) -> dict[str, Any]:
    from components.export import onnx as onnx_export
    from components.export.checks import parity
    from components.export.merged import encode, pad, torch_logits
    from components.export.runtime import OnnxPredictor

    config = params.export
    model.config.to_json_file(str(tmp / "config.json"))
    tokenizer.save_pretrained(str(tmp))
    atomic_write_json(tmp / LABELS_FILE, labels.to_dict())
    batch = frame[frame["split"] == "test"].sort_values("id").head(config.parity_messages)
    texts, ids = batch["text"].astype(str).tolist(), batch["id"].astype(str).tolist()
    sample = pad(encode(tokenizer, texts[:2], labels.max_length), int(tokenizer.pad_token_id))
    fp32_path = tmp / MODEL_FILES["fp32"]
    reference = torch_logits(model, tokenizer, texts, labels.max_length, config.batch_size)  # before smoothing
    smoothing = _smooth(params.export, model, tokenizer, frame, labels.max_length)
    exported = onnx_export.export_onnx(model, *sample, fp32_path, config.opset, config.external_data_bytes)
    fp32 = OnnxPredictor(tmp, "fp32", config.batch_size, config.num_threads, verify=False)
    report = parity(reference, fp32.logits(texts), labels.task, config.parity_atol, ids, labels.thresholds or None)
    payload = report.to_dict() | {"message_ids": ids, "tokenizer": "tokenizers (tokenizer.json) vs transformers"}
    if not report.passed:
        raise ExportCheckError(
            f"parity failed for {tmp.name.split('.')[1]}: max |logit diff| {report.max_abs_diff:.3g} "
            f"(tolerance {config.parity_atol:g}), label agreement {report.label_agreement:.3f} (rule: 1.0); "
            f"disagreeing ids {list(report.disagreeing_ids)[:10]}"
        )
    atomic_write_json(tmp / "parity.json", payload)
    quantization = quantize_and_check(params.export, params.evaluate, tmp, frame, labels, fp32, suites) | {
        "data_hash": data_hash
    }
    quantization["quantization"]["smoothing"] = smoothing
    atomic_write_json(tmp / QUANTIZATION, quantization)
    sizes = {variant: onnx_export.model_bytes(tmp / file) for variant, file in MODEL_FILES.items()}
    log.info("parity max |diff| %.2g; int8 agreement %.4f", report.max_abs_diff, quantization["label_agreement"])
    return {
        "parity": payload,
        "quantization": quantization,
        "sizes": sizes | {"export_seconds": round(exported.seconds)},
    }


def _smooth(
    config: ExportConfig, model: Any, tokenizer: Any, frame: pd.DataFrame, max_length: int
) -> dict[str, Any] | None:
    """``export.quantize.smooth_alpha`` set: rescale the merged model's MLPs in place (components/export/smoothing.py),
    calibrated on the first ``smooth_messages`` train messages. Parity is measured against the torch logits taken
    before, so it also proves the rescaling kept the function."""
    from components.export.merged import encode, pad
    from components.export.smoothing import smooth_mlp

    if config.quantize.smooth_alpha is None or config.quantize.rewrites_activations:
        return None  # the per-token recipes fold their smoothing into the graph (components/export/activation_int8.py)
    texts = _first_train(config, frame, config.quantize.smooth_messages, "quantize.smooth_alpha")
    encoded = encode(tokenizer, texts, max_length)
    step = config.batch_size
    batches = [pad(encoded[i : i + step], int(tokenizer.pad_token_id)) for i in range(0, len(encoded), step)]
    return smooth_mlp(model, batches, config.quantize.smooth_alpha, len(encoded)).to_dict()


def quantize_and_check(
    config: ExportConfig,
    evaluation: EvaluateConfig,
    folder: Path,
    frame: pd.DataFrame,
    labels: Any,
    fp32: Any,
    suites: Mapping[str, Suite] | None = None,
) -> dict[str, Any]:
    """Quantize ``folder``'s fp32 file with ``export.quantize`` into its int8 file and run the int8 check (with the
    evaluation's bootstrap): the ``quantization.json`` payload (without ``data_hash``), with the int8 file's figures
    on each evaluation suite. A failed check is a warning and ``passed: false``."""
    from components.export import onnx as onnx_export

    quantized = onnx_export.quantize_int8(
        folder / MODEL_FILES["fp32"],
        folder / MODEL_FILES["int8"],
        config.quantize,
        config.external_data_bytes,
        calibration_batches(config, frame, fp32),
    )
    figures = _int8_check(config, evaluation, folder, frame, labels, fp32, suites or {})
    figures["quantization"] = {
        "settings": config.quantize.model_dump(mode="json"),
        "seconds": round(quantized.seconds, 2),
        "bytes": quantized.bytes,
        "quantized_nodes": quantized.quantized_nodes,
        "excluded_nodes": list(quantized.excluded_nodes),
        "excluded_reason": config.quantize.exclude_reason if quantized.excluded_nodes else None,
        "unmatched_exclusions": list(quantized.unmatched),
        "activations": quantized.activations,
    }
    return figures


def calibration_batches(config: ExportConfig, frame: pd.DataFrame, fp32: Any) -> list[dict[str, Any]]:
    """The per-token recipes' calibration batches: the first ``calibration_messages`` TRAIN messages by id (never
    val or test, which judge the result); none for the recipes that do not calibrate."""
    settings = config.quantize
    if not settings.rewrites_activations:
        return []
    texts = _first_train(config, frame, settings.calibration_messages, f"quantize.method {settings.method}")
    batches: list[dict[str, Any]] = fp32.feeds(texts)
    return batches


def _first_train(config: ExportConfig, frame: pd.DataFrame, count: int, setting: str) -> list[str]:
    """The first ``count`` TRAIN messages by id, what every calibration reads (never val or test, which judge)."""
    train = frame[frame["split"] == "train"].sort_values("id").head(count)
    if train.empty:
        raise SourceFileError(Path(config.input), f"no train rows (rule: {setting} calibrates on train)")
    texts: list[str] = train["text"].astype(str).tolist()
    return texts


def _int8_check(
    config: ExportConfig,
    evaluation: EvaluateConfig,
    tmp: Path,
    frame: pd.DataFrame,
    labels: Any,
    fp32: Any,
    suites: Mapping[str, Suite] | None = None,
) -> dict[str, Any]:
    """Score test with both files (``components.evaluation.measure``), and the suites with the int8 file (what
    ships); a failed check is logged and recorded, not raised."""
    from components.evaluation.bootstrap import Bootstrap
    from components.evaluation.measure import evaluate
    from components.export.checks import compare_quantized
    from components.export.runtime import OnnxPredictor

    bootstrap = Bootstrap.of(evaluation)
    test = frame[frame["split"] == "test"].sort_values("id").reset_index(drop=True)
    thresholds = labels.thresholds or None
    int8 = OnnxPredictor(tmp, "int8", config.batch_size, config.num_threads, verify=False)
    before = evaluate(fp32, test, labels.task, thresholds, bootstrap)
    after = evaluate(int8, test, labels.task, thresholds, bootstrap)
    report = compare_quantized(before, after, config.limits)
    if not report.passed:
        log.warning(
            "int8 check FAILED on %d test messages (the gate will refuse this version): %s",
            report.n,
            "; ".join(report.problems),
        )
    on_suites = {
        name: suite_section(int8, suite, labels.task, thresholds, bootstrap) for name, suite in (suites or {}).items()
    }
    return {
        "task": labels.task,
        "splits": {"test": after.report.to_dict()},
        "suites": on_suites,
        "fp32": {"test": before.report.to_dict()},
        "quantized": report.gate_figures(),
        "comparison": report.to_dict(),
        "label_agreement": report.label_agreement,
        "passed": report.passed,
    }


def _read_dataset(path: Path) -> tuple[pd.DataFrame, str]:
    frame = read_parquet_input(path, "export input not found; run `dvc repro` (prepare/augment) first")
    if "split" not in frame.columns or not (frame["split"] == "test").any():
        raise SourceFileError(path, "no row has split == 'test' (rule: parity and the int8 check run on test)")
    return frame, sha256_file(path)


def _thresholds(template: str | None, run: str, task: str, root: Path) -> dict[str, float] | None:
    """The decision thresholds ``evaluate`` fitted on val ({"thresholds": {name: {"threshold": x}}}): per category
    (taxonomy), or the trinary operating point (``unsafe``, ``flagged``; empty under the default policy: argmax)."""
    if template is None:
        return None
    import json

    model = run.rsplit("-", 1)[0]
    path = root / template.format(model=model, task=task, run=run)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))["thresholds"]
        return {str(c): float(v["threshold"] if isinstance(v, dict) else v) for c, v in raw.items()}
    except FileNotFoundError:
        raise EmosafeError(f"{path}: export.thresholds_report not found; run `emosafe evaluate` first") from None
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise EmosafeError(f"{path}: field 'thresholds' must map names to thresholds ({exc})") from None


def _meta(params: Params, run: Any, data_hash: str, source: str, sizes: dict[str, int]) -> dict[str, Any]:
    import onnx
    import onnxruntime
    import torch
    import transformers

    trained = run.meta
    return provenance(
        __name__,
        {
            "stage": "export",
            "source": source,
            "task": run.task,
            "params": {"seed": params.seed, "export": params.export.model_dump(mode="json")},
            "seed": trained.get("seed", params.seed),
            "data_hash": data_hash,
            "train": {
                "data_hash": trained.get("data_hash"),
                "fingerprint": trained.get("fingerprint"),
                "params": trained.get("params"),
            },
            "base_model": trained.get("base_model"),
            "sizes": sizes,
            "libraries": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
        },
    )
