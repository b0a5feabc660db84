"""The ``monitor`` flow: drift over the production log against the model version's reference.

Scheduled hourly by the ``monitor-hourly`` deployment in prefect.yaml. Alarms are emitted as Prefect events by the
alert sink (``monitor.alerts.sinks`` contains ``prefect``), so an automation can trigger the ``retrain`` flow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from components.config import load_params
from flows.common import retry_unless_input_error


@task(name="monitor", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_input_error)
def monitor_task(log: str, reference: str, params_path: str, root: str, since: str | None) -> dict[str, Any]:
    """Run the monitor step; returns the verdict and report paths (never text)."""
    from monitoring.monitor import monitor, parse_since

    base = Path(root)
    # A registry reference (name@alias, name@N) is a name, not a path under root.
    ref = Path(reference) if "@" in reference and "/" not in reference else base / reference
    incremental = since == "last"
    params = load_params(base / params_path)
    result = monitor(params, base / log, ref, None, None if incremental else parse_since(since), incremental, base)
    return {
        "verdict": result.verdict,
        "predictions": result.predictions,
        "resumed_from": result.resumed_from,
        "report_json": str(result.report_json),
        "report_html": str(result.report_html),
        "windows": len(result.windows),
        "alert_failures": list(result.alert_failures),
    }


@flow(name="monitor")
def monitor_flow(
    log: str = "logs/predictions.jsonl",
    reference: str = "emosafe-trinary@production",
    params_path: str = "params.yaml",
    root: str = ".",
    since: str | None = None,
) -> dict[str, Any]:
    """Drift check of the production log; returns the verdict as data. ``reference`` is a registry reference (the
    drift reference ``emosafe ship`` stored with that version) or a JSON file under ``root``; ``since`` an ISO time,
    or ``last`` to read only what arrived after the history's last window (what the hourly deployment does)."""
    return monitor_task(log, reference, params_path, root, since)


if __name__ == "__main__":
    monitor_flow()
