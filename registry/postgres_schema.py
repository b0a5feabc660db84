"""The PostgreSQL registry's schema as numbered migrations, applied in order and recorded in ``emosafe_schema``.

A registry created by older code opens in newer code: the missing migrations run once, under the registry's write
lock, in one transaction each. Never edit a released migration; append a new one. The tables mirror the SQLite
registry's (``sqlite_schema.py``) so both backends hold the same records.
"""

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
CREATE TABLE versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, task TEXT NOT NULL, created_at TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL, lineage TEXT NOT NULL, metrics TEXT NOT NULL, wandb_link TEXT NOT NULL,
    PRIMARY KEY (name, version), UNIQUE (name, manifest_sha256));
CREATE TABLE artifacts (
    name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL,
    PRIMARY KEY (name, version, path), FOREIGN KEY (name, version) REFERENCES versions (name, version));
CREATE TABLE aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, seq BIGINT NOT NULL,
    PRIMARY KEY (name, alias), FOREIGN KEY (name, version) REFERENCES versions (name, version));
CREATE TABLE history (
    seq BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, alias TEXT NOT NULL, at TEXT NOT NULL,
    from_version INTEGER, to_version INTEGER NOT NULL, who TEXT NOT NULL, why TEXT NOT NULL,
    action TEXT NOT NULL, gate_report_hash TEXT);
CREATE TABLE reports (
    report_hash TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL, promote INTEGER NOT NULL,
    at TEXT NOT NULL, report TEXT NOT NULL);
""",
    ),
    (
        2,
        """
CREATE TABLE evaluations (
    seq BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL, evaluated_at TEXT NOT NULL,
    who TEXT NOT NULL, feedback_sha256 TEXT NOT NULL, feedback_rows INTEGER NOT NULL, flagged TEXT NOT NULL,
    metrics TEXT NOT NULL, details TEXT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES versions (name, version));
CREATE INDEX evaluations_by_version ON evaluations (name, version, seq);
CREATE FUNCTION emosafe_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'evaluations are append-only'; END $$;
CREATE TRIGGER evaluations_append_only BEFORE UPDATE OR DELETE ON evaluations
    FOR EACH ROW EXECUTE FUNCTION emosafe_append_only();
""",
    ),
    (
        3,
        """
CREATE TABLE withdrawn (
    name TEXT NOT NULL, version INTEGER NOT NULL, at TEXT NOT NULL, who TEXT NOT NULL, why TEXT NOT NULL,
    cleared TEXT NOT NULL,
    PRIMARY KEY (name, version), FOREIGN KEY (name, version) REFERENCES versions (name, version));
""",
    ),
)

LATEST = MIGRATIONS[-1][0]
