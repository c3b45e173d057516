//! A real network partition between the leader and PostgreSQL. Three sigild in HA on one
//! database; the first, the leader, runs in its own network namespace and reaches the
//! database and the other nodes over one link, which the test takes down while clients keep
//! writing through the other two. Unlike a SIGKILL, nothing tells the database that the
//! leader is gone: its session, and the log's lock, end only when the server's keepalives on
//! the writer session give up (docs/operations.md says about 5 s).
//!
//! Asserted: another node takes the lock and writes are acknowledged again within 10 s of the
//! cut; the cut-off leader commits nothing more (it cannot); once the link is back it steps
//! down to follower and catches up; then the independent check of every acknowledged entry,
//! its proof and every checkpoint a client was given, as in the kill test (ha.rs).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    Ack, assert_acknowledged_entries_kept, check_inclusion, client, copy_dir, leader,
    says_it_leads, submit_until_acked,
};
use common::netns::Namespace;
use common::{ClientKey, Server, fresh_postgres_database, log_info};

const WRITERS: usize = 4;
/// How long a client keeps retrying one entry: past the takeover, and past the cut-off
/// leader's answer to a write forwarded to it just before the cut.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_is_replaced_and_forks_nothing() {
    let ns = Namespace::create();
    // Every node reaches PostgreSQL on the link's host side (the namespace cannot see this
    // side's loopback), and the others listen there too, so that the cut-off node, once
    // back, can forward to whichever of them leads.
    let db = fresh_postgres_database()
        .await
        .replace("@127.0.0.1:", &format!("@{}:", ns.host_ip));
    let args = [
        "--ha",
        "--services",
        "rekor,tiles",
        "--public-url",
        "http://sigil.test",
    ];
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let cut_off = Server::start_at(
        &ns.inner_ip,
        &ns.exec_prefix(),
        dirs[0].path(),
        Some(&db),
        &args,
    );
    for dir in &dirs[1..] {
        copy_dir(&dirs[0].path().join("keys"), &dir.path().join("keys"));
    }
    let others: Vec<Server> = dirs[1..]
        .iter()
        .map(|dir| Server::start_at(&ns.host_ip, &[], dir.path(), Some(&db), &args))
        .collect();
    let http = client();
    assert_eq!(
        leader(&http, &[&cut_off, &others[0], &others[1]]).await,
        Some(0),
        "the node in the namespace, started first, leads"
    );

    // Clients write through the two nodes that stay connected; until the cut, those forward
    // to the leader.
    let urls = Arc::new(Mutex::new(
        others.iter().map(|n| n.url.clone()).collect::<Vec<_>>(),
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
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = acks.lock().unwrap().len();
    assert!(
        before > WRITERS,
        "writes flow through the leader before the cut"
    );
    let size_before_cut = log_info(&http, &others[0].url).await.tree_size;

    ns.cut();
    let cut_at = Instant::now();
    let next = loop {
        assert!(
            cut_at.elapsed() < Duration::from_secs(10),
            "no node took over within 10 s of the cut"
        );
        if let Some(l) = leader(&http, &[&others[0], &others[1]]).await {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let takeover = cut_at.elapsed();
    let resumed_from = acks.lock().unwrap().len();
    while acks.lock().unwrap().len() <= resumed_from + WRITERS {
        assert!(
            cut_at.elapsed() < Duration::from_secs(10),
            "writes did not resume within 10 s of the cut"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let resumed = cut_at.elapsed();
    // Some writing under the new leader while the old one is still cut off.
    tokio::time::sleep(Duration::from_secs(2)).await;

    ns.heal();
    let healed_at = Instant::now();
    // The old leader learns it lost the lock when its writer's connection fails (its packets
    // now meet a closed session) or the writer deadline passes; then it follows.
    loop {
        assert!(
            healed_at.elapsed() < Duration::from_secs(45),
            "the cut-off node still says it leads 45 s after the link came back"
        );
        if says_it_leads(&http, &cut_off).await == Some(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stepped_down = healed_at.elapsed();
    assert_eq!(
        leader(&http, &[&cut_off, &others[0], &others[1]]).await,
        Some(next + 1),
        "one leader, the node that took over"
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();

    // The old leader reads what the new one committed (within its follow interval).
    let head = log_info(&http, &others[next].url).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while log_info(&http, &cut_off.url).await.tree_size < head.tree_size {
        assert!(
            Instant::now() < deadline,
            "the node that was cut off does not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "partition: {} entries acknowledged ({size_before_cut} before the cut), {} refusals \
         (503); takeover after {takeover:?}, writes resumed after {resumed:?}, old leader \
         stepped down {stepped_down:?} after the link came back",
        acks.len(),
        refusals.load(Ordering::Relaxed),
    );
    // Checked against the node that was cut off: what it serves is the one tree.
    assert_acknowledged_entries_kept(&http, &cut_off.url, &acks, 0).await;
}
