"""Evidence binding (components/release/evidence.py): figures bind only to exactly the files they were measured on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.release.evidence import bind, evidence_block, measured_files


def folder(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "weights.safetensors").write_bytes(b"w" * 100)
    (run / "meta.json").write_text("{}")
    return run


def test_figures_of_the_same_files_bind(tmp_path: Path) -> None:
    run = folder(tmp_path)
    binding = bind({"evidence": evidence_block(run, "evaluate")}, measured_files(run))
    assert binding.bound and "evaluate on these 2 file(s)" in binding.detail
    assert binding.to_dict()["status"] == "bound"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda run: (run / "adapter" / "weights.safetensors").write_bytes(b"x" * 100), "differs"),
        (lambda run: (run / "extra.onnx").write_bytes(b"graph"), "extra.onnx was not measured"),
        (lambda run: (run / "meta.json").unlink(), "meta.json was measured but is not stored"),
    ],
)
def test_figures_of_other_files_do_not_bind(tmp_path: Path, change: Any, words: str) -> None:
    run = folder(tmp_path)
    figures = {"evidence": evidence_block(run, "evaluate")}
    change(run)
    binding = bind(figures, measured_files(run))
    assert not binding.bound and words in binding.detail and binding.to_dict()["status"] == "declared"


@pytest.mark.parametrize(
    ("block", "words"),
    [
        (None, "no evidence block"),
        ("evaluate", "no evidence block"),
        ({"by": "me", "files": {}}, "'by' is 'me'"),
        ({"by": "export", "files": ["a"]}, "must map paths"),
        ({"by": "export", "files": {"a": "not-a-digest"}}, "must map paths"),
        ({"by": "export", "files": {"a": "A" * 64}}, "must map paths"),
    ],
)
def test_malformed_blocks_are_declared_never_raised(block: Any, words: str) -> None:
    binding = bind({"evidence": block} if block is not None else {}, {"a": "a" * 64})
    assert not binding.bound and words in binding.detail


def test_files_written_after_the_measurement_are_exempt_only_when_named(tmp_path: Path) -> None:
    run = folder(tmp_path)
    figures = {"evidence": evidence_block(run, "export", {"meta.json"})}
    (run / "quantization.json").write_text("{}")
    stored = measured_files(run)
    assert bind(figures, stored, {"quantization.json", "meta.json"}).bound
    assert not bind(figures, stored, {"quantization.json"}).bound  # meta.json unmeasured and not exempt


def test_only_measuring_stages_write_blocks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a measuring stage"):
        evidence_block(folder(tmp_path), "register")
