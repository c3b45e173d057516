-- Leaf hashes leave the commit path on SQLite (sigil_log::leaf_index): a B-tree over random
-- leaf hashes dirtied a random page per write, which at 10M entries was the whole gap to an
-- empty log's write rate. From now on each entry's leaf hash is a search key of its own (tag
-- byte 6 and the hash) and moves through the sorted runs with the others.

-- Run numbers must never be reused: the leaf-hash filters are kept per run number in memory.
-- Without AUTOINCREMENT SQLite may hand out the number of a deleted last row again.
CREATE TABLE search_runs_v2 (
    run INTEGER PRIMARY KEY AUTOINCREMENT,
    keys BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('live', 'building', 'dead')),
    merge_into INTEGER
);
INSERT INTO search_runs_v2 (run, keys, state, merge_into)
    SELECT run, keys, state, merge_into FROM search_runs;
DROP TABLE search_runs;
ALTER TABLE search_runs_v2 RENAME TO search_runs;

-- The existing leaf hashes become run 0 (a number SQLite never assigns), read from the index
-- in its order so that the run is written front to back. The index names rows by rowid; a
-- map from rowid to idx, read from the other index, saves a random read of the entries table
-- per hash (at 13.5M entries about 75 s in all, against far longer through the table).
CREATE TABLE search_run_0 (
    log_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    idx BIGINT NOT NULL,
    PRIMARY KEY (log_id, key, idx)
) WITHOUT ROWID;

CREATE TEMP TABLE entry_rows (r INTEGER PRIMARY KEY, idx BIGINT NOT NULL);
INSERT INTO entry_rows (r, idx) SELECT rowid, idx FROM entries INDEXED BY entries_by_index;

INSERT INTO search_run_0 (log_id, key, idx)
    SELECT e.log_id, unhex('06' || hex(e.leaf_hash)), m.idx
    FROM entries e INDEXED BY entries_by_leaf_hash CROSS JOIN entry_rows m ON m.r = e.rowid
    ORDER BY e.log_id, e.leaf_hash;

DROP TABLE entry_rows;
DROP INDEX entries_by_leaf_hash;

-- An empty run 0 (a new database) is dropped by the first maintenance step.
INSERT INTO search_runs (run, keys, state) SELECT 0, count(*), 'live' FROM search_run_0;
