-- Several sigild on one database (PostgreSQL, --ha): the node that holds a log's advisory
-- lock sequences it and records here where the others can reach it; they forward writes
-- there. The lock decides who writes; this table only routes requests.
CREATE TABLE log_leaders (
    log_id BIGINT PRIMARY KEY REFERENCES logs (id),
    url TEXT NOT NULL,
    since_ms BIGINT NOT NULL
);

-- A random secret, created by the first node, that nodes present to each other when they
-- forward writes: anyone who can reach the internal route but not the database is refused.
CREATE TABLE cluster_secret (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    secret BLOB NOT NULL
);
