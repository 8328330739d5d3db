-- Operators of the review page and the API. `scope` is a division prefix ('' for everywhere);
-- an operator sees and acts only on discrepancies of divisions that start with it.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    scope         TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    token_hash    TEXT    UNIQUE,
    created_at    TEXT    NOT NULL
);

-- Browser sessions; only a hash of the cookie's token is kept.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Append-only. Each entry's hash covers its own fields and the previous entry's hash, so an
-- edited or removed entry breaks the chain at that point (`vitalhub audit verify`).
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT,
    detail    TEXT,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_by_actor ON audit_log (actor, id);

ALTER TABLE discrepancies ADD COLUMN assignee TEXT;
-- Covers the dashboard's counts (by kind, by district, unresolved or not) within a scope.
CREATE INDEX discrepancies_for_counts ON discrepancies (period, kind, division, status);
CREATE INDEX discrepancies_by_first_seen ON discrepancies (first_seen);
CREATE INDEX discrepancies_in_list_order ON discrepancies (period DESC, seq);
