-- Raw landing: one row per distinct file content ever ingested.
CREATE TABLE landed_files (
    id           INTEGER PRIMARY KEY,
    path         TEXT    NOT NULL,
    sha256       TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    feed         TEXT    NOT NULL,
    mapping      TEXT    NOT NULL,
    ingested_at  TEXT    NOT NULL,
    records_read INTEGER NOT NULL DEFAULT 0,
    upserted     INTEGER NOT NULL DEFAULT 0,
    unchanged    INTEGER NOT NULL DEFAULT 0,
    quarantined  INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    UNIQUE (sha256, feed)
);

-- Canonical records, one current version per (feed, record key).
CREATE TABLE records (
    feed         TEXT    NOT NULL,
    record_key   TEXT    NOT NULL,
    period_date  TEXT,
    version      TEXT,
    retired      INTEGER NOT NULL DEFAULT 0,
    content_hash TEXT    NOT NULL,
    data         TEXT    NOT NULL,
    file_id      INTEGER REFERENCES landed_files(id),
    location     TEXT,
    changed_at   TEXT    NOT NULL,
    PRIMARY KEY (feed, record_key)
);
CREATE INDEX records_by_period ON records(feed, period_date);

-- Records (or whole files) that could not be mapped, kept raw so they can be re-processed.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY,
    file_id     INTEGER REFERENCES landed_files(id),
    file_path   TEXT    NOT NULL,
    feed        TEXT    NOT NULL,
    mapping     TEXT    NOT NULL,
    location    TEXT    NOT NULL,
    field       TEXT,
    reason      TEXT    NOT NULL,
    raw         TEXT,
    status      TEXT    NOT NULL DEFAULT 'open',
    created_at  TEXT    NOT NULL,
    resolved_at TEXT
);
CREATE INDEX quarantine_by_status ON quarantine(status);

-- Discrepancies: (period, kind, anchor) identifies one; id is assigned once and kept.
CREATE TABLE discrepancies (
    id           TEXT    PRIMARY KEY,
    period       TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    anchor       TEXT    NOT NULL,
    division     TEXT,
    severity     TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    score        REAL    NOT NULL,
    registry_key TEXT,
    body         TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    first_seen   TEXT    NOT NULL,
    last_seen    TEXT    NOT NULL,
    UNIQUE (period, kind, anchor)
);
CREATE INDEX discrepancies_by_period ON discrepancies(period, status, kind);

-- Every status change of a discrepancy: who, when, why.
CREATE TABLE discrepancy_history (
    id             INTEGER PRIMARY KEY,
    discrepancy_id TEXT NOT NULL REFERENCES discrepancies(id),
    at             TEXT NOT NULL,
    actor          TEXT NOT NULL,
    from_status    TEXT,
    to_status      TEXT NOT NULL,
    note           TEXT
);

CREATE TABLE reconcile_runs (
    id          INTEGER PRIMARY KEY,
    period      TEXT NOT NULL,
    as_of       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    summary     TEXT NOT NULL
);
