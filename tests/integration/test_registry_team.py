"""The shared registry (PostgreSQL metadata, artifacts on S3-compatible storage) on real servers: what only a team
backend must prove beyond the registry suite both backends run (test_registry.py): versioned migrations, writers in
many processes, append-only evaluations enforced by the database, selection by params, two machines sharing it.
"""

from __future__ import annotations

import itertools
import multiprocessing
import random
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml

from components.config.register import GateConfig, RegisterConfig
from components.errors import AliasConflictError, RegistryError
from registry.core import Registry, open_registry
from registry.names import ModelRef
from registry.postgres_schema import LATEST, MIGRATIONS
from registry.postgres_store import PostgresMetadataStore
from registry.s3_store import S3BlobStore
from registry.store import EvaluationRecord, MoveRequest
from tests.fixtures.common import VENV_BIN
from tests.fixtures.registry_runs import bound, make_run, trinary_metrics
from tests.fixtures.team_servers import S3, Postgres

GATE = GateConfig(default_f1_floor=0.5, trinary_macro_f1_floor=0.6, unsafe_recall_floor=0.7)


def _registry(url: str, artifacts: str, cache: Path, **store: object) -> Registry:
    return Registry(cache, GATE, meta=PostgresMetadataStore(url, **store), blobs=S3BlobStore(artifacts))  # type: ignore[arg-type]


def _register(reg: Registry, tmp_path: Path, tag: str) -> int:
    run = make_run(tmp_path, tag)
    record, _ = reg.register(run, bound(trinary_metrics(), run), project=tmp_path)
    return record.version


def test_a_registry_made_by_older_code_opens_and_migrates_once(
    postgres_server: Postgres, s3_server: S3, tmp_path: Path
) -> None:
    url, artifacts = postgres_server.new_database(), s3_server.new_prefix()
    old = _registry(url, artifacts, tmp_path / "a", migrations=MIGRATIONS[:1])  # before evaluations and withdrawals
    assert old.meta.schema_version() == 1  # type: ignore[attr-defined]
    version = _register(old, tmp_path, "old")
    new = _registry(url, artifacts, tmp_path / "b")
    assert new.meta.schema_version() == LATEST == 3  # type: ignore[attr-defined]
    assert new.resolve(ModelRef("emosafe-trinary", version=version)).version == version
    new.meta.add_evaluation(EvaluationRecord(0, "emosafe-trinary", version, "2026-12-07", "t", "f" * 64, 10, ()))
    assert len(new.meta.evaluations("emosafe-trinary")) == 1
    with psycopg.connect(url) as db:
        assert db.execute("SELECT count(*) FROM emosafe_schema").fetchone() == (3,)  # each migration ran once
    _registry(url, artifacts, tmp_path / "c")  # a third open migrates nothing
    with psycopg.connect(url) as db:
        assert db.execute("SELECT count(*) FROM emosafe_schema").fetchone() == (3,)


def test_a_schema_newer_than_the_code_is_refused(postgres_server: Postgres) -> None:
    url = postgres_server.new_database()
    PostgresMetadataStore(url)
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("INSERT INTO emosafe_schema VALUES (99, 'later')")
    with pytest.raises(RegistryError, match="newer than this emosafe knows"):
        PostgresMetadataStore(url)


def test_read_only_open_of_an_empty_database_creates_nothing(postgres_server: Postgres) -> None:
    url = postgres_server.new_database()
    with pytest.raises(RegistryError, match="no registry here"):
        PostgresMetadataStore(url, read_only=True)
    with psycopg.connect(url) as db:
        assert db.execute("SELECT to_regclass('emosafe_schema')").fetchone() == (None,)


def test_evaluations_are_append_only_in_the_database_itself(
    postgres_server: Postgres, s3_server: S3, tmp_path: Path
) -> None:
    url = postgres_server.new_database()
    reg = _registry(url, s3_server.new_prefix(), tmp_path / "cache")
    version = _register(reg, tmp_path, "a")
    reg.meta.add_evaluation(EvaluationRecord(0, "emosafe-trinary", version, "2026-12-07", "t", "f" * 64, 10, ()))
    with psycopg.connect(url) as db, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("UPDATE evaluations SET who = 'someone else'")
    with psycopg.connect(url) as db, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("DELETE FROM evaluations")


def _mover(url: str, versions: list[int], rounds: int, seed: int) -> tuple[int, int]:
    """Read the alias, try to move it (compare-and-swap on what was read); count wins and lost races."""
    store, rng, won, lost = PostgresMetadataStore(url), random.Random(seed), 0, 0
    for _ in range(rounds):
        current = store.aliases("emosafe-trinary").get("candidate")
        target = rng.choice(versions)
        try:
            move = MoveRequest("emosafe-trinary", "candidate", target, current, f"p{seed}", "race", "promote")
            store.move_alias(move)
            won += 1
        except AliasConflictError:
            lost += 1
    store.close()
    return won, lost


def test_writers_in_many_processes_never_lose_a_move_or_fork_the_history(
    postgres_server: Postgres, s3_server: S3, tmp_path: Path
) -> None:
    url = postgres_server.new_database()
    reg = _registry(url, s3_server.new_prefix(), tmp_path / "cache")
    versions = [_register(reg, tmp_path, f"v{i}") for i in range(4)]
    before = len(reg.meta.history("emosafe-trinary", "candidate"))
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        results = pool.starmap(_mover, [(url, versions, 40, seed) for seed in range(6)])
    won = sum(w for w, _ in results)
    assert won + sum(lost for _, lost in results) == 6 * 40 and won > 0
    events = reg.meta.history("emosafe-trinary", "candidate")[before:]
    assert len(events) == won  # every move that returned is recorded, nothing else
    chain = reg.meta.history("emosafe-trinary", "candidate")
    assert all(b.from_version == a.to_version for a, b in itertools.pairwise(chain))  # one unbroken line
    assert reg.meta.aliases("emosafe-trinary")["candidate"] == chain[-1].to_version
    assert reg.verify() == []


def test_checkpoint_and_rollback_keep_their_guarantees(
    postgres_server: Postgres, s3_server: S3, tmp_path: Path
) -> None:
    reg = _registry(postgres_server.new_database(), s3_server.new_prefix(), tmp_path / "cache")
    first = _register(reg, tmp_path, "a")
    reg.promote(ModelRef("emosafe-trinary", version=first), "production", "first")
    checkpoint = reg.checkpoint(["emosafe-trinary"])
    second = _register(reg, tmp_path, "b")
    reg.promote(ModelRef("emosafe-trinary", version=second), "production", "second")
    done = reg.rollback_to(checkpoint, "the flow failed")
    assert reg.meta.aliases("emosafe-trinary")["production"] == first
    assert second in reg.meta.withdrawn("emosafe-trinary") and done
    with pytest.raises(RegistryError, match="withdrawn"):
        reg.load(ModelRef("emosafe-trinary", version=second))
    assert reg.verify() == []


def test_params_select_the_team_backend_and_two_machines_share_production(
    postgres_server: Postgres, s3_server: S3, tmp_path: Path
) -> None:
    config = RegisterConfig(store=postgres_server.new_database(), artifacts=s3_server.new_prefix(), gate=GATE)
    machine_a, machine_b = tmp_path / "machine-a", tmp_path / "machine-b"
    reg_a = open_registry(config, machine_a)
    assert isinstance(reg_a.meta, PostgresMetadataStore) and isinstance(reg_a.blobs, S3BlobStore)
    version = _register(reg_a, machine_a, "a")
    reg_a.promote(ModelRef("emosafe-trinary", version=version), "production", "release")
    loaded = open_registry(config, machine_b, read_only=True).load(ModelRef("emosafe-trinary", alias="production"))
    assert loaded.record.version == version and loaded.folder.is_relative_to(machine_b / config.cache)
    assert (loaded.folder / "adapter" / "adapter_model.safetensors").read_bytes().startswith(b"weights a")

    sources = [{"name": "x", "kind": "emosafe", "path": "x.jsonl"}]
    params = {"prepare": {"sources": sources}, "register": config.model_dump(mode="json")}
    (machine_b / "params.yaml").write_text(yaml.safe_dump(params))
    for command in (["list"], ["verify"], ["show", "emosafe-trinary@production"]):
        done = subprocess.run(
            [str(VENV_BIN / "emosafe"), "registry", *command], cwd=machine_b, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert "emosafe-trinary" in done.stdout


def test_a_password_in_params_and_a_server_store_without_shared_artifacts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="password"):
        RegisterConfig(store="postgresql://emosafe:hunter2@db.example/registry")
    with pytest.raises(RegistryError, match=r"register\.artifacts"):
        open_registry(RegisterConfig(store="postgresql://emosafe@127.0.0.1:1/registry"), tmp_path)
