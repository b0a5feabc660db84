"""Experiment tracking: the ONE module that imports wandb (a fast-moving library), behind a tiny interface.

W&B runs offline unless the user sets ``WANDB_MODE`` (``wandb sync <run folder>`` uploads later). One run per
(model, task, setting), grouped by ladder (profile). The config holds params and hashes, never raw text or
secrets (keys that look like tokens are dropped). A disabled tracker is a no-op with the same interface.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SECRET = re.compile(r"(token|secret|password|api[_-]?key)", re.IGNORECASE)


@dataclass(frozen=True)
class TrackingInfo:
    """What the run left behind (recorded in meta.json)."""

    enabled: bool
    mode: str = "disabled"
    run_dir: str | None = None
    run_id: str | None = None


def scrub(config: Any) -> Any:
    """Drop secret-looking keys and any ``text`` field, recursively."""
    if isinstance(config, dict):
        return {k: scrub(v) for k, v in config.items() if not _SECRET.search(str(k)) and k != "text"}
    if isinstance(config, list | tuple):
        return [scrub(v) for v in config]
    return config


class Tracker:
    """Start with ``Tracker.start(...)``; every method is a no-op when tracking is disabled."""

    def __init__(self, run: Any | None, mode: str) -> None:
        self._run = run
        self.mode = mode

    @classmethod
    def start(
        cls,
        enabled: bool,
        project: str,
        mode: str,
        folder: str,
        name: str,
        group: str,
        config: dict[str, Any],
        job_type: str = "train",
    ) -> Tracker:
        if not enabled:
            return cls(None, "disabled")
        import wandb

        mode = os.environ.get("WANDB_MODE", mode)
        folder = os.environ.get("WANDB_DIR", folder)
        Path(folder).mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=project,
            name=name,
            group=group,
            job_type=job_type,
            config=scrub(config),
            dir=folder,
            mode=mode,  # type: ignore[arg-type]
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )
        # Curves on their own axis: W&B drops any row whose step goes backwards, and the epoch rows (logged during
        # training) come before the per-step curve (logged at the end), so a shared `step=` lost the whole curve.
        run.define_metric("train/step")
        run.define_metric("train/*", step_metric="train/step")
        run.define_metric("val/*", step_metric="train/step")
        return cls(run, mode)

    def log_epoch(self, report: dict[str, Any]) -> None:
        if self._run is None:
            return
        flat = {f"val/{k}": v for k, v in report.items() if isinstance(v, int | float)}
        self._run.log(flat | {"epoch": report.get("epoch", 0), "train/step": int(report.get("step", 0))})

    def log_curve(self, curve: list[dict[str, float]]) -> None:
        if self._run is None:
            return
        for point in curve:
            self._run.log({"train/loss": point["loss"], "train/lr": point["lr"], "train/step": int(point["step"])})

    def log_final(self, final: dict[str, Any], class_names: tuple[str, ...], task: str) -> None:
        """Per-category metrics table and the confusion matrix (3x3 trinary; per-category 2x2 taxonomy)."""
        if self._run is None:
            return
        import wandb

        columns = sorted({key for values in final.get("per_class", {}).values() for key in values})
        table = wandb.Table(columns=["category", *columns])
        for name, values in final.get("per_class", {}).items():
            table.add_data(name, *[values.get(c) for c in columns])
        confusion = final.get("confusion", [])
        if task == "trinary":
            matrix = wandb.Table(columns=["actual", *class_names])
            for name, row in zip(class_names, confusion, strict=False):
                matrix.add_data(name, *row)
        else:
            matrix = wandb.Table(columns=["category", "tn", "fp", "fn", "tp"])
            for name, cells in confusion.items():
                matrix.add_data(name, *cells)
        self._run.log({"final/per_category": table, "final/confusion_matrix": matrix})
        self._run.summary.update({f"final/{k}": v for k, v in final.items() if isinstance(v, int | float)})

    def log_report(
        self, columns: list[str], rows: list[list[Any]], images: dict[str, Path], summary: dict[str, float]
    ) -> None:
        """The scaling report: its table (one row per model x setting x task), its PNG plots, summary figures."""
        if self._run is None:
            return
        import wandb

        table = wandb.Table(columns=list[str | int](columns), data=scrub(rows))
        logged: dict[str, Any] = {"report/scaling": table}
        logged |= {f"report/{name}": wandb.Image(str(path)) for name, path in images.items()}
        self._run.log(logged)
        self._run.summary.update(summary)

    def log_artifact(self, folder: Path, name: str, metadata: dict[str, Any]) -> None:
        if self._run is None:
            return
        import wandb

        artifact = wandb.Artifact(name=name, type="adapter", metadata=scrub(metadata))
        artifact.add_dir(str(folder))
        self._run.log_artifact(artifact)

    def finish(self) -> TrackingInfo:
        if self._run is None:
            return TrackingInfo(enabled=False)
        info = TrackingInfo(enabled=True, mode=self.mode, run_dir=str(self._run.dir), run_id=str(self._run.id))
        self._run.finish()
        return info
