"""House rules that code review would otherwise have to catch."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from components import is_app_layer
from components.data.sources import source_paths
from tests.fixtures.common import REPO

FORBIDDEN = {"prefect", "dvc", "typer", "click"}
#: Layers a pure component must not reach up into.
UPPER_LAYERS = ("components.stages", "components.cli", "flows", "registry", "monitoring")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (REPO / package).rglob("*.py") if p.stem != "__main__")


def pure_modules() -> list[Path]:
    return [p for p in package_modules("components") if not is_app_layer(module_name(p))]


def imports_of(path: Path) -> set[str]:
    """Every module a file imports (top-level or inside a function), as written."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def reaches(imported: set[str], layers: tuple[str, ...]) -> set[str]:
    return {name for name in imported for layer in layers if name == layer or name.startswith(layer + ".")}


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("path", pure_modules(), ids=rel)
def test_pure_components_import_no_orchestration_and_no_upper_layer(path: Path) -> None:
    imported = imports_of(path)
    assert not {name.split(".")[0] for name in imported} & FORBIDDEN, f"{rel(path)} imports orchestration"
    assert not reaches(imported, UPPER_LAYERS), f"{rel(path)} imports {reaches(imported, UPPER_LAYERS)}"


@pytest.mark.parametrize("path", package_modules("registry"), ids=rel)
def test_registry_imports_no_stage_and_no_flow(path: Path) -> None:
    assert not reaches(imports_of(path), ("components.stages", "flows")), rel(path)


@pytest.mark.parametrize("path", package_modules("components/stages", "monitoring"), ids=rel)
def test_stages_import_no_flow_and_no_other_stage(path: Path) -> None:
    imported = imports_of(path)
    assert not reaches(imported, ("flows", "components.cli")), rel(path)
    own = module_name(path)
    others = {name for name in reaches(imported, ("components.stages",)) if not own.startswith(name)}
    # A stage's modules (augment, augment_cache, augment_passes) may use each other, never another stage's internals.
    step = own.split(".")[-1].split("_")[0]
    assert all(name.split(".")[2].startswith(step) for name in others), f"{rel(path)} imports {others}"


def test_no_two_modules_share_a_name_unless_they_are_one_steps_layers() -> None:
    """A step's layers (stage, config, flow, pure module of the same verb) may share its name; nothing else may."""
    layers = ("components/stages/", "components/config/", "flows/")
    seen: dict[str, list[str]] = {}
    for path in package_modules("components", "registry", "monitoring", "flows"):
        if path.stem != "__init__":
            seen.setdefault(path.stem, []).append(rel(path))
    clashes = {
        name: paths
        for name, paths in seen.items()
        if len([p for p in paths if not p.startswith(layers)]) > 1 and name not in {"cli"}
    }
    assert not clashes, clashes


def test_every_dvc_stage_declares_exactly_the_code_it_runs() -> None:
    """dvc.yaml's code deps and the code hash come from one closure (components.provenance); `make deps` rewrites."""
    from components.provenance import dvc_code_drift

    assert dvc_code_drift(REPO / "dvc.yaml") == {}


def test_removing_a_code_dep_from_dvc_yaml_is_caught(tmp_path: Path) -> None:
    """Export declares the whole components/export folder; listing its files without smoothing.py is caught."""
    import yaml

    from components.provenance import dvc_code_drift, folder_files

    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    deps = doc["stages"]["export"]["deps"]
    deps.remove("components/export")
    deps += sorted(folder_files(REPO / "components" / "export", REPO) - {"components/export/smoothing.py"})
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(doc))
    assert dvc_code_drift(tmp_path / "dvc.yaml") == {"export": (["components/export/smoothing.py"], [])}


def test_a_folder_dep_stands_for_exactly_its_files(tmp_path: Path) -> None:
    """A folder is declared only when every file in it is in the closure; a stray file in it is reported as code
    the stage does not run, and byte-code caches (left out by .dvcignore) are not files of the folder."""
    from components.provenance import collapse_folders, expand_code_dep

    package = tmp_path / "components" / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "__pycache__/a.cpython-311.pyc"):
        (package / name).write_text("")
    files = ["components/pkg/__init__.py", "components/pkg/a.py", "components/other.py"]
    for name in ("other.py", "unused.py"):  # unused.py keeps components/ itself from being declared whole
        (tmp_path / "components" / name).write_text("")
    assert collapse_folders(files, tmp_path) == ["components/other.py", "components/pkg"]
    assert expand_code_dep("components/pkg", tmp_path) == set(files[:2])
    (package / "notes.txt").write_text("")
    assert collapse_folders(files, tmp_path) == sorted(files)
    assert "__pycache__/" in (REPO / ".dvcignore").read_text().splitlines()


def test_dvc_prepare_stage_lists_its_inputs_and_params() -> None:
    import yaml

    from components.config import load_params
    from components.provenance import stage_code_deps

    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["prepare"]
    inputs = set(source_paths(load_params(REPO / "params.yaml").prepare.sources))
    assert set(stage["deps"]) == set(stage_code_deps("prepare")) | inputs
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


SUITES = ("unit", "integration", "data", "model")


def test_tests_live_in_their_audiences_folder() -> None:
    """Test files sit in tests/<suite>/ (none flat in tests/, none among the fixtures); tests/fixtures holds plain
    helpers only, the pytest fixtures every suite shares being in tests/conftest.py."""
    tests = REPO / "tests"
    misplaced = [rel(p) for p in tests.rglob("test_*.py") if p.relative_to(tests).parts[0] not in SUITES]
    assert not misplaced
    assert not [rel(p) for p in (tests / "fixtures").rglob("*.py") if "pytest.fixture" in p.read_text()]


@pytest.mark.parametrize("path", sorted((REPO / "tests").rglob("*.py")), ids=rel)
def test_no_test_file_imports_a_test_file_or_a_conftest(path: Path) -> None:
    """Shared code lives in tests.fixtures; neither a test module nor a conftest is a library for another file."""
    borrowed = [
        name
        for name in imports_of(path)
        if name.startswith("tests.") and any(part.startswith("test_") or part == "conftest" for part in name.split("."))
    ]
    assert not borrowed
