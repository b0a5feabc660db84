"""The ``prepare`` stage: declared corpora -> one de-duplicated, split dataset (parquet + summary)."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import Params
from components.data.dataset import assign_splits, merge_records, summarise, to_frame
from components.data.sources import read_source, source_paths
from components.io import json_bytes, sha256_bytes, sha256_file, write_together
from components.provenance import provenance

log = logging.getLogger(__name__)

DATASET_FILE = "dataset.parquet"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class PrepareResult:
    dataset_path: Path
    summary_path: Path
    summary: dict[str, Any]


def prepare(params: Params, root: Path = Path()) -> PrepareResult:
    """Read every declared source, merge, de-duplicate, split, and write ``dataset.parquet`` + ``summary.json``.

    Raises an ``EmosafeError`` naming file, row and rule on bad input; nothing is written in that case.
    """
    config = params.prepare
    records = []
    for source in config.sources:
        rows = read_source(source, root)
        log.info("source %s: %d rows", source.name, len(rows))
        records.extend(rows)
    merged, report = merge_records(records, config.conflict_policy)
    log.info(
        "merged %d -> %d rows (%d duplicates, %d conflict groups, policy %s)",
        report.n_input,
        report.n_output,
        report.n_exact_duplicates,
        report.n_conflict_groups,
        report.conflict_policy,
    )
    frame = to_frame(merged, assign_splits(merged, config.split, params.seed))
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    summary = summarise(frame, report)
    summary["provenance"] = provenance(
        __name__,
        {
            "stage": "prepare",
            "seed": params.seed,
            "params": {"seed": params.seed, "prepare": config.model_dump(mode="json")},
            "inputs": {path: sha256_file(root / path) for path in source_paths(config.sources)},
            "data_hash": sha256_bytes(data),
        },
    )
    out = root / config.output_dir
    write_together({out / DATASET_FILE: data, out / SUMMARY_FILE: json_bytes(summary)})
    log.info("wrote %s (%d rows, sha256 %s)", out / DATASET_FILE, len(frame), summary["provenance"]["data_hash"])
    return PrepareResult(out / DATASET_FILE, out / SUMMARY_FILE, summary)
