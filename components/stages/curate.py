"""The ``curate`` stage: every train row's loss weight, from confident learning on its weak label.

Reads the dataset training reads, embeds the train rows with a frozen encoder (``components/data/embeddings.py``),
screens their labels (``components/data/label_quality.py``) and writes, under ``curate.output_dir`` in one swap:

- ``weights.parquet``: id, source, label, flagged, quality, weight for every train row (what ``train.weights`` reads);
- ``report.json`` / ``report.md``: per source rows, flags and weight; with ``curate.audit``, the weak labels'
  agreement with the hand audit and the flags' precision and recall on it; with ``ablation``, what the flags and each
  source do to a probe on every held-out source (macro-F1 changes with paired intervals);
- ``meta.json``: provenance (params, seed, data hash, encoder, audit hash, code).

With ``enabled: false`` every weight is 1 and nothing is scored. The audit is read and checked before anything slow
runs: a row whose label is not a trinary label, or whose message changed since it was audited (text_hash), stops
the stage with the file, row and rule, and nothing is written. No file holds message text.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.config import Params
from components.config.curate import CurateConfig
from components.data.tables import read_table_records
from components.errors import DataRowError, SourceFileError
from components.evaluation.bootstrap import Bootstrap
from components.io import atomic_write_bytes, atomic_write_json, read_parquet_input, sha256_file, write_folder
from components.provenance import provenance
from components.schema import LABELS

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.parquet"
REPORT_FILE = "report.json"
MARKDOWN_FILE = "report.md"
NEEDED = ("id", "text", "label", "split", "source")
AUDIT_FIELDS = ("id", "text_hash", "label", "auditor", "audited_at")


@dataclass(frozen=True)
class CurateResult:
    weights_path: Path
    report: dict[str, Any]


def curate(params: Params, root: Path = Path()) -> CurateResult:
    """Weigh every train row of ``curate.input``; raises before writing anything on bad input."""
    config = params.curate
    path = root / config.input
    frame = read_parquet_input(path, "dataset not found; run `dvc repro` (prepare/augment) first")
    missing = [c for c in NEEDED if c not in frame.columns]
    if missing:
        raise SourceFileError(path, f"missing column(s) {missing} (schema: docs/data.md)")
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise SourceFileError(path, "no row has split == 'train'")
    audit = read_audit(root / config.audit, train) if config.enabled and config.audit else None
    table, report = _weigh(config, train, audit, root) if config.enabled else _unweighted(train)
    fields = {
        "stage": "curate",
        "params": {"curate": config.model_dump(mode="json")},
        "seed": config.seed,
        "input": config.input,
        "data_hash": sha256_file(path),
        "audit_sha256": sha256_file(root / config.audit) if audit is not None and config.audit else None,
    }
    meta = provenance(__name__, fields)
    report = {**report, "provenance": meta}
    out = root / config.output_dir

    def fill(tmp: Path) -> None:
        atomic_write_bytes(tmp / WEIGHTS_FILE, table.to_parquet(index=False))
        atomic_write_json(tmp / REPORT_FILE, report)
        (tmp / MARKDOWN_FILE).write_text(markdown(report), encoding="utf-8")

    write_folder(out, fill, meta)
    log.info("curate: %s", json.dumps(report["totals"]))
    return CurateResult(out / WEIGHTS_FILE, report)


def read_audit(path: Path, train: pd.DataFrame) -> pd.DataFrame:
    """The hand-audited labels that match train rows (id, audited label index); checks every row first."""
    if not path.is_file():
        raise SourceFileError(path, "audit file not found (curate.audit)")
    hashes = dict(zip(train["id"].astype(str), train.get("text_hash", pd.Series(dtype=str)), strict=False))
    rows: list[dict[str, Any]] = []
    # The project's JSON-lines reader: bad bytes, bad JSON and deep nesting already name the file and row.
    for number, row in enumerate(read_table_records(path, "jsonl"), start=1):
        absent = [f for f in AUDIT_FIELDS if not isinstance(row.get(f), str)]
        if absent:
            raise DataRowError(path, number, absent[0], "required text field is missing")
        if row["label"] not in LABELS:
            raise DataRowError(path, number, "label", f"must be one of {list(LABELS)}")
        known = hashes.get(row["id"])
        if known is not None and isinstance(known, str) and known != row["text_hash"]:
            raise DataRowError(path, number, "text_hash", "the dataset's message changed since it was audited")
        if row["id"] in hashes:
            rows.append({"id": row["id"], "audited": LABELS.index(row["label"])})
    return pd.DataFrame(rows, columns=["id", "audited"]).drop_duplicates("id", keep="last")


def _unweighted(train: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    table = _table(train, np.zeros(len(train), bool), np.ones(len(train)), np.ones(len(train)))
    return table, {"enabled": False, "totals": _totals(table), "sources": _per_source(table)}


def _weigh(
    config: CurateConfig, train: pd.DataFrame, audit: pd.DataFrame | None, root: Path
) -> tuple[pd.DataFrame, dict[str, Any]]:
    from components.data import label_quality as lq
    from components.data.embeddings import embed, encoder_folder

    labels = train["label"].map(LABELS.index).to_numpy(dtype=np.int64)
    groups = train["parent_id"].fillna(train["id"]) if "parent_id" in train else train["id"]
    texts = train["text"].astype(str).tolist()
    vectors = embed(encoder_folder(config.embedder, root), texts, config.max_length).astype(np.float64)
    screening = lq.screen(vectors, labels, groups.astype(str).tolist(), config.folds, config.seed)
    weights = lq.row_weights(screening.flagged, config.action, config.issue_weight)
    table = _table(train, screening.flagged, screening.quality, weights)
    bootstrap = Bootstrap(config.bootstrap_resamples, config.seed)
    report: dict[str, Any] = {"enabled": True, "totals": _totals(table), "sources": _per_source(table)}
    if audit is not None:
        report["audit"] = _audit(table, labels, audit, bootstrap)
    if config.ablation and train["source"].nunique() > 1:
        human = (train["origin"] == "human").to_numpy() if "origin" in train else np.ones(len(train), bool)
        sources = train["source"].astype(str).to_numpy()
        report["ablation"] = lq.ablation(vectors, labels, sources, human, weights, bootstrap, config.seed)
    return table, report


def _table(train: pd.DataFrame, flagged: Any, quality: Any, weights: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": train["id"].astype(str),
            "source": train["source"].astype(str),
            "label": train["label"].astype(str),
            "flagged": np.asarray(flagged, bool),
            "quality": np.round(np.asarray(quality, float), 6),
            "weight": np.asarray(weights, float),
        }
    )


def _totals(table: pd.DataFrame) -> dict[str, Any]:
    return {
        "rows": len(table),
        "flagged": int(table["flagged"].sum()),
        "weight": round(float(table["weight"].sum()), 2),
    }


def _per_source(table: pd.DataFrame) -> dict[str, Any]:
    out = {}
    for source, part in table.groupby("source", sort=True):
        flagged = part[part["flagged"]]
        out[str(source)] = {
            **_totals(part),
            "flagged_by_label": {label: int((flagged["label"] == label).sum()) for label in LABELS},
        }
    return out


def _audit(table: pd.DataFrame, labels: Any, audit: pd.DataFrame, bootstrap: Bootstrap) -> dict[str, Any]:
    from components.data.label_quality import audit_figures

    index = {row_id: i for i, row_id in enumerate(table["id"])}
    rows = np.array([index[i] for i in audit["id"]], dtype=np.int64)
    audited = audit["audited"].to_numpy(dtype=np.int64)
    sources = table["source"].to_numpy()[rows]
    out = {}
    for source in sorted(set(sources)):
        pick = sources == source
        chosen = rows[pick]
        flags = table["flagged"].to_numpy()[chosen]
        out[str(source)] = audit_figures(labels[chosen], audited[pick], flags, bootstrap)
    return out


def _fmt(interval: dict[str, Any] | None) -> str:
    if not interval or interval.get("value") is None:
        return "n/a"
    if interval.get("low") is None:
        return f"{interval['value']:.3f}"
    return f"{interval['value']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"


def markdown(report: dict[str, Any]) -> str:
    """The report as tables a person reads first (counts and figures, no text)."""
    totals = report["totals"]
    lines = [
        "# Label quality (curate)",
        "",
        f"{totals['rows']} train rows, {totals['flagged']} flagged by confident learning, total weight "
        f"{totals['weight']}." + ("" if report["enabled"] else " Curation is disabled: every weight is 1."),
        "",
        "| source | rows | flagged | weight |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s} | {v['rows']} | {v['flagged']} | {v['weight']} |" for s, v in report["sources"].items()]
    if report.get("audit"):
        lines += ["", "## Weak labels against the hand audit", ""]
        lines += ["| source | audited | agreement (95% CI) | flagged | flag precision | flag recall |"]
        lines += ["|---|---|---|---|---|---|"]
        for source, fig in report["audit"].items():
            lines.append(
                f"| {source} | {fig['n']} | {_fmt(fig['agreement'])} | {fig['flagged']} | "
                f"{fig['flag_precision']} | {fig['flag_recall']} |"
            )
    if report.get("ablation"):
        lines += ["", "## Probe on each held-out source (macro-F1; change with paired 95% CI)", ""]
        lines += [
            "| held out | n | trained on the rest | flags down-weighted | also without |",
            "|---|---|---|---|---|",
        ]
        for held, row in report["ablation"].items():
            without = "; ".join(f"{o}: {_fmt(v['change'])}" for o, v in row["without"].items())
            lines.append(
                f"| {held} | {row['n']} | {_fmt(row['curated']['base'])} | {_fmt(row['curated']['change'])} | "
                f"{without} |"
            )
    return "\n".join(lines) + "\n"
