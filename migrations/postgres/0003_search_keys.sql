-- Search keys that end in a hex digest (artifact digests, key and certificate fingerprints)
-- are stored as one tag byte and the raw digest: 33 bytes instead of 68-71 characters, which
-- halves the largest index, one that grows with random keys. Other keys (emails, subjects)
-- are stored as their UTF-8 text. `sigil_log::store::search_key` is the same mapping in Rust.
CREATE TABLE search_keys (
    log_id BIGINT NOT NULL,
    key BYTEA NOT NULL,
    idx BIGINT NOT NULL,
    PRIMARY KEY (log_id, key, idx)
);

INSERT INTO search_keys (log_id, key, idx)
    SELECT log_id,
        CASE
            WHEN key LIKE 'sha256:%' AND length(key) = 71 THEN '\x01'::BYTEA || decode(substr(key, 8), 'hex')
            WHEN key LIKE 'sha384:%' AND length(key) = 103 THEN '\x02'::BYTEA || decode(substr(key, 8), 'hex')
            WHEN key LIKE 'sha512:%' AND length(key) = 135 THEN '\x03'::BYTEA || decode(substr(key, 8), 'hex')
            WHEN key LIKE 'key:%' AND length(key) = 68 THEN '\x04'::BYTEA || decode(substr(key, 5), 'hex')
            WHEN key LIKE 'cert:%' AND length(key) = 69 THEN '\x05'::BYTEA || decode(substr(key, 6), 'hex')
            ELSE convert_to(key, 'UTF8')
        END,
        idx
    FROM search_index;

DROP TABLE search_index;
