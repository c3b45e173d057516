-- A tile of leaf hashes (`/tile/0/...`, and every auditor's catch-up) read 256 entry rows from
-- the heap: ~70 pages per tile, which at 10M entries are on disk and made a tile's p99 300 ms.
-- With leaf_hash carried in the primary key's index the same read is an index-only scan of
-- ~10 contiguous pages. Costs ~33 bytes per entry; the index is rebuilt once here (seconds per
-- million entries, writes wait meanwhile).
ALTER TABLE entries DROP CONSTRAINT entries_pkey;
ALTER TABLE entries ADD CONSTRAINT entries_pkey PRIMARY KEY (log_id, idx) INCLUDE (leaf_hash);
