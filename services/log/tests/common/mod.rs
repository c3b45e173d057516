//! What the store's integration tests share: a fresh PostgreSQL database of their own.

use sqlx::Connection;

/// A database created for one test on the local PostgreSQL (`SIGIL_TEST_PG_ADMIN_URL`, else
/// postgres://postgres@127.0.0.1:5432/test, as scripts/test sets it up).
pub struct FreshDatabase {
    pub url: String,
}

impl FreshDatabase {
    pub async fn create() -> FreshDatabase {
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
        FreshDatabase {
            url: format!("{}/{name}", admin.rsplit_once('/').unwrap().0),
        }
    }
}
