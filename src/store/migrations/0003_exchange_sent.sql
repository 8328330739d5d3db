-- What was sent to each partner region, so the next batch carries only what changed.
CREATE TABLE exchange_sent (
    partner     TEXT NOT NULL,
    person_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    sent_at     TEXT NOT NULL,
    PRIMARY KEY (partner, person_key)
);
