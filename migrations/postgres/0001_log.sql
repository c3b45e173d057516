-- The log engine's tables. Every log personality (Rekor, CT) is a row in `logs` and shares
-- the rest. Hashes of complete subtrees are immutable once written, so proofs at any tree
-- size read O(log n) rows and nothing has to be rebuilt at start-up.
CREATE TABLE logs (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    tree_id BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE tree_heads (
    log_id BIGINT PRIMARY KEY REFERENCES logs (id),
    size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    timestamp_ms BIGINT NOT NULL
);

-- Level-0 hashes live here as leaf_hash; `nodes` holds levels >= 1.
CREATE TABLE entries (
    log_id BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    leaf_hash BYTEA NOT NULL,
    leaf BYTEA NOT NULL,
    extra BYTEA NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    PRIMARY KEY (log_id, idx)
);

CREATE UNIQUE INDEX entries_by_leaf_hash ON entries (log_id, leaf_hash);

CREATE TABLE nodes (
    log_id BIGINT NOT NULL,
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (log_id, level, idx)
);

CREATE TABLE search_index (
    log_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    idx BIGINT NOT NULL,
    PRIMARY KEY (log_id, key, idx)
);
