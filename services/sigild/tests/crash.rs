//! kill -9 while clients submit: every acknowledged entry must be there after restart, at
//! the same index, and every head seen before the kill must be consistent with the head after.
//! Each backend runs `SIGIL_CRASH_TRIALS` trials (default 20) on one growing log, the kill
//! landing at a different moment each time; `scripts/crash-trials N` runs more. On SQLite the
//! search-key runs are made tiny, so that kills also land in flushes and merges, and every
//! acknowledged entry must still be found by its artifact's hash.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ClientKey, Server, fresh_postgres_database};
use sha2::{Digest, Sha256};
use sigil_proto::rekor_v1::{LogEntryMap, LogInfo};

const CLIENTS: usize = 16;

fn trials() -> usize {
    std::env::var("SIGIL_CRASH_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
}

/// Search-key runs flushed every 16 keys, merged three at a time in 16-key chunks: a few
/// entries make a run, and most batches are followed by merge steps.
const TINY_SEARCH_RUNS: [&str; 2] = ["--search-runs", "16,3,16"];

/// An acknowledged entry: its UUID, index and artifact hash (`sha256:…`).
type Acked = (String, u64, String);

async fn crash_trials(server: &mut Server, extra: &[&str]) {
    let mut every_acked: Vec<Acked> = Vec::new();
    for trial in 0..trials() {
        // 200 to 700 ms of load: the kill lands in a different phase of a batch each time.
        let load = Duration::from_millis(200 + (trial as u64 * 373) % 500);
        every_acked.extend(crash_while_submitting(server, trial, load, extra).await);
    }
    // Keys written in earlier trials survive the later kills too (they may have been in a
    // run that a killed merge was reading).
    let http = reqwest::Client::new();
    assert_found_by_hash(&http, &server.url, &every_acked, 400).await;
}

/// Searching each entry's artifact hash finds exactly that entry (artifacts are unique per
/// trial, client and entry); `at_most` spreads the checks evenly over `acked`.
async fn assert_found_by_hash(http: &reqwest::Client, url: &str, acked: &[Acked], at_most: usize) {
    let step = acked.len().div_ceil(at_most).max(1);
    for (id, index, hash) in acked.iter().step_by(step) {
        let r = http
            .post(format!("{url}/api/v1/index/retrieve"))
            .json(&serde_json::json!({"hash": hash}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "search by {hash} for entry {index}: {body}");
        let found: Vec<String> = serde_json::from_str(&body).unwrap();
        assert_eq!(
            found,
            vec![id.clone()],
            "search by {hash} for entry {index} after a kill"
        );
    }
}

async fn crash_while_submitting(
    server: &mut Server,
    trial: usize,
    load: Duration,
    extra: &[&str],
) -> Vec<Acked> {
    let http = reqwest::Client::new();
    let url = server.url.clone();
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let heads: Arc<Mutex<Vec<LogInfo>>> = Arc::default();
    // Statuses other than 201 before the kill: none expected, named if the trial fails.
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop_at = Instant::now() + load;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (http, url, acked, refused) =
            (http.clone(), url.clone(), acked.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let key = ClientKey::new();
            for i in 0u64.. {
                let artifact = format!("trial {trial} client {c} entry {i}");
                let hash = format!("sha256:{}", hex::encode(Sha256::digest(&artifact)));
                let entry = key.hashedrekord(artifact.as_bytes());
                let resp = match http
                    .post(format!("{url}/api/v1/log/entries"))
                    .json(&entry)
                    .send()
                    .await
                {
                    Ok(r) => r,
                    Err(_) => return, // the server died under us
                };
                if resp.status() != 201 {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    refused.lock().unwrap().push(format!("{status}: {body}"));
                    return;
                }
                let Ok(map) = resp.json::<LogEntryMap>().await else {
                    return;
                };
                let (id, e) = map.into_iter().next().unwrap();
                acked.lock().unwrap().push((id, e.log_index, hash));
            }
        }));
    }
    {
        let (http, url, heads) = (http.clone(), url.clone(), heads.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok(r) = http.get(format!("{url}/api/v1/log")).send().await {
                match r.json::<LogInfo>().await {
                    Ok(info) => heads.lock().unwrap().push(info),
                    Err(_) => return,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    // The kill lands after the load time and after a few acknowledgements: a first commit
    // slower than the load time (a PostgreSQL checkpoint, a busy machine) must not leave the
    // trial with nothing to check.
    let give_up = Instant::now() + Duration::from_secs(20);
    while Instant::now() < stop_at
        || (acked.lock().unwrap().len() <= 10 && Instant::now() < give_up)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    let mut seen_heads = heads.lock().unwrap().clone();
    seen_heads.dedup_by_key(|h| h.tree_size);
    assert!(!seen_heads.is_empty(), "saw no head before the kill");
    assert!(
        acked.len() > 10,
        "only {} entries were acknowledged before the kill; refusals: {:?}",
        acked.len(),
        refused.lock().unwrap()
    );

    server.restart_after_kill_with(extra);
    let by_index: Vec<(String, Option<u64>)> = acked
        .iter()
        .map(|(id, i, _)| (id.clone(), Some(*i)))
        .collect();
    let info = common::assert_log_kept(&http, &url, &by_index, &seen_heads).await;
    assert!(info.tree_size >= acked.len() as u64);
    assert_found_by_hash(&http, &url, &acked, 100).await;
    eprintln!(
        "crash test: {} acknowledged, tree size {} after restart",
        acked.len(),
        info.tree_size
    );
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_entry_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), None, &TINY_SEARCH_RUNS);
    crash_trials(&mut server, &TINY_SEARCH_RUNS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_entry_on_postgres() {
    let db = fresh_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), Some(&db));
    crash_trials(&mut server, &[]).await;
}
