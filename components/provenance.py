"""Where an artifact came from (app layer): the code a stage runs, the git commit, and dvc.lock's records.

A stage's code is derived, never listed by hand: the closure of the project modules its stage module imports
(``stage_code_files``). The same closure gives the ``code_hash`` written into every artifact and the code deps
of the stage in ``dvc.yaml`` (``make deps`` writes them; a test fails when the two differ), so DVC cannot call a
stage up to date after a change to code it runs. A folder whose every file is in the closure is declared as the
folder (``stage_code_deps``): the same files, as one dvc.lock entry instead of one per module, which keeps the
lock small enough that DVC's per-stage status and commit (a round trip through the whole lock) stay cheap.
``.dvcignore`` leaves ``__pycache__`` out, as ``folder_files`` does.
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from components import __version__
from components.io import atomic_write_bytes

#: Top-level packages whose modules count as the project's code.
PROJECT_PACKAGES = ("components", "registry", "monitoring")
#: The repository root (this file lives in ``<root>/components/``).
ROOT = Path(__file__).resolve().parent.parent
#: Stages whose function lives outside ``components.stages`` (the stage name is the module's last part).
STAGE_MODULES = {"monitor": "monitoring.monitor"}


def stage_module(stage: str) -> str:
    """The module holding a stage's function: ``components.stages.<stage>`` unless ``STAGE_MODULES`` says else."""
    return STAGE_MODULES.get(stage, f"components.stages.{stage}")


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The source file of a project module (``a/b.py`` or ``a/b/__init__.py``); None when there is none."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str, root: Path) -> set[str]:
    """Project modules a file imports anywhere (lazy imports inside functions count; ``TYPE_CHECKING`` ones
    do not, since they never run)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name.split(".")[0] in PROJECT_PACKAGES and module_file(name, root)}


def _with_parents(module: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` first."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def code_modules(module: str, root: Path = ROOT) -> list[str]:
    """Sorted closure of the project modules that importing ``module`` (and calling into it) can run."""
    seen: set[str] = set()
    todo = _with_parents(module)
    while todo:
        name = todo.pop()
        path = module_file(name, root)
        if name in seen or path is None:
            continue
        seen.add(name)
        for imported in _imports(path, name, root):
            todo.extend(_with_parents(imported))
    return sorted(seen)


def code_files(module: str, root: Path = ROOT) -> list[str]:
    """The closure of ``module`` as repository-relative POSIX paths, sorted: what ``dvc.yaml`` lists as deps."""
    files = (module_file(name, root) for name in code_modules(module, root))
    return sorted(path.relative_to(root).as_posix() for path in files if path is not None)


def stage_code_files(stage: str, root: Path = ROOT) -> list[str]:
    """The ``.py`` deps a stage must declare in ``dvc.yaml``."""
    return code_files(stage_module(stage), root)


def folder_files(folder: Path, root: Path = ROOT) -> set[str]:
    """Every file under ``folder`` (repository-relative POSIX paths), byte-code caches left out as ``.dvcignore``
    leaves them out for DVC."""
    return {
        path.relative_to(root).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.relative_to(folder).parts and path.suffix != ".pyc"
    }


def collapse_folders(files: Iterable[str], root: Path = ROOT) -> list[str]:
    """``files`` with each outermost folder whose every file is among them written as the folder, sorted."""
    wanted = set(files)
    deps = set(wanted)
    folders = sorted({parent.as_posix() for rel in wanted for parent in Path(rel).parents if parent != Path(".")})
    taken: list[str] = []
    for folder in sorted(folders, key=lambda name: name.count("/")):  # outermost first
        if any(folder.startswith(f"{outer}/") for outer in taken):
            continue
        inside = folder_files(root / folder, root)
        if inside and inside <= wanted:
            taken.append(folder)
            deps = (deps - inside) | {folder}
    return sorted(deps)


def stage_code_deps(stage: str, root: Path = ROOT) -> list[str]:
    """A stage's code deps as ``dvc.yaml`` declares them: its closure, whole folders written as the folder."""
    return collapse_folders(stage_code_files(stage, root), root)


def expand_code_dep(dep: str, root: Path = ROOT) -> set[str]:
    """The files a declared code dep stands for: itself, or every file under a folder."""
    path = root / dep
    return folder_files(path, root) if path.is_dir() else {dep}


@cache
def code_hash(module: str) -> str:
    """sha256 over the path and source of every file in ``module``'s closure: a content-based code version that,
    unlike a commit, changes only when code the stage runs changes."""
    digest = hashlib.sha256()
    for rel in code_files(module):
        digest.update(rel.encode())
        digest.update((ROOT / rel).read_bytes())
    return digest.hexdigest()


def git_commit(project: Path = ROOT, mark_dirty: bool = False) -> str | None:
    """HEAD's commit (suffixed ``-dirty`` on request when tracked files changed); None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        if not mark_dirty:
            return head.stdout.strip()
        porcelain = ["git", "status", "--porcelain", "--untracked-files=no"]
        dirty = subprocess.run(porcelain, cwd=project, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def read_lock(path: Path) -> dict[str, Any]:
    """dvc.lock's ``stages`` mapping; empty when the file is absent or unreadable (a project never run)."""
    try:
        payload = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    stages = payload.get("stages", {}) if isinstance(payload, dict) else {}
    return stages if isinstance(stages, dict) else {}


def lock_out_hashes(lock: Path, paths: Iterable[str]) -> dict[str, str]:
    """The md5 dvc.lock records for each output in ``paths``; outputs it does not record are left out."""
    wanted = set(paths)
    found: dict[str, str] = {}
    for stage in read_lock(lock).values():
        for out in stage.get("outs", []) or []:
            if out.get("path") in wanted and out.get("md5"):
                found[out["path"]] = out["md5"]
    return found


@cache
def closure_commit(module: str, root: Path = ROOT) -> str | None:
    """The last commit that changed a file of ``module``'s closure; None outside a git checkout.

    Not HEAD: HEAD moves with every unrelated commit, so an artifact holding it would differ byte for byte between
    two runs of the same code, and a fresh clone's ``dvc repro`` could never reproduce the committed dvc.lock. This
    commit moves only when the stage's own code does (uncommitted edits show in ``code_hash``, not here).
    """
    try:
        found = subprocess.run(
            ["git", "log", "-1", "--format=%H", "--", *code_files(module, root)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None


def code_block(module: str) -> dict[str, Any]:
    """The ``code`` entry of a provenance block: package version, the last commit of the stage's code and the
    closure's hash."""
    return {"emosafe": __version__, "commit": closure_commit(module), "code_hash": code_hash(module)}


#: Keys whose values are credentials (a webhook URL carries its token in the path): only the origin is kept.
SECRET_KEYS = frozenset({"webhook_url", "token", "secret", "password", "api_key", "authorization"})
REDACTED = "<redacted>"


def redact(value: Any, key: str = "") -> Any:
    """The one secret-redaction rule for anything written as provenance: a secret key's value keeps only its URL
    origin (``https://hooks.example.com/<redacted>``) or becomes ``<redacted>``; any other URL loses its user info
    and query string (where tokens ride). Recurses into mappings and lists."""
    from urllib.parse import urlsplit

    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if not isinstance(value, str) or not value:
        return value
    url = urlsplit(value) if "://" in value else None
    origin = f"{url.scheme}://{url.hostname}" + (f":{url.port}" if url.port else "") if url and url.hostname else None
    if key.lower() in SECRET_KEYS:
        return f"{origin}/{REDACTED}" if origin else REDACTED
    if url and origin and (url.username or url.password or url.query):
        return f"{origin}{url.path}" + (f"?{REDACTED}" if url.query else "")
    return value


def provenance(module: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The provenance block every artifact carries: the stage's own fields (stage, params, seed, inputs, data hash,
    base model, ...) plus ``code`` (version, git commit, closure hash). ``module`` is the stage module (the
    caller's ``__name__``) whose closure is hashed. The one place a block is completed, so none lacks the commit,
    and the one place secrets are redacted (``redact``), so no params section leaks a token into a report."""
    return {**redact(fields), "code": code_block(module)}


def _is_code(dep: Any) -> bool:
    """A dep inside the project's packages (a module or a folder of them); data deps live elsewhere."""
    return isinstance(dep, str) and dep.split("/")[0] in PROJECT_PACKAGES


def dvc_code_drift(dvc_yaml: Path, root: Path = ROOT) -> dict[str, tuple[list[str], list[str]]]:
    """Stages whose code deps in ``dvc.yaml`` (folders expanded to their files) differ from their code closure:
    ``{stage: (missing, extra)}``. A file added to a declared folder but not imported shows as extra."""
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    drift: dict[str, tuple[list[str], list[str]]] = {}
    for name, stage in stages.items():
        declared = {file for dep in stage.get("deps", []) if _is_code(dep) for file in expand_code_dep(dep, root)}
        derived = set(stage_code_files(name, root))
        if declared != derived:
            drift[name] = (sorted(derived - declared), sorted(declared - derived))
    return drift


def write_dvc_code_deps(dvc_yaml: Path, root: Path = ROOT) -> list[str]:
    """Rewrite each stage's code deps in ``dvc.yaml`` as ``stage_code_deps`` (comments and other deps kept, code
    deps last and sorted). Returns the stages that changed."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    doc = rt.load(dvc_yaml.read_text(encoding="utf-8"))
    changed = []
    for name, stage in doc["stages"].items():
        deps = stage.get("deps")
        if deps is None:
            continue
        wanted = stage_code_deps(name, root)
        if [dep for dep in deps if _is_code(dep)] == wanted:
            continue
        for index in reversed([i for i, dep in enumerate(deps) if _is_code(dep)]):
            del deps[index]
        deps.extend(wanted)
        changed.append(name)
    if changed:
        import io

        buffer = io.StringIO()
        rt.dump(doc, buffer)
        atomic_write_bytes(dvc_yaml, buffer.getvalue().encode())
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m components.provenance [--check]``: rewrite (or only check) dvc.yaml's code deps (``make deps``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m components.provenance", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 listing the stages whose code deps differ")
    parser.add_argument("--dvc-yaml", type=Path, default=ROOT / "dvc.yaml", help="the dvc.yaml to check or rewrite")
    args = parser.parse_args(argv)
    if args.check:
        drift = dvc_code_drift(args.dvc_yaml)
        for stage, (missing, extra) in drift.items():
            print(f"{args.dvc_yaml}: stage {stage}: missing {missing}, not run {extra}")
        return 1 if drift else 0
    changed = write_dvc_code_deps(args.dvc_yaml)
    print(f"{args.dvc_yaml}: code deps rewritten for {changed}" if changed else f"{args.dvc_yaml}: code deps current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
