//! Helpers for tests of several sigild on one PostgreSQL database: node set-up, clients that
//! retry across nodes as behind a load balancer, and the independent check of what they were
//! told.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sigil_proto::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use sigil_proto::rekor_v1::{LogEntry, LogEntryMap};

use super::{ClientKey, Server, consistency_proof, hash_from_hex, log_info};

/// What one client was told: the entry's UUID, and (for a 201) its index and checkpoint.
#[derive(Clone, Debug)]
pub struct Ack {
    pub uuid: String,
    pub entry: Option<LogEntry>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Submits one entry, moving to the next node on 503 or a refused connection, as a client
/// behind a load balancer would, until acknowledged (201, or 409 after a retry whose first
/// attempt was committed before its answer was lost). Gives up (panics) after `patience`.
pub async fn submit_until_acked(
    http: &reqwest::Client,
    urls: &Mutex<Vec<String>>,
    body: &serde_json::Value,
    start: usize,
    refusals: &AtomicUsize,
    patience: Duration,
) -> Ack {
    let deadline = Instant::now() + patience;
    let mut attempt = start;
    loop {
        assert!(
            Instant::now() < deadline,
            "an entry was not acknowledged in {patience:?}"
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

/// Clients that write entries through `urls` until stopped, each retrying its entry across
/// the nodes (`submit_until_acked`) and checking the proof of every 201.
pub struct Writers {
    /// The nodes the writers use; a test may change the list (a load balancer's view).
    pub urls: Arc<Mutex<Vec<String>>>,
    pub acks: Arc<Mutex<Vec<Ack>>>,
    /// 503s seen (each retried).
    pub refusals: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    /// `count` writers, each with its own key; `pace` is the pause between one writer's
    /// entries, `patience` how long one entry may take.
    pub fn start(
        count: usize,
        urls: Vec<String>,
        label: &str,
        pace: Duration,
        patience: Duration,
    ) -> Writers {
        let mut writers = Writers {
            urls: Arc::new(Mutex::new(urls)),
            acks: Arc::default(),
            refusals: Arc::default(),
            stop: Arc::default(),
            tasks: Vec::new(),
        };
        for w in 0..count {
            let (urls, acks, refusals, stop) = (
                writers.urls.clone(),
                writers.acks.clone(),
                writers.refusals.clone(),
                writers.stop.clone(),
            );
            let label = label.to_string();
            writers.tasks.push(tokio::spawn(async move {
                let http = client();
                let key = ClientKey::new();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let body = key.hashedrekord(format!("{label} writer {w} entry {n}").as_bytes());
                    let ack =
                        submit_until_acked(&http, &urls, &body, w + n, &refusals, patience).await;
                    if let Some(entry) = &ack.entry {
                        check_inclusion(entry);
                    }
                    acks.lock().unwrap().push(ack);
                    n += 1;
                    if !pace.is_zero() {
                        tokio::time::sleep(pace).await;
                    }
                }
            }));
        }
        writers
    }

    /// How many entries have been acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Lets each writer finish its entry, then returns every acknowledgement.
    pub async fn stop(&mut self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            task.await.unwrap();
        }
        self.acks.lock().unwrap().clone()
    }
}

/// Which of `nodes` says it sequences the rekor log, from its own metrics. A node that does
/// not answer (killed, cut off) is not asked.
pub async fn leader(http: &reqwest::Client, nodes: &[&Server]) -> Option<usize> {
    let mut found = None;
    for (i, node) in nodes.iter().enumerate() {
        if says_it_leads(http, node).await == Some(true) {
            assert!(found.is_none(), "two nodes both say they lead the log");
            found = Some(i);
        }
    }
    found
}

/// What `node`'s metrics say of its role for the rekor log; None when it does not answer.
pub async fn says_it_leads(http: &reqwest::Client, node: &Server) -> Option<bool> {
    let r = http
        .get(format!("{}/metrics", node.url))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let text = r.text().await.ok()?;
    Some(
        text.lines()
            .any(|l| l == "sigil_log_leader{log=\"rekor\"} 1"),
    )
}

pub fn check_inclusion(entry: &LogEntry) {
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

/// The independent check, against the node at `url`: every acknowledged entry is in the log
/// once, at the index it was given, with a proof that verifies; no index went to two entries;
/// the log holds the acknowledged entries and `others` more, nothing else; every checkpoint a
/// client was given is a prefix of the final tree.
pub async fn assert_acknowledged_entries_kept(
    http: &reqwest::Client,
    url: &str,
    acks: &[Ack],
    others: u64,
) {
    let final_head = log_info(http, url).await;
    let mut by_index: BTreeMap<u64, String> = BTreeMap::new();
    let mut checkpoints: HashMap<u64, String> = HashMap::new();
    for ack in acks {
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
    assert_eq!(final_head.tree_size, by_index.len() as u64 + others);
    let new_root = hash_from_hex(&final_head.root_hash);
    for (size, root) in &checkpoints {
        let (_, proof) = consistency_proof(http, url, *size, final_head.tree_size).await;
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
