"""House rules that code review would otherwise have to catch."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from components import is_app_layer
from components.stages.prepare import PREPARE_MODULES, source_paths
from tests.conftest import REPO

FORBIDDEN = {"prefect", "dvc", "typer", "click"}


def pure_modules() -> list[Path]:
    paths = sorted((REPO / "components").rglob("*.py"))
    modules = {p: ".".join(p.relative_to(REPO).with_suffix("").parts) for p in paths}
    return [p for p, name in modules.items() if not is_app_layer(name) and p.stem != "__main__"]


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_pure_components_do_not_import_orchestration(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{path.name} imports {imported & FORBIDDEN}"


def test_dvc_prepare_stage_lists_its_modules_inputs_and_params() -> None:
    import yaml

    from components.config import load_params

    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["prepare"]
    modules = {
        name.replace(".", "/") + ("/__init__.py" if name == "components.config" else ".py") for name in PREPARE_MODULES
    }
    inputs = set(source_paths(load_params(REPO / "params.yaml").prepare.sources))
    assert set(stage["deps"]) == modules | inputs
    assert stage["params"] == ["seed", "prepare"]
    assert stage["cmd"].startswith("emosafe prepare")


def test_packages_and_entry_point() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == "emosafe" and project["scripts"] == {"emosafe": "components.cli:main"}
    for package in ("components", "flows", "registry", "monitoring"):
        assert (REPO / package / "__init__.py").is_file()


def test_readme_opens_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert [line.strip() for line in first_block.strip().splitlines()[1:]] == ["make run", "make test"]


def test_ci_runs_make_test() -> None:
    assert "make test" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("package", ["components", "flows", "registry", "monitoring"])
def test_no_dependency_shadows_our_packages(package: str) -> None:
    """Generic names: make sure `import registry` is ours, not a dependency's top-level package."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations is not None
    assert [Path(p).resolve() for p in spec.submodule_search_locations] == [REPO / package]
