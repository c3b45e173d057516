-- Search keys leave `search_keys` in sorted runs (sigil_log::search_runs): the commit's
-- random keys then land in a small table instead of a B-tree that grows with the log. The
-- existing index becomes the first run as it is (a rename, whatever its size); an empty one
-- is dropped by the first maintenance step.
CREATE TABLE search_runs (
    run INTEGER PRIMARY KEY,
    keys BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('live', 'building', 'dead')),
    merge_into INTEGER
);

ALTER TABLE search_keys RENAME TO search_run_1;
INSERT INTO search_runs (run, keys, state) SELECT 1, count(*), 'live' FROM search_run_1;

CREATE TABLE search_keys (
    log_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    idx BIGINT NOT NULL,
    PRIMARY KEY (log_id, key, idx)
) WITHOUT ROWID;
