"""The ``predict`` stage: batch predictions from an exported bundle on ONNX Runtime, appended to the production log.

Input: JSONL, CSV or Parquet with a text column (and an id column; row numbers otherwise). Output: the same formats,
one prediction per message. Every prediction is also appended to the production log (``predict.log``) in the
contract monitoring reads (monitoring/log.py, docs/export.md); raw text goes to neither unless ``log_text`` asks.
All inputs are checked before the model loads and before anything is written.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import Params
from components.config.register import RegisterConfig
from components.errors import EmosafeError, SourceFileError
from components.io import atomic_write_bytes, refuse_overwriting_inputs

log = logging.getLogger(__name__)
FORMATS = (".jsonl", ".csv", ".parquet")


@dataclass(frozen=True)
class PredictOutcome:
    output: Path
    log: Path
    rows: int
    model: str
    version: str
    counts: dict[str, int]


def predict(
    params: Params, model: str, source: Path, output: Path, log_text: bool = False, root: Path = Path()
) -> PredictOutcome:
    """Score every message of ``source`` with ``model`` (a bundle folder or ``name@alias``) and write ``output``.

    Raises SourceFileError / EmosafeError naming the file and rule (unknown format, missing column, empty text,
    damaged or unsafe bundle) before anything is written.
    """
    from components.export.runtime import OnnxPredictor

    config = params.predict
    if output.suffix.lower() not in FORMATS:
        raise EmosafeError(f"{output}: unknown output format (rule: one of {list(FORMATS)})")
    refuse_overwriting_inputs(output, source, root / config.log)
    if (root / config.log).exists() and not (root / config.log).is_file():
        raise EmosafeError(f"{root / config.log}: the production log (predict.log) must be a file")
    ids, texts = read_messages(source, config.id_column, config.text_column)
    folder, name, version = resolve_model(params.register, model, root)
    predictor = OnnxPredictor(folder, config.variant, config.batch_size, config.num_threads, progress=True)
    records = prediction_records(predictor, name, version, ids, texts, log_text)
    key = "label" if predictor.task == "trinary" else "categories"
    names = predictor.labels.labels
    decided = [r[key] for r in records]
    _write_output(output, records, key, names)
    log_path = root / config.log
    append_log(log_path, records)
    counts = _counts(decided, predictor.task)
    log.info("predicted %d messages with %s@%s; log %s", len(records), name, version, log_path)
    return PredictOutcome(output, log_path, len(records), name, version, counts)


def prediction_records(
    predictor: Any, name: str, version: str, ids: list[str], texts: list[str], log_text: bool = False
) -> list[dict[str, Any]]:
    """Score ``texts`` and build one production-log record per message (the contract monitoring/log.py reads):
    what batch ``predict``, ``predict --text`` and the prediction service share. No text unless ``log_text``."""
    scores = predictor.predict(texts)
    decided = predictor.decide(scores)
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    key = "label" if predictor.task == "trinary" else "categories"
    names = predictor.labels.labels
    return [
        {
            "id": i,
            "timestamp": stamp,
            "model": name,
            "version": version,
            "task": predictor.task,
            key: d,
            "scores": {n: round(float(s), 6) for n, s in zip(names, row, strict=True)},
        }
        | ({"text": t} if log_text else {})
        for i, t, d, row in zip(ids, texts, decided, scores, strict=True)
    ]


def predict_text(params: Params, model: str, text: str, root: Path = Path()) -> dict[str, Any]:
    """One message from the shell (``emosafe predict --text``): its record, without the id, timestamp or text.
    Not appended to the production log: a question asked by hand is not production traffic."""
    from components.export.runtime import OnnxPredictor

    if not text.strip():
        raise EmosafeError("--text: empty message (rule: a message with at least one non-space character)")
    config = params.predict
    folder, name, version = resolve_model(params.register, model, root)
    predictor = OnnxPredictor(folder, config.variant, config.batch_size, config.num_threads)
    record = prediction_records(predictor, name, version, ["-"], [text])[0]
    return {k: v for k, v in record.items() if k not in ("id", "timestamp")}


def read_messages(path: Path, id_column: str, text_column: str) -> tuple[list[str], list[str]]:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SourceFileError(path, f"unknown input format (rule: one of {list(FORMATS)})")
    if not path.is_file():
        raise SourceFileError(path, "input file not found")
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            frame = pd.read_json(path, lines=True, dtype=False)
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        raise SourceFileError(path, f"not readable as {suffix[1:]} ({type(exc).__name__})") from None
    if text_column not in frame.columns:
        raise SourceFileError(path, f"missing column '{text_column}' (predict.text_column)")
    texts = frame[text_column]
    bad = [i + 1 for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise SourceFileError(path, f"field '{text_column}' empty or not text at row(s) {bad[:10]}")
    ids = frame[id_column].astype(str).tolist() if id_column in frame.columns else [str(i) for i in range(len(frame))]
    if len(set(ids)) != len(ids):
        raise SourceFileError(path, f"field '{id_column}' repeats ids (rule: one prediction per id)")
    return ids, texts.tolist()


def resolve_model(config: RegisterConfig, model: str, root: Path) -> tuple[Path, str, str]:
    """(folder, model name, version): a registry reference is loaded verified; a folder's version is the short
    sha256 of its manifest (so two different bundles never log the same version)."""
    from registry.core import load_model, looks_like_ref

    if looks_like_ref(model):
        loaded = load_model(model, config, root)
        return loaded.folder, loaded.record.name, str(loaded.record.version)
    folder = Path(model)
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise EmosafeError(f"{folder}: not an exported bundle (no manifest.json); run `emosafe export` first")
    from components.export.bundle import file_digest

    return folder, folder.name, "local-" + file_digest(manifest)[:12]


def append_log(path: Path, records: list[dict[str, Any]]) -> None:
    """One write of whole lines, then fsync: readers never see half a line (O_APPEND keeps runs from interleaving)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_output(path: Path, records: list[dict[str, Any]], key: str, names: tuple[str, ...]) -> None:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        atomic_write_bytes(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())
        return
    flat = [
        {k: v for k, v in r.items() if k != "scores"} | {f"score_{n}": r["scores"][n] for n in names} for r in records
    ]
    frame = pd.DataFrame(flat)
    if key == "categories" and suffix == ".csv":
        frame["categories"] = frame["categories"].map(";".join)
    data = frame.to_csv(index=False).encode() if suffix == ".csv" else frame.to_parquet(index=False)
    atomic_write_bytes(path, data)


def _counts(decided: list[Any], task: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in decided:
        for name in [item] if task == "trinary" else item or ["none"]:
            counts[name] = counts.get(name, 0) + 1
    return counts
