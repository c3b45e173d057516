//! Faults the store must survive, with real processes: PostgreSQL restarted under load, a disk
//! that fills up, a database restored from a backup, a server started with another key or
//! name; and overload. Each is checked for what clients see (JSON errors with the right status,
//! nothing acknowledged that is lost) and for what the log does afterwards.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ClientKey, Server, certificate_request, fresh_postgres_database, log_info};
use reqwest::StatusCode;
use serde_json::Value;
use sigil_proto::rekor_v1::{LogEntryMap, LogInfo};

/// Tests that restart or copy PostgreSQL databases must not overlap with each other.
static POSTGRES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// No kept-alive connections: the tests restart servers on the same port.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn submit(
    http: &reqwest::Client,
    url: &str,
    key: &ClientKey,
    artifact: &str,
) -> reqwest::Response {
    http.post(format!("{url}/api/v1/log/entries"))
        .json(&key.hashedrekord(artifact.as_bytes()))
        .send()
        .await
        .unwrap()
}

async fn submit_ok(http: &reqwest::Client, url: &str, key: &ClientKey, artifact: &str) -> String {
    let r = submit(http, url, key, artifact).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let map: LogEntryMap = r.json().await.unwrap();
    map.into_keys().next().unwrap()
}

/// A refusal must be JSON naming its status, with `Retry-After`.
async fn assert_refusal(r: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(r.status(), status);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .expect("a refusal says when to retry")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], status.as_u16());
    body["message"].as_str().unwrap().to_string()
}

async fn wait_ready(http: &reqwest::Client, url: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status() == StatusCode::OK
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every acknowledged entry (by UUID) is there, and `old` heads are prefixes of the tree.
async fn assert_log_kept(http: &reqwest::Client, url: &str, acked: &[String], old: &[LogInfo]) {
    let acked: Vec<(String, Option<u64>)> = acked.iter().map(|id| (id.clone(), None)).collect();
    common::assert_log_kept(http, url, &acked, old).await;
}

fn copy_sqlite_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("sigil.db") && !name.ends_with(".lock") {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

#[tokio::test]
async fn a_database_restored_from_a_backup_is_refused_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let (http, key) = (client(), ClientKey::new());
    let mut server = Server::start(dir.path(), None);
    for i in 0..3 {
        submit_ok(&http, &server.url, &key, &format!("before backup {i}")).await;
    }
    server.stop();
    copy_sqlite_files(dir.path(), backup.path());
    server.restart();
    for i in 0..3 {
        submit_ok(&http, &server.url, &key, &format!("after backup {i}")).await;
    }
    server.stop();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("sigil.db") && !name.ends_with(".lock") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    copy_sqlite_files(backup.path(), dir.path());
    let err = Server::refused(dir.path(), None, &[]);
    assert!(
        err.contains("the database holds 3 entries") && err.contains("committed 6"),
        "{err}"
    );
    assert!(err.contains("restored backup"), "{err}");
}

#[tokio::test]
async fn a_database_restored_from_a_backup_is_refused_on_postgres() {
    let _pg = POSTGRES.lock().await;
    let db = fresh_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let (http, key) = (client(), ClientKey::new());
    let mut server = Server::start(dir.path(), Some(&db));
    for i in 0..3 {
        submit_ok(&http, &server.url, &key, &format!("before backup {i}")).await;
    }
    server.stop();
    // A backup: a copy of the database as it is now (no connections are open).
    let (base, name) = db.rsplit_once('/').unwrap();
    let backup_name = format!("{name}_backup");
    admin_query(&format!("CREATE DATABASE {backup_name} TEMPLATE {name}")).await;
    server.restart();
    for i in 0..3 {
        submit_ok(&http, &server.url, &key, &format!("after backup {i}")).await;
    }
    server.stop();
    let err = Server::refused(dir.path(), Some(&format!("{base}/{backup_name}")), &[]);
    assert!(
        err.contains("the database holds 3 entries") && err.contains("committed 6"),
        "{err}"
    );
    // A different, empty database under the same data dir is a different tree.
    let other = fresh_postgres_database().await;
    let err = Server::refused(dir.path(), Some(&other), &[]);
    assert!(err.contains("is this the right database"), "{err}");
}

async fn admin_query(sql: &str) {
    use sqlx::Connection;
    let admin = std::env::var("SIGIL_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn another_key_or_origin_for_an_existing_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (http, key) = (client(), ClientKey::new());
    let mut server = Server::start(dir.path(), None);
    submit_ok(&http, &server.url, &key, "first").await;
    server.stop();

    let keys = tempfile::tempdir().unwrap();
    let other_key = keys.path().join("other-rekor.pem");
    let err = Server::refused(
        dir.path(),
        None,
        &["--rekor-key", other_key.to_str().unwrap()],
    );
    assert!(err.contains("was signed with key"), "{err}");

    let err = Server::refused(
        dir.path(),
        None,
        &["--public-url", "https://elsewhere.example"],
    );
    assert!(
        err.contains("origin") && err.contains("elsewhere.example"),
        "{err}"
    );

    // With its own key and name it starts, and the log goes on.
    server.restart();
    submit_ok(&http, &server.url, &key, "second").await;
    assert_eq!(log_info(&http, &server.url).await.tree_size, 2);
}

#[tokio::test]
async fn writes_beyond_capacity_are_refused_with_retry_after_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &["--max-pending-writes", "1"]);
    let http = client();
    let key = Arc::new(ClientKey::new());
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (http, url, key) = (http.clone(), server.url.clone(), key.clone());
            tokio::spawn(async move { submit(&http, &url, &key, &format!("burst {i}")).await })
        })
        .collect();
    let (mut acked, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let r = t.await.unwrap();
        if r.status() == StatusCode::CREATED {
            let map: LogEntryMap = r.json().await.unwrap();
            acked.extend(map.into_keys());
        } else {
            let message = assert_refusal(r, StatusCode::SERVICE_UNAVAILABLE).await;
            assert!(message.contains("at capacity"), "{message}");
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "100 concurrent writes against one slot were all taken"
    );
    assert!(!acked.is_empty());
    // Reads are not writes: they are never refused for capacity.
    assert_eq!(
        log_info(&http, &server.url).await.tree_size,
        acked.len() as u64
    );
    // Afterwards it takes writes again by itself.
    acked.push(submit_ok(&http, &server.url, &key, "after the burst").await);
    assert_log_kept(&http, &server.url, &acked, &[]).await;
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &["--rate-limit-client", "2/m"]);
    let (http, key) = (client(), ClientKey::new());
    submit_ok(&http, &server.url, &key, "one").await;
    submit_ok(&http, &server.url, &key, "two").await;
    let r = submit(&http, &server.url, &key, "three").await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((20..=30).contains(&retry), "Retry-After {retry}");
    let message = assert_refusal(r, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(message.contains("127.0.0.1"), "{message}");
    assert_eq!(log_info(&http, &server.url).await.tree_size, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_nothing_and_the_writer_comes_back() {
    let _pg = POSTGRES.lock().await;
    let db = fresh_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    // With the CA (its --dev issuer on loopback): its CT log has a writer of its own.
    let issuer = format!("127.0.0.1:{}", common::free_port());
    let server = Server::start_with(
        dir.path(),
        Some(&db),
        &["--dev", "--dev-issuer-listen", &issuer],
    );
    let issuer = format!("http://{issuer}");
    let http = client();
    let url = server.url.clone();
    assert_eq!(
        issue_certificate(&http, &url, &issuer).await,
        StatusCode::OK
    );
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (http, url, acked, unexpected, stop) = (
                http.clone(),
                url.clone(),
                acked.clone(),
                unexpected.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let key = ClientKey::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let r = submit(&http, &url, &key, &format!("writer {w} entry {i}")).await;
                    match r.status() {
                        StatusCode::CREATED => {
                            let map: LogEntryMap = r.json().await.unwrap();
                            acked.lock().unwrap().extend(map.into_keys());
                        }
                        // While the database is down: 503 with a reason, nothing else.
                        StatusCode::SERVICE_UNAVAILABLE => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        other => {
                            let text = r.text().await.unwrap();
                            unexpected.lock().unwrap().push(format!("{other}: {text}"));
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = log_info(&http, &url).await;
    let acked_before = acked.lock().unwrap().len();
    assert!(acked_before > 0, "no writes before the restart");

    let version = std::fs::read_dir("/etc/postgresql")
        .expect("PostgreSQL from Debian's packages (scripts/test installs it)")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .unwrap();
    let restart = tokio::process::Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "restart",
            "-m",
            "fast",
        ])
        .status()
        .await
        .unwrap();
    assert!(restart.success(), "pg_ctlcluster restart failed");

    wait_ready(&http, &url, Duration::from_secs(20)).await;
    // Writes are accepted again after the restart.
    let resumed_at = acked.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < resumed_at + 20 {
        assert!(
            Instant::now() < deadline,
            "writes did not resume after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "answers other than 201/503: {unexpected:?}"
    );
    // The CA issues again (precertificate through its own CT log writer).
    assert_eq!(
        issue_certificate(&http, &url, &issuer).await,
        StatusCode::OK
    );
    let acked = acked.lock().unwrap().clone();
    assert_log_kept(&http, &url, &acked, &[before]).await;
    let metrics = common::metrics(&http, &url).await;
    assert!(
        metrics.contains("sigil_log_writer_up{log=\"rekor\"} 1"),
        "{metrics}"
    );
}

/// `POST /api/v2/signingCert` with a token from the --dev issuer and a proof of possession.
async fn issue_certificate(http: &reqwest::Client, url: &str, issuer: &str) -> StatusCode {
    let request = certificate_request(http, issuer, "ops@example.com").await;
    let r = http
        .post(format!("{url}/api/v2/signingCert"))
        .json(&request)
        .send()
        .await
        .unwrap();
    let status = r.status();
    if status != StatusCode::OK {
        eprintln!("signingCert answered {status}: {}", r.text().await.unwrap());
    }
    status
}

/// A tmpfs mount that is removed again when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        // Needs root (as CI runs); a failure here is a failure, never a skip.
        assert!(
            status.success(),
            "cannot mount a tmpfs for the disk-full test (run as root)"
        );
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_gets_503_and_the_log_recovers_when_space_returns() {
    let disk = SmallDisk::mount("16m");
    let data = disk.dir.path().join("data");
    let mut server = Server::start(&data, None);
    let (http, key) = (client(), ClientKey::new());
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(submit_ok(&http, &server.url, &key, &format!("before full {i}")).await);
    }
    let before = log_info(&http, &server.url).await;

    // Fill what is left.
    let filler = disk.dir.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let mut saw_full = false;
    for i in 0..200 {
        let r = submit(&http, &server.url, &key, &format!("while full {i}")).await;
        match r.status() {
            StatusCode::CREATED => {
                let map: LogEntryMap = r.json().await.unwrap();
                acked.extend(map.into_keys());
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                let message = assert_refusal(r, StatusCode::SERVICE_UNAVAILABLE).await;
                // SQLite's own words, or the head record's when the write-ahead log still
                // had room for the commit.
                assert!(
                    message.contains("disk is full") || message.contains("No space left"),
                    "{message}"
                );
                saw_full = true;
                break;
            }
            other => panic!("a full disk answered {other}: {}", r.text().await.unwrap()),
        }
    }
    assert!(saw_full, "200 writes on a full disk all succeeded");
    let r = http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Reads keep working while writes cannot.
    assert_log_kept(&http, &server.url, &acked, std::slice::from_ref(&before)).await;

    std::fs::remove_file(&filler).unwrap();
    wait_ready(&http, &server.url, Duration::from_secs(20)).await;
    acked.push(submit_ok(&http, &server.url, &key, "after space returned").await);
    assert_log_kept(&http, &server.url, &acked, std::slice::from_ref(&before)).await;

    // And the database on the formerly full disk opens cleanly.
    server.restart();
    assert_log_kept(&http, &server.url, &acked, &[before]).await;
    drop(server);
}
