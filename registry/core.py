"""The registry: register versions, move aliases behind the gate, roll back, verify, load verified files.

``components/release/promotion.py`` decides; this module stores and moves. A guarded alias (staging, production) moves
only with a passing decision computed here from the stored figures, bound to the version's artifact manifest and to
the production version it was compared with (compare-and-swap in the same transaction as the history row). A human
override needs ``force`` and a reason and is recorded as action ``force``.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config.register import GateConfig, RegisterConfig
from components.errors import AliasConflictError, ArtifactIntegrityError, GateRefusedError, RegistryError
from components.export.bundle import MANIFEST
from components.release.evidence import Binding, bind
from components.release.promotion import Evidence, PromotionDecision, decide_promotion
from components.release.scorecard import Scorecard, scorecard_from_dict, scorecard_to_dict
from registry.lineage import collect_files, gather_lineage
from registry.names import CHAMPION_ALIAS, GUARDED_ALIASES, ModelRef, default_name, validate_alias, validate_name
from registry.postgres_store import PostgresMetadataStore, is_postgres_url
from registry.s3_store import S3BlobStore
from registry.sqlite_store import SqliteMetadataStore, now
from registry.store import (
    AliasEvent,
    ArtifactRecord,
    BlobStore,
    LocalBlobStore,
    MetadataStore,
    MoveRequest,
    VersionRecord,
    hash_stream,
    staging_dir,
)
from registry.transactions import RegistryCheckpoint, rollback, take_checkpoint
from registry.wandb_link import link_version

log = logging.getLogger(__name__)
ENV_VAR = "EMOSAFE_REGISTRY"
ARTIFACTS_ENV_VAR = "EMOSAFE_ARTIFACTS"  # overrides register.artifacts, as EMOSAFE_REGISTRY overrides register.store


def registry_store(config: RegisterConfig) -> str:
    """``$EMOSAFE_REGISTRY`` if set, else ``register.store``: a folder or a postgresql:// URL."""
    return os.environ.get(ENV_VAR) or config.store


def open_registry(
    config: RegisterConfig, project: Path = Path(), gate: GateConfig | None = None, read_only: bool = False
) -> Registry:
    """The registry ``register.store`` / ``register.artifacts`` select (EMOSAFE_REGISTRY / EMOSAFE_ARTIFACTS override):
    a folder (SQLite + local objects, the embedded default) or PostgreSQL metadata with S3-compatible artifacts."""
    store, artifacts = registry_store(config), os.environ.get(ARTIFACTS_ENV_VAR) or config.artifacts
    gate = gate or config.gate
    if not is_postgres_url(store):
        blobs = None if artifacts is None else S3BlobStore(artifacts)
        return Registry(project / store, gate, config.wandb_project, read_only, blobs=blobs)
    if artifacts is None:
        raise RegistryError(
            "register.store is a PostgreSQL database but register.artifacts is unset: a shared registry needs shared "
            "artifacts (s3://bucket/prefix)"
        )
    meta = PostgresMetadataStore(store, read_only=read_only)
    return Registry(
        project / config.cache, gate, config.wandb_project, read_only, meta=meta, blobs=S3BlobStore(artifacts)
    )


def manifest_sha256(artifacts: list[ArtifactRecord] | tuple[ArtifactRecord, ...]) -> str:
    rows = sorted((a.path, a.sha256, a.size) for a in artifacts)
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def who_am_i() -> str:
    return os.environ.get("EMOSAFE_USER") or getpass.getuser()


@dataclass(frozen=True)
class LoadedModel:
    record: VersionRecord
    folder: Path  # every file in it was hashed and matched its registered sha256


class Registry:
    def __init__(
        self,
        root: Path,
        gate: GateConfig | None = None,
        wandb_project: str = "emosafe",
        read_only: bool = False,
        meta: MetadataStore | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        """``read_only`` for commands that only look (list, show, verify, card, history, loading a model): the
        registry must exist already, and nothing is created or written in it. ``root`` holds the SQLite file and
        objects unless ``meta`` / ``blobs`` are given (``open_registry``), and the verified checkouts always."""
        self.root = root
        self.gate = gate or GateConfig()
        self.wandb_project = wandb_project
        self.meta: MetadataStore = meta or SqliteMetadataStore(root / "registry.db", read_only=read_only)
        self.blobs: BlobStore = blobs or LocalBlobStore(root)

    # register ------------------------------------------------------------------------------------------------
    def register(
        self,
        run_dir: Path,
        metrics: Mapping[str, Any],
        name: str | None = None,
        project: Path = Path(),
        overrides: Mapping[str, Any] | None = None,
        who: str | None = None,
        origin: str = "metrics",
    ) -> tuple[VersionRecord, bool]:
        """Store ``run_dir``'s files and a version carrying lineage and figures; point ``candidate`` at it.

        Idempotent: the same files (same manifest) return the existing version with ``created`` False.
        """
        card = scorecard_from_dict(metrics, origin=origin)
        name = validate_name(name) if name else default_name(card.task)
        files = collect_files(run_dir)
        artifacts = [
            ArtifactRecord(f.relative_to(run_dir).as_posix(), stored.sha256, stored.size)
            for f in files
            for stored in (self.blobs.put_file(f),)
        ]
        lineage = gather_lineage(run_dir, project, overrides or {})
        lineage["evidence"] = _binding(metrics, artifacts, run_dir, origin).to_dict()  # never from overrides
        if lineage.get("thresholds") is None and isinstance(metrics.get("thresholds"), Mapping):
            lineage["thresholds"] = dict(metrics["thresholds"])  # taxonomy thresholds tuned on val by `evaluate`
        draft = VersionRecord(
            name=name,
            version=0,
            task=card.task,
            created_at=now(),
            manifest_sha256=manifest_sha256(artifacts),
            artifacts=tuple(artifacts),
            lineage=lineage,
            metrics=scorecard_to_dict(card),
            wandb_link=link_version(name, lineage.get("wandb_run"), self.wandb_project),
        )
        move = MoveRequest(name, "candidate", 0, None, who or who_am_i(), "registered", "register")
        record, created = self.meta.add_version(draft, move)
        if not created and record.version in self.meta.withdrawn(name):  # the same files, registered again
            self.meta.reinstate(name, record.version, MoveRequest(**{**move.__dict__, "why": "registered again"}))
        log.info(
            "%s v%d %s (%d artifacts)", name, record.version, "registered" if created else "exists", len(artifacts)
        )
        return record, created

    # look-ups ------------------------------------------------------------------------------------------------
    def resolve(self, ref: ModelRef) -> VersionRecord:
        version = ref.version if ref.alias is None else self.meta.aliases(ref.name).get(ref.alias)
        if version is None or self.meta.get_version(ref.name, version) is None:
            known = sorted({r.name for r in self.meta.list_versions()})
            if ref.name not in known:  # a typo in the name: say so, not "alias not set"
                raise RegistryError(f"{ref}: unknown model '{ref.name}' (registered: {', '.join(known) or 'none'})")
        if version is None:
            raise RegistryError(f"{ref}: alias not set (see `emosafe registry list`)")
        record = self.meta.get_version(ref.name, version)
        if record is None:
            raise RegistryError(f"{ref}: {ref.name} has no version {version}")
        return record

    def evidence(self, record: VersionRecord) -> Evidence:
        card: Scorecard = scorecard_from_dict(record.metrics, origin=f"{record.name} v{record.version} metrics")
        stored = record.lineage.get("evidence")
        binding = (
            Binding(stored.get("status") == "bound", str(stored.get("detail")))
            if isinstance(stored, dict)
            else Binding(False, "registered without an evidence binding (before it existed): register it again")
        )
        return Evidence(record.version, record.manifest_sha256, record.lineage.get("data_hash"), card, binding)

    def decide(self, record: VersionRecord) -> PromotionDecision:
        """Run the gate against the current production holder and store the report (refused or not)."""
        champion_version = self.meta.aliases(record.name).get(CHAMPION_ALIAS)
        champion = None if champion_version is None else self.meta.get_version(record.name, champion_version)
        decision = decide_promotion(self.evidence(record), self.evidence(champion) if champion else None, self.gate)
        self.meta.save_report(decision.report_hash(), record.name, record.version, decision.promote, decision.to_dict())
        return decision

    # moves ---------------------------------------------------------------------------------------------------
    def promote(
        self, ref: ModelRef, alias: str, why: str = "", force: bool = False, who: str | None = None
    ) -> tuple[AliasEvent | None, PromotionDecision | None]:
        """Move ``alias`` to ``ref``'s version. Guarded aliases need a passing gate or ``force`` with a reason.

        Raises GateRefusedError, AliasConflictError (someone moved the alias or production meanwhile: retry),
        ArtifactIntegrityError (the stored files no longer verify). Returns (None, ...) when already there.
        """
        validate_alias(alias)
        if force and not why.strip():
            raise RegistryError("--force needs --reason: overrides are recorded with the reason")
        record = self.resolve(ref)
        self._verify_or_raise(record)
        current = self.meta.aliases(record.name).get(alias)
        if current == record.version:
            return None, None
        decision = self.decide(record) if alias in GUARDED_ALIASES else None
        if decision is not None and decision.candidate_manifest != record.manifest_sha256:
            raise RegistryError(f"{ref}: gate decision is bound to other artifacts; refusing")  # defensive
        if decision is not None and not decision.promote and not force:
            raise GateRefusedError(f"{ref} -> {alias} refused by the gate: " + "; ".join(decision.reasons))
        action = "force" if decision is not None and not decision.promote else "promote"
        move = MoveRequest(
            record.name,
            alias,
            record.version,
            current,
            who or who_am_i(),
            why or action,
            action,
            champion_alias=CHAMPION_ALIAS if decision else None,
            champion=decision.champion_version if decision else None,
            gate_report_hash=decision.report_hash() if decision else None,
        )
        return self.meta.move_alias(move), decision

    def rollback(
        self, name: str, alias: str = CHAMPION_ALIAS, to: int | None = None, why: str = "", who: str | None = None
    ) -> AliasEvent:
        """Move ``alias`` back to the version it held before (or to ``to``, which must have held it before).

        Recorded like any move (action ``rollback``), carrying the gate report hash of that version's earlier move.
        """
        validate_alias(alias)
        current = self.meta.aliases(name).get(alias)
        history = self.meta.history(name, alias)
        if current is None or not history:
            raise RegistryError(f"{name}@{alias}: nothing to roll back (alias never set)")
        if history[-1].to_version != current:  # moved between the two reads: the CAS below would refuse anyway
            raise AliasConflictError(f"{name}@{alias} moved while reading its history; retry")
        target = history[-1].from_version if to is None else to
        if target is None:
            raise RegistryError(f"{name}@{alias}: v{current} was the alias's first holder; nothing to roll back to")
        held = [event for event in history if event.to_version == target]
        if not held:
            raise RegistryError(f"{name}@{alias}: v{target} never held this alias; use promote instead")
        record = self.resolve(ModelRef(name, version=target))
        self._verify_or_raise(record)
        move = MoveRequest(
            name,
            alias,
            target,
            current,
            who or who_am_i(),
            why or "rollback",
            "rollback",
            gate_report_hash=held[-1].gate_report_hash,
        )
        return self.meta.move_alias(move)

    # integrity -----------------------------------------------------------------------------------------------
    def problems(self, record: VersionRecord) -> list[str]:
        return [
            f"{record.name} v{record.version} {a.path}: {problem}"
            for a in record.artifacts
            if (problem := self.blobs.verify(a.sha256, a.size))
        ]

    def _verify_or_raise(self, record: VersionRecord) -> None:
        self._refuse_withdrawn(record)
        problems = self.problems(record)
        if problems:
            raise ArtifactIntegrityError("refusing to use a damaged version: " + "; ".join(problems))

    def verify(self, name: str | None = None) -> list[str]:
        """Every artifact of every version re-hashed, and every alias checked against the audit history."""
        problems = [p for record in self.meta.list_versions(name) for p in self.problems(record)]
        names = sorted({r.name for r in self.meta.list_versions(name)})
        for model in names:
            problems += self._withdrawal_problems(model)
            for alias, version in self.meta.aliases(model).items():
                events = self.meta.history(model, alias)
                if not events or events[-1].to_version != version:
                    problems.append(f"{model}@{alias}: holds v{version} but the history's last move disagrees")
        return problems

    def load(self, ref: ModelRef, dest: Path | None = None) -> LoadedModel:
        """A folder with the version's files, each hashed and checked first; refuses damaged or truncated files.

        The default folder ``<root>/checkouts/<name>/v<N>`` is re-verified on every load.
        """
        record = self.resolve(ref)
        self._refuse_withdrawn(record)
        folder = dest or self.root / "checkouts" / record.name / f"v{record.version}"
        if folder.exists() and any(folder.iterdir()):
            self._check_folder(record, folder)
            return LoadedModel(record, folder)
        self._verify_or_raise(record)
        try:
            with staging_dir(folder) as tmp:
                for artifact in record.artifacts:
                    target = tmp / artifact.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with self.blobs.open(artifact.sha256) as src, target.open("wb") as out:
                        shutil.copyfileobj(src, out)
                self._check_folder(record, tmp)
        except OSError as exc:
            # Another process's first load renamed its copy into place between our check and our rename: use
            # theirs, verified like any existing checkout (anything else is a real error).
            if folder.is_dir() and any(folder.iterdir()):
                self._check_folder(record, folder)
            else:
                raise RegistryError(f"{folder}: cannot write the version's checkout ({exc.strerror or exc})") from None
        return LoadedModel(record, folder)

    def _check_folder(self, record: VersionRecord, folder: Path) -> None:
        """Every registered file present with its sha256, and nothing else (an added file could be loaded too)."""
        extra = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())
        extra = [p for p in extra if p not in {a.path for a in record.artifacts}]
        if extra:
            raise ArtifactIntegrityError(
                f"{record.name} v{record.version}: {folder} holds file(s) the version does not register: "
                f"{', '.join(extra[:5])}; refusing to load"
            )
        for artifact in record.artifacts:
            path = folder / artifact.path
            if not path.is_file():
                raise ArtifactIntegrityError(f"{record.name} v{record.version}: {path} is missing")
            with path.open("rb") as handle:
                got = hash_stream(handle)
            if got != artifact.sha256:
                raise ArtifactIntegrityError(
                    f"{record.name} v{record.version}: {path} hashes to {got[:12]}, {artifact.sha256[:12]} "
                    "registered (tampered or truncated); refusing to load"
                )

    # flow transactions (registry/transactions.py): checkpoint, then roll back to it if the flow fails later --------
    def checkpoint(self, names: Iterable[str]) -> RegistryCheckpoint:
        """Every alias holder and the highest version number of ``names``, taken before a flow's first write."""
        return take_checkpoint(self.meta, [validate_name(n) for n in names])

    def rollback_to(self, checkpoint: RegistryCheckpoint, why: str, who: str | None = None) -> list[str]:
        """Undo a failed flow's registry writes (``registry.transactions.rollback``); one line per change.

        Raises AliasConflictError when an alias moves during the rollback (run it again).
        """
        if not why.strip():
            raise RegistryError("rollback_to needs a reason: it is recorded in the history")
        return rollback(self.meta, checkpoint, who or who_am_i(), why)

    def _refuse_withdrawn(self, record: VersionRecord) -> None:
        if record.version in self.meta.withdrawn(record.name):
            raise RegistryError(
                f"{record.name} v{record.version} was withdrawn by a rolled-back flow; register its "
                "files again to reinstate it"
            )

    def _withdrawal_problems(self, name: str) -> list[str]:
        """An alias never holds a withdrawn version; an alias unset after history only by a withdrawal."""
        withdrawn, aliases, problems = self.meta.withdrawn(name), self.meta.aliases(name), []
        problems += [f"{name}@{a}: holds withdrawn v{v}" for a, v in aliases.items() if v in withdrawn]
        for alias in sorted({e.alias for e in self.meta.history(name)} - set(aliases)):
            last = self.meta.history(name, alias)[-1].to_version
            if alias not in withdrawn.get(last, []):
                problems.append(f"{name}@{alias}: unset, but the history's last move set it to v{last}")
        return problems


def _binding(metrics: Mapping[str, Any], artifacts: list[ArtifactRecord], run_dir: Path, origin: str) -> Binding:
    """Bind the figures to the stored files. A figures file inside the folder (a bundle's ``quantization.json``)
    and the bundle manifest written after it are exempt: they cannot list themselves."""
    try:
        inside = Path(origin).resolve().relative_to(run_dir.resolve()).as_posix()
    except (OSError, ValueError):
        exempt: frozenset[str] = frozenset()
    else:
        exempt = frozenset({inside, MANIFEST})
    return bind(metrics, {a.path: a.sha256 for a in artifacts}, exempt)


def looks_like_ref(text: str) -> bool:
    """True for ``name@alias`` / ``name@version`` (a path never contains '@' in this project's layouts)."""
    return "@" in text and "/" not in text


def load_model(ref: str, config: RegisterConfig | None = None, project: Path = Path()) -> LoadedModel:
    """For any command that takes a model: resolve ``emosafe-trinary@production`` (or ``@3``) to a verified folder.

    Raises RegistryError for an unknown name/alias/version and ArtifactIntegrityError for a damaged artifact.
    """
    from registry.names import parse_ref

    registry = open_registry(config or RegisterConfig(), project, read_only=True)
    return registry.load(parse_ref(ref))
