"""Property-based fuzzing of every reader of outside input: each generated file or string either reads, or fails with
a typed ``EmosafeError`` that carries no message text; never another exception.

Readers: corpus sources (emosafe JSONL, the generic table adapter over JSONL and CSV), labelled feedback, the
production log, params files, registry references and bundle manifests. ``make test`` runs a few hundred cases;
the slow suite (``make test-all``) runs over 10,000.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.errors import EmosafeError

CANARY = "zebra canary 5512 nobody may read this"
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
SLOW = settings(max_examples=1800, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
texts = st.sampled_from([CANARY, f"{CANARY}\u2028second line", f"  {CANARY}  "]) | values
labels = st.sampled_from(["safe", "borderline", "unsafe", "SAFE", "risky", CANARY]) | values
categories = st.lists(st.sampled_from(["violence_hate", "sexual_content", "weather", CANARY]), max_size=3) | values
records = st.fixed_dictionaries(
    {}, optional={"id": st.text(max_size=6) | values, "text": texts, "label": labels, "categories": categories}
)
log_records = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=6) | values,
        "timestamp": st.sampled_from(["2026-03-01T00:00:00Z", "2026-03-01", "yesterday"]) | values,
        "model": st.sampled_from(["emosafe-trinary", ""]) | values,
        "version": st.sampled_from(["1", "3"]) | values,
        "task": st.sampled_from(["trinary", "taxonomy", CANARY]) | values,
        "label": labels,
        "categories": categories,
        "text": texts,
    },
)


def lines_of(record: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A file of JSON lines, mixed with broken lines, blank lines and stray bytes."""
    line = record.map(lambda r: json.dumps(r, ensure_ascii=False)) | st.text(max_size=40) | st.just("[" * 3000)
    joined = st.lists(line, min_size=0, max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8"))
    return joined | st.binary(max_size=80)


def csv_files() -> st.SearchStrategy[bytes]:
    header = st.sampled_from(["text,topic", "topic,text", f"{CANARY},chat", "text", ""])
    row = st.lists(st.sampled_from([CANARY, "chat", "selfharm", '"', ",", "", "weird"]), max_size=3).map(",".join)
    return st.tuples(header, st.lists(row, max_size=5)).map(lambda hr: "\n".join([hr[0], *hr[1]]).encode("utf-8"))


SEEN: Counter[str] = Counter()


def check(read: Callable[[Path], Any], data: bytes, suffix: str) -> None:
    """Read ``data`` from a file: success, or an EmosafeError without the canary (any other exception fails)."""
    SEEN[read.__name__] += 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        try:
            read(path)
        except EmosafeError as error:
            assert "canary" not in str(error).lower(), str(error)


def read_emosafe_file(path: Path) -> Any:
    from components.config import EmosafeSource
    from components.data.sources import read_emosafe

    return read_emosafe(path, EmosafeSource(name="m", kind="emosafe", path=str(path)))


def read_table_file(path: Path) -> Any:
    from components.config import TableSource
    from components.data.sources import read_table

    mapping = {"chat": {"label": "safe"}, "selfharm": {"label": "borderline", "categories": ["suicide_self_harm"]}}
    config = TableSource(
        name="f", kind="table", path=str(path), text_columns=["text"], label_column="topic", label_map=mapping
    )
    return read_table(path, config)


def read_feedback_file(path: Path) -> Any:
    from components.stages.reevaluate import read_feedback

    return read_feedback(path)


def read_log_file(path: Path) -> Any:
    from monitoring.log import read_log

    return read_log(path)


def read_params_file(path: Path) -> Any:
    from components.config import load_params

    return load_params(path)


def read_manifest(path: Path) -> Any:
    from components.export.bundle import MANIFEST, verify_bundle

    path.rename(path.with_name(MANIFEST))
    (path.parent / "model_int8.onnx").write_bytes(b"onnx")
    return verify_bundle(path.parent)


params_texts = st.sampled_from(
    ["seed: 1\nprepare: {sources: [{name: x, kind: emosafe, path: x}]}\n", "seed: [1\n", "prepare: 3\n", "a: 1\na: 2\n"]
) | st.text(max_size=60)
manifests = st.fixed_dictionaries(
    {},
    optional={
        "files": st.dictionaries(st.sampled_from(["model_int8.onnx", "../x", "/etc/passwd", ""]), values),
        "version": values,
    },
).map(json.dumps) | st.text(max_size=40)
CASES: list[tuple[str, Callable[[Path], Any], st.SearchStrategy[bytes], str]] = [
    ("emosafe_source", read_emosafe_file, lines_of(records), ".jsonl"),
    ("table_csv", read_table_file, csv_files(), ".csv"),
    ("feedback", read_feedback_file, lines_of(records), ".jsonl"),
    ("production_log", read_log_file, lines_of(log_records), ".jsonl"),
    ("params", read_params_file, params_texts.map(lambda t: t.encode("utf-8")), ".yaml"),
    ("bundle_manifest", read_manifest, manifests.map(lambda t: t.encode("utf-8")), ".json"),
]


def _ref(text: str) -> None:
    from registry.names import parse_ref

    with contextlib.suppress(EmosafeError):
        parse_ref(text)


@pytest.mark.parametrize(("name", "read", "strategy", "suffix"), CASES, ids=[c[0] for c in CASES])
def test_readers_fail_only_with_typed_errors_and_never_echo_text(
    name: str, read: Callable[[Path], Any], strategy: st.SearchStrategy[bytes], suffix: str
) -> None:
    FAST(given(strategy)(lambda data: check(read, data, suffix)))()


@FAST
@given(st.text(max_size=30) | st.sampled_from(["emosafe-trinary@\u00b2", "a@\u0663", "a@99999999999999999999"]))
def test_registry_references_fail_only_with_typed_errors(text: str) -> None:
    _ref(text)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "read", "strategy", "suffix"), CASES, ids=[c[0] for c in CASES])
def test_readers_at_volume(
    name: str, read: Callable[[Path], Any], strategy: st.SearchStrategy[bytes], suffix: str
) -> None:
    """6 readers x 1,800 cases + 1,800 references: 12,600 generated inputs in the slow suite."""
    before = SEEN[read.__name__]
    SLOW(given(strategy)(lambda data: check(read, data, suffix)))()
    assert SEEN[read.__name__] - before >= 1500  # hypothesis ran (nearly) all of them, it did not stop early


@pytest.mark.slow
@SLOW
@given(st.text(max_size=40))
def test_registry_references_at_volume(text: str) -> None:
    _ref(text)
