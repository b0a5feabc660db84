"""Monitoring reports: one JSON per window, a summary JSON, and a self-contained HTML page with plots.

The plots (matplotlib, Agg, embedded as base64 PNG) show the predicted distribution per window against the
reference, per-category prevalence against the reference, and mark alarms (red) and INSUFFICIENT_SAMPLES windows
(grey). Everything shown is a proportion, a count or a statistic: the reports never hold message text.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from components.drift.power import sensitivity_line
from components.drift.reference import DriftReference
from components.schema import CATEGORIES, LABELS

_COLOURS = ("tab:green", "tab:orange", "tab:red", "tab:blue", "tab:purple", "tab:brown")


def window_report(
    index: int, start: str, end: str, assessment: dict[str, Any], counts: dict[str, Any]
) -> dict[str, Any]:
    """The JSON of one window: bounds, verdict, signals, and its observed proportions."""
    return {"index": index, "start": start, "end": end, **assessment, **counts}


def _figure_png(draw: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 3.6), dpi=90)
    draw(axis)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _over_time(axis: Any, windows: Sequence[dict[str, Any]], field: str, keys: Sequence[str], ref: Any) -> None:
    x = np.arange(len(windows))
    for i, window in enumerate(windows):
        if window["verdict"] == "ALARM":
            axis.axvspan(i - 0.5, i + 0.5, color="red", alpha=0.15, lw=0)
        elif window["verdict"] == "INSUFFICIENT_SAMPLES":
            axis.axvspan(i - 0.5, i + 0.5, color="grey", alpha=0.15, lw=0)
    for key, colour in zip(keys, _COLOURS, strict=False):
        axis.plot(x, [w[field][key] for w in windows], marker="o", ms=3, color=colour, label=key)
        axis.axhline(ref[key], color=colour, ls="--", lw=1)
    axis.set_xlabel("window (red: ALARM, grey: INSUFFICIENT_SAMPLES; dashed: reference)")
    axis.set_ylabel("share of predictions")
    axis.legend(fontsize=7, ncol=3)


def _latest_vs_reference(axis: Any, window: dict[str, Any], field: str, keys: Sequence[str], ref: Any) -> None:
    x = np.arange(len(keys))
    axis.bar(x - 0.2, [ref[k] for k in keys], width=0.4, label="reference", color="lightgrey")
    axis.bar(x + 0.2, [window[field][k] for k in keys], width=0.4, label=f"window {window['index']}", color="tab:blue")
    alarmed = {s["name"] for s in window.get("signals", []) if s["alarm"]}
    for i, key in enumerate(keys):
        if f"category.{key}" in alarmed or (key == "borderline" and "borderline_rate" in alarmed):
            axis.annotate("ALARM", (i + 0.2, window[field][key]), color="red", ha="center", va="bottom", fontsize=8)
    axis.set_xticks(x, [k.replace("_", "\n") for k in keys], fontsize=7)
    axis.set_ylabel("share of predictions")
    axis.legend(fontsize=7)


def render_html(report: dict[str, Any], windows: Sequence[dict[str, Any]], reference: DriftReference) -> str:
    """A self-contained page (no external assets) for the whole run."""
    images = []
    plots = (
        ("label_distribution", LABELS, reference.label_distribution, "Predicted label distribution"),
        ("category_prevalence", CATEGORIES, reference.category_prevalence, "Per-category prevalence"),
    )
    for field, keys, ref, title in plots:
        if ref is None or not windows or field not in windows[0]:
            continue
        over_time = partial(_over_time, windows=windows, field=field, keys=keys, ref=ref)
        images.append((f"{title} over time", _figure_png(over_time)))
        latest = next((w for w in reversed(windows) if w["verdict"] != "INSUFFICIENT_SAMPLES"), windows[-1])
        versus = partial(_latest_vs_reference, window=latest, field=field, keys=keys, ref=ref)
        images.append((f"{title}: window {latest['index']} vs reference", _figure_png(versus)))
    esc = html.escape
    rows = "".join(
        f"<tr class='{esc(w['verdict'])}'><td>{w['index']}</td><td>{esc(w['start'])}</td><td>{esc(w['end'])}</td>"
        f"<td>{w['n']}</td><td>{esc(w['verdict'])}</td><td>{esc(w['reason'])}</td></tr>"
        for w in windows
    )
    figures = "".join(f"<h2>{esc(t)}</h2><img alt='{esc(t)}' src='data:image/png;base64,{png}'>" for t, png in images)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>emosafe monitor: {esc(report["model"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}
tr.ALARM{{background:#fdd}}tr.INSUFFICIENT_SAMPLES{{color:#888}}</style></head><body>
<h1>{esc(report["model"])}@{esc(report["version"])}: {esc(report["verdict"])}</h1>
<p>{esc(report["summary"])}</p>
<p>Reference: {reference.n} predictions. Tests: {esc(report["method"])}</p>
<p>{esc(sensitivity_line(report["sensitivity"])) if report.get("sensitivity") else ""}</p>
{figures}
<h2>Windows</h2><table><tr><th>#</th><th>start</th><th>end</th><th>n</th><th>verdict</th><th>reason</th></tr>{rows}
</table></body></html>
"""
