//! Search keys on SQLite in sorted runs (`sigil_log::search_runs`), with runs made tiny so
//! that a few hundred entries go through every step (flush, merge in chunks, drop): every
//! search and the ordered key scan answer exactly what an in-memory index of the same keys
//! does, before and after a restart in the middle of a merge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sigil_log::search_runs::{LEAF_FILTER_BYTES, Tuning};
use sigil_log::store::search_key;
use sigil_log::{AppendOutcome, LogEngine, NewLeaf, Store};
use sigil_proto::merkle::Hash;
use sqlx::Connection;

const TUNING: Tuning = Tuning {
    flush_keys: 8,
    fanout: 3,
    merge_chunk: 5,
    leaf_filter_bytes: LEAF_FILTER_BYTES,
};

/// The keys of entry `i`: a digest of its own, an identity shared by a fifth of the entries,
/// and a plain key of its own.
fn keys(i: u64) -> Vec<String> {
    let digest: Vec<u8> = (0..32u8)
        .map(|b| (i as u8).wrapping_mul(31).wrapping_add(b.wrapping_mul(7)) ^ (i >> 8) as u8)
        .collect();
    vec![
        format!("sha256:{}", hex::encode(digest)),
        format!("email:user{}@example.com", i % 5),
        format!("k:{i}"),
    ]
}

fn leaf(i: u64) -> NewLeaf {
    NewLeaf {
        leaf: format!("entry {i}").into_bytes(),
        extra: vec![],
        timestamp_ms: i,
        index_keys: keys(i),
    }
}

#[derive(Default)]
struct Oracle {
    // stored key -> indexes
    index: BTreeMap<Vec<u8>, BTreeSet<u64>>,
    leaf_hashes: BTreeMap<u64, Hash>,
    by_i: BTreeMap<u64, u64>,
}

async fn append(
    engine: &LogEngine,
    oracle: &mut Oracle,
    range: std::ops::Range<u64>,
    together: bool,
) {
    let mut set = tokio::task::JoinSet::new();
    for i in range {
        let engine = engine.clone();
        let fut = async move {
            let out = engine.append(leaf(i)).await.expect("append");
            match out {
                AppendOutcome::New(a) => (i, a.index, a.leaf_hash),
                AppendOutcome::Duplicate { .. } => panic!("unexpected duplicate"),
            }
        };
        if together {
            set.spawn(fut);
        } else {
            let (i, idx, lh) = fut.await;
            record(oracle, i, idx, lh);
        }
    }
    while let Some(r) = set.join_next().await {
        let (i, idx, lh) = r.unwrap();
        record(oracle, i, idx, lh);
    }
}

fn record(oracle: &mut Oracle, i: u64, idx: u64, lh: Hash) {
    for k in keys(i) {
        oracle.index.entry(search_key(&k)).or_default().insert(idx);
    }
    oracle.leaf_hashes.insert(idx, lh);
    oracle.by_i.insert(i, idx);
}

async fn check(engine: &LogEngine, store: &Store, oracle: &Oracle) {
    let log_id = 1;
    // Each entry's own keys find it, and only it.
    for (&i, &idx) in &oracle.by_i {
        let want = vec![(idx, oracle.leaf_hashes[&idx])];
        for k in [&keys(i)[0], &keys(i)[2]] {
            let found = engine
                .search(&[vec![k.clone()]], false, u64::MAX, 10)
                .await
                .unwrap();
            assert_eq!(found, want, "search {k}");
        }
    }
    // A shared key: newest first, paged with `before`, ANDed with another term.
    for user in 0..5 {
        let key = format!("email:user{user}@example.com");
        let all: Vec<u64> = oracle.index[&search_key(&key)]
            .iter()
            .rev()
            .copied()
            .collect();
        let page = engine
            .search(&[vec![key.clone()]], false, u64::MAX, 7)
            .await
            .unwrap();
        assert_eq!(
            page.iter().map(|p| p.0).collect::<Vec<_>>(),
            all[..all.len().min(7)],
            "{key}"
        );
        if all.len() > 3 {
            let before = all[2];
            let page = engine
                .search(&[vec![key.clone()]], false, before, 100)
                .await
                .unwrap();
            assert_eq!(
                page.iter().map(|p| p.0).collect::<Vec<_>>(),
                all[3..],
                "{key} before {before}"
            );
        }
        let (&i, &idx) = oracle.by_i.iter().next().unwrap();
        let both = engine
            .search(
                &[vec![key.clone()], vec![keys(i)[2].clone()]],
                true,
                u64::MAX,
                10,
            )
            .await
            .unwrap();
        let want: Vec<u64> = if i % 5 == user { vec![idx] } else { vec![] };
        assert_eq!(
            both.iter().map(|p| p.0).collect::<Vec<_>>(),
            want,
            "{key} and k:{i}"
        );
    }
    // Every entry is found by its leaf hash, and appending it again is a duplicate at its index
    // (the duplicate check reads the same runs as the lookup).
    for &idx in oracle.by_i.values() {
        let lh = oracle.leaf_hashes[&idx];
        assert_eq!(engine.index_of_leaf_hash(&lh).await.unwrap(), Some(idx));
    }
    for (&i, &idx) in oracle.by_i.iter().step_by(7) {
        let again = engine.append(leaf(i)).await.unwrap();
        assert!(
            matches!(again, AppendOutcome::Duplicate { index } if index == idx),
            "entry {i} appended again: {again:?}"
        );
    }
    assert_eq!(engine.index_of_leaf_hash(&[7; 32]).await.unwrap(), None);
    // The ordered scan (what migrate-sqlite-to-postgres copies) sees every key once, in order.
    let mut scanned = Vec::new();
    let mut after = None;
    loop {
        let (rows, last) = store.search_key_rows(log_id, after, 7).await.unwrap();
        if rows.is_empty() {
            break;
        }
        scanned.extend(rows);
        after = last;
    }
    let want: Vec<(Vec<u8>, i64)> = oracle
        .index
        .iter()
        .flat_map(|(k, idxs)| idxs.iter().map(move |i| (k.clone(), *i as i64)))
        .collect();
    assert_eq!(scanned, want, "ordered scan of every search key");
}

/// A read-only connection beside the store's pool, to look at the catalogue as it is.
async fn read_only(dir: &Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}?mode=ro", dir.join("sigil.db").display());
    sqlx::SqliteConnection::connect(&url).await.unwrap()
}

/// (run, state) of the catalogue; also checks that run tables and catalogue rows match.
/// Both are read in one transaction: the sequencer's upkeep may flush, merge or drop a run
/// between two statements read outside one.
async fn catalogue(dir: &Path) -> Vec<(i64, String)> {
    let mut conn = read_only(dir).await;
    let mut tx = conn.begin().await.unwrap();
    let runs: Vec<(i64, String)> =
        sqlx::query_as("SELECT run, state FROM search_runs ORDER BY run")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'search_run\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut named: Vec<String> = runs
        .iter()
        .map(|(r, _)| format!("search_run_{r}"))
        .collect();
    named.sort();
    assert_eq!(
        tables, named,
        "every run has its table and every run table its run"
    );
    runs
}

async fn open(dir: &Path) -> (Store, LogEngine) {
    let store = loop {
        match Store::open_sqlite_with(dir, TUNING).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let engine = LogEngine::open(store.clone(), "runs").await.unwrap();
    (store, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_over_runs_match_an_in_memory_index_across_a_restart_mid_merge() {
    let dir = tempfile::tempdir().unwrap();
    let mut oracle = Oracle::default();
    let next = {
        let (store, engine) = open(dir.path()).await;
        // One entry per batch (a step after each), then batches of many (fewer steps than
        // flushes would want: the first level runs over its threshold and catches up).
        append(&engine, &mut oracle, 0..60, false).await;
        check(&engine, &store, &oracle).await;
        append(&engine, &mut oracle, 60..160, true).await;
        check(&engine, &store, &oracle).await;
        // Batches that each bring more keys than a flush takes must not starve the merges:
        // every lookup reads every live run (and SQLite refuses a statement of 500 arms).
        let live = catalogue(dir.path())
            .await
            .iter()
            .filter(|(_, s)| s == "live")
            .count();
        assert!(
            live <= 3 * TUNING.fanout,
            "{live} live runs after batches larger than a flush"
        );
        let mut next = 160;
        // Stop in the middle of a merge: a run is being built from its sources.
        while !catalogue(dir.path())
            .await
            .iter()
            .any(|(_, s)| s == "building")
        {
            append(&engine, &mut oracle, next..next + 1, false).await;
            next += 1;
            assert!(next < 400, "no merge under way after {next} entries");
        }
        check(&engine, &store, &oracle).await;
        drop(engine);
        store.close().await;
        next
    };
    // Filter files describe runs as a process saw them; the next one must not trust any.
    let filters = dir.path().join("leaf-filters");
    std::fs::write(filters.join("run-999999"), [0u8; 64]).unwrap();
    let (store, engine) = open(dir.path()).await;
    assert!(
        !filters.join("run-999999").exists(),
        "a filter file from the last process survived the start-up"
    );
    check(&engine, &store, &oracle).await;
    let building: Vec<i64> = catalogue(dir.path())
        .await
        .into_iter()
        .filter(|(_, s)| s == "building")
        .map(|(r, _)| r)
        .collect();
    append(&engine, &mut oracle, next..next + 120, false).await;
    check(&engine, &store, &oracle).await;
    let runs = catalogue(dir.path()).await;
    for b in building {
        assert!(
            runs.iter().any(|(r, s)| *r == b && s == "live") || !runs.iter().any(|(r, _)| *r == b),
            "the merge interrupted by the restart finished: {runs:?}"
        );
    }
    // Merges happened: runs are fewer than flushes, and some hold more than a flush.
    let mut conn = read_only(dir.path()).await;
    let biggest: i64 = sqlx::query_scalar("SELECT max(keys) FROM search_runs WHERE state = 'live'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        biggest >= TUNING.flush_keys * TUNING.fanout as i64 * TUNING.fanout as i64,
        "{runs:?}"
    );
    // Once every run has its filter, lookups and duplicate checks still find every entry.
    wait_for_filters(&store, dir.path()).await;
    check(&engine, &store, &oracle).await;
    let recent: i64 = sqlx::query_scalar("SELECT count(*) FROM search_keys")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        recent < 3 * 64,
        "the first level stays small: {recent} keys"
    );
}

/// Batches that each bring several flushes' worth of keys, for thousands of entries: the
/// upkeep after each one flushes, drops and merges, and the runs every lookup reads stay few.
/// (Before upkeeps went on past a flush and a drop, merges starved here and live runs grew
/// with the log, until a search passed SQLite's 500-arm limit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_stay_few_when_every_batch_outgrows_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let tuning = Tuning {
        flush_keys: 16,
        fanout: 3,
        merge_chunk: 16,
        // No memory for leaf-hash filters: every duplicate check probes every live run.
        leaf_filter_bytes: 0,
    };
    let store = Store::open_sqlite_with(dir.path(), tuning).await.unwrap();
    let engine = LogEngine::open(store.clone(), "runs").await.unwrap();
    let mut oracle = Oracle::default();
    let mut most = (0, 0);
    for wave in 0..100u64 {
        append(&engine, &mut oracle, wave * 50..wave * 50 + 50, true).await;
        let mut conn = read_only(dir.path()).await;
        let (live, dead): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'live'), count(*) FILTER (WHERE state = 'dead') FROM search_runs",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        most = (most.0.max(live), most.1.max(dead));
    }
    // Seven size classes at 15,000 keys: at most two runs waiting per class, three being
    // merged, and a merge's dead sources.
    assert!(
        most.0 <= 20 && most.1 <= 12,
        "most live and dead runs at once: {most:?}"
    );
    for (&i, &idx) in oracle.by_i.iter().step_by(37) {
        let found = engine
            .search(&[vec![keys(i)[0].clone()]], false, u64::MAX, 10)
            .await
            .unwrap();
        assert_eq!(found, vec![(idx, oracle.leaf_hashes[&idx])], "entry {i}");
        let again = engine.append(leaf(i)).await.unwrap();
        assert!(
            matches!(again, AppendOutcome::Duplicate { index } if index == idx),
            "entry {i} appended again: {again:?}"
        );
    }
    assert_eq!(
        store.leaf_filter_runs(),
        Vec::<i64>::new(),
        "filters beyond the budget"
    );
}

/// Waits until every live run has its leaf-hash filter (they are built in the background).
async fn wait_for_filters(store: &Store, dir: &Path) {
    for _ in 0..500 {
        let live: Vec<i64> = catalogue(dir)
            .await
            .into_iter()
            .filter(|(_, s)| s == "live")
            .map(|(r, _)| r)
            .collect();
        if store.leaf_filter_runs() == live {
            // Each in a file of its own; those of runs gone are removed.
            let mut files: Vec<String> = std::fs::read_dir(dir.join("leaf-filters"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            files.sort();
            let mut want: Vec<String> = live.iter().map(|r| format!("run-{r}")).collect();
            want.sort();
            assert_eq!(files, want);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("leaf-hash filters never covered the live runs");
}
