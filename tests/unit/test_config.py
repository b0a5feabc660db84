"""Typed config: every shipped params file loads; typos and bad values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.config import Params, load_params, parse_params
from components.errors import ConfigError
from tests.fixtures.common import REPO

SHIPPED = [REPO / "params.yaml", *sorted((REPO / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_params_file_loads(path: Path) -> None:
    params = load_params(path)
    assert isinstance(params, Params)
    assert params.prepare.sources


def base() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_config_is_frozen() -> None:
    params = parse_params(base())
    with pytest.raises(Exception, match="frozen"):
        params.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("edit", "key", "rule"),
    [
        (
            lambda raw: raw["prepare"]["split"].update(test_fractoin=0.2),
            "prepare.split.test_fractoin",
            "unknown key",
        ),
        (
            lambda raw: raw["prepare"]["split"].update(test_fraction=1.5),
            "prepare.split.test_fraction",
            "less than 1",
        ),
        (
            lambda raw: raw["prepare"]["split"].update(val_fraction=0.5, test_fraction=0.45),
            "prepare.split",
            "below 0.9",
        ),
        (lambda raw: raw["prepare"].update(conflict_policy="ignore"), "prepare.conflict_policy", "error"),
        (lambda raw: raw.update(seed=-1), "seed", "greater than or equal"),
        (lambda raw: raw.update(trainn={}), "trainn", "unknown key"),
        (lambda raw: raw["prepare"]["sources"][0].update(kind="xml"), "prepare.sources.0", "kind"),
        (
            lambda raw: raw["prepare"]["sources"][0].update(name="Bad Name"),
            "prepare.sources.0.emosafe.name",
            "slug",
        ),
        (
            lambda raw: raw["prepare"]["sources"].append(dict(raw["prepare"]["sources"][0])),
            "prepare.sources",
            "unique",
        ),
    ],
)
def test_bad_config_names_the_key(edit, key: str, rule: str) -> None:
    raw = base()
    edit(raw)
    with pytest.raises(ConfigError) as info:
        parse_params(raw, "params.yaml")
    assert f"{key}:" in str(info.value)
    assert rule in str(info.value)
    assert str(info.value).startswith("params.yaml")


def test_an_operating_point_policy_must_be_shipped_with_the_bundle() -> None:
    raw = base()
    raw["evaluate"]["operating_point"] = {"policy": "max_recall_at_flag_rate", "max_flag_rate": 0.1}
    raw["export"]["thresholds_report"] = None
    with pytest.raises(ConfigError, match=r"export\.thresholds_report is null"):
        parse_params(raw, "params.yaml")
    raw["export"]["thresholds_report"] = "reports/evaluate/{model}-fine_tuned-{task}.json"
    assert parse_params(raw).evaluate.operating_point.max_flag_rate == 0.1
    raw["evaluate"]["operating_point"]["policy"] = "argmax"
    with pytest.raises(ConfigError, match=r"evaluate\.operating_point\.policy"):
        parse_params(raw, "params.yaml")


def test_label_mapping_must_be_consistent() -> None:
    raw = base()
    raw["prepare"]["sources"] = [
        {
            "name": "t",
            "kind": "table",
            "path": "x.csv",
            "text_columns": ["t"],
            "label_column": "l",
            "label_map": {"ok": {"label": "safe", "categories": ["violence_hate"]}},
        }
    ]
    with pytest.raises(ConfigError, match=r"label_map\.ok: a safe row must carry no category"):
        parse_params(raw)
    raw["prepare"]["sources"][0]["label_map"] = {"bad": {"label": "unsafe"}}
    with pytest.raises(ConfigError, match="at least one category"):
        parse_params(raw)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_params(tmp_path / "list.yaml")


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    """Plain YAML keeps the last of two `seed:` keys silently (hardening, item 15)."""
    path = tmp_path / "params.yaml"
    path.write_text("seed: 1\nprepare:\n  sources: [{name: x, kind: emosafe, path: x}]\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"key 'seed' appears twice \(lines 1 and 4\)"):
        load_params(path)


def test_a_params_path_that_is_a_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        load_params(tmp_path)
