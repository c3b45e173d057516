//! `sigild migrate-sqlite-to-postgres` with real processes: a log written on SQLite is copied
//! into PostgreSQL and served from there with the same tree, entries, search and head record.

mod common;

use std::process::Command;

use common::{
    ClientKey, Server, consistency_proof, fresh_postgres_database, hash_from_hex, log_info,
};
use reqwest::StatusCode;
use sigil_proto::merkle::verify_consistency;
use sigil_proto::rekor_v1::LogEntryMap;

fn migrate(data_dir: &std::path::Path, db: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sigild"))
        .arg("migrate-sqlite-to-postgres")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--database-url", db])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_sqlite_log_moves_to_postgres_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--services", "rekor,tiles"];
    let mut server = Server::start_with(dir.path(), None, &args);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let key = ClientKey::new();
    let mut uuids = Vec::new();
    for i in 0..30 {
        let r = http
            .post(format!("{}/api/v1/log/entries", server.url))
            .json(&key.hashedrekord(format!("migrated {i}").as_bytes()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let map: LogEntryMap = r.json().await.unwrap();
        uuids.push(map.into_keys().next().unwrap());
    }
    let before = log_info(&http, &server.url).await;

    // While sigild runs, its data dir is locked.
    let db = fresh_postgres_database().await;
    let out = migrate(dir.path(), &db);
    assert!(
        !out.status.success(),
        "copied a database a sigild was writing"
    );
    server.stop();

    let out = migrate(dir.path(), &db);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("log rekor: 30 entries copied, root checked"),
        "{stdout}"
    );
    // A second copy into the same database is refused, naming what is there.
    let again = migrate(dir.path(), &db);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds logs (rekor)"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Served from PostgreSQL with the same data dir: same tree, same entries, still growing.
    let server = Server::start_with(dir.path(), Some(&db), &args);
    let after = log_info(&http, &server.url).await;
    assert_eq!(after.tree_size, before.tree_size);
    assert_eq!(after.root_hash, before.root_hash);
    assert_eq!(after.tree_id, before.tree_id);
    for uuid in &uuids {
        let r = http
            .get(format!("{}/api/v1/log/entries/{uuid}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "entry {uuid} after the move");
    }
    let found: Vec<String> = http
        .post(format!("{}/api/v1/index/retrieve", server.url))
        .json(&serde_json::json!({"publicKey": {"format": "x509", "content": base64_pem(&key)}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found.len(), 30, "search keys moved too");
    let r = http
        .post(format!("{}/api/v1/log/entries", server.url))
        .json(&key.hashedrekord(b"after the move"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let now = log_info(&http, &server.url).await;
    let (_, proof) = consistency_proof(&http, &server.url, before.tree_size, now.tree_size).await;
    verify_consistency(
        before.tree_size,
        now.tree_size,
        &hash_from_hex(&before.root_hash),
        &hash_from_hex(&now.root_hash),
        &proof,
    )
    .expect("the log grew from the migrated tree");
}

fn base64_pem(key: &ClientKey) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key.public_pem())
}
