-- Search keys that end in a hex digest (artifact digests, key and certificate fingerprints)
-- are stored as one tag byte and the raw digest: 33 bytes instead of 68-71 characters, which
-- halves the largest index, one that grows with random keys. Other keys (emails, subjects)
-- are stored as their UTF-8 text. (SQLite's || makes text, so the tag goes inside unhex.)
-- `sigil_log::store::search_key` is the same mapping in Rust.
CREATE TABLE search_keys (
    log_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    idx BIGINT NOT NULL,
    PRIMARY KEY (log_id, key, idx)
) WITHOUT ROWID;

INSERT INTO search_keys (log_id, key, idx)
    SELECT log_id,
        CASE
            WHEN key GLOB 'sha256:*' AND length(key) = 71 THEN unhex('01' || substr(key, 8))
            WHEN key GLOB 'sha384:*' AND length(key) = 103 THEN unhex('02' || substr(key, 8))
            WHEN key GLOB 'sha512:*' AND length(key) = 135 THEN unhex('03' || substr(key, 8))
            WHEN key GLOB 'key:*' AND length(key) = 68 THEN unhex('04' || substr(key, 5))
            WHEN key GLOB 'cert:*' AND length(key) = 69 THEN unhex('05' || substr(key, 6))
            ELSE CAST(key AS BLOB)
        END,
        idx
    FROM search_index
    ORDER BY 1, 2, 3;

DROP TABLE search_index;
