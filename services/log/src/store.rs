//! Durable storage for log engines: SQLite (the embedded default) or PostgreSQL, through sqlx.
//!
//! Both backends run the same SQL (numbered `$n` parameters work in both); the `with_db!`
//! macro expands one body per backend so there is a single code path to review.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sigil_proto::merkle::{Hash, NodeId};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Row, Sqlite, SqlitePool};

use crate::engine::{StoredEntry, TreeHead};
use crate::leaf_index;
use crate::search_runs::{self, SearchRuns};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "another sigild already holds the log {0}; one writer per log keeps the tree from forking"
    )]
    Locked(String),
    #[error("cannot lock {path}: {source}")]
    LockFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("cannot prepare {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A connection pool for reads plus, per log, a dedicated writer connection.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    // SQLite only: the state of its search-key runs, shared by every log's writer.
    search_runs: Option<std::sync::Arc<SearchRuns>>,
    // Held for the life of the process: a second sigild on the same SQLite file stops here.
    _lock: Option<std::sync::Arc<File>>,
}

#[derive(Clone, Debug)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// The single writer of one log: a connection owned by the sequencer.
pub enum Writer {
    Sqlite(PoolConnection<Sqlite>, std::sync::Arc<SearchRuns>),
    Postgres(PoolConnection<Postgres>),
}

/// A row of `logs`, as copied between stores.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub id: i64,
    pub name: String,
    pub tree_id: i64,
    pub created_ms: i64,
    pub key_id: Option<Vec<u8>>,
    pub origin: Option<String>,
}

/// Node rows (level, index, hash) and search-key rows (key, index), as copied between stores.
pub type NodeRow = (i32, i64, Vec<u8>);
pub type SearchKeyRow = (Vec<u8>, i64);

/// One transaction on a PostgreSQL target that a copy writes into.
pub struct CopyTx {
    tx: sqlx::Transaction<'static, Postgres>,
}

/// Everything one batch writes, committed in one transaction.
pub struct BatchWrite<'a> {
    pub log_id: i64,
    pub entries: &'a [NewRow],
    pub nodes: &'a [(NodeId, Hash)],
    pub head: TreeHead,
}

pub struct NewRow {
    pub index: u64,
    pub leaf_hash: Hash,
    pub leaf: Vec<u8>,
    pub extra: Vec<u8>,
    pub timestamp_ms: u64,
    pub index_keys: Vec<String>,
}

/// How both ends of a PostgreSQL connection notice that the other went silent: probe after
/// 2 s idle, every 1 s, give up after 3 unanswered; unacknowledged sends fail after 5 s. The
/// server's side is set on every session sigild opens ([`session_keepalives`]), sigild's own
/// on every database socket (module `pg_sockets`).
const KEEPALIVE_IDLE_S: i32 = 2;
const KEEPALIVE_INTERVAL_S: i32 = 1;
const KEEPALIVE_COUNT: i32 = 3;
const USER_TIMEOUT_MS: i32 = 5000;

/// Session settings of every PostgreSQL connection sigild opens. On the writer's session they
/// bound how long a leader cut off without a word keeps the log's lock (two hours with the
/// server's defaults); on the others, how long such a node's sessions keep a connection slot
/// on the server: each cut-off node left its pool's sessions behind, and a few partitions
/// used up PostgreSQL's 100 slots (seen in the partition test with ten cuts).
fn session_keepalives() -> String {
    format!(
        "SET tcp_keepalives_idle = {KEEPALIVE_IDLE_S}; SET tcp_keepalives_interval = \
         {KEEPALIVE_INTERVAL_S}; SET tcp_keepalives_count = {KEEPALIVE_COUNT}; \
         SET tcp_user_timeout = {USER_TIMEOUT_MS}"
    )
}

/// How long taking one of the PostgreSQL pool's connections may take, a new one included (the
/// writer's as well as a read's): as long as a silent database is given on an open one. In a
/// partition that drops packets a new connection waits for an answer that never comes;
/// sqlx's default (30 s) held a cut-off leader's writes, a follower's head poll and every
/// read behind them that long. A healthy pool hands out connections in milliseconds, so
/// waiting this long already means the database is out of reach or badly overloaded, and the
/// client is better served by a 503 it can retry.
const POOL_ACQUIRE_TIMEOUT: std::time::Duration =
    std::time::Duration::from_millis(USER_TIMEOUT_MS as u64);

// Bind counts per multi-row INSERT stay well below SQLite's and PostgreSQL's limits.
const ROWS_PER_INSERT: usize = 500;

impl Store {
    /// Opens (creating if needed) `sigil.db` in `data_dir`, in WAL mode with full fsync on
    /// commit: an acknowledged entry must survive a crash.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_sqlite_with(data_dir, search_runs::Tuning::default()).await
    }

    /// [`Store::open_sqlite`] with its search-key runs tuned (tests make them tiny).
    pub async fn open_sqlite_with(
        data_dir: &Path,
        tuning: search_runs::Tuning,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::LockFile {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let lock_path = data_dir.join("sigil.db.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StoreError::LockFile {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(lock_path.display().to_string()));
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StoreError::LockFile {
                    path: lock_path,
                    source,
                });
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("sigil.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Checkpoints run in the background (below); a committing writer only does one
            // itself when the write-ahead log has outgrown them (80 MiB).
            .pragma("wal_autocheckpoint", "20000");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
        let recent_keys: i64 = sqlx::query_scalar("SELECT count(*) FROM search_keys")
            .fetch_one(&pool)
            .await?;
        tokio::spawn(checkpoint_in_background(pool.clone()));
        // After the lock: no other process may be using the filters being cleared.
        let filter_dir = data_dir.join("leaf-filters");
        let filters = leaf_index::LeafFilters::new(&filter_dir, tuning.leaf_filter_bytes).map_err(
            |source| StoreError::Dir {
                path: filter_dir,
                source,
            },
        )?;
        let runs = std::sync::Arc::new(SearchRuns::new(tuning, recent_keys, filters));
        tokio::spawn(leaf_index::keep_filters(
            pool.clone(),
            runs.leaf_filters.clone(),
        ));
        Ok(Store {
            db: Db::Sqlite(pool),
            search_runs: Some(runs),
            _lock: Some(std::sync::Arc::new(lock)),
        })
    }

    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let port = options.get_port();
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    pg_sockets::tune_connections_to(port);
                    // Built from constants only.
                    sqlx::raw_sql(sqlx::AssertSqlSafe(session_keepalives()))
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await?;
        Ok(Store {
            db: Db::Postgres(pool),
            search_runs: None,
            _lock: None,
        })
    }

    /// `postgres://…` opens PostgreSQL; anything else is refused (SQLite is opened by data dir).
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Store, StoreError> {
        match database_url {
            Some(url) => Store::open_postgres(url).await,
            None => Store::open_sqlite(data_dir).await,
        }
    }

    /// Waits for every connection to come back and closes them; SQLite then checkpoints its
    /// write-ahead log into the database file.
    pub async fn close(&self) {
        with_db!(&self.db, pool => pool.close().await)
    }

    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Finds or creates the log called `name`; returns (log_id, tree_id).
    pub async fn ensure_log(&self, name: &str, now_ms: u64) -> Result<(i64, i64), StoreError> {
        let tree_id = loop {
            // Rekor tree IDs are positive int64s and must be non-zero.
            let candidate = (rand::random::<u64>() >> 1) as i64;
            if candidate != 0 {
                break candidate;
            }
        };
        with_db!(&self.db, pool => {
            let next_id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 FROM logs")
                .fetch_one(pool).await?.get(0);
            sqlx::query("INSERT INTO logs (id, name, tree_id, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING")
                .bind(next_id).bind(name).bind(tree_id).bind(now_ms as i64)
                .execute(pool).await?;
            let row = sqlx::query("SELECT id, tree_id FROM logs WHERE name = $1")
                .bind(name).fetch_one(pool).await?;
            Ok((row.get(0), row.get(1)))
        })
    }

    /// Takes the writer connection for a log. On PostgreSQL it holds an advisory lock for
    /// the connection's lifetime, so a second sigild on the same database cannot also write.
    pub async fn writer(&self, log_id: i64, log_name: &str) -> Result<Writer, StoreError> {
        match &self.db {
            Db::Sqlite(pool) => Ok(Writer::Sqlite(
                pool.acquire().await?,
                self.search_runs
                    .clone()
                    .expect("SQLite stores have search runs"),
            )),
            Db::Postgres(pool) => {
                // Bounded by the pool (POOL_ACQUIRE_TIMEOUT), so that a node cut off from the
                // database fails its writes and retries soon. Only the acquisition: abandoning
                // the lock query could leave a lock on a pooled connection.
                let mut conn = pool.acquire().await?;
                let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(writer_lock_key(log_id))
                    .fetch_one(&mut *conn)
                    .await?
                    .get(0);
                if !got {
                    return Err(StoreError::Locked(log_name.to_string()));
                }
                // The lock lives as long as this session; the session's keepalives (set on
                // every connection, `session_keepalives`) end it, and the lock, about 5 s
                // after a leader cut off without a word stops answering.
                Ok(Writer::Postgres(conn))
            }
        }
    }

    /// Drops a writer whose connection may be broken without returning it to the pool: on
    /// PostgreSQL it may still hold the log's advisory lock.
    pub fn discard_writer(writer: Writer) {
        match writer {
            Writer::Sqlite(mut c, _) => c.close_on_drop(),
            Writer::Postgres(mut c) => c.close_on_drop(),
        }
    }

    /// A round trip on the writer's own connection.
    pub async fn ping_writer(writer: &mut Writer) -> Result<(), StoreError> {
        match writer {
            Writer::Sqlite(c, _) => {
                sqlx::query("SELECT 1").execute(&mut **c).await?;
            }
            Writer::Postgres(c) => {
                sqlx::query("SELECT 1").execute(&mut **c).await?;
            }
        }
        Ok(())
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_db!(&self.db, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
    }

    /// Binds a log to its signing key and origin on first use; afterwards returns the bound
    /// values, which the caller compares with its own.
    pub async fn bind_log_identity(
        &self,
        log_id: i64,
        key_id: &[u8],
        origin: &str,
    ) -> Result<(Vec<u8>, String), StoreError> {
        with_db!(&self.db, pool => {
            sqlx::query("UPDATE logs SET key_id = $2, origin = $3 WHERE id = $1 AND key_id IS NULL")
                .bind(log_id).bind(key_id).bind(origin).execute(pool).await?;
            let row = sqlx::query("SELECT key_id, origin FROM logs WHERE id = $1")
                .bind(log_id).fetch_one(pool).await?;
            Ok((row.get(0), row.get(1)))
        })
    }

    pub async fn log_names(&self) -> Result<Vec<String>, StoreError> {
        with_db!(&self.db, pool => {
            let rows = sqlx::query("SELECT name FROM logs ORDER BY id").fetch_all(pool).await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    pub async fn log_rows(&self) -> Result<Vec<LogRow>, StoreError> {
        with_db!(&self.db, pool => {
            let rows = sqlx::query("SELECT id, name, tree_id, created_ms, key_id, origin FROM logs ORDER BY id")
                .fetch_all(pool).await?;
            Ok(rows.iter().map(|r| LogRow {
                id: r.get(0),
                name: r.get(1),
                tree_id: r.get(2),
                created_ms: r.get(3),
                key_id: r.get(4),
                origin: r.get(5),
            }).collect())
        })
    }

    /// Up to `limit` nodes after `after` in key order, and the cursor for the next call.
    pub async fn node_rows(
        &self,
        log_id: i64,
        after: Option<(i32, i64)>,
        limit: u64,
    ) -> Result<(Vec<NodeRow>, Option<(i32, i64)>), StoreError> {
        let (level, idx) = after.unwrap_or((-1, -1));
        let rows: Vec<NodeRow> = with_db!(&self.db, pool => {
            sqlx::query("SELECT level, idx, hash FROM nodes WHERE log_id = $1 AND (level, idx) > ($2, $3) ORDER BY level, idx LIMIT $4")
                .bind(log_id).bind(level).bind(idx).bind(limit as i64)
                .fetch_all(pool).await?
                .iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
        });
        let last = rows.last().map(|(l, i, _)| (*l, *i));
        Ok((rows, last))
    }

    /// Up to `limit` search keys after `after` in key order, and the cursor for the next call.
    pub async fn search_key_rows(
        &self,
        log_id: i64,
        after: Option<(Vec<u8>, i64)>,
        limit: u64,
    ) -> Result<(Vec<SearchKeyRow>, Option<(Vec<u8>, i64)>), StoreError> {
        let (key, idx) = after.unwrap_or((Vec::new(), -1));
        let rows: Vec<SearchKeyRow> = match &self.db {
            Db::Postgres(pool) => sqlx::query("SELECT key, idx FROM search_keys WHERE log_id = $1 AND (key, idx) > ($2, $3) ORDER BY key, idx LIMIT $4")
                .bind(log_id).bind(&key[..]).bind(idx).bind(limit as i64)
                .fetch_all(pool).await?
                .iter().map(|r| (r.get(0), r.get(1))).collect(),
            Db::Sqlite(pool) => {
                // The runs' sorted arms merged by SQLite into one ordered stream, in one
                // snapshot with the catalogue that names them.
                let mut tx = pool.begin().await?;
                let union = search_runs::union_over_live_tables(&mut tx, |t| {
                    // Leaf-hash keys are SQLite's own index, not search keys.
                    format!(
                        "SELECT key, idx FROM {t} WHERE log_id = $1 AND (key, idx) > ($2, $3) \
                         AND NOT (key > x'{:02x}' AND key < x'{:02x}')",
                        leaf_index::LEAF_TAG,
                        leaf_index::LEAF_TAG + 1
                    )
                })
                .await?;
                let sql = format!("{union} ORDER BY 1, 2 LIMIT $4");
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .persistent(false)
                    .bind(log_id).bind(&key[..]).bind(idx).bind(limit as i64)
                    .fetch_all(&mut *tx).await?
                    .iter().map(|r| (r.get(0), r.get(1))).collect();
                tx.commit().await?;
                rows
            }
        };
        let last = rows.last().cloned();
        Ok((rows, last))
    }

    /// A transaction to copy logs into; only PostgreSQL is a copy target.
    pub async fn begin_copy(&self) -> Result<CopyTx, StoreError> {
        match &self.db {
            Db::Postgres(pool) => Ok(CopyTx {
                tx: pool.begin().await?,
            }),
            Db::Sqlite(_) => Err(StoreError::Corrupt(
                "copying into SQLite is not supported; the target must be PostgreSQL".into(),
            )),
        }
    }

    /// Records that the node reachable at `url` now sequences the log (it holds the lock).
    pub async fn set_leader(&self, log_id: i64, url: &str, now_ms: u64) -> Result<(), StoreError> {
        with_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO log_leaders (log_id, url, since_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (log_id) DO UPDATE SET url = excluded.url, since_ms = excluded.since_ms",
            )
            .bind(log_id).bind(url).bind(now_ms as i64).execute(pool).await?;
            Ok(())
        })
    }

    /// Where the node that last took the log's lock said it can be reached.
    pub async fn leader(&self, log_id: i64) -> Result<Option<String>, StoreError> {
        with_db!(&self.db, pool => {
            let row = sqlx::query("SELECT url FROM log_leaders WHERE log_id = $1")
                .bind(log_id).fetch_optional(pool).await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// The secret nodes of one database present to each other; the first caller creates it.
    pub async fn cluster_secret(&self) -> Result<Vec<u8>, StoreError> {
        let fresh: [u8; 32] = rand::random();
        with_db!(&self.db, pool => {
            sqlx::query("INSERT INTO cluster_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
                .bind(&fresh[..]).execute(pool).await?;
            let row = sqlx::query("SELECT secret FROM cluster_secret WHERE id = 1")
                .fetch_one(pool).await?;
            Ok(row.get(0))
        })
    }

    /// The latest checkpoint this node, as a witness, cosigned for `origin`: size and root.
    pub async fn witnessed(&self, origin: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        with_db!(&self.db, pool => {
            let row = sqlx::query("SELECT size, root FROM witness_checkpoints WHERE origin = $1")
                .bind(origin).fetch_optional(pool).await?;
            row.map(|r| {
                let size: i64 = r.get(0);
                let root: Vec<u8> = r.get(1);
                Ok((size as u64, root.try_into().map_err(|_| StoreError::Corrupt("witnessed root".into()))?))
            })
            .transpose()
        })
    }

    /// Moves the witness's record for `origin` from `old_size` (0: no record yet) to the new
    /// checkpoint, atomically; false when another request moved it first.
    pub async fn advance_witnessed(
        &self,
        origin: &str,
        old_size: u64,
        size: u64,
        root: &Hash,
        checkpoint: &str,
    ) -> Result<bool, StoreError> {
        with_db!(&self.db, pool => {
            let done = if old_size == 0 {
                // The row may exist at size 0 (an empty log cosigned) or not at all.
                sqlx::query(
                    "INSERT INTO witness_checkpoints (origin, size, root, checkpoint) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (origin) DO UPDATE \
                     SET size = excluded.size, root = excluded.root, checkpoint = excluded.checkpoint \
                     WHERE witness_checkpoints.size = 0",
                )
                .bind(origin).bind(size as i64).bind(&root[..]).bind(checkpoint)
                .execute(pool).await?
            } else {
                sqlx::query(
                    "UPDATE witness_checkpoints SET size = $1, root = $2, checkpoint = $3 \
                     WHERE origin = $4 AND size = $5",
                )
                .bind(size as i64).bind(&root[..]).bind(checkpoint).bind(origin).bind(old_size as i64)
                .execute(pool).await?
            };
            Ok(done.rows_affected() == 1)
        })
    }

    /// The newest checkpoint of log `log_id` carrying witness cosignatures: size and note.
    pub async fn cosigned_checkpoint(
        &self,
        log_id: i64,
    ) -> Result<Option<(u64, String)>, StoreError> {
        with_db!(&self.db, pool => {
            let row = sqlx::query("SELECT size, checkpoint FROM cosigned_checkpoints WHERE log_id = $1")
                .bind(log_id).fetch_optional(pool).await?;
            Ok(row.map(|r| (r.get::<i64, _>(0) as u64, r.get::<String, _>(1))))
        })
    }

    /// Keeps `checkpoint` as log `log_id`'s cosigned checkpoint unless the one kept is newer,
    /// or of the same size with at least as many cosignatures (the same note with more
    /// signature lines is longer).
    pub async fn record_cosigned(
        &self,
        log_id: i64,
        size: u64,
        checkpoint: &str,
    ) -> Result<(), StoreError> {
        with_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO cosigned_checkpoints (log_id, size, checkpoint) VALUES ($1, $2, $3) \
                 ON CONFLICT (log_id) DO UPDATE SET size = excluded.size, checkpoint = excluded.checkpoint \
                 WHERE cosigned_checkpoints.size < excluded.size \
                    OR (cosigned_checkpoints.size = excluded.size \
                        AND length(cosigned_checkpoints.checkpoint) < length(excluded.checkpoint))",
            )
            .bind(log_id).bind(size as i64).bind(checkpoint)
            .execute(pool).await?;
            Ok(())
        })
    }

    pub async fn tree_head(&self, log_id: i64) -> Result<Option<TreeHead>, StoreError> {
        with_db!(&self.db, pool => {
            let row = sqlx::query("SELECT size, root, timestamp_ms FROM tree_heads WHERE log_id = $1")
                .bind(log_id).fetch_optional(pool).await?;
            row.map(|r| {
                let root: Vec<u8> = r.get(1);
                Ok(TreeHead {
                    size: r.get::<i64, _>(0) as u64,
                    root: to_hash(&root)?,
                    timestamp_ms: r.get::<i64, _>(2) as u64,
                })
            }).transpose()
        })
    }

    /// Hashes of complete subtrees, in the order asked; every requested node must exist.
    /// One statement per call: a proof at 10M entries names about 24 nodes, and a round trip
    /// each cost more than the lookups themselves.
    pub async fn nodes(&self, log_id: i64, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (leaves, inner): (Vec<&NodeId>, Vec<&NodeId>) =
            ids.iter().partition(|id| id.level == 0);
        let rows: Vec<(i32, i64, Vec<u8>)> = match &self.db {
            Db::Postgres(pool) => sqlx::query(
                "SELECT 0, idx, leaf_hash FROM entries WHERE log_id = $1 AND idx = ANY($2) \
                 UNION ALL \
                 SELECT n.level, n.idx, n.hash FROM nodes n \
                 JOIN UNNEST($3::INTEGER[], $4::BIGINT[]) AS q(level, idx) \
                 ON n.level = q.level AND n.idx = q.idx WHERE n.log_id = $1",
            )
            .bind(log_id)
            .bind(leaves.iter().map(|id| id.index as i64).collect::<Vec<_>>())
            .bind(inner.iter().map(|id| id.level as i32).collect::<Vec<_>>())
            .bind(inner.iter().map(|id| id.index as i64).collect::<Vec<_>>())
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
            Db::Sqlite(pool) => {
                // Positional parameters; at most 64 inner nodes and a few leaves per proof.
                // The wanted nodes are a VALUES list joined to `nodes` (CROSS JOIN keeps it
                // the outer loop): with a long OR chain instead, SQLite scans the whole log.
                let mut parts = Vec::new();
                if !inner.is_empty() {
                    parts.push(format!(
                        "SELECT * FROM (WITH q(level, idx) AS (VALUES {}) \
                         SELECT n.level, n.idx, n.hash FROM q CROSS JOIN nodes n \
                         ON n.log_id = ? AND n.level = q.level AND n.idx = q.idx)",
                        vec!["(?,?)"; inner.len()].join(",")
                    ));
                }
                if !leaves.is_empty() {
                    parts.push(format!(
                        "SELECT 0, idx, leaf_hash FROM entries WHERE log_id = ? AND idx IN ({})",
                        vec!["?"; leaves.len()].join(",")
                    ));
                }
                let sql = parts.join(" UNION ALL ");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                if !inner.is_empty() {
                    for id in &inner {
                        q = q.bind(id.level as i32).bind(id.index as i64);
                    }
                    q = q.bind(log_id);
                }
                if !leaves.is_empty() {
                    q = q.bind(log_id);
                    for id in &leaves {
                        q = q.bind(id.index as i64);
                    }
                }
                q.fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2)))
                    .collect()
            }
        };
        let mut found: HashMap<NodeId, Hash> = HashMap::with_capacity(rows.len());
        for (level, index, hash) in rows {
            found.insert(NodeId::new(level as u8, index as u64), to_hash(&hash)?);
        }
        ids.iter()
            .map(|id| {
                found
                    .get(id)
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt(format!("missing node {id:?}")))
            })
            .collect()
    }

    /// Consecutive hashes at one level, for tiles: `[start, start + count)`.
    pub async fn level_hashes(
        &self,
        log_id: i64,
        level: u8,
        start: u64,
        count: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let end = (start + count) as i64;
        with_db!(&self.db, pool => {
            let rows = if level == 0 {
                sqlx::query("SELECT leaf_hash FROM entries WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx")
                    .bind(log_id).bind(start as i64).bind(end).fetch_all(pool).await?
            } else {
                sqlx::query("SELECT hash FROM nodes WHERE log_id = $1 AND level = $2 AND idx >= $3 AND idx < $4 ORDER BY idx")
                    .bind(log_id).bind(level as i32).bind(start as i64).bind(end).fetch_all(pool).await?
            };
            if rows.len() as u64 != count {
                return Err(StoreError::Corrupt(format!("level {level} has {} of {count} hashes from {start}", rows.len())));
            }
            rows.iter().map(|r| to_hash(&r.get::<Vec<u8>, _>(0))).collect()
        })
    }

    pub async fn entries(
        &self,
        log_id: i64,
        start: u64,
        end: u64,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        with_db!(&self.db, pool => {
            let rows = sqlx::query("SELECT idx, leaf_hash, leaf, extra, timestamp_ms FROM entries WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx")
                .bind(log_id).bind(start as i64).bind(end as i64).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(StoredEntry {
                index: r.get::<i64, _>(0) as u64,
                leaf_hash: to_hash(&r.get::<Vec<u8>, _>(1))?,
                leaf: r.get(2),
                extra: r.get(3),
                timestamp_ms: r.get::<i64, _>(4) as u64,
            })).collect()
        })
    }

    pub async fn index_of_leaf_hash(
        &self,
        log_id: i64,
        leaf_hash: &Hash,
    ) -> Result<Option<u64>, StoreError> {
        match &self.db {
            Db::Postgres(pool) => {
                let row =
                    sqlx::query("SELECT idx FROM entries WHERE log_id = $1 AND leaf_hash = $2")
                        .bind(log_id)
                        .bind(&leaf_hash[..])
                        .fetch_optional(pool)
                        .await?;
                Ok(row.map(|r| r.get::<i64, _>(0) as u64))
            }
            Db::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let found =
                    leaf_index::find(&mut conn, self.leaf_filters(), log_id, &[*leaf_hash]).await?;
                Ok(found.first().map(|(_, idx)| *idx))
            }
        }
    }

    /// SQLite: the runs whose leaf-hash filter is built (for tests and operators' checks).
    pub fn leaf_filter_runs(&self) -> Vec<i64> {
        match &self.db {
            Db::Sqlite(_) => self.leaf_filters().runs(),
            Db::Postgres(_) => Vec::new(),
        }
    }

    fn leaf_filters(&self) -> &leaf_index::LeafFilters {
        &self
            .search_runs
            .as_ref()
            .expect("SQLite stores have search runs")
            .leaf_filters
    }

    /// One page of a search, newest first: entries below index `before` matched by at least
    /// `min_groups` of the term groups (`keys` pairs a search key with its group number), with
    /// their leaf hashes (which name them). The set logic (any / all terms) runs in the
    /// database, so a page costs the same however many entries match.
    pub async fn search(
        &self,
        log_id: i64,
        keys: &[(String, i32)],
        min_groups: i64,
        before: u64,
        limit: u64,
    ) -> Result<Vec<(u64, Hash)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let before = before.min(i64::MAX as u64) as i64;
        let rows: Vec<(i64, Vec<u8>)> = match &self.db {
            Db::Postgres(pool) => sqlx::query(
                "SELECT m.idx, e.leaf_hash FROM ( \
                     SELECT s.idx FROM UNNEST($2::BYTEA[], $3::INTEGER[]) AS q(key, grp) \
                     JOIN search_keys s ON s.log_id = $1 AND s.key = q.key AND s.idx < $4 \
                     GROUP BY s.idx HAVING COUNT(DISTINCT q.grp) >= $5 \
                     ORDER BY s.idx DESC LIMIT $6) m \
                 JOIN entries e ON e.log_id = $1 AND e.idx = m.idx ORDER BY m.idx DESC",
            )
            .bind(log_id)
            .bind(keys.iter().map(|(k, _)| search_key(k)).collect::<Vec<_>>())
            .bind(keys.iter().map(|(_, g)| *g).collect::<Vec<_>>())
            .bind(before)
            .bind(min_groups)
            .bind(limit as i64)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect(),
            Db::Sqlite(pool) => {
                // The terms as a VALUES list driving index lookups into `search_keys` and
                // every live run (CROSS JOIN keeps the terms outer), read in one snapshot with
                // the catalogue that names the runs.
                let mut tx = pool.begin().await?;
                let n = keys.len();
                let (log, before_p, min_p, limit_p) = (2 * n + 1, 2 * n + 2, 2 * n + 3, 2 * n + 4);
                let union = search_runs::union_over_live_tables(&mut tx, |t| {
                    format!(
                        "SELECT s.idx AS idx, q.grp AS grp FROM q CROSS JOIN {t} s \
                         ON s.log_id = ${log} AND s.key = q.key AND s.idx < ${before_p}"
                    )
                })
                .await?;
                let terms: Vec<String> = (0..n)
                    .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                    .collect();
                let sql = format!(
                    "SELECT m.idx, e.leaf_hash FROM ( \
                         WITH q(key, grp) AS (VALUES {}) \
                         SELECT idx FROM ({}) \
                         GROUP BY idx HAVING COUNT(DISTINCT grp) >= ${min_p} \
                         ORDER BY idx DESC LIMIT ${limit_p}) m \
                     JOIN entries e ON e.log_id = ${log} AND e.idx = m.idx ORDER BY m.idx DESC",
                    terms.join(","),
                    union
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
                for (k, g) in keys {
                    q = q.bind(search_key(k)).bind(*g);
                }
                let rows = q
                    .bind(log_id)
                    .bind(before)
                    .bind(min_groups)
                    .bind(limit as i64)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                tx.commit().await?;
                rows
            }
        };
        rows.into_iter()
            .map(|(i, h)| Ok((i as u64, to_hash(&h)?)))
            .collect()
    }

    /// Which of these leaf hashes are already logged, and where, as the writer sees it.
    pub async fn existing_leaves(
        writer: &mut Writer,
        log_id: i64,
        hashes: &[Hash],
    ) -> Result<Vec<(Hash, u64)>, StoreError> {
        match writer {
            Writer::Postgres(conn) => postgres_existing_leaves(conn, log_id, hashes).await,
            Writer::Sqlite(conn, runs) => {
                Ok(leaf_index::find(conn, &runs.leaf_filters, log_id, hashes).await?)
            }
        }
    }

    /// Looks these leaf hashes up on a reader connection, if one is free right now, for the
    /// sake of the pages it reads (see the sequencer's read-ahead); the answer, which would
    /// not be safe to act on, is dropped. False when every reader was busy (or on PostgreSQL).
    pub async fn read_leaves_ahead(
        &self,
        log_id: i64,
        hashes: &[Hash],
    ) -> Result<bool, StoreError> {
        // PostgreSQL keeps its own buffers; nothing reads ahead there (engine.rs).
        let Db::Sqlite(pool) = &self.db else {
            return Ok(false);
        };
        let Some(mut conn) = pool.try_acquire() else {
            return Ok(false);
        };
        leaf_index::find(&mut conn, self.leaf_filters(), log_id, hashes).await?;
        Ok(true)
    }

    /// Writes one batch atomically: entries, their search keys, new nodes and the new head.
    pub async fn commit_batch(
        writer: &mut Writer,
        batch: BatchWrite<'_>,
    ) -> Result<(), StoreError> {
        match writer {
            Writer::Postgres(conn) => commit_batch_postgres(conn, batch).await,
            Writer::Sqlite(conn, runs) => {
                let keys = commit_batch_sqlite(conn, batch).await?;
                runs.added(keys);
                Ok(())
            }
        }
    }

    /// Index upkeep between batches: on SQLite, at most one step of moving search keys into
    /// sorted runs ([`search_runs`]); returns the step's name. Nothing on PostgreSQL.
    pub async fn maintain_indexes(writer: &mut Writer) -> Result<Option<&'static str>, StoreError> {
        match writer {
            Writer::Postgres(_) => Ok(None),
            Writer::Sqlite(conn, runs) => {
                let step = search_runs::maintain(conn, runs).await?;
                if step.is_some() {
                    // A flush or a merge's end makes a live run that needs a filter.
                    runs.leaf_filters.wake();
                }
                Ok(step)
            }
        }
    }
}

impl CopyTx {
    pub async fn insert_log(&mut self, log: &LogRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO logs (id, name, tree_id, created_ms, key_id, origin) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(log.id)
            .bind(&log.name)
            .bind(log.tree_id)
            .bind(log.created_ms)
            .bind(log.key_id.as_deref())
            .bind(log.origin.as_deref())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn insert_entries(
        &mut self,
        log_id: i64,
        rows: &[StoredEntry],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO entries (log_id, idx, leaf_hash, leaf, extra, timestamp_ms) \
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BYTEA[], $4::BYTEA[], $5::BYTEA[], $6::BIGINT[])",
        )
        .bind(log_id)
        .bind(rows.iter().map(|r| r.index as i64).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| &r.leaf_hash[..]).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| &r.leaf[..]).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| &r.extra[..]).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.timestamp_ms as i64).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn insert_nodes(&mut self, log_id: i64, rows: &[NodeRow]) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO nodes (log_id, level, idx, hash) SELECT $1, * FROM UNNEST($2::INTEGER[], $3::BIGINT[], $4::BYTEA[])")
            .bind(log_id)
            .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| &r.2[..]).collect::<Vec<_>>())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn insert_search_keys(
        &mut self,
        log_id: i64,
        rows: &[SearchKeyRow],
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO search_keys (log_id, key, idx) SELECT $1, * FROM UNNEST($2::BYTEA[], $3::BIGINT[])")
            .bind(log_id)
            .bind(rows.iter().map(|r| &r.0[..]).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn insert_head(&mut self, log_id: i64, head: &TreeHead) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tree_heads (log_id, size, root, timestamp_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(log_id)
        .bind(head.size as i64)
        .bind(&head.root[..])
        .bind(head.timestamp_ms as i64)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// SQLite path: multi-row INSERTs with positional `?` parameters. (SQLite resolves named
/// `$n` parameters with a linear scan per bind, which makes large INSERTs quadratic.)
async fn commit_batch_sqlite(
    conn: &mut PoolConnection<Sqlite>,
    batch: BatchWrite<'_>,
) -> Result<usize, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut **conn).await?;
    for chunk in batch.entries.chunks(ROWS_PER_INSERT / 6 * 5) {
        let sql = values_sql(
            "INSERT INTO entries (log_id, idx, leaf_hash, leaf, extra, timestamp_ms) VALUES ",
            6,
            chunk.len(),
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            q = q
                .bind(batch.log_id)
                .bind(e.index as i64)
                .bind(&e.leaf_hash[..])
                .bind(&e.leaf[..])
                .bind(&e.extra[..])
                .bind(e.timestamp_ms as i64);
        }
        q.execute(&mut *tx).await?;
    }
    // Each entry's leaf hash goes in with its search keys: the runs are SQLite's index of
    // leaf hashes (module `leaf_index`).
    let keys: Vec<(Vec<u8>, u64)> = batch
        .entries
        .iter()
        .flat_map(|e| {
            e.index_keys
                .iter()
                .map(move |k| (search_key(k), e.index))
                .chain(std::iter::once((
                    leaf_index::leaf_key(&e.leaf_hash),
                    e.index,
                )))
        })
        .collect();
    for chunk in keys.chunks(ROWS_PER_INSERT / 3) {
        let sql = values_sql(
            "INSERT INTO search_keys (log_id, key, idx) VALUES ",
            3,
            chunk.len(),
        ) + " ON CONFLICT DO NOTHING";
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (k, idx) in chunk {
            q = q.bind(batch.log_id).bind(&k[..]).bind(*idx as i64);
        }
        q.execute(&mut *tx).await?;
    }
    for chunk in batch.nodes.chunks(ROWS_PER_INSERT / 4) {
        let sql = values_sql(
            "INSERT INTO nodes (log_id, level, idx, hash) VALUES ",
            4,
            chunk.len(),
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, hash) in chunk {
            q = q
                .bind(batch.log_id)
                .bind(id.level as i32)
                .bind(id.index as i64)
                .bind(&hash[..]);
        }
        q.execute(&mut *tx).await?;
    }
    sqlx::query(
        "INSERT INTO tree_heads (log_id, size, root, timestamp_ms) VALUES (?, ?, ?, ?) \
         ON CONFLICT (log_id) DO UPDATE SET size = excluded.size, root = excluded.root, timestamp_ms = excluded.timestamp_ms",
    )
    .bind(batch.log_id)
    .bind(batch.head.size as i64)
    .bind(&batch.head.root[..])
    .bind(batch.head.timestamp_ms as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(keys.len())
}

/// PostgreSQL bulk path: the same rows through UNNEST over arrays, so every batch runs the
/// same three prepared statements whatever its size (a VALUES list with thousands of
/// parameters is parsed and planned anew for each new row count).
async fn commit_batch_postgres(
    conn: &mut PoolConnection<Postgres>,
    batch: BatchWrite<'_>,
) -> Result<(), StoreError> {
    let mut tx = sqlx::Connection::begin(&mut **conn).await?;
    let e = batch.entries;
    sqlx::query(
        "INSERT INTO entries (log_id, idx, leaf_hash, leaf, extra, timestamp_ms) \
         SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BYTEA[], $4::BYTEA[], $5::BYTEA[], $6::BIGINT[])",
    )
    .bind(batch.log_id)
    .bind(e.iter().map(|r| r.index as i64).collect::<Vec<_>>())
    .bind(e.iter().map(|r| &r.leaf_hash[..]).collect::<Vec<_>>())
    .bind(e.iter().map(|r| &r.leaf[..]).collect::<Vec<_>>())
    .bind(e.iter().map(|r| &r.extra[..]).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.timestamp_ms as i64).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    let (keys, idxs): (Vec<Vec<u8>>, Vec<i64>) = e
        .iter()
        .flat_map(|r| {
            r.index_keys
                .iter()
                .map(move |k| (search_key(k), r.index as i64))
        })
        .unzip();
    sqlx::query(
        "INSERT INTO search_keys (log_id, key, idx) SELECT $1, * FROM UNNEST($2::BYTEA[], $3::BIGINT[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(batch.log_id)
    .bind(keys)
    .bind(idxs)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO nodes (log_id, level, idx, hash) SELECT $1, * FROM UNNEST($2::INTEGER[], $3::BIGINT[], $4::BYTEA[])")
        .bind(batch.log_id)
        .bind(batch.nodes.iter().map(|(id, _)| id.level as i32).collect::<Vec<_>>())
        .bind(batch.nodes.iter().map(|(id, _)| id.index as i64).collect::<Vec<_>>())
        .bind(batch.nodes.iter().map(|(_, h)| &h[..]).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO tree_heads (log_id, size, root, timestamp_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (log_id) DO UPDATE SET size = excluded.size, root = excluded.root, timestamp_ms = excluded.timestamp_ms",
    )
    .bind(batch.log_id)
    .bind(batch.head.size as i64)
    .bind(&batch.head.root[..])
    .bind(batch.head.timestamp_ms as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// How often the write-ahead log is copied into the database. Each checkpoint writes the
/// index pages dirtied since the last one back into random places of the file and syncs it;
/// at 1M entries, every 250 ms took 5,055 writes/s against 4,398/s every 50 ms (64 clients,
/// medians of three), with the empty log's rate and a 1,000/s load's p99 (5.2-5.6 against
/// 4.7-5.0 ms) about the same. The cost is a longer tail when saturated at size (p99 190
/// against 92 ms with 256 clients at 1M), and up to ~20 MB of write-ahead log between
/// checkpoints at 5,000 writes/s.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// Copies the write-ahead log into the database continually, off the writer's path. With
/// SQLite's default (a checkpoint inside the commit that crosses 1,000 pages) a log of a
/// million entries spent most of its write time copying the same randomly placed index pages
/// again and again: measured at 1M entries, 3,600-4,000 entries/s with it, 4,800/s with
/// checkpoints at 10,000 pages. A passive checkpoint never blocks the writer or readers.
async fn checkpoint_in_background(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "background checkpoint failed");
        }
    }
}

fn values_sql(prefix: &str, columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(","));
    let mut sql = String::with_capacity(prefix.len() + rows * (row.len() + 1));
    sql.push_str(prefix);
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&row);
    }
    sql
}

/// Options sqlx does not set on its PostgreSQL sockets, set after each connect on this
/// process's TCP sockets whose peer is the database port (sqlx gives no access to its socket).
///
/// - TCP_NODELAY: sqlx 0.9.0 no longer sets it (upstream issue transact-rs/sqlx#4335, fixed by
///   #4336 but not yet released). With Nagle's algorithm on, round trips stall for the peer's
///   40 ms delayed ACK: measured here, a batch commit took ~80 ms over TCP and ~2 ms over the
///   Unix socket. Remove once sqlx sets it again.
/// - Keepalives and TCP_USER_TIMEOUT, the client's side of [`session_keepalives`]: a node cut
///   off from the database learns it within seconds, not when the kernel gives up
///   retransmitting (about 15 minutes), so a leader on the wrong side of a partition stops
///   taking writes and says it is not ready about 5 s after the database went silent.
mod pg_sockets {
    #[cfg(target_os = "linux")]
    const OPTIONS: [(libc::c_int, libc::c_int, libc::c_int); 6] = [
        (libc::IPPROTO_TCP, libc::TCP_NODELAY, 1),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (
            libc::IPPROTO_TCP,
            libc::TCP_KEEPIDLE,
            super::KEEPALIVE_IDLE_S,
        ),
        (
            libc::IPPROTO_TCP,
            libc::TCP_KEEPINTVL,
            super::KEEPALIVE_INTERVAL_S,
        ),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, super::KEEPALIVE_COUNT),
        (
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            super::USER_TIMEOUT_MS,
        ),
    ];

    #[cfg(target_os = "linux")]
    pub fn tune_connections_to(port: u16) {
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if peer_port(fd) != Some(port) {
                continue;
            }
            for (level, name, value) in OPTIONS {
                // SAFETY: setsockopt reads `value` for the size given; on a descriptor that is
                // no longer this socket (closed meanwhile) it just fails.
                unsafe {
                    libc::setsockopt(
                        fd,
                        level,
                        name,
                        (&value as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    );
                }
            }
        }
    }

    /// The remote port of `fd` if it is a connected TCP/IP socket.
    #[cfg(target_os = "linux")]
    fn peer_port(fd: i32) -> Option<u16> {
        // SAFETY: getpeername writes at most `len` bytes into `addr`; a descriptor that is not
        // a socket just fails. The casts read the family-specific struct the family names.
        unsafe {
            let mut addr: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if libc::getpeername(
                fd,
                (&mut addr as *mut libc::sockaddr_storage).cast(),
                &mut len,
            ) != 0
            {
                return None;
            }
            match i32::from(addr.ss_family) {
                libc::AF_INET => Some(u16::from_be(
                    (*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>())
                        .sin_port,
                )),
                libc::AF_INET6 => Some(u16::from_be(
                    (*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>())
                        .sin6_port,
                )),
                _ => None,
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn tune_connections_to(_port: u16) {}
}

/// How a search key is stored: a key ending in a hex digest of a known kind becomes one tag
/// byte and the raw digest; anything else stays its UTF-8 text (which never starts with a
/// tag byte). Migrations `0004_search_keys` (SQLite) and `0003_search_keys` (PostgreSQL)
/// convert existing rows the same way.
pub fn search_key(key: &str) -> Vec<u8> {
    const TAGGED: [(&str, u8, usize); 5] = [
        ("sha256:", 1, 64),
        ("sha384:", 2, 96),
        ("sha512:", 3, 128),
        ("key:", 4, 64),
        ("cert:", 5, 64),
    ];
    for (prefix, tag, hex_len) in TAGGED {
        if let Some(digest) = key.strip_prefix(prefix)
            && digest.len() == hex_len
            && let Ok(raw) = hex::decode(digest)
        {
            let mut out = Vec::with_capacity(1 + raw.len());
            out.push(tag);
            out.extend_from_slice(&raw);
            return out;
        }
    }
    key.as_bytes().to_vec()
}

async fn postgres_existing_leaves(
    conn: &mut sqlx::PgConnection,
    log_id: i64,
    hashes: &[Hash],
) -> Result<Vec<(Hash, u64)>, StoreError> {
    // One static statement over an array: PostgreSQL plans it once.
    let list: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
    sqlx::query("SELECT leaf_hash, idx FROM entries WHERE log_id = $1 AND leaf_hash = ANY($2)")
        .bind(log_id)
        .bind(list)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| Ok((to_hash(&r.get::<Vec<u8>, _>(0))?, r.get::<i64, _>(1) as u64)))
        .collect()
}

fn to_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("stored hash has {} bytes", bytes.len())))
}

/// The PostgreSQL advisory lock a log's writer holds: a fixed prefix keeps sigil's locks
/// apart from other applications' on a shared server.
pub fn writer_lock_key(log_id: i64) -> i64 {
    0x5161_0000_0000 + log_id
}
