//! High availability on PostgreSQL with real processes: three sigild on one database, writers
//! spreading entries over all three, and the leader killed with SIGKILL again and again. Then
//! an independent check: every acknowledged entry is in the log once, at the index it was
//! given, with a proof that verifies; every checkpoint any client saw is consistent with the
//! final tree; a new leader took over within 5 s each time; followers serve fresh reads.
//!
//! `SIGIL_HA_TRIALS` sets the number of leader kills (CI: 10; `scripts/ha-trials` runs 100).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    Writers, assert_acknowledged_entries_kept, client, leader, submit_until_acked,
};
use common::{ClientKey, Server, certificate_request, fresh_postgres_database, log_info};
use reqwest::StatusCode;
use sigil_tests::files::copy_dir;

const NODES: usize = 3;
const WRITERS: usize = 4;
/// How long a client keeps retrying one entry.
const PATIENCE: Duration = Duration::from_secs(30);

fn trials() -> usize {
    std::env::var("SIGIL_HA_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// Every node signs as the same log and CA: the same keys (copied below), the same public
/// URL, and one OIDC issuer that outlives every node (it runs in the test process).
fn node_args(issuer: &str) -> Vec<String> {
    [
        "--ha",
        "--public-url",
        "http://sigil.test",
        "--oidc-issuer",
        issuer,
        "--insecure-unencrypted-ca-keys",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Requests certificates until one is issued, moving to the next node on 503 or a refused
/// connection.
async fn issue_until_ok(
    http: &reqwest::Client,
    urls: &Mutex<Vec<String>>,
    issuer: &str,
    start: usize,
) {
    let request = certificate_request(http, issuer, "ha@example.com").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = start;
    loop {
        assert!(Instant::now() < deadline, "no certificate in 30 s");
        let url = {
            let urls = urls.lock().unwrap();
            urls[attempt % urls.len()].clone()
        };
        attempt += 1;
        match http
            .post(format!("{url}/api/v2/signingCert"))
            .json(&request)
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::OK => return,
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {}
            Ok(r) => panic!("{url} answered {}: {}", r.status(), r.text().await.unwrap()),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_leader_killed_repeatedly_loses_nothing_and_forks_nothing() {
    let db = fresh_postgres_database().await;
    let issuer = sigil_ca::dev_issuer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .url;
    let dirs: Vec<tempfile::TempDir> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    let owned = node_args(&issuer);
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut nodes = vec![Server::start_with(dirs[0].path(), Some(&db), &args)];
    // The first node created the log and CA keys; the others get copies.
    for dir in &dirs[1..] {
        copy_dir(&dirs[0].path().join("keys"), &dir.path().join("keys"));
        copy_dir(&dirs[0].path().join("ca"), &dir.path().join("ca"));
    }
    for dir in &dirs[1..] {
        nodes.push(Server::start_with(dir.path(), Some(&db), &args));
    }
    let http = client();
    assert_eq!(
        leader(&http, &nodes.iter().collect::<Vec<_>>()).await,
        Some(0),
        "the first node leads"
    );
    for node in &nodes {
        let r = http
            .get(format!("{}/readyz", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "followers are ready too");
    }

    let mut writers = Writers::start(
        WRITERS,
        nodes.iter().map(|n| n.url.clone()).collect(),
        "ha",
        Duration::ZERO,
        PATIENCE,
    );

    // A CA client too: issuance needs the CT log's leader, wherever it is.
    let issued = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let stop_issuing = Arc::new(AtomicBool::new(false));
    let issuing = {
        let (urls, issued, stop, issuer) = (
            writers.urls.clone(),
            issued.clone(),
            stop_issuing.clone(),
            issuer.clone(),
        );
        tokio::spawn(async move {
            let http = client();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                issue_until_ok(&http, &urls, &issuer, n).await;
                issued.lock().unwrap().push(Instant::now());
                n += 1;
            }
        })
    };

    let mut takeovers = Vec::new();
    let mut current = 0usize;
    for trial in 0..trials() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = writers.acknowledged();
        let killed_at = Instant::now();
        nodes[current].kill9();
        // A new leader: another node says so, and writes are acknowledged again.
        let next = loop {
            assert!(
                killed_at.elapsed() < Duration::from_secs(5),
                "trial {trial}: no new leader within 5 s of killing node {current}"
            );
            if let Some(l) = leader(&http, &nodes.iter().collect::<Vec<_>>()).await {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_ne!(next, current);
        while writers.acknowledged() <= before + WRITERS {
            assert!(
                killed_at.elapsed() < Duration::from_secs(5),
                "trial {trial}: writes did not resume within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while !issued.lock().unwrap().iter().any(|t| *t > killed_at) {
            assert!(
                killed_at.elapsed() < Duration::from_secs(5),
                "trial {trial}: the CA issued nothing within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        takeovers.push(killed_at.elapsed());
        nodes[current].restart_after_kill_with(&args);
        current = next;
    }
    stop_issuing.store(true, Ordering::Relaxed);
    let acks = writers.stop().await;
    issuing.await.unwrap();
    takeovers.sort();
    eprintln!(
        "{} trials, {} entries acknowledged, {} certificates, {} refusals (503); takeover median {:?}, max {:?}",
        takeovers.len(),
        acks.len(),
        issued.lock().unwrap().len(),
        writers.refusals.load(Ordering::Relaxed),
        takeovers[takeovers.len() / 2],
        takeovers.last().unwrap()
    );

    // Followers read what the leader committed within the follow interval.
    let ack = submit_until_acked(
        &http,
        &writers.urls,
        &ClientKey::new().hashedrekord(b"freshness"),
        0,
        &writers.refusals,
        PATIENCE,
    )
    .await;
    let size = ack.entry.unwrap().verification.inclusion_proof.tree_size;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut ct_heads = Vec::new();
    for node in &nodes {
        let sth: serde_json::Value = http
            .get(format!("{}/ct/v1/get-sth", node.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ct_heads.push((
            sth["tree_size"].as_u64().unwrap(),
            sth["sha256_root_hash"].clone(),
        ));
        let info = log_info(&http, &node.url).await;
        assert!(
            info.tree_size >= size,
            "{} still says size {} 400 ms after the leader committed {size}",
            node.url,
            info.tree_size
        );
    }

    assert!(
        ct_heads.windows(2).all(|w| w[0] == w[1]),
        "every node shows the same CT tree: {ct_heads:?}"
    );
    assert!(
        ct_heads[0].0 >= issued.lock().unwrap().len() as u64,
        "every issued certificate's precertificate is in the CT log"
    );

    // The independent check, against one node; the freshness probe is the one entry more.
    assert_acknowledged_entries_kept(&http, &nodes[0].url, &acks, 1).await;
}

#[tokio::test]
async fn forwarded_writes_need_the_cluster_secret() {
    let db = fresh_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let node = Server::start_with(dir.path(), Some(&db), &["--ha", "--services", "rekor"]);
    let http = client();
    let body =
        serde_json::json!({"leaf": "AA==", "extra": "", "timestampMs": "1", "indexKeys": []});
    let r = http
        .post(format!("{}/internal/v1/logs/rekor/append", node.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .post(format!("{}/internal/v1/logs/rekor/append", node.url))
        .header("x-sigil-cluster-secret", hex::encode([0u8; 32]))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        log_info(&http, &node.url).await.tree_size,
        0,
        "nothing was logged"
    );
}
