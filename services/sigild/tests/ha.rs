//! High availability on PostgreSQL with real processes: three sigild on one database, writers
//! spreading entries over all three, and the leader killed with SIGKILL again and again. Then
//! an independent check: every acknowledged entry is in the log once, at the index it was
//! given, with a proof that verifies; every checkpoint any client saw is consistent with the
//! final tree; a new leader took over within 5 s each time; followers serve fresh reads.
//!
//! `SIGIL_HA_TRIALS` sets the number of leader kills (CI: 10; `scripts/ha-trials` runs 100).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    ClientKey, Server, certificate_request, consistency_proof, fresh_postgres_database,
    hash_from_hex, log_info,
};
use reqwest::StatusCode;
use sigil_proto::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use sigil_proto::rekor_v1::{LogEntry, LogEntryMap};

const NODES: usize = 3;
const WRITERS: usize = 4;

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

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
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

/// What one client was told: the entry's UUID, and (for a 201) its index and checkpoint.
#[derive(Clone, Debug)]
struct Ack {
    uuid: String,
    entry: Option<LogEntry>,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Submits one entry, moving to the next node on 503 or a refused connection, as a client
/// behind a load balancer would, until acknowledged (201, or 409 after a retry whose first
/// attempt was committed before its answer was lost).
async fn submit_until_acked(
    http: &reqwest::Client,
    urls: &Mutex<Vec<String>>,
    body: &serde_json::Value,
    start: usize,
    refusals: &AtomicUsize,
) -> Ack {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = start;
    loop {
        assert!(
            Instant::now() < deadline,
            "an entry was not acknowledged in 30 s"
        );
        let url = {
            let urls = urls.lock().unwrap();
            urls[attempt % urls.len()].clone()
        };
        attempt += 1;
        let resp = match http
            .post(format!("{url}/api/v1/log/entries"))
            .json(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(_) => {
                // The node is down (killed): try another.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match resp.status() {
            StatusCode::CREATED => {
                let map: LogEntryMap = resp.json().await.unwrap();
                let (uuid, entry) = map.into_iter().next().unwrap();
                return Ack {
                    uuid,
                    entry: Some(entry),
                };
            }
            StatusCode::CONFLICT if attempt > start + 1 => {
                let location = resp.headers()["location"].to_str().unwrap().to_string();
                let uuid = location.rsplit('/').next().unwrap().to_string();
                return Ack { uuid, entry: None };
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(
                    resp.headers().contains_key("retry-after"),
                    "a 503 says when to retry"
                );
                refusals.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{url} answered {other}: {}", resp.text().await.unwrap()),
        }
    }
}

/// Which node says it sequences the rekor log, from its own metrics.
async fn leader(http: &reqwest::Client, nodes: &[Server]) -> Option<usize> {
    let mut found = None;
    for (i, node) in nodes.iter().enumerate() {
        let Ok(r) = http.get(format!("{}/metrics", node.url)).send().await else {
            continue;
        };
        let text = r.text().await.unwrap_or_default();
        if text
            .lines()
            .any(|l| l == "sigil_log_leader{log=\"rekor\"} 1")
        {
            assert!(found.is_none(), "two nodes both say they lead the log");
            found = Some(i);
        }
    }
    found
}

fn check_inclusion(entry: &LogEntry) {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD
        .decode(&entry.body)
        .unwrap();
    let p = &entry.verification.inclusion_proof;
    let hashes: Vec<_> = p.hashes.iter().map(|h| hash_from_hex(h)).collect();
    verify_inclusion(
        &leaf_hash(&body),
        p.log_index,
        p.tree_size,
        &hashes,
        &hash_from_hex(&p.root_hash),
    )
    .expect("inclusion proof verifies");
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
    assert_eq!(leader(&http, &nodes).await, Some(0), "the first node leads");
    for node in &nodes {
        let r = http
            .get(format!("{}/readyz", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "followers are ready too");
    }

    let urls = Arc::new(Mutex::new(
        nodes.iter().map(|n| n.url.clone()).collect::<Vec<_>>(),
    ));
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let refusals = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (urls, acks, refusals, stop) =
            (urls.clone(), acks.clone(), refusals.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let http = client();
            let key = ClientKey::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let body = key.hashedrekord(format!("ha writer {w} entry {n}").as_bytes());
                let ack = submit_until_acked(&http, &urls, &body, w + n, &refusals).await;
                if let Some(entry) = &ack.entry {
                    check_inclusion(entry);
                }
                acks.lock().unwrap().push(ack);
                n += 1;
            }
        }));
    }

    // A CA client too: issuance needs the CT log's leader, wherever it is.
    let issued = Arc::new(Mutex::new(Vec::<Instant>::new()));
    {
        let (urls, issued, stop, issuer) =
            (urls.clone(), issued.clone(), stop.clone(), issuer.clone());
        writers.push(tokio::spawn(async move {
            let http = client();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                issue_until_ok(&http, &urls, &issuer, n).await;
                issued.lock().unwrap().push(Instant::now());
                n += 1;
            }
        }));
    }

    let mut takeovers = Vec::new();
    let mut current = 0usize;
    for trial in 0..trials() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = acks.lock().unwrap().len();
        let killed_at = Instant::now();
        nodes[current].kill9();
        // A new leader: another node says so, and writes are acknowledged again.
        let next = loop {
            assert!(
                killed_at.elapsed() < Duration::from_secs(5),
                "trial {trial}: no new leader within 5 s of killing node {current}"
            );
            if let Some(l) = leader(&http, &nodes).await {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_ne!(next, current);
        while acks.lock().unwrap().len() <= before + WRITERS {
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
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    takeovers.sort();
    eprintln!(
        "{} trials, {} entries acknowledged, {} certificates, {} refusals (503); takeover median {:?}, max {:?}",
        takeovers.len(),
        acks.len(),
        issued.lock().unwrap().len(),
        refusals.load(Ordering::Relaxed),
        takeovers[takeovers.len() / 2],
        takeovers.last().unwrap()
    );

    // Followers read what the leader committed within the follow interval.
    let ack = submit_until_acked(
        &http,
        &urls,
        &ClientKey::new().hashedrekord(b"freshness"),
        0,
        &refusals,
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

    // The independent check, against one node.
    let url = &nodes[0].url;
    let final_head = log_info(&http, url).await;
    let mut by_index: BTreeMap<u64, String> = BTreeMap::new();
    let mut checkpoints: HashMap<u64, String> = HashMap::new();
    for ack in &acks {
        let r = http
            .get(format!("{url}/api/v1/log/entries/{}", ack.uuid))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "acknowledged entry {} is gone",
            ack.uuid
        );
        let map: LogEntryMap = r.json().await.unwrap();
        let stored = map.into_values().next().unwrap();
        check_inclusion(&stored);
        if let Some(entry) = &ack.entry {
            assert_eq!(
                stored.log_index, entry.log_index,
                "entry {} moved",
                ack.uuid
            );
            assert_eq!(stored.body, entry.body);
            let p = &entry.verification.inclusion_proof;
            if let Some(seen) = checkpoints.insert(p.tree_size, p.root_hash.clone()) {
                assert_eq!(
                    seen, p.root_hash,
                    "two roots for tree size {}: a fork",
                    p.tree_size
                );
            }
        }
        if let Some(other) = by_index.insert(stored.log_index, ack.uuid.clone()) {
            assert_eq!(
                other, ack.uuid,
                "index {} given to two entries",
                stored.log_index
            );
        }
    }
    // One entry per acknowledgement (plus the freshness probe), nothing else in the log.
    assert_eq!(final_head.tree_size, by_index.len() as u64 + 1);
    let new_root = hash_from_hex(&final_head.root_hash);
    for (size, root) in &checkpoints {
        let (_, proof) = consistency_proof(&http, url, *size, final_head.tree_size).await;
        verify_consistency(
            *size,
            final_head.tree_size,
            &hash_from_hex(root),
            &new_root,
            &proof,
        )
        .expect("every checkpoint a client saw is a prefix of the final tree");
    }
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
