"""``emosafe site``: gather the registry, the scaling report and the monitoring history into a static HTML site.

App layer: it reads (the registry read-only, report files, the monitoring history) and writes one folder, swapped
in whole; the pages themselves come from ``components/report/site_pages.py``. A missing registry, report or history
gives an empty section, not an error, so the site can be built at any point of a project's life.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from components.cli.app import ParamsOption, app
from components.config import Params
from components.errors import EmosafeError

#: Lineage fields shown on a version page after the model card's (registry.card.LINEAGE_FIELDS): what the register
#: and ship stages add.
LINEAGE_EXTRA = (
    "train_data_hash",
    "data_link",
    "ladder_model",
    "evaluation",
    "exported_from",
    "evidence",
)


@app.command()
def site(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (replaced whole).")] = Path(
        "reports/site"
    ),
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Write a static HTML site that opens from disk: registered versions (aliases and their history, gate
    verdicts with every check, per-class figures with CIs, lineage, model cards), the scaling report with its plots,
    the drift timeline and the re-evaluation history. Open <output>/index.html."""
    from components.config import load_params
    from components.io import refuse_overwriting_inputs, replace_dir
    from components.report.site_pages import render_site

    loaded = load_params(params)
    refuse_overwriting_inputs(output, folder=True)
    data, plots = gather(loaded)
    pages = render_site(data)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        for relative, text in pages.items():
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp / relative).write_text(text, encoding="utf-8")
        (tmp / "scaling").mkdir(exist_ok=True)
        for plot in plots:
            shutil.copyfile(plot, tmp / "scaling" / plot.name)
        tmp.chmod(0o755)
        replace_dir(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    typer.echo(f"wrote {len(pages)} pages to {output}; open {output / 'index.html'}")


def gather(params: Params) -> tuple[Any, list[Path]]:
    """The site's data (``SiteData``) and the scaling plots to copy."""
    from components.report.site_pages import SiteData

    models, versions, evaluations = _registry(params)
    scaling_dir = Path(params.report.output_dir)
    markdown = (
        (scaling_dir / "scaling.md").read_text(encoding="utf-8") if (scaling_dir / "scaling.md").is_file() else ""
    )
    plots = sorted((scaling_dir / "plots").glob("*.png"))
    names = sorted({m["name"] for m in models} | {"emosafe-trinary", "emosafe-taxonomy"})
    data = SiteData(
        generated=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        models=models,
        versions=versions,
        scaling_markdown=markdown or "No scaling report yet: `emosafe report` (or `make run`) writes it.",
        plots=[p.name for p in plots],
        drift=_drift(Path(params.monitor.history_db), names),
        evaluations=evaluations,
    )
    return data, plots


def _registry(params: Params) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    from components.report.summary import estimate_text
    from registry.card import LINEAGE_FIELDS, render_card
    from registry.core import open_registry

    config = params.register
    try:
        registry = open_registry(config, read_only=True)
    except EmosafeError:  # no registry yet: an empty section
        return [], [], []
    models, versions = [], []
    for name in sorted({r.name for r in registry.meta.list_versions()}):
        aliases, history = registry.meta.aliases(name), registry.meta.history(name)
        rows = []
        for record in registry.meta.list_versions(name):
            report = registry.meta.latest_report(name, record.version)
            rows.append(
                {
                    "version": record.version,
                    "created_at": record.created_at,
                    "held": [a for a, v in aliases.items() if v == record.version],
                    "macro_f1": estimate_text(record.metrics.get("macro_f1")),
                    "evidence": (record.lineage.get("evidence") or {}).get("status", "declared"),
                    "verdict": "-" if report is None else ("PASSED" if report["promote"] else "REFUSED"),
                }
            )
            versions.append(
                {
                    "name": name,
                    "version": record.version,
                    "card": render_card(record, aliases, report, history),
                    "report": report,
                    "lineage": [
                        (key, _short(record.lineage.get(key)))
                        for key in (*LINEAGE_FIELDS, *LINEAGE_EXTRA)
                        if key in record.lineage
                    ],
                }
            )
        models.append({"name": name, "aliases": aliases, "versions": rows, "history": [vars(e) for e in history]})
    evaluations = [
        {
            "seq": e.seq,
            "evaluated_at": e.evaluated_at,
            "name": e.name,
            "version": e.version,
            "rows": e.feedback_rows,
            "sha": e.feedback_sha256[:12],
            "macro_f1": estimate_text(e.metrics.get("macro_f1")),
            "flagged": ", ".join(e.flagged),
            "who": e.who,
        }
        for e in registry.meta.evaluations(None)
    ]
    return models, versions, evaluations


def _drift(history: Path, names: list[str]) -> list[dict[str, Any]]:
    from components.report.site_pages import timeline_png
    from monitoring.history import load_history

    out = []
    for name in names:
        rows = load_history(history, name)
        if not rows:
            continue
        windows = [
            {
                "version": r.version,
                "window_rule": r.window_rule,
                "start": r.start,
                "end": r.end,
                "n": r.n,
                "verdict": r.verdict,
                "alarms": ", ".join(s["name"] for s in r.assessment.get("signals", []) if s.get("alarm")),
                "assessment": r.assessment,
            }
            for r in rows
        ]
        out.append({"name": name, "windows": windows, "timeline": timeline_png(windows)})
    return out


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:297] + "..."
