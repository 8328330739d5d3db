-- Trained linkage models, reused by later reconciliations instead of retraining.
CREATE TABLE linkage_models (
    name       TEXT PRIMARY KEY,
    trained_at TEXT NOT NULL,
    model      TEXT NOT NULL
);
