-- `entries` becomes an ordinary (rowid) table. As a WITHOUT ROWID table each row lived in
-- index-style pages, whose rows spill past ~1 KB: a 1.6 KB keyless entry took a page of its
-- own plus an overflow page, about 4.6 KB on disk. In a rowid table two or three such rows
-- share a page, and rows are stored in append order, so a tile's leaves are adjacent.
-- Small columns come first so that reading a leaf hash does not walk past the leaf.
CREATE TABLE entries_v2 (
    log_id INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    leaf_hash BLOB NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    extra BLOB NOT NULL,
    leaf BLOB NOT NULL
);

INSERT INTO entries_v2 (log_id, idx, leaf_hash, timestamp_ms, extra, leaf)
    SELECT log_id, idx, leaf_hash, timestamp_ms, extra, leaf FROM entries ORDER BY log_id, idx;

DROP TABLE entries;
ALTER TABLE entries_v2 RENAME TO entries;
CREATE UNIQUE INDEX entries_by_index ON entries (log_id, idx);
CREATE UNIQUE INDEX entries_by_leaf_hash ON entries (log_id, leaf_hash);
