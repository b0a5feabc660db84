"""Continuous evaluation: `emosafe reevaluate` on labelled feedback appends dated evaluations to the production
version's registry history, measures through the evaluation path, flags floors (exit 3), refuses bad input (exit 2)
and never lets feedback text out. Uses a hand-built ONNX bundle with known answers
(tests/fixtures/reevaluate_bundles.py).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml

from components.config import ConfigError, parse_params
from components.config.register import GateConfig
from components.errors import DataRowError, EmosafeError, RegistryError
from components.evaluation.bootstrap import Bootstrap
from components.evaluation.metrics import trinary_report
from components.release.reevaluation import review_floors
from registry.core import Registry
from registry.sqlite_schema import SCHEMA
from registry.sqlite_store import SqliteMetadataStore
from tests.fixtures import reevaluate_bundles as fx
from tests.fixtures.common import VENV_BIN


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("EMOSAFE_REGISTRY", raising=False)
    fx.production(tmp_path, "trinary")
    fx.write_feedback(tmp_path / "good.jsonl", fx.feedback_rows())
    fx.write_feedback(tmp_path / "flipped.jsonl", fx.feedback_rows(rotate=True))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(fx.params_dict()))
    return tmp_path


def _registry(project: Path) -> Registry:
    return Registry(project / "store", GateConfig())


def _direct(project: Path, feedback: Path, task: str, thresholds: dict[str, float] | None = None) -> dict[str, object]:
    """The same feedback scored and measured straight through components.evaluation.measure, without the stage."""
    from components.evaluation.measure import evaluate
    from components.export.runtime import OnnxPredictor
    from components.stages.reevaluate import read_feedback

    predictor = OnnxPredictor(project / f"bundle-{task}", "int8", batch_size=7)
    frame = read_feedback(feedback).frame
    return evaluate(predictor, frame, task, thresholds, Bootstrap(200, 13, 0.95)).report.to_dict()


def _store_bytes(project: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((project / "store").glob("registry.db*")))


def test_each_run_appends_one_dated_record_equal_to_a_direct_evaluation(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from components.stages.reevaluate import reevaluate

    caplog.set_level(logging.DEBUG)
    params = parse_params(fx.params_dict())
    first = reevaluate(params, project, Path("good.jsonl"), who="tester")
    second = reevaluate(params, project, project / "good.jsonl", "emosafe-trinary@production", who="tester")
    assert not first.flagged and not second.flagged
    history = _registry(project).meta.evaluations("emosafe-trinary", 1)
    assert [e.seq for e in history] == [1, 2] and history[0].evaluated_at < history[1].evaluated_at
    record = history[0]
    assert record.feedback_rows == 31 and record.who == "tester" and record.flagged == ()
    assert record.feedback_sha256 == first.summary["feedback"]["sha256"] and len(record.feedback_sha256) == 64
    assert record.metrics == _direct(project, project / "good.jsonl", "trinary")
    assert record.metrics["macro_f1"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    report = json.loads(first.reports[0].read_text())
    assert first.reports[0].parent == project / "reports" / "reevaluate" and first.reports[0] != second.reports[0]
    assert report["metrics"] == record.metrics and report["model"]["version"] == 1 and not report["flagged"]
    assert report["provenance"]["params"]["evaluate"]["bootstrap_resamples"] == 200
    assert {c["name"] for c in report["floors"]["checks"]} >= {"f1_floor:unsafe", "unsafe_recall_floor"}
    everything = first.reports[0].read_bytes() + _store_bytes(project) + caplog.text.encode()
    assert fx.CANARY.encode() not in everything and b"quokka" not in everything


def test_cli_flags_with_exit_3_refuses_bad_input_with_exit_2_and_lists_history(project: Path) -> None:
    def emosafe(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "EMOSAFE_REGISTRY"}
        return subprocess.run(
            [str(VENV_BIN / "emosafe"), *args], cwd=project, capture_output=True, text=True, timeout=120, env=env
        )

    good = emosafe("reevaluate", "--feedback", "good.jsonl", "--model", "emosafe-trinary@production")
    assert good.returncode == 0, good.stderr
    assert "ok: every floor holds" in good.stdout
    flipped = emosafe("reevaluate", "--feedback", "flipped.jsonl", "--output", "out/flipped.json")
    assert flipped.returncode == 3, flipped.stderr
    assert "FLAGGED" in flipped.stdout and "f1_floor:unsafe" in flipped.stdout
    report = json.loads((project / "out" / "flipped.json").read_text())
    assert report["flagged"] and "macro_f1_floor" in report["floors"]["flagged"]

    rows = fx.feedback_rows()
    rows[2]["label"] = "maybe"
    fx.write_feedback(project / "bad.jsonl", rows)
    before = sorted((project / "reports" / "reevaluate").iterdir())
    bad = emosafe("reevaluate", "--feedback", "bad.jsonl")
    assert bad.returncode == 2 and "bad.jsonl row 3" in bad.stderr and "label" in bad.stderr
    assert sorted((project / "reports" / "reevaluate").iterdir()) == before
    assert len(_registry(project).meta.evaluations()) == 2

    listed = emosafe("registry", "evaluations", "emosafe-trinary")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 2
    assert "f1_floor:unsafe" in listed.stdout.splitlines()[1] and "31 rows" in listed.stdout
    shown = json.loads(emosafe("registry", "show", "emosafe-trinary@production").stdout)
    assert [e["seq"] for e in shown["evaluations"]] == [1, 2] and shown["evaluations"][1]["flagged"]
    outputs = good.stdout + good.stderr + flipped.stdout + flipped.stderr + bad.stderr + listed.stdout
    everything = outputs.encode() + (project / "out" / "flipped.json").read_bytes() + _store_bytes(project)
    assert fx.CANARY.encode() not in everything


def test_bad_feedback_changes_nothing(project: Path) -> None:
    from components.stages.reevaluate import reevaluate

    rows = fx.feedback_rows()
    rows[4]["categories"] = ["violence_hate"]  # a safe row with a category breaks the schema
    fx.write_feedback(project / "bad.jsonl", rows)
    params = parse_params(fx.params_dict())
    with pytest.raises(DataRowError, match="row 5, field 'categories'") as caught:
        reevaluate(params, project, Path("bad.jsonl"))
    assert "quokka" not in str(caught.value)
    with pytest.raises(RegistryError, match=r"unknown model .emosafe-taxonomy."):
        reevaluate(params, project, Path("good.jsonl"), "emosafe-taxonomy@production")
    assert _registry(project).meta.evaluations() == [] and not (project / "reports").exists()


def test_the_report_never_writes_over_the_feedback_it_reads(project: Path) -> None:
    from components.stages.reevaluate import reevaluate

    feedback = fx.write_feedback(project / "same.jsonl", fx.feedback_rows())
    before, evaluations = feedback.read_bytes(), len(_registry(project).meta.evaluations())
    params = parse_params(fx.params_dict())
    with pytest.raises(EmosafeError, match="an output never replaces an input"):
        reevaluate(params, project, Path("same.jsonl"), "emosafe-trinary@production", output=feedback)
    assert feedback.read_bytes() == before and len(_registry(project).meta.evaluations()) == evaluations


def test_taxonomy_decides_with_the_versions_stored_thresholds(project: Path) -> None:
    from components.stages.reevaluate import reevaluate

    ref = fx.production(project, "taxonomy", thresholds={"violence_hate": 0.999})  # marked rows score 0.993
    params = parse_params({**fx.params_dict(), "register": {"store": "store", "gate": {"floor_on": "point"}}})
    outcome = reevaluate(params, project, Path("good.jsonl"), ref)  # point: 1-2 rows per category, CIs reach 0
    record = _registry(project).meta.evaluations("emosafe-taxonomy")[-1]
    thresholds = record.details["thresholds"]
    assert thresholds["violence_hate"] == 0.999 and thresholds["sexual_content"] == 0.5
    assert record.details["thresholds_source"] == "bundle labels.json"
    assert record.metrics == _direct(project, project / "good.jsonl", "taxonomy", thresholds)
    assert record.metrics["per_class"]["violence_hate"]["f1"]["value"] == 0.0
    assert record.metrics["per_class"]["suicide_self_harm"]["f1"]["value"] == 1.0
    assert outcome.flagged and record.flagged == ("f1_floor:violence_hate",)


def test_floor_review_follows_the_gate_and_skips_absent_classes() -> None:
    # safe and unsafe only: borderline has no rows, so its F1 cannot be judged; one unsafe row is missed
    truth, pred = [0, 0, 0, 0, 2, 2, 2, 2], [0, 0, 0, 0, 2, 2, 2, 0]
    report = trinary_report(truth, pred, [False] * 8, Bootstrap(200, 1, 0.95))
    point = review_floors(report, GateConfig(floor_on="point", unsafe_recall_floor=0.7, default_f1_floor=0.8))
    assert point.not_assessable == ("borderline",) and point.flagged == ()
    strict = review_floors(report, GateConfig(floor_on="point", unsafe_recall_floor=0.8))
    assert strict.flagged == ("unsafe_recall_floor",)
    ci_low = review_floors(report, GateConfig(floor_on="ci_low", unsafe_recall_floor=0.7, default_f1_floor=0.8))
    assert "unsafe_recall_floor" in ci_low.flagged  # the interval's low end is below 0.7 on 4 unsafe rows


def test_evaluations_table_is_append_only_and_added_to_old_databases(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "registry.db")
    old.executescript(SCHEMA)  # a database from before the evaluations table
    old.close()
    store = SqliteMetadataStore(tmp_path / "registry.db")
    assert store.evaluations() == []
    from registry.store import EvaluationRecord

    with pytest.raises(RegistryError, match="does not exist"):
        store.add_evaluation(
            EvaluationRecord(0, "emosafe-trinary", 9, "2026-01-01T00:00:00+00:00", "t", "a" * 64, 1, ())
        )
    raw = sqlite3.connect(tmp_path / "registry.db")
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute(
        "INSERT INTO evaluations (name, version, evaluated_at, who, feedback_sha256, feedback_rows, flagged, "
        "metrics, details) VALUES ('m', 1, 'x', 'w', 's', 1, '[]', '{}', '{}')"
    )
    raw.commit()
    for statement in ("UPDATE evaluations SET flagged = '[]'", "DELETE FROM evaluations"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute(statement)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_config_needs_a_task_placeholder_for_several_tasks() -> None:
    with pytest.raises(ConfigError, match="must contain"):
        parse_params(fx.params_dict(model="emosafe-trinary@production", tasks=["trinary", "taxonomy"]))
    config = parse_params(fx.params_dict(tasks=["trinary", "taxonomy"])).reevaluate
    assert config.refs() == [("trinary", "emosafe-trinary@production"), ("taxonomy", "emosafe-taxonomy@production")]


def test_thresholds_come_from_the_bundle_else_the_registered_lineage(tmp_path: Path) -> None:
    from components.release.reevaluation import stored_thresholds
    from tests.fixtures.registry_runs import make_run, taxonomy_metrics

    tuned = {"violence_hate": {"threshold": 0.65, "val_f1": 0.7, "val_support": 9}, "nonsense": 0.1}
    run = make_run(tmp_path, "t")
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "thresholds"}))  # as train writes
    record, _ = _registry(tmp_path).register(run, {**taxonomy_metrics(), "thresholds": tuned}, project=tmp_path)
    assert record.lineage["thresholds"]["violence_hate"]["threshold"] == 0.65  # evaluate's tuned thresholds kept
    chosen, source = stored_thresholds("taxonomy", {}, {"violence_hate": {"threshold": 0.65}, "nonsense": 0.1})
    assert chosen["violence_hate"] == 0.65 and chosen["sexual_content"] == 0.5 and "nonsense" not in chosen
    assert source == "version lineage (registered thresholds)"
    assert stored_thresholds("taxonomy", {"violence_hate": 0.9}, {"violence_hate": 0.1})[0]["violence_hate"] == 0.9
    assert stored_thresholds("taxonomy", {}, None)[1].startswith("default 0.5")
    point = {"unsafe": {"threshold": 0.3}, "flagged": {"threshold": 0.45}, "violence_hate": 0.2}
    assert stored_thresholds("trinary", {}, point) == (
        {"unsafe": 0.3, "flagged": 0.45},
        "version lineage (registered operating point)",
    )
    assert stored_thresholds("trinary", {"unsafe": 0.2, "flagged": 0.6}, point)[0] == {"unsafe": 0.2, "flagged": 0.6}
    assert stored_thresholds("trinary", {}, {"unsafe": 0.3}) == ({}, "argmax (the version stores no operating point)")


def test_the_version_is_rescored_on_each_suite_and_held_to_its_suite_floors(project: Path) -> None:
    """Good feedback, but a suite the model gets wrong (rotated labels): the suite floor flags the version."""
    from components.stages.reevaluate import reevaluate

    raw = fx.params_dict()
    source = {"name": "rotated", "kind": "emosafe", "path": "flipped.jsonl"}
    raw["evaluate"]["suites"] = {"rotated": {"purpose": "labels the model gets wrong", "source": source}}
    raw["register"]["gate"] = {"suites": {"rotated": {"min_macro_f1": 0.9}}}
    outcome = reevaluate(parse_params(raw), project, Path("good.jsonl"), who="tester")
    assert outcome.flagged and outcome.summary["models"][0]["flagged"] == ["suite:rotated:min_macro_f1"]
    report = json.loads(outcome.reports[0].read_text())
    figures = report["metrics"]["suites"]["rotated"]["figures"]
    assert figures["n"] == 31 and figures["macro_f1"]["value"] < 0.9
    assert report["metrics"]["macro_f1"]["value"] == 1.0  # the feedback itself is fine
