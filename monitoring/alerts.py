"""Pluggable alert sinks for drift alarms: log, webhook (HTTP POST of JSON), Prefect event (inside a flow).

Every sink receives the same ``Alert``: model, version, the window (index, bounds, size), the verdict and each
signal's p-values and effect sizes. It is built from numbers only, so no sink can leak message text. A sink that
fails (webhook down) is logged and reported back; it never hides the alarm itself (the CLI still exits 3).
"""

from __future__ import annotations

import json
import logging
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from components.config.monitor import AlertConfig
from components.drift.statistics import WindowAssessment

log = logging.getLogger(__name__)
EVENT_NAME = "emosafe.monitor.drift.alarm"
_SIGNAL_FIELDS = (
    "name",
    "test",
    "method",
    "p_value",
    "p_adjusted",
    "effect_name",
    "effect",
    "effect_floor",
    "psi",
    "js_distance_base2",
    "observed",
    "expected",
    "alarm",
)


@dataclass(frozen=True)
class Alert:
    """One alarming window, as numbers and names only."""

    model: str
    version: str
    window: dict[str, Any]
    assessment: WindowAssessment
    report: str

    def payload(self) -> dict[str, Any]:
        return {
            "event": EVENT_NAME,
            "model": self.model,
            "version": self.version,
            "window": self.window,
            "verdict": self.assessment.verdict.value,
            "reason": self.assessment.reason,
            "signals": [{field: getattr(s, field) for field in _SIGNAL_FIELDS} for s in self.assessment.signals],
            "report": self.report,
        }


class AlertSink(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


class LogSink:
    """A WARNING line per alarming window (names the signals and their effect sizes)."""

    name = "log"

    def send(self, alert: Alert) -> None:
        alarms = [
            f"{s.name} ({s.effect_name}={s.effect:.3f}, p_adj={s.p_adjusted:.2g})"
            for s in alert.assessment.signals
            if s.alarm
        ]
        log.warning("drift alarm %s@%s window %s: %s", alert.model, alert.version, alert.window["index"], alarms)


class WebhookSink:
    """POST the payload as JSON to ``url`` (Slack/Teams/PagerDuty-style receivers, or any HTTP endpoint)."""

    name = "webhook"

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def send(self, alert: Alert) -> None:
        body = json.dumps(alert.payload(), sort_keys=True).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"webhook answered HTTP {response.status}")


class PrefectEventSink:
    """Emit a Prefect event when running inside a flow run, so an automation can start the retraining flow.

    Outside a flow (plain CLI) it does nothing and never imports prefect (keeps the CLI fast)."""

    name = "prefect"

    def send(self, alert: Alert) -> None:
        if "prefect" not in sys.modules:
            log.debug("prefect sink: not inside a flow, no event emitted")
            return
        from prefect.context import FlowRunContext
        from prefect.events import emit_event

        if FlowRunContext.get() is None:
            log.debug("prefect sink: not inside a flow, no event emitted")
            return
        emit_event(
            event=EVENT_NAME,
            resource={"prefect.resource.id": f"emosafe.model.{alert.model}.{alert.version}"},
            payload=alert.payload(),
        )


def build_sinks(config: AlertConfig) -> list[AlertSink]:
    """The sinks named in ``monitor.alerts.sinks`` (config validation guarantees a webhook has its URL)."""
    sinks: list[AlertSink] = []
    for name in config.sinks:
        if name == "log":
            sinks.append(LogSink())
        elif name == "webhook" and config.webhook_url:
            sinks.append(WebhookSink(config.webhook_url, config.webhook_timeout_s))
        elif name == "prefect":
            sinks.append(PrefectEventSink())
    return sinks


def dispatch(alerts: Sequence[Alert], sinks: Sequence[AlertSink]) -> list[str]:
    """Send every alert to every sink; returns one line per failed delivery (and logs it)."""
    failures = []
    for alert in alerts:
        for sink in sinks:
            try:
                sink.send(alert)
            except Exception as exc:  # a broken sink must not hide the alarm from the others
                failures.append(f"{sink.name}: window {alert.window['index']}: {type(exc).__name__}: {exc}")
                log.error("alert sink %s failed: %s", sink.name, exc)
    return failures
