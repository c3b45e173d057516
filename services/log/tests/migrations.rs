//! Schema migrations keep every existing row: a database written by the previous schema is
//! migrated and then read through the current code, on SQLite and PostgreSQL.

mod common;

use sigil_log::store::search_key;
use sqlx::Connection;

const OLD_KEYS: [&str; 7] = [
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "sha384:768412320f7b0aa5812fce428dc4706b3cae50e02a64caa16a782249bfe8efc4b7ef1ccb126255d196047dfedf17a0a9",
    "sha512:ee26b0dd4af7e749aa1a8ee3c10ae9923f618980772e473f8819a5d4940e0db27ac185f8a0e1d5f84f88bc887fd67b143732c304cc5fa9ad8e6f57f50028a8ff",
    "key:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "cert:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
    "email:someone@example.com",
    "subject:https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main",
];

/// The SQL files of `dir` whose version is below `before`, in order.
fn migrations(dir: &str, before: u32) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('_').next())
                .and_then(|v| v.parse::<u32>().ok())
                .is_some_and(|v| v < before)
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// One log with entries 0..3, in the old schema (SQLite and PostgreSQL spell bytes apart).
const OLD_ROWS_SQLITE: &str = "
    INSERT INTO logs (id, name, tree_id, created_ms) VALUES (1, 'rekor', 77, 0);
    INSERT INTO entries (log_id, idx, leaf_hash, leaf, extra, timestamp_ms) VALUES
        (1, 0, X'00000000000000000000000000000000000000000000000000000000000000a0', X'6c30', X'', 10),
        (1, 1, X'00000000000000000000000000000000000000000000000000000000000000a1', X'6c31', X'01', 11),
        (1, 2, X'00000000000000000000000000000000000000000000000000000000000000a2', X'6c32', X'', 12);
";
const OLD_ROWS_POSTGRES: &str = "
    INSERT INTO logs (id, name, tree_id, created_ms) VALUES (1, 'rekor', 77, 0);
    INSERT INTO entries (log_id, idx, leaf_hash, leaf, extra, timestamp_ms) VALUES
        (1, 0, '\\x00000000000000000000000000000000000000000000000000000000000000a0', '\\x6c30', '', 10),
        (1, 1, '\\x00000000000000000000000000000000000000000000000000000000000000a1', '\\x6c31', '\\x01', 11),
        (1, 2, '\\x00000000000000000000000000000000000000000000000000000000000000a2', '\\x6c32', '', 12);
";

/// OLD_KEYS all point at entry 1.
fn old_key_rows() -> String {
    OLD_KEYS
        .iter()
        .map(|k| format!("INSERT INTO search_index (log_id, key, idx) VALUES (1, '{k}', 1);"))
        .collect()
}

async fn check_migrated(store: &sigil_log::Store) {
    for key in OLD_KEYS {
        let found = store
            .search(1, &[(key.to_string(), 0)], 1, u64::MAX, 10)
            .await
            .unwrap();
        let mut want = [0u8; 32];
        want[31] = 0xa1;
        assert_eq!(
            found,
            vec![(1, want)],
            "search key {key} survives the migration"
        );
    }
    let entries = store.entries(1, 0, 3).await.unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1].leaf, b"l1");
    assert_eq!(entries[1].extra, vec![1]);
    assert_eq!(entries[1].timestamp_ms, 11);
    // Found by leaf hash (on SQLite through the run the migration made of the old index).
    for e in &entries {
        assert_eq!(
            store.index_of_leaf_hash(1, &e.leaf_hash).await.unwrap(),
            Some(e.index),
            "entry {} by its leaf hash",
            e.index
        );
    }
    assert_eq!(
        store.index_of_leaf_hash(1, &[0xa1; 32]).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .index_of_leaf_hash(2, &entries[1].leaf_hash)
            .await
            .unwrap(),
        None
    );
}

#[test]
fn digest_keys_are_stored_as_tag_and_bytes() {
    assert_eq!(search_key(OLD_KEYS[0]).len(), 33);
    assert_eq!(search_key(OLD_KEYS[0])[0], 1);
    assert_eq!(search_key(OLD_KEYS[4])[0], 5);
    assert_eq!(search_key(OLD_KEYS[5]), OLD_KEYS[5].as_bytes());
    // Not a digest of the named kind: kept as text, so it cannot collide with a digest key.
    assert_eq!(search_key("sha256:abc"), b"sha256:abc");
    assert_eq!(search_key(&format!("sha256:{}", "zz".repeat(32))).len(), 71);
}

#[tokio::test]
async fn sqlite_rows_written_before_0003_survive() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("sigil.db").display()
    );
    {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for sql in migrations("../../migrations/sqlite", 3) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "{OLD_ROWS_SQLITE}{}",
            old_key_rows()
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        // Record the applied versions so sqlx runs only what is new.
        let migrator = sqlx::migrate!("../../migrations/sqlite");
        sqlx::query("CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)")
            .execute(&mut conn).await.unwrap();
        for m in migrator.iter().filter(|m| m.version < 3) {
            sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($1, $2, TRUE, $3, 0)")
                .bind(m.version).bind(&*m.description).bind(&*m.checksum)
                .execute(&mut conn).await.unwrap();
        }
    }
    let store = sigil_log::Store::open_sqlite(dir.path()).await.unwrap();
    check_migrated(&store).await;
}

#[tokio::test]
async fn postgres_rows_written_before_0003_survive() {
    let url = common::fresh_database().await;
    {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        for sql in migrations("../../migrations/postgres", 3) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "{OLD_ROWS_POSTGRES}{}",
            old_key_rows()
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        let migrator = sqlx::migrate!("../../migrations/postgres");
        sqlx::query("CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)")
            .execute(&mut conn).await.unwrap();
        for m in migrator.iter().filter(|m| m.version < 3) {
            sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($1, $2, TRUE, $3, 0)")
                .bind(m.version).bind(&*m.description).bind(&*m.checksum)
                .execute(&mut conn).await.unwrap();
        }
    }
    let store = sigil_log::Store::open_postgres(&url).await.unwrap();
    check_migrated(&store).await;
}

/// A tile of leaf hashes is read from the primary key's index alone (migration 0007), never
/// from the entry rows, which at size are on disk.
#[tokio::test]
async fn postgres_tile_reads_never_touch_entry_rows() {
    let url = common::fresh_database().await;
    let _store = sigil_log::Store::open_postgres(&url).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // On a tiny table the planner would rather scan it; forbid that to see what the index offers.
    sqlx::raw_sql("SET enable_seqscan = off; SET enable_bitmapscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT leaf_hash FROM entries WHERE log_id = 1 AND idx >= 256 AND idx < 512 ORDER BY idx",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(
        plan[0].starts_with("Index Only Scan using entries_pkey"),
        "{plan:?}"
    );
}
