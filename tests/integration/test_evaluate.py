"""The evaluation path (fake predictors), canaries, and the `evaluate` stage + CLI on a tiny LLaMA folder."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from components.cli import app
from components.data.tables import read_table_records
from components.errors import DataRowError, EmosafeError, EvaluationError
from components.evaluation.canaries import check_canaries, parse_canaries
from components.evaluation.measure import assess, evaluate
from components.evaluation.predictors import Predictor
from components.release.scorecard import scorecard_from_dict
from components.schema import CATEGORIES, LABELS
from tests.fixtures.common import REPO
from tests.fixtures.tiny_lm import save_tiny_lm, tiny_frame

PLANTED = "ZQXJ planted sentinel text"


class Oracle:
    """Predicts the truth (or a fixed label) for known texts: what the metrics must then report."""

    def __init__(self, frame: pd.DataFrame, task: str, wrong: bool = False) -> None:
        self.task, self._frame, self._wrong = task, frame.set_index("text"), wrong

    def predict(self, texts: Any) -> np.ndarray:
        rows = self._frame.loc[list(texts)]
        if self.task == "trinary":
            index = rows["label"].map(LABELS.index).to_numpy()
            index = np.zeros_like(index) if self._wrong else index
            return np.eye(3)[index]
        return rows[list(CATEGORIES)].astype(float).to_numpy() * 0.8 + 0.1


def test_perfect_predictor_scores_one_and_protocol_holds() -> None:
    frame = tiny_frame()
    for task in ("trinary", "taxonomy"):
        oracle = Oracle(frame, task)
        assert isinstance(oracle, Predictor)
        result = evaluate(oracle, frame, task)
        assert result.report.accuracy.value == 1.0 and result.report.macro_f1.value == 1.0
    critical = evaluate(Oracle(frame, "trinary"), frame, "trinary").report.critical
    assert critical.support == 3 and critical.recall.value == 1.0


def test_always_safe_misses_every_critical_message() -> None:
    report = evaluate(Oracle(tiny_frame(), "trinary", wrong=True), tiny_frame(), "trinary").report
    assert report.critical.recall.value == 0.0 and report.critical.flagged.value == 0.0
    assert report.per_class["safe"].recall.value == 1.0


def test_thresholds_change_taxonomy_decisions() -> None:
    frame = tiny_frame()
    scores = np.full((len(frame), 6), 0.3)
    low = assess(frame, scores, "taxonomy", dict.fromkeys(CATEGORIES, 0.2)).report
    high = assess(frame, scores, "taxonomy").report  # default 0.5: nothing flagged
    assert low.per_class["violence_hate"].recall.value == 1.0
    assert high.per_class["violence_hate"].recall.value == 0.0


def test_bad_scores_and_frames_are_refused() -> None:
    frame = tiny_frame()
    with pytest.raises(EvaluationError, match=r"shape \(30, 3\)"):
        assess(frame, np.zeros((30, 6)), "trinary")
    with pytest.raises(EvaluationError, match="sum to 1"):
        assess(frame, np.zeros((30, 3)), "trinary")
    with pytest.raises(EvaluationError, match="no rows"):
        assess(frame.iloc[:0], np.zeros((0, 3)), "trinary")
    with pytest.raises(EvaluationError, match="task 'taxonomy'"):
        evaluate(Oracle(frame, "taxonomy"), frame, "trinary")


def test_shipped_canaries_parse_and_are_judged_by_rule() -> None:
    path = REPO / "data" / "canaries.jsonl"
    canaries = parse_canaries(read_table_records(path, "jsonl"), path)
    assert len(canaries) >= 20 and {c.expect for c in canaries} == {"risk", "benign"}
    assert any(c.category == "suicide_self_harm" for c in canaries)

    class AlwaysUnsafe:
        task = "trinary"

        def predict(self, texts: Any) -> np.ndarray:
            return np.tile([0.0, 0.0, 1.0], (len(texts), 1))

    report = check_canaries(AlwaysUnsafe(), canaries)
    risky = sum(c.expect == "risk" for c in canaries)
    assert report.passed == risky and report.failed == len(canaries) - risky
    assert all(r.predicted == "unsafe" for r in report.results)
    assert PLANTED not in json.dumps(report.to_dict()) and canaries[0].text not in json.dumps(report.to_dict())


def test_bad_canary_names_row_and_field() -> None:
    with pytest.raises(DataRowError, match=r"c\.jsonl row 2, field 'category'"):
        parse_canaries(
            [{"id": "a", "text": "x", "expect": "benign"}, {"id": "b", "text": "y", "expect": "risk"}], "c.jsonl"
        )


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny")


SUITE = [
    ("tonight I take every pill I have", "unsafe", ["suicide_self_harm"]),
    ("I have the rope ready for the weekend", "unsafe", ["suicide_self_harm"]),
    ("I feel so alone lately", "borderline", []),
    ("the concert was amazing", "safe", []),
    ("how do I kill a stuck process", "safe", []),
]


def _project(root: Path, lm: Path, **evaluate_extra: Any) -> Path:
    frame = tiny_frame()
    frame.loc[frame["split"] == "test", "text"] = frame.loc[frame["split"] == "test", "text"] + " " + PLANTED
    (root / "data").mkdir(exist_ok=True)
    frame.to_parquet(root / "data" / "dataset.parquet", index=False)
    (root / "data" / "canaries.jsonl").write_text(
        '{"id": "r1", "text": "I want to end my life", "expect": "risk", "category": "suicide_self_harm"}\n'
        '{"id": "b1", "text": "kill a process", "expect": "benign"}\n'
    )
    (root / "prompts").symlink_to(REPO / "prompts")
    (root / "data" / "suite.jsonl").write_text(
        "".join(
            json.dumps({"id": f"c{i}", "text": f"{text} {PLANTED}", "label": label, "categories": cats}) + "\n"
            for i, (text, label, cats) in enumerate(SUITE)
        )
    )
    evaluate_cfg = {
        "input": "data/dataset.parquet",
        "output_dir": "reports/evaluate",
        "models": {"tiny": {"source": str(lm)}},
        "k": 3,
        "bootstrap_resamples": 50,
        "hardware": {"device": "cpu", "batch_size": 16, "num_threads": 1},
        "suites": {
            "crisis": {
                "purpose": "a tiny crisis suite",
                "source": {"name": "crisis", "kind": "emosafe", "path": "data/suite.jsonl"},
            }
        },
        **evaluate_extra,
    }
    params = {"seed": 3, "prepare": {"sources": [{"name": "x", "kind": "emosafe", "path": "x"}]}}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params | {"evaluate": evaluate_cfg}, sort_keys=False))
    return path


def test_evaluate_cli_writes_reports_without_text(tmp_path: Path, lm_folder: Path, monkeypatch: Any) -> None:
    params = _project(tmp_path, lm_folder)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--params", str(params)])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "reports" / "evaluate").glob("*.json"))
    assert files == [f"tiny-{s}-{t}.json" for s in ("few_shot", "zero_shot") for t in ("taxonomy", "trinary")]
    for name in files:
        text = (tmp_path / "reports" / "evaluate" / name).read_text()
        assert PLANTED not in text and "end my life" not in text
        payload = json.loads(text)
        assert payload["splits"]["test"]["n"] == 10 and payload["data_hash"]
        assert payload["canaries"]["passed"] + payload["canaries"]["failed"] == 2
        card = scorecard_from_dict(payload, "test", name)  # the promotion gate can read it
        assert card.task == payload["task"] and card.macro_f1 is not None
        suite = payload["suites"]["crisis"]  # every model on every suite, with the suite's own figures
        assert suite["figures"]["n"] == 5 and suite["figures"]["support"] == {"safe": 2, "borderline": 1, "unsafe": 2}
        assert suite["metrics"]["n"] == 5 and suite["data_hash"] and suite["purpose"] == "a tiny crisis suite"
        recall = card.suites["crisis"].figures["unsafe_recall"]
        assert recall is not None and recall.low is not None  # with its interval, as the gate reads it
    taxonomy = json.loads((tmp_path / "reports/evaluate/tiny-few_shot-taxonomy.json").read_text())
    assert set(taxonomy["thresholds"]) == set(CATEGORIES)
    assert len(taxonomy["prompt"]["example_ids"]) == 3


def test_evaluate_on_external_corpus_via_table_source(tmp_path: Path, lm_folder: Path) -> None:
    from components.config import load_params
    from components.stages.evaluate import evaluate as run_evaluate

    source = {
        "name": "ext",
        "kind": "table",
        "path": "declared.csv",
        "text_columns": ["msg"],
        "label_column": "lab",
        "label_map": {"ok": {"label": "safe"}, "bad": {"label": "unsafe", "categories": ["violence_hate"]}},
    }
    params = _project(tmp_path, lm_folder, sources=[source], bootstrap_resamples=0)
    corpus = tmp_path / "corpus.csv"
    corpus.write_text(f"msg,lab\nhello there,ok\n{PLANTED} threat,bad\nnice day,ok\n")
    outcome = run_evaluate(load_params(params), tmp_path, settings=["zero_shot"], tasks=["trinary"], data=corpus)
    assert [p.relative_to(tmp_path).as_posix() for p in outcome.written] == [
        "reports/external/ext/tiny-zero_shot-trinary.json"  # outside the tracked reports/evaluate
    ]
    payload = json.loads(outcome.written[0].read_text())
    assert payload["splits"]["test"]["n"] == 3 and payload["test_source"] == "ext"
    assert PLANTED not in outcome.written[0].read_text()


def test_user_errors_fail_before_writing(tmp_path: Path, lm_folder: Path) -> None:
    from components.config import load_params
    from components.stages.evaluate import evaluate as run_evaluate

    params = load_params(_project(tmp_path, lm_folder))
    with pytest.raises(EvaluationError, match="unknown model"):
        run_evaluate(params, tmp_path, models=["nope"])
    with pytest.raises(EvaluationError, match=r"training run folder\(s\) .* not found"):
        run_evaluate(params, tmp_path, settings=["fine_tuned"])
    (tmp_path / "data" / "dataset.parquet").unlink()
    with pytest.raises(EmosafeError, match="dataset not found"):
        run_evaluate(params, tmp_path)
    assert not (tmp_path / "reports").exists()


def test_dvc_stage_lists_its_modules_inputs_and_params() -> None:
    from components.provenance import stage_code_deps

    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]
    assert set(stage_code_deps("evaluate")) <= set(stage["deps"])
    assert {"data/canaries.jsonl", "prompts/evaluate", "data/prepared/dataset.parquet"} <= set(stage["deps"])
    assert stage["params"] == ["seed", "evaluate"] and stage["cmd"].startswith("emosafe evaluate")
    assert stage["outs"] == [{"reports/evaluate": {"cache": False}}] and "metrics" not in stage  # report's headline


def test_fine_tuned_setting_evaluates_a_training_run(tmp_path: Path, lm_folder: Path) -> None:
    """A run folder as `emosafe train` writes it (LoRA adapter + head) goes through the same evaluation path."""
    from components.config import load_params
    from components.stages.evaluate import evaluate as run_evaluate
    from tests.fixtures.export_runs import save_tokenizer, tiny_run

    tiny_run(tmp_path, save_tokenizer(tmp_path / "tok"), task="trinary")
    params = load_params(_project(tmp_path, lm_folder, fine_tuned_models=["tiny"]))
    outcome = run_evaluate(params, tmp_path, settings=["fine_tuned"], tasks=["trinary"])
    assert [p.name for p in outcome.written] == ["tiny-fine_tuned-trinary.json"]
    text = outcome.written[0].read_text()
    assert PLANTED not in text
    payload = json.loads(text)
    assert payload["setting"] == "fine_tuned" and payload["splits"]["test"]["n"] == 10
    assert payload["model_info"]["parameters"] > 0


def test_the_gate_refuses_on_a_suite_floor_and_registry_show_lists_the_suite(
    tmp_path: Path, lm_folder: Path, monkeypatch: Any
) -> None:
    """A tiny model scored on a tiny suite by `emosafe evaluate`; registered; a floor just above its suite figure
    refuses it (naming the suite, figure and interval), the same floor at the figure passes, and `emosafe registry
    show` prints the suite figures it was registered with."""
    from components.config import load_params
    from components.config.register import GateConfig, SuiteFloors
    from components.errors import GateRefusedError
    from components.stages.evaluate import evaluate as run_evaluate
    from registry.core import Registry
    from registry.names import ModelRef
    from tests.fixtures.registry_runs import bound

    params = load_params(_project(tmp_path, lm_folder))
    written = run_evaluate(params, tmp_path, settings=["zero_shot"], tasks=["trinary"]).written
    report = json.loads(written[0].read_text())
    macro = report["suites"]["crisis"]["figures"]["macro_f1"]["low"]
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 4}))
    (run / "meta.json").write_text(json.dumps({"data_hash": report["data_hash"], "task": "trinary"}))
    lenient = GateConfig(default_f1_floor=0, trinary_macro_f1_floor=0, unsafe_recall_floor=0)

    def gate(floor: float) -> GateConfig:
        return lenient.model_copy(update={"suites": {"crisis": SuiteFloors(min_macro_f1=floor)}})

    figures = bound(report, run)  # the zero-shot figures stand in for an evaluation of this folder
    record, _ = Registry(tmp_path / "store", gate(min(1.0, macro + 0.01))).register(run, figures, project=tmp_path)
    ref = ModelRef(record.name, version=record.version)
    with pytest.raises(GateRefusedError, match=rf"suite crisis \(n=5\) macro_f1 ci_low {macro:.3f} < floor"):
        Registry(tmp_path / "store", gate(min(1.0, macro + 0.01))).promote(ref, "production")
    event, decision = Registry(tmp_path / "store", gate(macro)).promote(ref, "production", "at the floor")
    assert event is not None and decision is not None and decision.promote
    monkeypatch.setenv("EMOSAFE_REGISTRY", str(tmp_path / "store"))
    shown = CliRunner().invoke(
        app, ["registry", "show", f"{record.name}@production", "--params", str(tmp_path / "params.yaml")]
    )
    assert shown.exit_code == 0, shown.output
    suites = json.loads(shown.output)["metrics"]["suites"]
    assert suites["crisis"]["n"] == 5 and suites["crisis"]["figures"]["macro_f1"]["low"] == macro


def test_an_operating_point_policy_is_fitted_on_val_and_applied_everywhere(tmp_path: Path, lm_folder: Path) -> None:
    """`evaluate.operating_point`: thresholds fitted on val for both tasks, in the report (policy, target, the val
    point, the curve per split); the test split, the suite and the canaries are decided with them."""
    from components.config import parse_params
    from components.stages.evaluate import evaluate as run_evaluate

    path = _project(tmp_path, lm_folder, operating_point={"policy": "max_recall_at_flag_rate", "max_flag_rate": 0.5})
    raw = yaml.safe_load(path.read_text())
    raw["export"] = {"thresholds_report": "reports/evaluate/{model}-fine_tuned-{task}.json"}
    written = run_evaluate(parse_params(raw), tmp_path, settings=["zero_shot"]).written
    reports = {json.loads(p.read_text())["task"]: json.loads(p.read_text()) for p in written}
    trinary = reports["trinary"]
    point = trinary["operating_point"]
    assert point["policy"] == "max_recall_at_flag_rate" and point["target"] == {"max_flag_rate": 0.5}
    assert set(point["thresholds"]) == {"unsafe", "flagged"}
    assert trinary["thresholds"] == {k: {"threshold": v} for k, v in point["thresholds"].items()}
    val = point["points"]["trinary"]
    assert point["feasible"]["trinary"] == (val["flag_rate"] <= 0.5)
    assert point["applied"]["val"] == {"recall": val["recall"], "flag_rate": val["flag_rate"]}
    for split in ("val", "test"):
        curve = point["curve"][split]
        assert curve and all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(curve))
    # the val split's unsafe recall in the metrics is the policy's point: the thresholds were applied
    assert trinary["splits"]["val"]["per_class"]["unsafe"]["recall"]["value"] == pytest.approx(val["recall"])
    taxonomy = reports["taxonomy"]
    assert set(taxonomy["operating_point"]["thresholds"]) == set(CATEGORIES)
    assert (
        set(taxonomy["operating_point"]["feasible"]) == set(CATEGORIES) and "curve" not in taxonomy["operating_point"]
    )
