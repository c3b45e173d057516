//! A real network partition between the leader and everything else. Three sigild in HA on
//! one PostgreSQL database, each in its own network namespace on a private bridge; clients
//! write through the followers while the test cuts the leader off. Unlike a SIGKILL,
//! nothing tells the database that the leader is gone: its session, and the log's lock, end
//! only when the server's keepalives on the writer session give up (about 5 s,
//! docs/operations.md). Cuts alternate between two kinds: the leader's own link taken down
//! (it knows: new connections from it fail at once) and the far end taken down (silence:
//! its packets vanish and new connections wait for an answer).
//!
//! Each trial asserts: another node takes the lock, and writes are acknowledged again,
//! within 10 s of the cut; a client on the old leader's side of the cut has its write refused
//! (503) and its read answered within 9 s rather than left hanging (one 5 s wait for the
//! database, not two); once the link is back the old leader steps down to follower, and the
//! database has ended every session the old leader had at the cut.
//! Then the independent check of every acknowledged entry, its proof and every checkpoint a
//! client was given, as in the kill test (ha.rs), and every node serving the same tree.
//!
//! `SIGIL_PARTITION_TRIALS` sets the number of cuts (CI: 2; `scripts/partition-trials` runs
//! more).

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::cluster::{Writers, assert_acknowledged_entries_kept, client, leader, says_it_leads};
use common::netns::Host;
use common::netns::Network;
use common::{ClientKey, Server, fresh_postgres_database, log_info};
use sigil_tests::files::copy_dir;

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
    let local_db = fresh_postgres_database().await;
    let db = local_db.replace("@127.0.0.1:", &format!("@{}:", network.host_ip));
    let mut admin = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&local_db).await.unwrap()
    };
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

    let mut writers = Writers::start(
        WRITERS,
        nodes.iter().map(|n| n.url.clone()).collect(),
        "partition",
        PACE,
        PATIENCE,
    );

    let mut timings = Vec::new();
    let mut current = 0usize;
    for trial in 0..trials() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Clients move off the node about to be cut, as behind a load balancer; what they
        // send the others is forwarded to it until the cut.
        *writers.urls.lock().unwrap() = nodes
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

        // Odd trials cut silently: the leader itself sees no error, only silence.
        let silent = trial % 2 == 1;
        let sessions_at_cut = sessions_from(&mut admin, &hosts[current].ip).await;
        if silent {
            hosts[current].cut_silently();
        } else {
            hosts[current].cut();
        }
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
        let from = writers.acknowledged();
        while writers.acknowledged() <= from + WRITERS {
            assert!(
                cut_at.elapsed() < Duration::from_secs(10),
                "trial {trial}: writes did not resume within 10 s of the cut"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let resumed = cut_at.elapsed();
        // Some writing under the new leader while the old one is still cut off, and a client
        // on the old leader's side of the cut: its write is refused within seconds (the old
        // leader's database connections give up), not left hanging.
        let body = ClientKey::new().hashedrekord(format!("stranded {trial}").as_bytes());
        let stranded = from_inside(&hosts[current], &nodes[current], Some(body));
        let read = from_inside(&hosts[current], &nodes[current], None);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (status, refused_after) = stranded.await.unwrap();
        assert_eq!(
            status, "503",
            "trial {trial}: a write to the cut-off leader from its own side"
        );
        // At most one wait for the database (the 5 s connect and silence bound) and the
        // write's own path; a second wait would take it past this.
        assert!(
            refused_after < 9.0,
            "trial {trial}: the cut-off leader took {refused_after} s to refuse a write"
        );
        let (status, read_after) = read.await.unwrap();
        assert!(
            status == "503" || status == "200",
            "trial {trial}: a read on the cut-off leader answered {status}"
        );
        assert!(
            read_after < 9.0,
            "trial {trial}: a read on the cut-off leader took {read_after} s (answered {status})"
        );

        hosts[current].heal();
        let healed_at = Instant::now();
        // Its database connections gave up during the cut; its next try to take the lock
        // again finds it held, and it follows.
        while says_it_leads(&http, &nodes[current]).await != Some(false) {
            assert!(
                healed_at.elapsed() < Duration::from_secs(45),
                "trial {trial}: node {current} still says it leads 45 s after its link came back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stepped_down = healed_at.elapsed();
        // The server ended the sessions the old leader had at the cut (each holds one of its
        // connection slots) instead of keeping them for its default two hours.
        loop {
            let now = sessions_from(&mut admin, &hosts[current].ip).await;
            let left: Vec<_> = sessions_at_cut.iter().filter(|p| now.contains(p)).collect();
            if left.is_empty() {
                break;
            }
            assert!(
                cut_at.elapsed() < Duration::from_secs(30),
                "trial {trial}: 30 s after the cut the database still keeps {} of the {} \
                 sessions node {current} had at the cut",
                left.len(),
                sessions_at_cut.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(leader(&http, &all).await, Some(next), "one leader");
        *writers.urls.lock().unwrap() = nodes.iter().map(|n| n.url.clone()).collect();
        timings.push((
            silent,
            takeover,
            resumed,
            refused_after,
            read_after,
            stepped_down,
        ));
        current = next;
    }
    let acks = writers.stop().await;
    eprintln!(
        "partition: {} cuts, {} entries acknowledged, {} refusals (503); per cut (silent, \
         takeover, writes again, seconds to refuse a write and to answer a read on the old \
         leader's side, old leader a follower after the heal): {timings:?}",
        timings.len(),
        acks.len(),
        writers.refusals.load(Ordering::Relaxed),
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

/// The server processes serving sessions opened from `ip`.
async fn sessions_from(admin: &mut sqlx::PgConnection, ip: &str) -> Vec<i32> {
    use sqlx::Row;
    sqlx::query("SELECT pid FROM pg_stat_activity WHERE client_addr = $1::inet")
        .bind(ip)
        .fetch_all(&mut *admin)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Sends one request to `node` from inside `host`'s namespace (curl, 30 s at most): the
/// write when a body is given, else a read of entry 0. Gives the status and how long the
/// answer took, in seconds.
fn from_inside(
    host: &Host,
    node: &Server,
    body: Option<serde_json::Value>,
) -> tokio::task::JoinHandle<(String, f64)> {
    let prefix = host.exec_prefix();
    let mut command = tokio::process::Command::new(&prefix[0]);
    command
        .args(&prefix[1..])
        .args(["curl", "-s", "-m", "30", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{time_total}"]);
    match body {
        Some(body) => command
            .args(["-H", "content-type: application/json"])
            .args(["--data-binary", &body.to_string()])
            .arg(format!("{}/api/v1/log/entries", node.url)),
        None => command.arg(format!("{}/api/v1/log/entries?logIndex=0", node.url)),
    };
    tokio::spawn(async move {
        let out = command.output().await.expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (status, seconds) = text.split_once(' ').expect("curl's -w output");
        (
            status.to_string(),
            seconds.parse().expect("curl's time_total"),
        )
    })
}
