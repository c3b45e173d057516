-- A log's identity, bound on its first start: the SHA-256 of its signing key's SPKI and the
-- origin line its checkpoints carry. A later start with another key or origin is refused,
-- so a misconfigured server cannot sign a second, different history for the same tree.
ALTER TABLE logs ADD COLUMN key_id BYTEA;
ALTER TABLE logs ADD COLUMN origin TEXT;
