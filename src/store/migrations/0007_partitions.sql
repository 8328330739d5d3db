-- Reconciliation partitions by county: each record's county, and the identity numbers other
-- counties' records find a registry person by (own and mother's), filled in by the store.
ALTER TABLE records ADD COLUMN division TEXT NOT NULL DEFAULT '';
ALTER TABLE records ADD COLUMN id_number TEXT;
ALTER TABLE records ADD COLUMN mother_id TEXT;
-- Nothing ever looked records up by period date; the index only cost every insert.
DROP INDEX IF EXISTS records_by_period;
CREATE INDEX records_by_division ON records(feed, division, record_key);
CREATE INDEX records_by_id_number ON records(id_number) WHERE id_number IS NOT NULL;
CREATE INDEX records_by_mother_id ON records(mother_id) WHERE mother_id IS NOT NULL;

-- One partitioned reconciliation: its parameters and when its merge finished.
CREATE TABLE partition_runs (
    run         TEXT PRIMARY KEY,
    period      TEXT NOT NULL,
    as_of       TEXT NOT NULL,
    retrain     INTEGER NOT NULL,
    partitions  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    merged_at   TEXT
);

-- What one partition job found; written once per (run, division) by whichever worker
-- finished it, so a job redelivered after a worker died is stored once.
CREATE TABLE partition_results (
    run          TEXT NOT NULL REFERENCES partition_runs(run),
    division     TEXT NOT NULL,
    findings     TEXT NOT NULL,
    worker       TEXT NOT NULL,
    seconds      REAL NOT NULL,
    finished_at  TEXT NOT NULL,
    -- Set when the job failed; the coordinator reports it instead of waiting on.
    error        TEXT,
    PRIMARY KEY (run, division)
);
