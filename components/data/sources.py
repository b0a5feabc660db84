"""Source adapters: each turns one corpus file into emosafe ``Record`` rows, or fails naming file, row and rule.

Every adapter is a small function over the same core (``components/data/tables.read_table_records``), so the generic ``table`` source,
DiaSafety and CounselChat share one tested path for encodings, missing columns, empty or non-string text,
unmapped labels and duplicate ids. Text is never put into an error message or a log line: ids and row numbers are.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import (
    Category,
    CounselChatSource,
    DiaSafetySource,
    EmosafeSource,
    LabelMapping,
    SourceConfig,
    TableSource,
)
from components.config.prepare import TextCleanup
from components.data.tables import read_table_records
from components.errors import DataRowError, EmptyCorpusError, SourceFileError, shown
from components.schema import CATEGORIES, Origin, consistency_problem
from components.text import normalise

@dataclass(frozen=True)
class Record:
    """One message in emosafe's schema, before merging and splitting."""

    id: str
    text: str
    label: str
    categories: frozenset[str]
    source: str
    origin: str = Origin.HUMAN.value
    parent_id: str | None = None
    row: int = 0  # 1-based record number in its file, for error messages after the fact
    path: str = ""


def read_source(config: SourceConfig, root: Path) -> list[Record]:
    """Dispatch on the source kind. Relative paths are resolved against ``root`` (the project folder)."""
    if isinstance(config, EmosafeSource):
        records = read_emosafe(root / config.path, config)
    elif isinstance(config, TableSource):
        records = read_table(root / config.path, config)
    elif isinstance(config, DiaSafetySource):
        records = [record for path in config.paths for record in read_diasafety(root / path, config)]
    else:
        records = read_counsel_chat(root / config.path, config)
    if not records:
        raise EmptyCorpusError(f"source '{config.name}': no rows (rule: every declared source must add rows)")
    return records


def read_table(path: Path, config: TableSource) -> list[Record]:
    """Generic adapter: columns, label mapping, text cleanup and per-label quotas are all declared in params.yaml.

    Rows left out by ``max_rows_per_label`` are not read further (not checked either): the choice is made first,
    by the sha256 of (seed, native id), so it does not depend on the file's row order."""
    raw = read_table_records(path, config.format)
    return _map_records(
        raw,
        path,
        config,
        config.text_columns,
        config.label_column,
        config.label_map,
        config.default,
        config.id_column,
        config.dedupe_column,
        keep=_quota_rows(raw, config),
    )


def _quota_rows(raw: list[dict[str, Any]], config: TableSource) -> set[int] | None:
    """The 1-based rows kept under ``max_rows_per_label`` (None: every row)."""
    if not config.max_rows_per_label:
        return None
    by_label: dict[str, list[tuple[str, int]]] = {}
    for row, item in enumerate(raw, start=1):
        native = str(item.get(config.id_column, "")).strip() if config.id_column else str(row)
        rank = hashlib.sha256(f"{config.seed}:{native}".encode()).hexdigest()
        by_label.setdefault(str(item.get(config.label_column)).strip(), []).append((rank, row))
    keep: set[int] = set()
    for label, rows in by_label.items():
        quota = config.max_rows_per_label.get(label)
        keep.update(row for _, row in (rows if quota is None else sorted(rows)[:quota]))
    return keep


def read_diasafety(path: Path, config: DiaSafetySource) -> list[Record]:
    """DiaSafety: text from ``context`` (the user turn); label from its DiaSafety category.

    DiaSafety's own Safe/Unsafe judges the bot's *response*, not the user's message, so only the category is
    mapped: the same context is just as risky whatever the bot answered.
    """
    raw = read_table_records(path, "json")
    return _map_records(
        raw,
        path,
        config,
        (config.text_field,),
        "category",
        config.category_map,
        config.default,
        None,
        None,
        id_prefix=path.stem,
    )


def read_counsel_chat(path: Path, config: CounselChatSource) -> list[Record]:
    """CounselChat: the help-seeker's title + question, one per questionID, weak label from ``topic``."""
    raw = read_table_records(path, "csv")
    return _map_records(
        raw,
        path,
        config,
        ("questionTitle", "questionText"),
        "topic",
        config.topic_map,
        config.default,
        "questionID",
        "questionID",
    )


def read_emosafe(path: Path, config: EmosafeSource) -> list[Record]:
    """A corpus already in emosafe's schema: ``categories`` as a list / ';'-joined string, or six booleans."""
    raw = read_table_records(path, config.format)
    _require_columns(raw, path, ("id", "text", "label"))
    records: list[Record] = []
    seen: dict[str, int] = {}
    for row, item in enumerate(raw, start=1):
        native = _native_id(item.get("id"), path, row, "id", seen)
        text = _text(item, ("text",), path, row)
        if not isinstance(item.get("label"), str):
            raise DataRowError(path, row, "label", f"required, a string; got {shown(item.get('label'))}")
        label = item["label"].strip().lower()
        categories = _categories(item, path, row)
        problem = consistency_problem(label, categories)
        if problem:
            raise DataRowError(path, row, "label" if problem.startswith("label ") else "categories", problem)
        origin = str(item.get("origin") or Origin.HUMAN.value)
        parent = item.get("parent_id") or None
        records.append(
            Record(
                f"{config.name}:{native}",
                text,
                label,
                categories,
                config.name,
                origin,
                f"{config.name}:{parent}" if parent else None,
                row,
                str(path),
            )
        )
    return records


def _map_records(
    raw: list[dict[str, Any]],
    path: Path,
    config: TableSource | DiaSafetySource | CounselChatSource,
    text_columns: Sequence[str],
    label_column: str,
    label_map: Mapping[str, LabelMapping],
    default: LabelMapping | None,
    id_column: str | None,
    dedupe_column: str | None,
    id_prefix: str = "",
    keep: set[int] | None = None,
) -> list[Record]:
    _require_columns(raw, path, (*text_columns, label_column, *([id_column] if id_column else [])))
    matchers = _keyword_matchers(config.keywords)
    cleanup = config.text_cleanup if isinstance(config, TableSource) else None
    seen_dedupe: set[str] = set()
    seen_ids: dict[str, int] = {}
    records: list[Record] = []
    for row, item in enumerate(raw, start=1):
        if keep is not None and row not in keep:
            continue
        if dedupe_column is not None:
            key = str(item.get(dedupe_column))
            if key in seen_dedupe:
                continue
            seen_dedupe.add(key)
        native = _native_id(item.get(id_column) if id_column else row, path, row, id_column or "(row)", seen_ids)
        text = _text(item, text_columns, path, row, cleanup)
        raw_label = str(item.get(label_column, "")).strip()
        mapping = label_map.get(raw_label, default)
        if mapping is None:
            known = ", ".join(sorted(label_map)[:8]) + (" ..." if len(label_map) > 8 else "")
            raise DataRowError(
                path,
                row,
                label_column,
                f"label {shown(raw_label)} is not in the source's mapping (known: {known}) and no default is set",
            )
        categories: set[str] = set(mapping.categories)
        if mapping.keywords:
            categories |= {cat for cat, pattern in matchers.items() if pattern.search(text)}
        prefix = f"{config.name}:{id_prefix + ':' if id_prefix else ''}"
        records.append(
            Record(
                prefix + native,
                text,
                mapping.label.value,
                frozenset(categories),
                config.name,
                row=row,
                path=str(path),
            )
        )
    return records


def _require_columns(raw: list[dict[str, Any]], path: Path, columns: Sequence[str]) -> None:
    if not raw:
        raise EmptyCorpusError(f"{path}: the file has no rows (rule: a source must not be empty)")
    present = set().union(*(item.keys() for item in raw[:1000]))
    missing = [column for column in columns if column not in present]
    if missing:
        keys = sorted(str(key) for key in present if not str(key).startswith("_"))
        names = [key for key in keys if shown(key).startswith("'")]
        hidden = len(keys) - len(names)
        have = ", ".join(names) + (f" and {hidden} header(s) that look like text: is the header row missing?" if hidden else "")
        raise SourceFileError(path, f"missing column(s) {missing} (file has: {have})")


def _text(
    item: Mapping[str, Any], columns: Sequence[str], path: Path, row: int, cleanup: TextCleanup | None = None
) -> str:
    parts = []
    for column in columns:
        value = item.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if not isinstance(value, str):
            raise DataRowError(path, row, column, f"text must be a string, got {type(value).__name__}")
        cleaned = normalise(_clean(value, cleanup) if cleanup is not None else value)
        if cleaned:
            parts.append(cleaned)
    if not parts:
        rule = "text is empty after the source's text_cleanup" if cleanup is not None else "text is empty"
        raise DataRowError(path, row, "/".join(columns), f"{rule} (rule: text must be non-empty)")
    return "\n".join(parts)


def _clean(value: str, cleanup: TextCleanup) -> str:
    """The source's declared cleanup: HTML entities first, then each substitution in order."""
    text = html.unescape(value) if cleanup.html_unescape else value
    for replacement in cleanup.replace:
        text = re.sub(replacement.pattern, replacement.repl, text)
    return text


def _native_id(value: Any, path: Path, row: int, field: str, seen: dict[str, int]) -> str:
    """A row's own id as text. A number is its integer value when it has one (1 and 1.0 are the same id); a null,
    NaN, boolean or structured value is no id."""
    if value is None or isinstance(value, bool) or (isinstance(value, numbers.Real) and math.isnan(float(value))):
        raise DataRowError(path, row, field, "id is missing (null), or a boolean")
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and float(value).is_integer():
        value = int(float(value))
    if not isinstance(value, str | numbers.Real):
        raise DataRowError(path, row, field, f"id must be a string or a number, got {type(value).__name__}")
    native = str(value).strip()
    if not native:
        raise DataRowError(path, row, field, "id is empty")
    if native in seen:
        raise DataRowError(path, row, field, f"duplicate id '{native}' (first seen at row {seen[native]})")
    seen[native] = row
    return native


def _categories(item: Mapping[str, Any], path: Path, row: int) -> frozenset[str]:
    if "categories" in item:
        value = item["categories"]
        if value is None:
            return frozenset()
        if isinstance(value, str):
            value = [part for part in re.split(r"[;,|]", value) if part.strip()]
        if not isinstance(value, (list, tuple)) and not hasattr(value, "tolist"):
            raise DataRowError(path, row, "categories", "categories must be a list or a ';'-joined string")
        return frozenset(str(part).strip() for part in value)
    flags = set()
    for category in CATEGORIES:
        value = item.get(category, False)
        if isinstance(value, str):
            value = value.strip().lower() in {"1", "true", "yes"}
        if value:
            flags.add(category)
    return frozenset(flags)


def _keyword_matchers(keywords: Mapping[Category, Sequence[str]]) -> dict[str, re.Pattern[str]]:
    """Case-insensitive word-prefix matchers: 'suicid' matches 'suicide' and 'suicidal', not 'presuicidal'."""
    return {
        category: re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in phrases) + ")", re.IGNORECASE)
        for category, phrases in keywords.items()
        if phrases
    }


def source_paths(sources: Iterable[SourceConfig]) -> list[str]:
    """Every input file the sources declare, in declaration order (what DVC must list as deps)."""
    paths: list[str] = []
    for source in sources:
        paths.extend(source.paths if isinstance(source, DiaSafetySource) else [source.path])
    return paths
