-- Where each HTTP source's pull stands. `cursor` and `run_since` are set while a pull is under
-- way (a crash resumes there); `watermark` is the newest `updated_at` of the last finished pull.
-- Each row is written in the transaction that stores the records of the page it follows.
CREATE TABLE pull_state (
    source     TEXT PRIMARY KEY,
    cursor     TEXT,
    run_since  TEXT,
    run_max    TEXT,
    watermark  TEXT,
    updated_at TEXT NOT NULL
);

-- Every job the daemon or an operator ran, with what it did or why it failed.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    source      TEXT,
    trigger     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    records     INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,
    detail      TEXT,
    error       TEXT
);
CREATE INDEX jobs_by_name ON jobs (name, started_at);
