"""The end-of-run summary: per-model rows with CIs from evaluation reports, shipped-file rows from export proofs."""

from __future__ import annotations

from components.report.summary import export_row, gate_rows, model_rows, where_lines


def report(model: str, setting: str, task: str, f1: float) -> dict:
    estimate = {"value": f1, "low": f1 - 0.05, "high": f1 + 0.05}
    test = {"n": 108, "accuracy": estimate, "macro_f1": estimate, "critical": {"recall": estimate, "support": 9}}
    return {"model": model, "setting": setting, "task": task, "splits": {"test": test}, "canaries": {"failed": 2}}


def test_model_rows_are_sorted_and_carry_intervals() -> None:
    rows = model_rows([report("b", "zero_shot", "trinary", 0.3), report("a", "fine_tuned", "trinary", 0.8)])
    assert [(r.model, r.setting) for r in rows] == [("a", "fine_tuned"), ("b", "zero_shot")]
    assert rows[0].macro_f1 == "0.800 [0.750, 0.850]" and rows[0].critical_recall == "0.800 [0.750, 0.850]"
    assert rows[1].canaries_failed == 2 and rows[1].n == 108


def test_missing_estimates_show_a_dash() -> None:
    bare = {"model": "m", "setting": "s", "task": "taxonomy", "splits": {"test": {"n": 3}}}
    row = model_rows([bare])[0]
    assert (row.accuracy, row.macro_f1, row.critical_recall, row.canaries_failed) == ("-", "-", "-", 0)


def test_export_row() -> None:
    quantization = {"quantized": {"macro_f1_drop": 0.002, "label_agreement": 0.995}, "passed": True}
    row = export_row("m-trinary", {"max_abs_diff": 1e-5, "passed": True}, quantization, 3 * 2**20)
    assert (row.int8_mb, row.parity_passed, row.int8_passed, row.int8_label_agreement) == (3.0, True, True, 0.995)


def test_gate_rows_read_the_ship_report_and_where_lines_mark_missing_reports() -> None:
    ship = {
        "tasks": [
            {
                "task": "trinary",
                "name": "emosafe-trinary",
                "version": 2,
                "status": "refused",
                "moved": False,
                "reasons": ["trinary macro-F1 ci_low 0.449 < floor 0.500"],
            }
        ]
    }
    (row,) = gate_rows(ship)
    assert (row.name, row.version, row.status, row.moved) == ("emosafe-trinary", 2, "refused", False)
    assert row.reasons == ("trinary macro-F1 ci_low 0.449 < floor 0.500",) and gate_rows({}) == []
    lines = where_lines({"Data Docs": "d/index.html", "Drift report": "r.html"}, {"Data Docs": True})
    assert lines == ["Data Docs: d/index.html", "Drift report: r.html (not written yet)"]
