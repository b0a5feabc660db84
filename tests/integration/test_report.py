"""The scaling report: rows and tables from synthetic evaluate reports, the CI comparison, PNGs, clear errors,
the W&B offline run, and real `dvc metrics show` / `dvc plots show` / `dvc metrics diff` on a copy of the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import parse_params
from components.errors import EmosafeError, MetricsFormatError
from components.release.scorecard import Estimate
from components.report.scaling import compare_settings, markdown, metrics_summary, plot_records, row_from_report
from components.stages.report import report
from tests.fixtures.common import REPO, VENV_BIN, repo_ignore

CANARY = "CANARY-do-not-copy-7f3a"  # planted in the inputs; must reach no output
TRINARY = ("safe", "borderline", "unsafe")


def ci(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "low": low, "high": high}


def evaluation(
    model: str, setting: str, task: str, macro: tuple[float, float, float], params: float = 56.6, rss: float = 1000.0
) -> dict[str, Any]:
    """An evaluate-stage report in the real shape (splits.test ..., model_info, inference, canaries)."""
    names = TRINARY if task == "trinary" else ("violence_hate", "suicide_self_harm")
    per_class = {
        name: {"f1": ci(round(0.1 * k, 3), round(0.05 * k, 3), round(0.15 * k, 3)), "support": 10}
        for k, name in enumerate(names, start=1)
    }
    test = {
        "n": 108,
        "accuracy": ci(0.7, 0.6, 0.8),
        "macro_f1": ci(*macro),
        "micro_f1": ci(0.71, 0.61, 0.81),
        "per_class": per_class,
        "critical": {"recall": ci(0.75, 0.5, 1.0), "support": 9},
    }
    return {
        "model": model,
        "setting": setting,
        "task": task,
        "splits": {"test": test, "val": test},
        "model_info": {"params_millions": params},
        "inference": {"peak_rss_mb": rss, "seconds": 1.0},
        "canaries": {"failed": 2, "passed": 18, "results": [{"id": "risk-01", "text": CANARY}]},
    }


def place(folder: Path, *reports: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for payload in reports:
        name = f"{payload['model']}-{payload['setting']}-{payload['task']}.json"
        (folder / name).write_text(json.dumps(payload), encoding="utf-8")


LADDER = (
    evaluation("smollm2-8l", "zero_shot", "trinary", (0.167, 0.129, 0.199)),
    evaluation("smollm2-8l", "fine_tuned", "trinary", (0.623, 0.527, 0.706), rss=1181.0),
    evaluation("smollm2-30l", "fine_tuned", "trinary", (0.852, 0.784, 0.916), params=134.5, rss=1651.0),
    evaluation("smollm2-30l", "zero_shot", "trinary", (0.80, 0.70, 0.86), params=134.5, rss=1500.0),
    evaluation("smollm2-8l", "fine_tuned", "taxonomy", (0.31, 0.18, 0.41)),
)


SOURCE = {"name": "s", "kind": "emosafe", "path": "s.jsonl"}


def params(root: Path, wandb: bool = False) -> Any:
    return parse_params({"prepare": {"sources": [SOURCE]}, "report": {"wandb": {"enabled": wandb, "dir": str(root)}}})


def test_rows_table_and_metrics_carry_the_reported_numbers() -> None:
    rows = [row_from_report(payload, "x.json") for payload in LADDER]
    first = rows[0]
    assert (first.model, first.setting, first.task, first.params_millions, first.peak_rss_mb, first.n) == (
        "smollm2-8l",
        "zero_shot",
        "trinary",
        56.6,
        1000.0,
        108,
    )
    assert first.macro_f1 == Estimate(0.167, 0.129, 0.199) and first.critical_recall == Estimate(0.75, 0.5, 1.0)
    assert first.per_category["unsafe"] == Estimate(0.3, 0.15, 0.45)
    assert (first.canaries_failed, first.canaries_total) == (2, 20)
    table = markdown(rows, compare_settings(rows))
    assert (
        "| trinary | fine_tuned | smollm2-30l | 134.5 | 1651 | 108 | 0.700 [0.600, 0.800] | 0.852 [0.784, 0.916]"
        in table
    )
    assert "| fine_tuned | smollm2-8l | 0.100 [0.050, 0.150] | 0.200 [0.100, 0.300] |" in table  # taxonomy per-category
    assert table.index("| trinary | zero_shot") < table.index("| trinary | fine_tuned") < table.index("| taxonomy |")
    metrics = metrics_summary(rows, compare_settings(rows))
    assert metrics["models"]["smollm2-30l"]["fine_tuned"]["trinary"] == {
        "macro_f1": 0.852,
        "accuracy": 0.7,
        "critical_recall": 0.75,
    }
    records = plot_records(rows)
    assert len(records["f1_vs_params"]) == 5 and len(records["per_category"]) == 4 * 3 + 2
    assert {r["series"] for r in records["f1_vs_params"]} == {
        "trinary / zero_shot",
        "trinary / fine_tuned",
        "taxonomy / fine_tuned",
    }


def with_suite(payload: dict[str, Any], recall: tuple[float, float, float]) -> dict[str, Any]:
    figures = {"n": 112, "unsafe_recall": ci(*recall), "unsafe_flagged": ci(0.9, 0.8, 0.97), "unsafe_f1": None}
    figures |= {"safe_flag_rate": ci(0.1, 0.0, 0.25), "macro_f1": ci(0.5, 0.4, 0.6)}
    return payload | {"suites": {"crisis": {"purpose": "p", "data_hash": "h", "figures": figures}}}


def test_suites_get_their_own_table_and_summary_rows() -> None:
    from components.report.suite_table import suite_markdown
    from components.report.summary import suite_rows

    payloads = [with_suite(LADDER[1], (0.6, 0.45, 0.75)), with_suite(LADDER[4], (0.3, 0.2, 0.4)), LADDER[0]]
    table = suite_markdown([row_from_report(payload, "x.json") for payload in payloads])
    assert "### crisis" in table and table.count("| 112 |") == 2  # the row without suites is not listed
    assert "| trinary | fine_tuned | smollm2-8l | 112 | 0.600 [0.450, 0.750] | 0.900 [0.800, 0.970] | - |" in table
    assert suite_markdown([row_from_report(LADDER[0], "x.json")]) == ""
    rows = suite_rows(payloads)
    assert [(r.task, r.unsafe_recall) for r in rows] == [
        ("taxonomy", "0.300 [0.200, 0.400]"),
        ("trinary", "0.600 [0.450, 0.750]"),
    ]


def with_point(payload: dict[str, Any], policy: str, applied: tuple[float, float]) -> dict[str, Any]:
    curve = [[0.0, 0.2], [0.1, 0.6], [0.3, 0.9], [1.0, 1.0]]
    point = {"policy": policy, "curve": {"test": curve, "val": curve}}
    return payload | {"operating_point": point | {"applied": {"test": {"flag_rate": applied[0], "recall": applied[1]}}}}


def test_trinary_operating_points_get_a_curve_a_plot_and_a_table(tmp_path: Path) -> None:
    from components.report.plots import operating_points_png
    from components.report.suite_table import operating_markdown

    payloads = [
        with_point(LADDER[1], "default", (0.3, 0.9)),
        with_point(LADDER[2], "max_recall_at_flag_rate", (0.1, 0.6)),
        LADDER[0],  # an older report without an operating point: no curve, not in the table
    ]
    rows = [row_from_report(payload, "x.json") for payload in payloads]
    assert rows[1].curve[1] == (0.1, 0.6) and rows[1].applied == (0.1, 0.6) and rows[2].curve == ()
    table = operating_markdown(rows)
    assert "| fine_tuned | smollm2-30l | max_recall_at_flag_rate | 0.600 | 0.100 |" in table
    assert "smollm2-8l | default | 0.900 | 0.300 |" in table and "zero_shot" not in table
    assert operating_markdown([rows[2]]) == ""
    records = plot_records(rows)["operating_points"]
    assert len(records) == 8 and {r["series"] for r in records} == {
        "smollm2-8l / fine_tuned",
        "smollm2-30l / fine_tuned",
    }
    png = operating_points_png(rows)
    assert png.startswith(b"\x89PNG") and png != operating_points_png([rows[2]])  # drawn, not the "no data" panel
    with pytest.raises(MetricsFormatError, match=r"operating_point.curve.test\[0\]"):
        row_from_report(LADDER[1] | {"operating_point": {"curve": {"test": [[0.1]]}}}, "x.json")


def test_comparison_says_whether_the_cis_are_disjoint() -> None:
    rows = [row_from_report(payload, "x.json") for payload in LADDER]
    found = {(c.model, c.task): c for c in compare_settings(rows)}
    assert set(found) == {("smollm2-8l", "trinary"), ("smollm2-30l", "trinary")}  # taxonomy has no zero-shot
    small, large = found["smollm2-8l", "trinary"], found["smollm2-30l", "trinary"]
    assert small.disjoint is True and small.delta == pytest.approx(0.456) and "CIs disjoint" in small.verdict
    assert large.disjoint is False and large.delta == pytest.approx(0.052) and "CIs overlap" in large.verdict
    assert "difference +0.456: fine-tuned higher, CIs disjoint" in markdown(rows, list(found.values()))


def test_stage_writes_report_plots_and_provenance(tmp_path: Path) -> None:
    place(tmp_path / "reports" / "evaluate", *LADDER)
    outcome = report(params(tmp_path), tmp_path)
    out = tmp_path / "reports" / "scaling"
    assert outcome.summary["reports"] == 5 and outcome.summary["comparisons_disjoint"] == 1
    assert (out / "plots" / "operating_points.png").is_file()  # drawn as "no data": these reports have no curve
    assert json.loads((out / "plots" / "operating_points.json").read_text()) == []
    for name in ("f1_vs_params", "f1_vs_memory", "per_category"):
        png = (out / "plots" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
        assert json.loads((out / "plots" / f"{name}.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["comparisons"]["smollm2-8l.trinary.fine_tuned_vs_zero_shot"]["ci_disjoint"] is True
    meta = json.loads((out / "meta.json").read_text())
    source = tmp_path / "reports" / "evaluate" / "smollm2-8l-zero_shot-trinary.json"
    import hashlib

    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert meta["inputs"]["reports/evaluate/smollm2-8l-zero_shot-trinary.json"] == digest
    assert len(meta["params_hash"]) == 64 and len(meta["code"]["code_hash"]) == 64
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert CANARY.encode() not in written
    first = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    report(params(tmp_path), tmp_path)
    assert first == {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}, "report is not byte-stable"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"model": "m", "setting"', "smollm2-8l-zero_shot-trinary.json: not valid JSON (line 1)"),
        ("[1, 2]", "top level must be an object"),
        ("DROP_MACRO", "splits.test.macro_f1: missing"),
        ("RENAMED", "model/setting/task inside say smollm2-8l-fine_tuned-trinary.json"),
    ],
)
def test_a_bad_report_fails_naming_the_file_and_writes_nothing(tmp_path: Path, content: str, message: str) -> None:
    folder = tmp_path / "reports" / "evaluate"
    place(folder, LADDER[1])
    bad = evaluation("smollm2-8l", "zero_shot", "trinary", (0.1, 0.0, 0.2))
    if content == "DROP_MACRO":
        del bad["splits"]["test"]["macro_f1"]
        content = json.dumps(bad)
    elif content == "RENAMED":
        content = json.dumps(LADDER[1])
    (folder / "smollm2-8l-zero_shot-trinary.json").write_text(content)
    with pytest.raises(MetricsFormatError, match=r"smollm2-8l-zero_shot-trinary\.json") as error:
        report(params(tmp_path), tmp_path)
    assert message in str(error.value)
    assert not (tmp_path / "reports" / "scaling").exists()


def test_an_empty_evaluate_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "reports" / "evaluate").mkdir(parents=True)
    with pytest.raises(EmosafeError, match=r"reports/evaluate: no evaluation reports .*run `emosafe evaluate`"):
        report(params(tmp_path), tmp_path)


def test_output_inside_input_is_refused_at_load() -> None:
    with pytest.raises(EmosafeError, match="output_dir must not be"):
        parse_params({"prepare": {"sources": [SOURCE]}, "report": {"input_dir": "r", "output_dir": "r/scaling"}})


def test_wandb_offline_run_holds_the_table_and_the_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.delenv("WANDB_DIR", raising=False)
    place(tmp_path / "reports" / "evaluate", *LADDER)
    outcome = report(params(tmp_path, wandb=True), tmp_path)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and outcome.summary["wandb_run_dir"].startswith(str(runs[0]))
    table = json.loads(next((runs[0] / "files" / "media" / "table" / "report").glob("scaling*.table.json")).read_text())
    assert len(table["data"]) == 5 and "macro_f1" in table["columns"]
    images = {p.name.split("_")[0] for p in (runs[0] / "files" / "media" / "images" / "report").glob("*.png")}
    assert len(list((runs[0] / "files" / "media" / "images" / "report").glob("*.png"))) == 4, (
        images
    )  # the four figures, operating points included
    log = _settled(next(runs[0].glob("run-*.wandb")), b"report/scaling")
    assert b"scaling-report" in log and b"report/macro_f1" not in log
    assert CANARY.encode() not in log and CANARY.encode() not in json.dumps(table).encode()


def _settled(path: Path, marker: bytes, seconds: float = 20.0) -> bytes:
    """The offline log, once the W&B service has flushed it (it may still be writing when finish() returns)."""
    import time

    deadline = time.monotonic() + seconds
    while marker not in (data := path.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker in data, f"{path}: W&B never wrote {marker!r}"
    return data


# --- the DVC stage on a copy of the project ------------------------------------------------------------------------
SKIP = repo_ignore("data", "models", "exports", "logs", "reports", "benchmarks")


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def run(cwd: Path, *args: str) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=os.environ | GIT_IDENTITY)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_dvc_stage_metrics_show_plots_show_and_metrics_diff(tmp_path: Path) -> None:
    root = tmp_path / "emosafe"
    shutil.copytree(REPO, root, ignore=SKIP)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["report"]["wandb"]["enabled"] = False
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    place(root / "reports" / "evaluate", *LADDER)
    dvc = str(VENV_BIN / "dvc")
    run(root, "git", "init", "-q")
    assert "Running stage 'report'" in run(root, dvc, "repro", "--single-item", "report")
    shown = run(root, dvc, "metrics", "show")
    # One screen: the shipped model's headline (export.model = smollm2-30l), not the whole ladder (#22)
    assert "reports/scaling/headline.json" in shown and "trinary.f1" in shown and "0.852" in shown
    assert "0.623" not in shown and max(len(line) for line in shown.splitlines()) <= 120, shown
    run(root, dvc, "plots", "show", "-o", "plots_html")
    html = (root / "plots_html" / "index.html").read_text()
    assert "Macro-F1 (test, 95% CI) vs parameters" in html and "suicide_self_harm" in html and ".png" in html
    run(root, "git", "add", "reports", "dvc.yaml", "dvc.lock", "params.yaml", ".dvc/plots")
    run(root, "git", "commit", "-q", "-m", "report")
    place(root / "reports" / "evaluate", evaluation("smollm2-30l", "fine_tuned", "trinary", (0.7, 0.6, 0.8)))
    run(root, dvc, "repro", "--single-item", "report")
    diff = run(root, dvc, "metrics", "diff")
    assert "trinary.f1" in diff and "0.852" in diff and "0.7" in diff and len(diff.splitlines()) <= 5, diff
    run(root, dvc, "plots", "diff", "HEAD", "-o", "diff_html")
    assert "workspace" in (root / "diff_html" / "index.html").read_text()
