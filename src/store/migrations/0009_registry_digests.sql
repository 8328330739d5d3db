-- How many times the records of each (feed, county) have changed: a county's reconciliation
-- digest is kept until its registry's number moves on.
CREATE TABLE division_versions (
    feed      TEXT    NOT NULL,
    division  TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (feed, division)
);

-- What a county's registry gives every month's partition job (its own checks and the rows the
-- searches look among), made at one version of the county's registry; the format is the
-- reconciler's, inside the body.
CREATE TABLE registry_digests (
    division  TEXT    PRIMARY KEY,
    version   INTEGER NOT NULL,
    body      TEXT    NOT NULL,
    made_at   TEXT    NOT NULL
);
