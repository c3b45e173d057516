//! What the store's integration tests share: a fresh PostgreSQL database of their own.

pub use sigil_tests::postgres::fresh_database;
