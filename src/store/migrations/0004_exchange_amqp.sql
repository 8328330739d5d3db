-- Batches for partner regions, kept until the broker confirms them: lapin does not replay an
-- unconfirmed publish, so the outbox is what makes a broken connection lose nothing.
CREATE TABLE exchange_outbox (
    message_id   TEXT PRIMARY KEY,
    partner      TEXT NOT NULL,
    body         BLOB NOT NULL,
    signature    TEXT NOT NULL,
    records      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    confirmed_at TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX exchange_outbox_pending ON exchange_outbox (created_at) WHERE confirmed_at IS NULL;

-- Batches received over AMQP. An applied message id is acknowledged without applying it again;
-- a rejected one is kept with its reason (the message itself goes to the dead-letter queue).
CREATE TABLE exchange_inbox (
    id          INTEGER PRIMARY KEY,
    message_id  TEXT NOT NULL,
    sender      TEXT,
    status      TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    reason      TEXT,
    file_id     INTEGER REFERENCES landed_files (id),
    received_at TEXT NOT NULL
);
CREATE UNIQUE INDEX exchange_inbox_applied ON exchange_inbox (message_id) WHERE status = 'applied';
