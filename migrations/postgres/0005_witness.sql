-- sigild as a witness (C2SP tlog-witness): per log origin, the latest checkpoint it
-- cosigned. A cosignature is answered only after this row has moved, and it moves only
-- from the size the request names, so two racing requests cannot roll a log back.
CREATE TABLE witness_checkpoints (
    origin TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    checkpoint TEXT NOT NULL
);
