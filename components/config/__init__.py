"""Typed configuration: ``params.yaml`` parsed once, at the edge, into frozen validated objects.

Nothing below the CLI / flow edge reads YAML. Every model forbids unknown keys, so a typo such as ``test_fractoin``
fails at load time with the key's dotted path instead of being silently ignored. Each section is named after the
stage that reads it and lives in its own module here (``prepare.py`` for the ``prepare`` stage, ...); ``Params``
gathers them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from components.config.augment import AugmentConfig
from components.config.base import DEFAULT_SEED, Category, Frozen, section
from components.config.curate import CurateConfig
from components.config.evaluate import EvaluateConfig
from components.config.export import ExportConfig
from components.config.holdout import HoldoutConfig
from components.config.monitor import MonitorConfig
from components.config.predict import PredictConfig
from components.config.prepare import (
    CounselChatSource,
    DiaSafetySource,
    EmosafeSource,
    LabelMapping,
    PrepareConfig,
    SourceConfig,
    SplitConfig,
    TableSource,
)
from components.config.reevaluate import ReevaluateConfig
from components.config.register import RegisterConfig
from components.config.report import ReportConfig
from components.config.ship import ShipConfig
from components.config.train import TrainConfig
from components.config.validate import ValidateConfig
from components.errors import ConfigError

__all__ = [
    "Category",
    "ConfigError",
    "CounselChatSource",
    "DiaSafetySource",
    "EmosafeSource",
    "Frozen",
    "LabelMapping",
    "Params",
    "PrepareConfig",
    "SourceConfig",
    "SplitConfig",
    "TableSource",
    "load_params",
    "parse_params",
]


# Stage names `validate` and `register` (one name per step) shadow BaseModel/ABC attributes; the fields work.
warnings.filterwarnings("ignore", message=r'Field name "(validate|register)" in "Params" shadows', category=UserWarning)


class Params(Frozen):
    """The whole of params.yaml."""

    seed: int = Field(
        default=DEFAULT_SEED, ge=0, description="Global seed: splits, and every section whose own `seed` is null."
    )
    prepare: PrepareConfig
    augment: AugmentConfig = section(enabled=False)  # no section: no augmentation
    curate: CurateConfig = section()
    evaluate: EvaluateConfig = section()
    export: ExportConfig = ExportConfig()
    holdout: HoldoutConfig = HoldoutConfig()
    monitor: MonitorConfig = MonitorConfig()
    predict: PredictConfig = PredictConfig()
    reevaluate: ReevaluateConfig = ReevaluateConfig()
    register: RegisterConfig = RegisterConfig()
    report: ReportConfig = ReportConfig()
    ship: ShipConfig = ShipConfig()
    train: TrainConfig = section()
    validate: ValidateConfig = ValidateConfig()  # type: ignore[assignment]  # shadows the deprecated v1 classmethod

    @model_validator(mode="after")
    def _gated_suites_are_evaluated(self) -> Params:
        unknown = sorted(set(self.register.gate.suites) - set(self.evaluate.suites))
        if unknown:
            raise ValueError(
                f"register.gate.suites names suite(s) {unknown} that evaluate.suites does not define "
                f"(defined: {sorted(self.evaluate.suites)})"
            )
        return self

    @model_validator(mode="after")
    def _holdout_names_exist(self) -> Params:
        sources = [source.name for source in self.prepare.sources]
        unknown = sorted(set(self.holdout.sources) - set(sources))
        if unknown:
            raise ValueError(f"holdout.sources names {unknown}, not in prepare.sources {sources}")
        if self.holdout.sources and len(sources) < 2:
            raise ValueError("holdout.sources needs at least two prepare.sources (one to hold out, one to train on)")
        rungs = list(self.train.active.models)
        stray = sorted(set(self.holdout.models) - set(rungs))
        if stray:
            raise ValueError(f"holdout.models names {stray}, not in train profile '{self.train.profile}' {rungs}")
        if self.holdout.sources and self.holdout.task not in self.train.tasks:
            raise ValueError(f"holdout.task '{self.holdout.task}' is not one of train.tasks {list(self.train.tasks)}")
        return self

    @model_validator(mode="after")
    def _operating_point_is_shipped(self) -> Params:
        """A policy measured by evaluate but not shipped would gate one rule and serve another (argmax)."""
        if self.evaluate.operating_point.policy != "default" and self.export.thresholds_report is None:
            raise ValueError(
                f"evaluate.operating_point.policy is '{self.evaluate.operating_point.policy}' but "
                "export.thresholds_report is null, so the bundle would decide by argmax / 0.5; set it to "
                "reports/evaluate/{model}-fine_tuned-{task}.json"
            )
        return self


def parse_params(raw: Any, origin: str = "params") -> Params:
    """Validate an already-loaded mapping; ``origin`` names the file in error messages."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        # The global seed travels as context so each section's null seed resolves to it once, here.
        return Params.model_validate(raw, context={"seed": raw.get("seed", DEFAULT_SEED)})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last one silently, so a
    second `train:` section would replace the first without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                why = f"key '{key}' appears twice (lines {seen[key]} and {line}); keep one"
                raise yaml.constructor.ConstructorError(None, None, why, key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file. Raises ConfigError naming the file and the offending key."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a params file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse_params(raw, str(path))


def _describe(exc: ValidationError, origin: str) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see params.yaml docs)"
        lines.append(f"{key}: {message}")
    return f"{origin}: invalid configuration\n  " + "\n  ".join(lines)
