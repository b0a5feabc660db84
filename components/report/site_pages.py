"""The browsable view (`emosafe site`): static HTML pages that open from disk, no server (like GX Data Docs).

Pure rendering: the caller (``components/cli/site.py``) reads the registry, the scaling report and the monitoring
history, and passes plain data here; this module returns ``{relative path: page text}``. Jinja2 (already installed
with Great Expectations and Prefect) escapes every value; Markdown (the scaling report and the model cards, which
emosafe writes itself) is converted with ``markdown``. Pages link to each other relatively, so the folder can be
copied, zipped or served by any static host. Nothing here holds message text: registry records, figures, hashes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
import markdown

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem 2rem;color:#222}
nav a{margin-right:1.2rem} table{border-collapse:collapse;margin:.6rem 0} td,th{border:1px solid #ccc;
padding:.25rem .5rem;text-align:left;vertical-align:top} th{background:#f3f3f3} .ALARM,.REFUSED,.FAIL{color:#b00020;
font-weight:600} .ok,.PASSED,.NO_DRIFT_DETECTED{color:#1b5e20} code{font-size:.9em} img{max-width:100%}
"""

_BASE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} - emosafe</title>
<style>{{ style }}</style></head><body>
<nav><a href="{{ root }}index.html">Overview</a><a href="{{ root }}scaling.html">Scaling report</a>
<a href="{{ root }}drift.html">Drift</a><a href="{{ root }}reevaluations.html">Re-evaluations</a></nav>
<h1>{{ title }}</h1>
{% block body %}{% endblock %}
<p><small>Generated {{ generated }} by <code>emosafe site</code>. Figures, hashes and counts only: no message text.
</small></p></body></html>"""

_PAGES = {
    "index.html": """{% extends "base" %}{% block body %}
<h2>Registered models</h2>
{% for model in models %}<h3>{{ model.name }}</h3>
<p>Aliases: {% for alias, version in model.aliases.items() %}<code>{{ alias }}</code> &rarr;
<a href="versions/{{ model.name }}-v{{ version }}.html">v{{ version }}</a>{% if not loop.last %}, {% endif %}
{% else %}none{% endfor %}</p>
<table><tr><th>version</th><th>registered</th><th>aliases</th><th>macro-F1 [95% CI]</th><th>figures</th>
<th>last gate verdict</th></tr>
{% for v in model.versions %}<tr><td><a href="versions/{{ model.name }}-v{{ v.version }}.html">v{{ v.version }}</a></td>
<td>{{ v.created_at }}</td><td>{{ v.held | join(", ") }}</td><td>{{ v.macro_f1 }}</td><td>{{ v.evidence }}</td>
<td class="{{ v.verdict }}">{{ v.verdict }}</td></tr>{% endfor %}</table>
<h4>Alias history</h4>
<table><tr><th>#</th><th>when</th><th>alias</th><th>from</th><th>to</th><th>who</th><th>action</th><th>why</th></tr>
{% for e in model.history %}<tr><td>{{ e.seq }}</td><td>{{ e.at }}</td><td>{{ e.alias }}</td>
<td>{{ e.from_version if e.from_version is not none else "-" }}</td>
<td>{{ e.to_version }}</td><td>{{ e.who }}</td><td>{{ e.action }}</td>
<td>{{ e.why }}</td></tr>{% endfor %}</table>
{% else %}<p>No registry here yet: run <code>make run</code>.</p>{% endfor %}
{% endblock %}""",
    "version.html": """{% extends "base" %}{% block body %}
<p><a href="../index.html">&larr; all models</a></p>
{{ card | safe }}
{% if report %}<h2>Latest gate report (every check)</h2><table><tr><th>check</th><th>result</th><th>detail</th></tr>
{% for c in report.checks %}<tr><td>{{ c.name }}</td><td class="{{ 'ok' if c.passed else 'FAIL' }}">
{{ 'pass' if c.passed else 'FAIL' }}</td><td>{{ c.detail }}</td></tr>{% endfor %}</table>{% endif %}
<h2>Lineage</h2><table>{% for key, value in lineage %}<tr><th>{{ key }}</th><td><code>{{ value }}</code></td></tr>
{% endfor %}</table>
{% endblock %}""",
    "scaling.html": """{% extends "base" %}{% block body %}
{% for plot in plots %}<figure><img src="scaling/{{ plot }}" alt="{{ plot }}"><figcaption>{{ plot }}</figcaption>
</figure>{% endfor %}
{{ scaling | safe }}
{% endblock %}""",
    "drift.html": """{% extends "base" %}{% block body %}
{% for model in drift %}<h2>{{ model.name }}</h2>
{% if model.timeline %}<img src="data:image/png;base64,{{ model.timeline }}" alt="drift timeline of {{ model.name }}">
{% endif %}
<table><tr><th>version</th><th>rule</th><th>start</th><th>end</th><th>n</th><th>verdict</th>
<th>alarming signals</th></tr>
{% for w in model.windows %}<tr><td>{{ w.version }}</td><td>{{ w.window_rule }}</td><td>{{ w.start }}</td>
<td>{{ w.end }}</td><td>{{ w.n }}</td><td class="{{ w.verdict }}">{{ w.verdict }}</td><td>{{ w.alarms }}</td></tr>
{% endfor %}</table>
{% else %}<p>No monitored window yet: <code>emosafe monitor --log ... --reference NAME@production</code>.</p>
{% endfor %}
{% endblock %}""",
    "reevaluations.html": """{% extends "base" %}{% block body %}
<table><tr><th>#</th><th>when</th><th>version</th><th>rows</th><th>feedback sha256</th><th>macro-F1</th>
<th>flagged</th><th>who</th></tr>
{% for e in evaluations %}<tr><td>{{ e.seq }}</td><td>{{ e.evaluated_at }}</td>
<td><a href="versions/{{ e.name }}-v{{ e.version }}.html">{{ e.name }} v{{ e.version }}</a></td><td>{{ e.rows }}</td>
<td><code>{{ e.sha }}</code></td><td>{{ e.macro_f1 }}</td><td class="{{ 'FAIL' if e.flagged else 'ok' }}">
{{ e.flagged or 'ok' }}</td><td>{{ e.who }}</td></tr>
{% else %}<tr><td colspan="8">No re-evaluation on labelled feedback yet (<code>emosafe reevaluate</code>).</td></tr>
{% endfor %}</table>
{% endblock %}""",
}


@dataclass(frozen=True)
class SiteData:
    """Everything the pages show, as plain values (the CLI gathers it)."""

    generated: str
    models: Sequence[Mapping[str, Any]] = ()  # name, aliases, versions (rows), history (rows)
    versions: Sequence[Mapping[str, Any]] = ()  # name, version, card (Markdown), report (or None), lineage (pairs)
    scaling_markdown: str = ""
    plots: Sequence[str] = ()  # file names under scaling/
    drift: Sequence[Mapping[str, Any]] = ()  # name, windows (rows), timeline (base64 PNG or "")
    evaluations: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


def render_site(data: SiteData) -> dict[str, str]:
    """Every page of the site, by relative path."""
    env = jinja2.Environment(
        loader=jinja2.DictLoader({"base": _BASE, **_PAGES}), autoescape=True, undefined=jinja2.StrictUndefined
    )
    common = {"style": _STYLE, "generated": data.generated}
    pages = {
        "index.html": env.get_template("index.html").render(title="Models", root="", models=data.models, **common),
        "scaling.html": env.get_template("scaling.html").render(
            title="Scaling report", root="", scaling=_markdown(data.scaling_markdown), plots=data.plots, **common
        ),
        "drift.html": env.get_template("drift.html").render(title="Drift", root="", drift=data.drift, **common),
        "reevaluations.html": env.get_template("reevaluations.html").render(
            title="Re-evaluations on labelled feedback", root="", evaluations=data.evaluations, **common
        ),
    }
    for version in data.versions:
        path = f"versions/{version['name']}-v{version['version']}.html"
        pages[path] = env.get_template("version.html").render(
            title=f"{version['name']} v{version['version']}",
            root="../",
            card=_markdown(version["card"], drop_title=True),
            report=version.get("report"),
            lineage=version["lineage"],
            **common,
        )
    return pages


def _markdown(text: str, drop_title: bool = False) -> str:
    """emosafe's own Markdown (scaling report, model card) as HTML; raw HTML in it is escaped, not passed through."""
    if drop_title and text.startswith("# "):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return str(markdown.markdown(escaped, extensions=["tables"]))


def timeline_png(windows: Sequence[Mapping[str, Any]]) -> str:
    """Each window's label proportions in time order, alarms marked: a base64 PNG (matplotlib Agg), or ""."""
    rows = [w for w in windows if isinstance(w.get("assessment", {}).get("label_distribution"), Mapping)]
    if not rows:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 3.4), dpi=90)
    for label in ("safe", "borderline", "unsafe"):
        axis.plot(range(len(rows)), [w["assessment"]["label_distribution"].get(label, 0) for w in rows], label=label)
    alarms = [i for i, w in enumerate(rows) if w["verdict"] == "ALARM"]
    for i in alarms:
        axis.axvspan(i - 0.5, i + 0.5, color="#b00020", alpha=0.15, lw=0)
    axis.set(xlabel="window (time order; red: alarm)", ylabel="share of predictions", ylim=(0, 1))
    axis.legend(loc="upper right", fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()
