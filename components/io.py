"""Filesystem helpers (app layer): atomic writes and content hashes.

Writers go through a temporary file in the target folder, fsync, then ``os.replace``, so a reader (DVC, a
flow, a person) never sees half a file, and a crash leaves the previous artifact in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import EmosafeError, SourceFileError

if TYPE_CHECKING:
    import pandas as pd


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (same-folder temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def refuse_overwriting_inputs(output: Path, *inputs: Path, folder: bool = False) -> None:
    """The one output-path guard, run before any work: a command never writes over a file it reads (``predict
    --input x --output x`` would replace the messages with predictions), and the output can be written at all
    (``folder``: the output is a folder). Raises EmosafeError naming the path and the rule."""
    writable_output(output, folder)
    for source in inputs:
        same = output.exists() and source.exists() and os.path.samefile(output, source)
        if same or output.resolve() == source.resolve():
            raise EmosafeError(f"{output}: is also the input {source} (rule: an output never replaces an input)")


def writable_output(output: Path, folder: bool = False) -> None:
    """Fail now, not after an hour of scoring: ``output`` is not the wrong kind of thing (a folder where a file goes,
    or a file where a folder goes), and its nearest existing ancestor is a writable folder."""
    if output.exists() and output.is_dir() != folder:
        kind = "a file" if folder else "a folder"
        raise EmosafeError(f"{output}: is {kind} (rule: the output must be {'a folder' if folder else 'a file'})")
    ancestor = output.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise EmosafeError(f"{output}: {ancestor} is not a folder (rule: outputs are written inside folders)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise EmosafeError(f"{output}: {ancestor} is not writable (rule: the output folder must be writable)")


def write_together(files: dict[Path, bytes]) -> None:
    """Replace several files as one unit: all of them or none (a dataset and its summary must stay a pair).

    Every new file is written to a temp file beside its target first (a failure there changes nothing); then the
    old files are set aside and the new ones renamed in; if a rename fails, the files already replaced get their old
    content back."""
    temps: dict[Path, Path] = {}
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                raise EmosafeError(f"{path}: is a folder (rule: an output path names a file)")
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps[path] = Path(name)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        done: list[tuple[Path, Path | None]] = []
        try:
            for path, staged in temps.items():
                backup = path.with_name(f".{path.name}.previous") if path.exists() else None
                if backup is not None:
                    os.replace(path, backup)
                done.append((path, backup))
                os.replace(staged, path)
        except BaseException:
            for path, backup in reversed(done):
                if backup is not None:
                    os.replace(backup, path)
                else:
                    path.unlink(missing_ok=True)
            raise
        for _, backup in done:
            if backup is not None:
                backup.unlink(missing_ok=True)
    finally:
        for staged in temps.values():
            staged.unlink(missing_ok=True)


def json_bytes(payload: Any) -> bytes:
    """Pretty, key-sorted JSON so diffs (git, ``dvc metrics diff``) stay readable and stable."""
    return (json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def atomic_write_json(path: Path, payload: Any) -> None:
    """``json_bytes`` written atomically."""
    atomic_write_bytes(path, json_bytes(payload))


def replace_dir(new: Path, target: Path) -> None:
    """Swap a fully written folder ``new`` in as ``target`` (both in the same parent): the old one is renamed
    aside first and removed after, so a crash leaves either the old or the new folder, never a mix."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_parquet_input(path: Path, missing: str) -> pd.DataFrame:
    """Read a stage's upstream Parquet dataset. Raises SourceFileError ``"<path>: <missing>"`` when the file is absent
    (``missing`` says which command produces it) or naming the rule when it is not readable Parquet."""
    import pandas as pd

    if not path.is_file():
        raise SourceFileError(path, missing)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        raise SourceFileError(path, f"not a readable parquet file ({type(exc).__name__})") from None


def write_folder(final: Path, fill: Callable[[Path], None], meta: dict[str, Any]) -> Path:
    """Fill a temp sibling folder, then swap it in (the old folder survives a crash mid-write)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        fill(tmp)
        atomic_write_json(tmp / "meta.json", meta)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
