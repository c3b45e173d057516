-- sigild as a log with witnesses: per log, the newest checkpoint that carries witness
-- cosignatures. Kept in the database so that a restarted node serves it at once and, in a
-- cluster, every node serves what the leader collected.
CREATE TABLE cosigned_checkpoints (
    log_id BIGINT PRIMARY KEY REFERENCES logs (id),
    size BIGINT NOT NULL,
    checkpoint TEXT NOT NULL
);
