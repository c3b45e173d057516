//! Entries by leaf hash on SQLite.
//!
//! A B-tree over leaf hashes gets one random page dirtied by every write; at 10M entries that
//! page was the whole difference between the log's write rate and an empty log's
//! (docs/benchmarks.md, "SQLite at 10M"). So on SQLite a leaf hash is stored as a search key
//! of its own (the tag byte [`LEAF_TAG`] and the hash, see [`leaf_key`]) and leaves the commit
//! path in sorted runs with the other keys ([`crate::search_runs`]). A lookup reads
//! `search_keys` and each live run; to keep the duplicate check from probing every run for
//! every hash, each immutable live run gets a [`LeafFilter`], built in the background on a
//! reader connection into a file of the data directory's `leaf-filters/` (files, not memory:
//! they grow with the log). A run without a filter (not built yet) is probed for every hash:
//! slower, never wrong. The files are rebuilt at every start-up, so none can outlive the run
//! it was built from, whatever happened to the database meanwhile (a restore, a crash).
//!
//! PostgreSQL keeps its unique index on `entries (log_id, leaf_hash)`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sigil_proto::merkle::Hash;
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::leaf_filter::{self, LeafFilter};
use crate::search_runs;

/// The tag byte of a leaf-hash key. Search keys made from text always start with an ASCII
/// letter (`email:`, `subject:`, ...) and the digest tags are 1 to 5, so no other key starts
/// with it.
pub const LEAF_TAG: u8 = 6;

/// Leaf hashes looked up per statement: each is bound once and referred to by number.
const HASHES_PER_LOOKUP: usize = 500;
/// Keys a filter build reads per statement (each its own snapshot; runs never change). Small,
/// so that the build's allocations stay below what the process holds anyway.
const BUILD_PAGE: i64 = 8_192;

/// The search key under which an entry's leaf hash is stored.
pub fn leaf_key(hash: &Hash) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.push(LEAF_TAG);
    key.extend_from_slice(hash);
    key
}

/// The filters of the live runs, shared by every log's writer and the readers.
#[derive(Debug)]
pub struct LeafFilters {
    dir: PathBuf,
    budget_bytes: u64,
    built: RwLock<HashMap<i64, Arc<LeafFilter>>>,
    wake: tokio::sync::Notify,
}

impl LeafFilters {
    /// Filters kept in files under `dir`, at most `budget_bytes` of them. Whatever `dir`
    /// holds is removed: files from an earlier process describe runs as they were then.
    pub fn new(dir: &Path, budget_bytes: u64) -> std::io::Result<LeafFilters> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(dir)?;
        Ok(LeafFilters {
            dir: dir.to_path_buf(),
            budget_bytes,
            built: RwLock::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Disk the built filters take.
    pub fn bytes(&self) -> u64 {
        read(&self.built).values().map(|f| f.bytes()).sum()
    }

    /// The runs that have a filter.
    pub fn runs(&self) -> Vec<i64> {
        let mut runs: Vec<i64> = read(&self.built).keys().copied().collect();
        runs.sort_unstable();
        runs
    }

    /// A step changed the runs: the builder looks for new live runs.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

// A panic while holding the lock leaves a map that is still whole (inserts and
// removes are single calls), so poisoning is ignored.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Which of `hashes` (by position) to look for in each table: every hash in `search_keys`,
/// and in a live run only those its filter lets through (all of them without a filter).
pub fn plan<'f>(
    live_runs: &[i64],
    filter_of: impl Fn(i64) -> Option<&'f LeafFilter>,
    hashes: &[Hash],
) -> Vec<(String, Vec<usize>)> {
    let mut plan = vec![("search_keys".to_string(), (0..hashes.len()).collect())];
    for &run in live_runs {
        let positions: Vec<usize> = match filter_of(run) {
            Some(f) => (0..hashes.len())
                .filter(|&i| f.may_contain(&hashes[i]))
                .collect(),
            None => (0..hashes.len()).collect(),
        };
        if !positions.is_empty() {
            plan.push((search_runs::table(run), positions));
        }
    }
    plan
}

/// Where these leaf hashes are logged in `log_id`, read in one snapshot of the catalogue
/// and the runs. On the writer's connection this is the duplicate check.
pub async fn find(
    conn: &mut SqliteConnection,
    filters: &LeafFilters,
    log_id: i64,
    hashes: &[Hash],
) -> Result<Vec<(Hash, u64)>, sqlx::Error> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let runs = search_runs::live_runs(&mut tx).await?;
    // Filter blocks are read from files: microseconds from the page cache, but a block the
    // kernel dropped is a disk read, and that must not stall a runtime thread.
    let with_filters: Vec<(i64, Option<Arc<LeafFilter>>)> = {
        let built = read(&filters.built);
        runs.iter().map(|&r| (r, built.get(&r).cloned())).collect()
    };
    let owned = hashes.to_vec();
    let plans = tokio::task::spawn_blocking(move || {
        let filter_of = |run: i64| {
            with_filters
                .iter()
                .find(|(r, _)| *r == run)
                .and_then(|(_, f)| f.as_deref())
        };
        owned
            .chunks(HASHES_PER_LOOKUP)
            .map(|chunk| plan(&runs, filter_of, chunk))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| sqlx::Error::Protocol(format!("probing leaf-hash filters: {e}")))?;
    let mut found = Vec::new();
    for (chunk, plan) in hashes.chunks(HASHES_PER_LOOKUP).zip(plans) {
        // ?1 is the log, ?(i + 2) the i-th hash's key: each bound once, named in every arm.
        let arms: Vec<String> = plan
            .iter()
            .map(|(table, positions)| {
                let list: Vec<String> = positions.iter().map(|i| format!("?{}", i + 2)).collect();
                format!(
                    "SELECT key, idx FROM {table} WHERE log_id = ?1 AND key IN ({})",
                    list.join(",")
                )
            })
            .collect();
        let sql = arms.join(" UNION ALL ");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .bind(log_id);
        for h in chunk {
            q = q.bind(leaf_key(h));
        }
        for row in q.fetch_all(&mut *tx).await? {
            let key: Vec<u8> = row.get(0);
            let hash: Hash = key
                .get(1..)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| sqlx::Error::Protocol(format!("leaf key of {} bytes", key.len())))?;
            found.push((hash, row.get::<i64, _>(1) as u64));
        }
    }
    tx.commit().await?;
    Ok(found)
}

/// Builds filters for live runs as they appear and removes those of runs gone, until the
/// pool closes. Smallest runs first: a filter saves one probe per hash whatever its run's
/// size, so the soonest and, within a budget, the most runs are covered that way.
pub async fn keep_filters(pool: SqlitePool, filters: Arc<LeafFilters>) {
    loop {
        match build_next(&pool, &filters).await {
            Ok(true) => {
                metrics::gauge!("sigil_log_leaf_filters_current").set(0.0);
                continue;
            }
            // Every live run that fits the budget has its filter (as of this look).
            Ok(false) => metrics::gauge!("sigil_log_leaf_filters_current").set(1.0),
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::warn!(error = %e, "building a leaf-hash filter failed; retrying"),
        }
        tokio::select! {
            _ = filters.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
}

/// Builds one missing filter that fits the budget; false when there is none.
async fn build_next(pool: &SqlitePool, filters: &LeafFilters) -> Result<bool, sqlx::Error> {
    if pool.is_closed() {
        return Err(sqlx::Error::PoolClosed);
    }
    let mut conn = pool.acquire().await?;
    let live: Vec<i64> =
        sqlx::query_scalar("SELECT run FROM search_runs WHERE state = 'live' ORDER BY keys, run")
            .fetch_all(&mut *conn)
            .await?;
    // Run numbers are never reused (the catalogue's key is AUTOINCREMENT), so a filter stays
    // right for as long as its run is live. Dropping one removes its file.
    write(&filters.built).retain(|run, _| live.contains(run));
    let used = filters.bytes();
    let have = filters.runs();
    publish(&live, &have, used);
    let logs: Vec<i64> = sqlx::query_scalar("SELECT id FROM logs ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    for &run in live.iter().filter(|r| !have.contains(r)) {
        match filter_within_budget(&mut conn, filters, run, &logs, used).await {
            Ok(None) => continue,
            Ok(Some(filter)) => {
                write(&filters.built).insert(run, Arc::new(filter));
            }
            // A merge may have made the run dead, and a drop removed its table, meanwhile:
            // nothing to build then. Anything else is a real failure.
            Err(e) => {
                if is_live(&mut conn, run).await? {
                    return Err(e);
                }
                tracing::debug!(run, error = %e, "leaf-hash filter for a run gone meanwhile");
            }
        }
        return Ok(true);
    }
    Ok(false)
}

/// The run's filter, or None if it would not fit beside `used` bytes of filters.
async fn filter_within_budget(
    conn: &mut SqliteConnection,
    filters: &LeafFilters,
    run: i64,
    logs: &[i64],
    used: u64,
) -> Result<Option<LeafFilter>, sqlx::Error> {
    let count = count_leaf_keys(&mut *conn, run, logs).await?;
    if used.saturating_add(LeafFilter::bytes_for(count)) > filters.budget_bytes {
        return Ok(None);
    }
    let path = filters.dir.join(format!("run-{run}"));
    Ok(Some(build(conn, run, count, logs, &path).await?))
}

async fn is_live(conn: &mut SqliteConnection, run: i64) -> Result<bool, sqlx::Error> {
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM search_runs WHERE run = ?1 AND state = 'live'")
            .bind(run)
            .fetch_one(&mut *conn)
            .await?;
    Ok(n > 0)
}

/// Reads a run's leaf hashes, log by log (each log's in sorted order, as the builder wants
/// them), in pages, into a filter at `path` sized for `count`.
async fn build(
    conn: &mut SqliteConnection,
    run: i64,
    count: usize,
    logs: &[i64],
    path: &Path,
) -> Result<LeafFilter, sqlx::Error> {
    let mut filter = leaf_filter::Builder::create(path, count)?;
    let table = search_runs::table(run);
    for &log in logs {
        let mut after = vec![LEAF_TAG];
        loop {
            let keys: Vec<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT key FROM {table} WHERE log_id = ?1 AND key > ?2 AND key < ?3 \
                     ORDER BY key LIMIT ?4"
            )))
            .persistent(false)
            .bind(log)
            .bind(&after[..])
            .bind(&[LEAF_TAG + 1][..])
            .bind(BUILD_PAGE)
            .fetch_all(&mut *conn)
            .await?;
            for key in &keys {
                if let Some(hash) = key.get(1..).and_then(|h| <&Hash>::try_from(h).ok()) {
                    filter.insert(hash)?;
                }
            }
            match keys.last() {
                Some(last) if keys.len() as i64 == BUILD_PAGE => after = last.clone(),
                _ => break,
            }
        }
    }
    Ok(filter.finish()?)
}

async fn count_leaf_keys(
    conn: &mut SqliteConnection,
    run: i64,
    logs: &[i64],
) -> Result<usize, sqlx::Error> {
    let mut total = 0;
    for &log in logs {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {} WHERE log_id = ?1 AND key > ?2 AND key < ?3",
            search_runs::table(run)
        )))
        .persistent(false)
        .bind(log)
        .bind(&[LEAF_TAG][..])
        .bind(&[LEAF_TAG + 1][..])
        .fetch_one(&mut *conn)
        .await?;
        total += n as usize;
    }
    Ok(total)
}

fn publish(live: &[i64], have: &[i64], bytes: u64) {
    metrics::gauge!("sigil_log_leaf_filter_bytes").set(bytes as f64);
    let without = live.iter().filter(|r| !have.contains(r)).count();
    metrics::gauge!("sigil_log_leaf_runs_unfiltered").set(without as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> Hash {
        let mut x = [b; 32];
        // Different blocks and bits per test hash.
        x[0] = b.wrapping_mul(37);
        x[8] = b.wrapping_mul(101);
        x
    }

    #[test]
    fn keys_carry_the_tag_and_the_hash() {
        let k = leaf_key(&h(1));
        assert_eq!(k.len(), 33);
        assert_eq!(k[0], LEAF_TAG);
        assert_eq!(&k[1..], &h(1)[..]);
        // No text search key can start with the tag.
        for text in ["email:a@b", "subject:x", "sha256:zz"] {
            assert_ne!(crate::store::search_key(text)[0], LEAF_TAG);
        }
    }

    #[test]
    fn a_filtered_run_is_probed_only_for_what_its_filter_lets_through() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = leaf_filter::Builder::create(&dir.path().join("f"), 10).unwrap();
        b.insert(&h(2)).unwrap();
        let f = b.finish().unwrap();
        let hashes = [h(1), h(2), h(3)];
        let plan = plan(&[4, 7], |run| (run == 4).then_some(&f), &hashes);
        assert_eq!(plan[0], ("search_keys".to_string(), vec![0, 1, 2]));
        assert_eq!(plan[1].0, "search_run_4");
        assert!(plan[1].1.contains(&1), "a present hash must be probed");
        assert!(plan[1].1.len() < 3, "the filter let everything through");
        // No filter: every hash.
        assert_eq!(plan[2], ("search_run_7".to_string(), vec![0, 1, 2]));
    }

    #[test]
    fn a_run_whose_filter_passes_nothing_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let f = leaf_filter::Builder::create(&dir.path().join("f"), 10)
            .unwrap()
            .finish()
            .unwrap();
        let plan = plan(&[4], |_| Some(&f), &[h(1)]);
        assert_eq!(plan.len(), 1);
    }
}
