"""Bad input: a typed error naming file, row and rule, exit code 2, and nothing written or changed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.cli import main
from tests.fixtures.common import TINY_ROWS, write_params

CSV_SOURCE = {
    "name": "forum",
    "kind": "table",
    "path": "data/forum.csv",
    "text_columns": ["text"],
    "label_column": "topic",
    "label_map": {
        "chat": {"label": "safe"},
        "selfharm": {"label": "borderline", "categories": ["suicide_self_harm"]},
    },
}


def _jsonl(root: Path, rows: list[dict]) -> None:
    (root / "data" / "tiny.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _csv(root: Path, data: bytes, **changes: object) -> None:
    (root / "data" / "forum.csv").write_bytes(data)
    write_params(root, [{**CSV_SOURCE, **changes}])


def missing_file(root: Path) -> None:
    write_params(root, [{"name": "tiny", "kind": "emosafe", "path": "data/missing.jsonl"}])


def bad_encoding(root: Path) -> None:
    _csv(root, b"text,topic\nhello there,chat\nfine thanks,chat\ncaf\xe9 au lait,chat\n")


def missing_text_column(root: Path) -> None:
    _csv(root, b"message,topic\nhello,chat\n")


def empty_text(root: Path) -> None:
    _jsonl(root, [TINY_ROWS[0], {**TINY_ROWS[1], "text": "  \n "}])


def non_string_text(root: Path) -> None:
    _jsonl(root, [TINY_ROWS[0], TINY_ROWS[1], {**TINY_ROWS[2], "text": 42}])


def label_outside_mapping(root: Path) -> None:
    _csv(root, b"text,topic\nhello,chat\nhow are you,weird\n")


def duplicate_ids(root: Path) -> None:
    _jsonl(root, [TINY_ROWS[0], {**TINY_ROWS[1], "id": TINY_ROWS[0]["id"]}])


def conflicting_labels(root: Path) -> None:
    _jsonl(
        root,
        [
            *TINY_ROWS,
            {"id": "c1", "text": "I Want to END my life tonight ", "label": "borderline", "categories": []},
        ],
    )
    write_params(root, [{"name": "tiny", "kind": "emosafe", "path": "data/tiny.jsonl"}], conflict_policy="error")


def safe_with_categories(root: Path) -> None:
    _jsonl(root, [{**TINY_ROWS[0], "categories": ["violence_hate"]}])


def unknown_label(root: Path) -> None:
    _jsonl(root, [TINY_ROWS[0], {**TINY_ROWS[1], "label": "risky"}])


def empty_corpus(root: Path) -> None:
    _jsonl(root, [])


CASES: list[tuple[Callable[[Path], None], list[str]]] = [
    (missing_file, ["data/missing.jsonl", "file not found"]),
    (bad_encoding, ["forum.csv row 3", "(encoding)", "not valid UTF-8"]),
    (missing_text_column, ["forum.csv", "missing column(s) ['text']"]),
    (empty_text, ["tiny.jsonl row 2", "field 'text'", "text is empty"]),
    (non_string_text, ["tiny.jsonl row 3", "field 'text'", "must be a string, got int"]),
    (
        label_outside_mapping,
        ["forum.csv row 2", "field 'topic'", "label 'weird' is not in the source's mapping"],
    ),
    (duplicate_ids, ["tiny.jsonl row 2", "field 'id'", "duplicate id 't001' (first seen at row 1)"]),
    (conflicting_labels, ["1 text(s) appear with conflicting labels", "tiny:t021", "tiny:c1"]),
    (safe_with_categories, ["tiny.jsonl row 1", "field 'categories'", "a safe row must carry no category"]),
    (unknown_label, ["tiny.jsonl row 2", "field 'label'", "label 'risky' is not one of"]),
    (empty_corpus, ["tiny.jsonl", "no rows"]),
]


def run_cli(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["emosafe", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


@pytest.mark.parametrize(("breaker", "expected"), CASES, ids=[case[0].__name__ for case in CASES])
def test_bad_input_fails_clearly_and_writes_nothing(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    breaker: Callable[[Path], None],
    expected: list[str],
) -> None:
    assert run_cli(project, monkeypatch, "prepare") == 0
    before = {p.name: p.read_bytes() for p in (project / "out").iterdir()}
    capsys.readouterr()

    breaker(project)
    assert run_cli(project, monkeypatch, "prepare") == 2

    err = capsys.readouterr().err
    assert err.startswith("emosafe: error: "), err
    assert "Traceback" not in err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    after = {p.name: p.read_bytes() for p in (project / "out").iterdir()}
    assert after == before, "a failed prepare changed or added files in the output folder"


def test_dataset_and_summary_are_replaced_together_or_not_at_all(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """prepare once replaced dataset.parquet and then failed on summary.json, leaving a mismatched pair (#20, 4)."""
    assert run_cli(project, monkeypatch, "prepare") == 0
    dataset = (project / "out" / "dataset.parquet").read_bytes()
    (project / "out" / "summary.json").unlink()
    (project / "out" / "summary.json").mkdir()  # the second file cannot be written
    with (project / "data" / "tiny.jsonl").open("a", encoding="utf-8") as corpus:  # a changed corpus
        corpus.write(json.dumps({"id": "n1", "text": "one more calm message", "label": "safe"}) + "\n")
    capsys.readouterr()
    assert run_cli(project, monkeypatch, "prepare") == 2
    assert "summary.json: is a folder" in capsys.readouterr().err
    assert (project / "out" / "dataset.parquet").read_bytes() == dataset
    assert sorted(p.name for p in (project / "out").iterdir()) == ["dataset.parquet", "summary.json"]


def test_failed_first_run_creates_no_output(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    duplicate_ids(project)
    assert run_cli(project, monkeypatch, "prepare") == 2
    assert not (project / "out").exists()


def test_error_messages_never_carry_message_text(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conflicting_labels(project)
    run_cli(project, monkeypatch, "prepare")
    err = capsys.readouterr().err.lower()
    assert "end my life" not in err


@pytest.mark.parametrize(
    "breaker",
    [
        # a CSV without its header row: the first message becomes the column names
        lambda root: _csv(root, b"i will end it tonight,selfharm\ncalm day today,chat\n"),
        # the label column pointed at the text: a message becomes the "label"
        lambda root: _csv(root, b"text,topic\ni will end it tonight,chat\n", label_column="text"),
    ],
    ids=["headerless_csv", "label_column_holds_text"],
)
def test_errors_from_misread_files_carry_no_message_text(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], breaker: Any
) -> None:
    """Both once echoed the message into the error (hardening, item 9)."""
    breaker(project)
    assert run_cli(project, monkeypatch, "prepare") == 2
    err = capsys.readouterr().err
    assert err.startswith("emosafe: error: ") and "end it tonight" not in err, err
