//! The PostgreSQL writer session: it holds the log's advisory lock, and the server is told to
//! notice within seconds when the process holding it stops answering.

mod common;

use sigil_log::Store;
use sigil_log::store::{StoreError, Writer};
use sqlx::Row;

#[tokio::test]
async fn the_writer_holds_the_lock_and_asks_the_server_to_probe_its_connection() {
    let database = common::fresh_database().await;
    let store = Store::open_postgres(&database).await.unwrap();
    let (log_id, _) = store.ensure_log("rekor", 0).await.unwrap();
    let mut writer = store.writer(log_id, "rekor").await.unwrap();
    let Writer::Postgres(conn) = &mut writer else {
        panic!("a PostgreSQL store gives a PostgreSQL writer");
    };
    for (setting, expected) in [
        ("tcp_keepalives_idle", "2"),
        ("tcp_keepalives_interval", "1"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "5000"),
    ] {
        let value: String = sqlx::query(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
            .fetch_one(&mut **conn)
            .await
            .unwrap()
            .get(0);
        assert_eq!(value, expected, "{setting}");
    }
    // A second writer for the same log, from another store on the database, is refused.
    let other = Store::open_postgres(&database).await.unwrap();
    assert!(matches!(
        other.writer(log_id, "rekor").await,
        Err(StoreError::Locked(_))
    ));
    Store::discard_writer(writer);
    store.close().await;
    other.close().await;
}
