//! A database of its own on the local PostgreSQL, for each test that needs one.

use sqlx::Connection;

/// Creates a database on the local server (`SIGIL_TEST_PG_ADMIN_URL`, else
/// postgres://postgres@127.0.0.1:5432/test, as scripts/test sets it up) and returns its URL.
/// A missing server is a failure, never a skip.
pub async fn fresh_database() -> String {
    let admin = std::env::var("SIGIL_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL must be running on 127.0.0.1:5432 for this test ({admin}): {e}")
        });
    let name = format!("sigil_test_{:016x}", rand::random::<u64>());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}
