"""Reading a corpus file into plain row dicts: CSV, JSONL, JSON (a list of objects) or Parquet.

The one place that deals with encodings and file formats, so every source adapter (``components/data/sources.py``)
and the canary reader fail the same way: a bad byte or a bad line names the file and the row, never the text.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from components.errors import DataRowError, SourceFileError

_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}


def read_table_records(path: Path, fmt: str = "auto") -> list[dict[str, Any]]:
    """Read a CSV / JSONL / JSON (list of objects) / Parquet file into plain dicts, one per record."""
    if not path.is_file():
        raise SourceFileError(path, "file not found")
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower(), "") if fmt == "auto" else fmt
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_table(path).to_pylist())
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise SourceFileError(path, f"not a readable Parquet file ({type(exc).__name__})") from None
    if fmt not in {"csv", "jsonl", "json"}:
        raise SourceFileError(path, "unknown format: set `format` to csv, jsonl, json or parquet")
    text = _decode(path, header_lines=1 if fmt == "csv" else 0)
    if fmt == "csv":
        import pandas as pd

        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise SourceFileError(path, f"not a readable CSV file ({exc})".splitlines()[0]) from None
        return [{str(key): value for key, value in row.items()} for row in frame.to_dict(orient="records")]
    if fmt == "jsonl":
        return [_json_object(path, number, line) for number, line in jsonl_lines(text)]
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceFileError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(loaded, list) or not all(isinstance(item, dict) for item in loaded):
        raise SourceFileError(path, "a JSON source must be a list of objects")
    return loaded


def _decode(path: Path, header_lines: int) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataRowError(
            path,
            max(line - header_lines, 1),
            "(encoding)",
            f"byte 0x{data[exc.start]:02x} at line {line} is not valid UTF-8; re-save the file as UTF-8",
        ) from None


def jsonl_lines(text: str) -> list[tuple[int, str]]:
    """The one way a JSON-lines file is cut into (1-based line number, line): on "\n" (and "\r\n") only.
    ``str.splitlines`` also splits on U+2028/U+2029 and other separators that JSON allows inside a string, which
    cut a valid message in two."""
    return [(number, line.removesuffix("\r")) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]


def _json_object(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataRowError(path, number, "(json)", f"not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise DataRowError(path, number, "(json)", "nested too deeply to be a message record") from None
    if not isinstance(value, dict):
        raise DataRowError(path, number, "(json)", "each line must be a JSON object")
    return value
