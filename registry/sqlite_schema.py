"""The SQLite registry's tables, in the order they were added.

Each script is ``CREATE ... IF NOT EXISTS`` and runs on every open, so a registry created by older code gains the
later tables (evaluations, withdrawn) the first time newer code opens it: that is the migration.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, task TEXT NOT NULL, created_at TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL, lineage TEXT NOT NULL, metrics TEXT NOT NULL, wandb_link TEXT NOT NULL,
    PRIMARY KEY (name, version), UNIQUE (name, manifest_sha256));
CREATE TABLE IF NOT EXISTS artifacts (
    name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (name, version, path), FOREIGN KEY (name, version) REFERENCES versions (name, version));
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (name, alias), FOREIGN KEY (name, version) REFERENCES versions (name, version));
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, alias TEXT NOT NULL, at TEXT NOT NULL,
    from_version INTEGER, to_version INTEGER NOT NULL, who TEXT NOT NULL, why TEXT NOT NULL,
    action TEXT NOT NULL, gate_report_hash TEXT);
CREATE TABLE IF NOT EXISTS reports (
    report_hash TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL, promote INTEGER NOT NULL,
    at TEXT NOT NULL, report TEXT NOT NULL);
"""

#: Re-evaluations on labelled feedback (``emosafe reevaluate``): created on open, so older databases gain the table
#: (the migration); append-only, enforced by triggers so no code path can rewrite a past evaluation.
EVALUATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version INTEGER NOT NULL, evaluated_at TEXT NOT NULL,
    who TEXT NOT NULL, feedback_sha256 TEXT NOT NULL, feedback_rows INTEGER NOT NULL, flagged TEXT NOT NULL,
    metrics TEXT NOT NULL, details TEXT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES versions (name, version));
CREATE INDEX IF NOT EXISTS evaluations_by_version ON evaluations (name, version, seq);
CREATE TRIGGER IF NOT EXISTS evaluations_no_update BEFORE UPDATE ON evaluations
    BEGIN SELECT RAISE(ABORT, 'evaluations are append-only'); END;
CREATE TRIGGER IF NOT EXISTS evaluations_no_delete BEFORE DELETE ON evaluations
    BEGIN SELECT RAISE(ABORT, 'evaluations are append-only'); END;
"""

#: Versions withdrawn by a rolled-back flow (``Registry.rollback_to``): kept for the audit, never resolvable by an
#: alias; ``cleared`` lists the aliases the withdrawal unset (JSON), which is how ``verify`` explains an alias whose
#: last history row points at a withdrawn version. Created on open, so older databases gain the table.
WITHDRAWN_SCHEMA = """
CREATE TABLE IF NOT EXISTS withdrawn (
    name TEXT NOT NULL, version INTEGER NOT NULL, at TEXT NOT NULL, who TEXT NOT NULL, why TEXT NOT NULL,
    cleared TEXT NOT NULL,
    PRIMARY KEY (name, version), FOREIGN KEY (name, version) REFERENCES versions (name, version));
"""
