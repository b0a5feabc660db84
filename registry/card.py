"""Model card (Markdown) of one version: data, lineage, metrics with CIs per class/category, gate, limits.

Built only from what the registry stores (no raw message text exists there), so a card can be regenerated at any
time and always reflects the latest gate report and the aliases the version holds now.
"""

from __future__ import annotations

from typing import Any

from registry.store import AliasEvent, VersionRecord

LINEAGE_FIELDS = (
    "data_hash",
    "dvc_data",
    "code_commit",
    "code_hash",
    "params_hash",
    "seed",
    "base_model",
    "base_revision",
    "wandb_run",
    "metrics_sha256",
)
LIMITS = (
    "Trained and evaluated on the configured corpora only; the bundled sample is hand-written and small, and the "
    "public corpora carry weak labels (docs/data.md). Confidence intervals are bootstrap intervals over test "
    "messages; small categories have wide intervals.",
    "A screening aid for human moderators of mental-health chat, not a diagnosis or a crisis-response system: "
    "never the only safeguard for a person at risk.",
    "Behaviour outside English chat messages, on very long texts or on new slang is unknown.",
)


def _fmt(estimate: Any) -> str:
    if not isinstance(estimate, dict) or estimate.get("value") is None:
        return "—"
    low, high = estimate.get("low"), estimate.get("high")
    ci = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else " (no CI)"
    return f"{estimate['value']:.3f}{ci}"


def render_card(
    record: VersionRecord, aliases: dict[str, int], report: dict[str, Any] | None, history: list[AliasEvent]
) -> str:
    """Markdown for ``record``; ``report`` is its latest gate report (None if never gated)."""
    lineage, metrics = record.lineage, record.metrics
    held = [alias for alias, version in aliases.items() if version == record.version]
    lines = [
        f"# {record.name} v{record.version}",
        "",
        f"- Task: **{record.task}**; aliases now: {', '.join(held) or 'none'}; registered {record.created_at}",
        f"- Artifact manifest sha256: `{record.manifest_sha256}`; W&B model registry: {record.wandb_link} (the "
        "training run is under lineage)",
        f"- Figures: {_evidence(lineage.get('evidence'))}",
        "",
        "## Data and lineage",
        "",
        "| field | value |",
        "|---|---|",
        *[f"| {key} | `{lineage.get(key)}` |" for key in LINEAGE_FIELDS],
        "",
        "## Metrics (test split, point estimate [95% CI])",
        "",
        f"- Macro-F1: {_fmt(metrics.get('macro_f1'))}",
    ]
    items = metrics.get("per_class") or metrics.get("per_category") or {}
    if record.task == "trinary":
        lines.append(f"- Unsafe recall: {_fmt((items.get('unsafe') or {}).get('recall'))}")
    lines += ["", "| class / category | F1 | threshold |", "|---|---|---|"]
    thresholds = lineage.get("thresholds") or {}
    lines += [f"| {name} | {_fmt(item.get('f1'))} | {thresholds.get(name, '—')} |" for name, item in items.items()]
    lines += ["", "## Gate decision", ""]
    if report is None:
        lines.append("Never gated (the gate runs when the version is promoted to staging or production).")
    else:
        verdict = "PASSED" if report["promote"] else "REFUSED"
        champion = report.get("champion_version")
        lines.append(f"**{verdict}** against production {'v' + str(champion) if champion else '(none)'}:")
        lines += [f"- {'ok' if check['passed'] else 'FAIL'}: {check['detail']}" for check in report["checks"]]
    lines += ["", "## Alias history of this version", ""]
    mine = [e for e in history if record.version in (e.to_version, e.from_version)]
    lines += [
        f"- {e.at} {e.alias}: {_v(e.from_version)} → {_v(e.to_version)} ({e.action} by {e.who}: {e.why})" for e in mine
    ] or ["- none"]
    lines += ["", "## Limits", "", *[f"- {limit}" for limit in LIMITS], ""]
    return "\n".join(lines)


def _evidence(stored: Any) -> str:
    """Whether the metrics below were computed by emosafe on exactly this version's files (release/evidence.py)."""
    if not isinstance(stored, dict):
        return "**declared** (registered before evidence binding existed)"
    return f"**{stored.get('status')}**: {stored.get('detail')}"


def _v(version: int | None) -> str:
    return "—" if version is None else f"v{version}"
