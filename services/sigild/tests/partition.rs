//! A real network partition between the leader and everything else. Three sigild in HA on
//! one PostgreSQL database, each in its own network namespace on a private bridge; clients
//! write through the followers while the test takes the leader's only link down. Unlike a
//! SIGKILL, nothing tells the database that the leader is gone: its session, and the log's
//! lock, end only when the server's keepalives on the writer session give up (about 5 s,
//! docs/operations.md).
//!
//! Each trial asserts: another node takes the lock, and writes are acknowledged again,
//! within 10 s of the cut; once the link is back the old leader steps down to follower.
//! Then the independent check of every acknowledged entry, its proof and every checkpoint a
//! client was given, as in the kill test (ha.rs), and every node serving the same tree.
//!
//! `SIGIL_PARTITION_TRIALS` sets the number of cuts (CI: 2; `scripts/partition-trials` runs
//! more).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    Ack, assert_acknowledged_entries_kept, check_inclusion, client, copy_dir, leader,
    says_it_leads, submit_until_acked,
};
use common::netns::Network;
use common::{ClientKey, Server, fresh_postgres_database, log_info};

const NODES: usize = 3;
const WRITERS: usize = 4;
/// How long a client keeps retrying one entry.
const PATIENCE: Duration = Duration::from_secs(60);
/// Pause between one writer's entries: enough writes in flight at every cut, few enough for
/// the final check of each one to stay short.
const PACE: Duration = Duration::from_millis(20);

fn trials() -> usize {
    std::env::var("SIGIL_PARTITION_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_network_is_replaced_and_forks_nothing() {
    let mut network = Network::create();
    let hosts: Vec<_> = (0..NODES).map(|_| network.add_host()).collect();
    // The namespaces reach PostgreSQL at the bridge's address, not at loopback.
    let db = fresh_postgres_database()
        .await
        .replace("@127.0.0.1:", &format!("@{}:", network.host_ip));
    let args = [
        "--ha",
        "--services",
        "rekor,tiles",
        "--public-url",
        "http://sigil.test",
    ];
    let dirs: Vec<tempfile::TempDir> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, (host, dir)) in hosts.iter().zip(&dirs).enumerate() {
        if i > 0 {
            // The first node created the log's key; every node signs as the same log.
            copy_dir(&dirs[0].path().join("keys"), &dir.path().join("keys"));
        }
        nodes.push(Server::start_at(
            &host.ip,
            &host.exec_prefix(),
            dir.path(),
            Some(&db),
            &args,
        ));
    }
    let all: Vec<&Server> = nodes.iter().collect();
    let http = client();
    assert_eq!(leader(&http, &all).await, Some(0), "the first node leads");

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
                let body = key.hashedrekord(format!("partition writer {w} entry {n}").as_bytes());
                let ack = submit_until_acked(&http, &urls, &body, w + n, &refusals, PATIENCE).await;
                if let Some(entry) = &ack.entry {
                    check_inclusion(entry);
                }
                acks.lock().unwrap().push(ack);
                n += 1;
                tokio::time::sleep(PACE).await;
            }
        }));
    }

    let mut timings = Vec::new();
    let mut current = 0usize;
    for trial in 0..trials() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Clients move off the node about to be cut, as behind a load balancer; what they
        // send the others is forwarded to it until the cut.
        *urls.lock().unwrap() = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != current)
            .map(|(_, n)| n.url.clone())
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let others: Vec<&Server> = (0..NODES)
            .filter(|i| *i != current)
            .map(|i| &nodes[i])
            .collect();

        hosts[current].cut();
        let cut_at = Instant::now();
        let next = loop {
            assert!(
                cut_at.elapsed() < Duration::from_secs(10),
                "trial {trial}: no node took over within 10 s of cutting node {current} off"
            );
            if let Some(l) = leader(&http, &others).await {
                break (0..NODES).filter(|i| *i != current).nth(l).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let takeover = cut_at.elapsed();
        let from = acks.lock().unwrap().len();
        while acks.lock().unwrap().len() <= from + WRITERS {
            assert!(
                cut_at.elapsed() < Duration::from_secs(10),
                "trial {trial}: writes did not resume within 10 s of the cut"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let resumed = cut_at.elapsed();
        // Some writing under the new leader while the old one is still cut off.
        tokio::time::sleep(Duration::from_secs(1)).await;

        hosts[current].heal();
        let healed_at = Instant::now();
        // The old leader learns it lost the lock when its writer's connection fails (its
        // packets now meet a closed session) or the writer deadline passes; then it follows.
        while says_it_leads(&http, &nodes[current]).await != Some(false) {
            assert!(
                healed_at.elapsed() < Duration::from_secs(45),
                "trial {trial}: node {current} still says it leads 45 s after its link came back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stepped_down = healed_at.elapsed();
        assert_eq!(leader(&http, &all).await, Some(next), "one leader");
        *urls.lock().unwrap() = nodes.iter().map(|n| n.url.clone()).collect();
        timings.push((takeover, resumed, stepped_down));
        current = next;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    eprintln!(
        "partition: {} cuts, {} entries acknowledged, {} refusals (503); per cut (takeover, \
         writes again, old leader a follower after the heal): {timings:?}",
        timings.len(),
        acks.len(),
        refusals.load(Ordering::Relaxed),
    );

    // Every node, the ones that were cut off included, comes to serve the same tree.
    let head = log_info(&http, &nodes[current].url).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    for node in &nodes {
        loop {
            let seen = log_info(&http, &node.url).await;
            if seen.tree_size >= head.tree_size {
                assert_eq!(
                    seen.root_hash, head.root_hash,
                    "{} serves another tree",
                    node.url
                );
                break;
            }
            assert!(Instant::now() < deadline, "{} does not catch up", node.url);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_acknowledged_entries_kept(&http, &nodes[0].url, &acks, 0).await;
}
