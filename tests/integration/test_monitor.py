"""`emosafe monitor` end to end on generated production logs: alarms on a known shift, quiet on the reference,
INSUFFICIENT_SAMPLES on tiny logs, clear errors on bad lines, alert payloads and reports free of message text."""

from __future__ import annotations

import http.server
import json
import logging
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from components.config import parse_params
from components.errors import EmosafeError, LogLineError
from components.schema import CATEGORIES
from monitoring.alerts import Alert, PrefectEventSink
from monitoring.history import load_history
from monitoring.log import read_log
from monitoring.monitor import MONITOR_EXIT_ALARM, monitor
from tests.fixtures.common import VENV_BIN
from tests.fixtures.monitor_logs import write_log, write_reference

CANARY = "CANARY-7f3a I want to disappear tonight"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
REFERENCE = {"safe": 0.6, "borderline": 0.2, "unsafe": 0.2}
TAXONOMY = dict(zip(CATEGORIES, (0.05, 0.03, 0.04, 0.02, 0.08, 0.20), strict=True))


def params(tmp_path: Path, **monitor: Any) -> Any:
    section = {"history_db": str(tmp_path / "history.db"), "output_dir": str(tmp_path / "reports"), **monitor}
    return parse_params({"prepare": {"sources": [{"name": "x", "kind": "emosafe", "path": "x"}]}, "monitor": section})


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "params.yaml").write_text(
        "prepare: {sources: [{name: x, kind: emosafe, path: x}]}\n"
        f"monitor: {{history_db: {tmp_path / 'h.db'}, output_dir: {tmp_path / 'out'}}}\n"
    )
    command = [str(VENV_BIN / "emosafe"), "monitor", *args]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_cli_quiet_on_the_reference_and_alarms_on_a_known_shift(tmp_path: Path) -> None:
    reference = write_reference(tmp_path / "ref.json")
    same = write_log(tmp_path / "same.jsonl", 1500, REFERENCE, seed=1)
    quiet = run_cli(tmp_path, "--log", str(same), "--reference", str(reference))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("NO_DRIFT_DETECTED")
    shifted = write_log(tmp_path / "shift.jsonl", 1500, {"safe": 0.5, "borderline": 0.3, "unsafe": 0.2}, seed=2)
    alarm = run_cli(tmp_path, "--log", str(shifted), "--reference", str(reference))
    assert alarm.returncode == MONITOR_EXIT_ALARM == 3, alarm.stderr
    assert alarm.stdout.startswith("ALARM") and "borderline_rate" in alarm.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verdict"] == "ALARM" and len(report["provenance"]["inputs"]) == 2
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "ALARM" in html
    for output in (quiet.stdout + quiet.stderr, alarm.stdout + alarm.stderr, html, json.dumps(report)):
        assert "CANARY" not in output


def test_cli_insufficient_samples_exits_zero_with_a_clear_message(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        "--log",
        str(write_log(tmp_path / "few.jsonl", 120, REFERENCE, seed=3)),
        "--reference",
        str(write_reference(tmp_path / "ref.json")),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("INSUFFICIENT_SAMPLES") and "NOT a 'no drift' result" in result.stdout


def test_cli_bad_line_names_file_line_and_rule_without_quoting_it(tmp_path: Path) -> None:
    log = write_log(tmp_path / "bad.jsonl", 5, REFERENCE, seed=4)
    with log.open("a") as handle:
        handle.write(
            json.dumps(
                {
                    "id": "x",
                    "timestamp": "2026-03-01T00:00:00Z",
                    "model": "emosafe-trinary",
                    "version": "3",
                    "task": "trinary",
                    "label": CANARY,
                }
            )
            + "\n"
        )
    result = run_cli(tmp_path, "--log", str(log), "--reference", str(write_reference(tmp_path / "ref.json")))
    assert result.returncode == 2
    assert f"{log} line 6, field 'label': must be one of" in result.stderr and "CANARY" not in result.stderr


@pytest.mark.parametrize(
    ("line", "field", "rule"),
    [
        ("{not json", "(line)", "not valid JSON"),
        ('["a list"]', "(line)", "JSON object"),
        (
            '{"id": "a", "timestamp": "2026-03-01T00:00:00", "model": "m", "version": "1", "task": "trinary", '
            '"label": "safe"}',
            "timestamp",
            "time zone",
        ),
        (
            '{"id": "a", "timestamp": "2026-03-01T00:00:00Z", "model": "m", "version": "1", "task": "taxonomy", '
            '"categories": ["weather"]}',
            "categories",
            "unknown category",
        ),
        (
            '{"id": "a", "timestamp": "2026-03-01T00:00:00Z", "model": "m", "version": "1", "task": "taxonomy"}',
            "categories",
            "required",
        ),
        (
            '{"timestamp": "2026-03-01T00:00:00Z", "model": "m", "version": "1", "task": "trinary", "label": "safe"}',
            "id",
            "required",
        ),
    ],
)
def test_bad_log_lines(tmp_path: Path, line: str, field: str, rule: str) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(LogLineError, match=rule) as caught:
        read_log(path)
    assert caught.value.line == 1 and caught.value.field == field


@pytest.mark.parametrize("field", ["label", "task", "categories"])
def test_a_bad_log_value_is_never_echoed_even_one_word(tmp_path: Path, field: str) -> None:
    """A one-word value in a vocabulary field once came back in the error (hardening, item 9)."""
    record = {"id": "a", "timestamp": "2026-03-01T00:00:00Z", "model": "m", "version": "1", "task": "trinary"}
    record |= {"label": "safe", field: ["zebrasecret"] if field == "categories" else "zebrasecret"}
    if field == "categories":
        record["task"] = "taxonomy"
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(LogLineError) as caught:
        read_log(path)
    assert "zebrasecret" not in str(caught.value) and caught.value.field == field


def test_a_deeply_nested_log_line_and_a_list_rate_are_clear_errors(tmp_path: Path) -> None:
    """RecursionError and a TypeError traceback before (hardening, item 12)."""
    from components.drift.reference import parse_reference

    path = tmp_path / "log.jsonl"
    path.write_text("[" * 100_000 + "\n")
    with pytest.raises(LogLineError, match="nested too deeply"):
        read_log(path)
    raw = json.loads(write_reference(tmp_path / "ref.json").read_text()) | {"borderline_rate": [0.2]}
    with pytest.raises(ValueError, match="borderline_rate': must be a number"):
        parse_reference(raw, "ref.json")


def test_bad_bytes_and_bad_json_name_the_line_never_the_text(tmp_path: Path) -> None:
    good = {"id": "a", "timestamp": "2026-03-01T00:00:00Z", "model": "m", "version": "1", "task": "trinary"}
    line = json.dumps(good | {"label": "safe"}).encode()
    path = tmp_path / "log.jsonl"
    for bad, words in (
        (b'{"id": "secret \xff words"}', "not UTF-8 text at byte 15"),
        (b'{"id": "secret words",', "not valid JSON at column 2[2-4]"),
        (b"NaN", "not valid JSON"),
    ):
        path.write_bytes(line + b"\n" + bad + b"\n")
        with pytest.raises(LogLineError, match=words) as caught:
            read_log(path)
        assert caught.value.line == 2 and "secret" not in str(caught.value)


def test_model_version_mismatch_is_an_error_before_any_write(tmp_path: Path) -> None:
    log = write_log(tmp_path / "other.jsonl", 300, REFERENCE, seed=5, version="4")
    with pytest.raises(EmosafeError, match=r"no prediction of emosafe-trinary@3 .* found emosafe-trinary@4 \(300\)"):
        monitor(params(tmp_path), log, write_reference(tmp_path / "ref.json"))
    assert not (tmp_path / "reports").exists() and not (tmp_path / "history.db").exists()


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    _Receiver.bodies = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_alerts_reach_log_and_webhook_with_numbers_only(
    tmp_path: Path, webhook: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = write_log(tmp_path / "shift.jsonl", 1000, {"safe": 0.45, "borderline": 0.35, "unsafe": 0.2}, seed=6)
    config = params(tmp_path, alerts={"sinks": ["log", "webhook", "prefect"], "webhook_url": webhook})
    with caplog.at_level(logging.INFO):
        result = monitor(config, log, write_reference(tmp_path / "ref.json"))
    assert result.verdict == "ALARM" and result.alert_failures == ()
    payloads = [json.loads(body) for body in _Receiver.bodies]
    assert len(payloads) == 2 and {p["window"]["index"] for p in payloads} == {0, 1}
    payload = payloads[0]
    assert payload["model"] == "emosafe-trinary" and payload["version"] == "3" and payload["window"]["n"] == 500
    labels = next(s for s in payload["signals"] if s["name"] == "labels")
    assert labels["alarm"] and labels["effect_name"] == "cohens_w" and labels["effect"] > 0.1
    assert {"psi", "js_distance_base2", "p_adjusted"} <= set(labels)
    everything = [b.decode() for b in _Receiver.bodies] + [caplog.text]
    everything += [p.read_text() for p in (tmp_path / "reports").rglob("*.*")]
    everything.append((tmp_path / "history.db").read_bytes().decode("latin-1"))
    assert "drift alarm emosafe-trinary@3" in caplog.text
    assert all("CANARY" not in text for text in everything)


def test_the_webhook_token_stays_out_of_reports_and_logs(
    tmp_path: Path, webhook: str, caplog: pytest.LogCaptureFixture
) -> None:
    """report.json provenance once held `monitor.alerts.webhook_url` verbatim (hardening, item 8)."""
    log = write_log(tmp_path / "shift.jsonl", 500, {"safe": 0.45, "borderline": 0.35, "unsafe": 0.2}, seed=6)
    url = f"{webhook}/T0KEN-s3cr3t?sig=ab12cd"
    config = params(tmp_path, alerts={"sinks": ["log", "webhook"], "webhook_url": url})
    with caplog.at_level(logging.INFO):
        result = monitor(config, log, write_reference(tmp_path / "ref.json"))
    assert result.verdict == "ALARM" and _Receiver.bodies  # the alarm still reached the hook
    written = [p.read_text() for p in (tmp_path / "reports").rglob("*.*")] + [caplog.text]
    assert written and all("T0KEN-s3cr3t" not in text and "ab12cd" not in text for text in written)
    report = json.loads(next((tmp_path / "reports").rglob("report.json")).read_text())
    assert (
        report["provenance"]["params"]["monitor"]["alerts"]["webhook_url"] == f"{webhook.rsplit('/', 1)[0]}/<redacted>"
    )


def test_webhook_failure_is_reported_not_hidden(tmp_path: Path) -> None:
    log = write_log(tmp_path / "shift.jsonl", 500, {"safe": 0.45, "borderline": 0.35, "unsafe": 0.2}, seed=7)
    config = params(tmp_path, alerts={"sinks": ["webhook"], "webhook_url": "http://127.0.0.1:9/none"})
    result = monitor(config, log, write_reference(tmp_path / "ref.json"))
    assert result.verdict == "ALARM" and len(result.alert_failures) == 1 and "webhook" in result.alert_failures[0]


def test_prefect_sink_emits_an_event_only_inside_a_flow_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect.context
    import prefect.events

    emitted: list[dict[str, Any]] = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kwargs: emitted.append(kwargs))
    from components.drift.statistics import Verdict, WindowAssessment

    alert = Alert("emosafe-trinary", "3", {"index": 0}, WindowAssessment(Verdict.ALARM, 500, (), "x"), "r.json")
    PrefectEventSink().send(alert)
    assert emitted == []  # not inside a flow run
    monkeypatch.setattr(prefect.context.FlowRunContext, "get", classmethod(lambda cls: object()))
    PrefectEventSink().send(alert)
    assert emitted[0]["event"] == "emosafe.monitor.drift.alarm"
    assert emitted[0]["resource"] == {"prefect.resource.id": "emosafe.model.emosafe-trinary.3"}


def test_time_windows_taxonomy_and_history_upsert(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    log = tmp_path / "taxonomy.jsonl"
    with log.open("w") as handle:
        for i in range(900):
            cats = [c for c, p in TAXONOMY.items() if rng.random() < p]
            stamp = (T0 + timedelta(minutes=2 * i)).isoformat()
            handle.write(
                json.dumps(
                    {
                        "id": str(i),
                        "timestamp": stamp,
                        "model": "emosafe-taxonomy",
                        "version": "1",
                        "task": "taxonomy",
                        "categories": cats,
                        "scores": {},
                    }
                )
                + "\n"
            )
    reference = tmp_path / "ref.json"
    reference.write_text(
        json.dumps(
            {
                "model": "emosafe-taxonomy",
                "version": "1",
                "task": "taxonomy",
                "n": 4000,
                "category_prevalence": TAXONOMY,
            }
        )
    )
    config = params(tmp_path, window={"by": "time", "seconds": 43_200})
    result = monitor(config, log, reference)
    assert [w["n"] for w in result.windows] == [360, 360, 180]
    assert [w["verdict"] for w in result.windows][-1] == "INSUFFICIENT_SAMPLES"
    assert result.windows[0]["start"] == "2026-03-01T00:00:00Z" and result.windows[0]["end"] == "2026-03-01T12:00:00Z"
    assert len(result.windows[0]["signals"]) == 6 and "category_prevalence" in result.windows[0]
    monitor(config, log, reference)  # re-run: windows are updated, not duplicated
    history = load_history(tmp_path / "history.db", "emosafe-taxonomy", "1")
    assert [row.n for row in history] == [360, 360, 180]
    with sqlite3.connect(tmp_path / "history.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_alarm_is_sent_even_when_the_history_cannot_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A history_db that is a folder once aborted the run before any alert (hardening, item 1)."""
    (tmp_path / "history-is-a-folder").mkdir()
    log = write_log(tmp_path / "shift.jsonl", 500, {"safe": 0.45, "borderline": 0.35, "unsafe": 0.2}, seed=6)
    config = params(tmp_path, history_db=str(tmp_path / "history-is-a-folder"), alerts={"sinks": ["log"]})
    with caplog.at_level(logging.INFO):
        result = monitor(config, log, write_reference(tmp_path / "ref.json"))
    assert result.verdict == "ALARM" and "drift alarm emosafe-trinary@3" in caplog.text
    assert any(f.startswith("bookkeeping:") for f in result.alert_failures)


def test_a_shorter_run_leaves_no_stale_window_files(tmp_path: Path) -> None:
    """A second, shorter run into the same output once kept the first run's extra windows (hardening, item 5)."""
    reference = write_reference(tmp_path / "ref.json")
    probs = {"safe": 0.6, "borderline": 0.25, "unsafe": 0.15}
    monitor(params(tmp_path), write_log(tmp_path / "long.jsonl", 1500, probs, seed=1), reference)
    assert len(list((tmp_path / "reports" / "windows").glob("*.json"))) == 3
    monitor(params(tmp_path), write_log(tmp_path / "short.jsonl", 500, probs, seed=2), reference)
    assert len(list((tmp_path / "reports" / "windows").glob("*.json"))) == 1
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert len(report["windows"]) == 1


def test_since_last_reads_only_what_arrived_after_the_history(tmp_path: Path) -> None:
    """#22: the hourly run re-read the whole log every hour. `--since last` resumes at the history's last window
    (its start while it can still grow, after its end once complete), and with nothing new writes nothing."""
    log, reference = tmp_path / "preds.jsonl", write_reference(tmp_path / "ref.json")
    write_log(log, 1200, REFERENCE, seed=1)  # windows of 500: 500, 500 and a partial 200
    first = monitor(params(tmp_path), log, reference, incremental=True)
    assert (
        first.predictions == 1200 and first.resumed_from is None and [w["n"] for w in first.windows] == [500, 500, 200]
    )
    stated = json.loads((tmp_path / "reports" / "report.json").read_text())["sensitivity"]
    assert (stated["window_n"], stated["reference_n"], stated["power"]) == (500, 5000, 0.8)
    assert first.sensitivity is not None and first.sensitivity.startswith("Detectable with 80% power (window 500")
    assert "smaller shifts are likely missed" in (tmp_path / "reports" / "report.html").read_text()
    write_log(log, 400, REFERENCE, seed=2, offset=1200)
    second = monitor(params(tmp_path), log, reference, incremental=True)
    assert second.resumed_from == first.windows[2]["start"]  # the partial window grows
    assert second.predictions == 600 and [w["n"] for w in second.windows] == [500, 100]
    rows = load_history(tmp_path / "history.db", "emosafe-trinary")
    assert [r.n for r in rows] == [500, 500, 500, 100]  # the partial window was replaced, not duplicated
    write_log(log, 400, REFERENCE, seed=3, offset=1600)  # completes the last window: 500
    third = monitor(params(tmp_path), log, reference, incremental=True)
    assert third.predictions == 500 and [w["n"] for w in third.windows] == [500]
    before = (tmp_path / "reports" / "report.json").read_bytes()
    quiet = monitor(params(tmp_path), log, reference, incremental=True)
    assert quiet.predictions == 0 and quiet.verdict == "INSUFFICIENT_SAMPLES" and "no new prediction" in quiet.summary
    assert (tmp_path / "reports" / "report.json").read_bytes() == before  # nothing assessed, nothing rewritten


def test_monitor_history_command_lists_windows_and_alarms(tmp_path: Path) -> None:
    reference = write_reference(tmp_path / "ref.json")
    write_log(tmp_path / "ok.jsonl", 1000, REFERENCE, seed=1)
    write_log(tmp_path / "ok.jsonl", 1000, {"safe": 0.3, "borderline": 0.3, "unsafe": 0.4}, seed=2, offset=1000)
    assert run_cli(tmp_path, "--log", "ok.jsonl", "--reference", str(reference), "--since", "last").returncode == 3
    shown = run_cli(tmp_path, "history", "--last", "0")
    assert shown.returncode == 0, shown.stderr
    assert "4 window(s) recorded, 2 alarm(s)" in shown.stdout and "ALARM" in shown.stdout and CANARY not in shown.stdout
    nothing = run_cli(tmp_path, "history", "--model", "emosafe-taxonomy")
    assert nothing.returncode == 2 and "no monitored window of emosafe-taxonomy" in nothing.stderr
