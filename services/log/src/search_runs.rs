//! Search keys on SQLite as sorted runs.
//!
//! Most search keys are random (artifact digests, certificate hashes). In one large B-tree
//! each lands on an index page of its own, and at 10M entries those pages doubled what a
//! commit wrote and synced (docs/benchmarks.md, "SQLite at 10M"). So on SQLite a commit
//! writes its keys into `search_keys`, which stays small, and the keys leave it in bulk, in
//! key order, as a *run*: a table of its own, written once from end to end. Runs of one size
//! class are merged `fanout` at a time into one run of the next class, in chunks; lookups read
//! `search_keys` and every live run in one statement. PostgreSQL keeps one index (its writes
//! at 10M were already as fast as on an empty log).
//!
//! The catalogue `search_runs` names each run's table (`search_run_<run>`) and its state:
//! a *live* run is read by lookups; a *building* run is a merge's target, read by nobody
//! until the merge's last chunk makes it live and its sources *dead*, in one transaction; a
//! dead run waits to be dropped. Every step is one transaction, so a crash leaves the state
//! before or after it, and a merge resumes from the last key its target holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use sqlx::{Row, SqliteConnection};

use crate::leaf_index::LeafFilters;

/// When and how keys move. The defaults were measured at 10M entries (docs/benchmarks.md);
/// tests use tiny values to exercise every step.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Keys in `search_keys` that make a run of their own.
    pub flush_keys: i64,
    /// Runs of one size class merged together.
    pub fanout: usize,
    /// Keys a merge copies per step (one step after each commit, so this bounds the pause).
    pub merge_chunk: i64,
    /// Disk for the live runs' leaf-hash filters ([`crate::leaf_index`]), 16 bits per leaf
    /// hash; runs beyond it are probed for every hash. Tests set 0 to exercise that.
    pub leaf_filter_bytes: u64,
}

/// The default budget for leaf-hash filters: none. They take 2 bytes per entry on disk
/// beside the entry's 2.3 KB, and a run without one costs a probe per hash.
pub const LEAF_FILTER_BYTES: u64 = u64::MAX;

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            flush_keys: 16_384,
            fanout: 8,
            merge_chunk: 8_192,
            leaf_filter_bytes: LEAF_FILTER_BYTES,
        }
    }
}

/// `FLUSH_KEYS,FANOUT,MERGE_CHUNK`, as sigild's hidden `--search-runs` takes it.
impl std::str::FromStr for Tuning {
    type Err = String;

    fn from_str(s: &str) -> Result<Tuning, String> {
        let parts: Vec<&str> = s.split(',').collect();
        let [flush, fanout, chunk] = parts[..] else {
            return Err("expected FLUSH_KEYS,FANOUT,MERGE_CHUNK".into());
        };
        let number = |what: &str, v: &str| -> Result<i64, String> {
            match v.trim().parse::<i64>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(format!(
                    "{what} must be a whole number of at least 1, not {v:?}"
                )),
            }
        };
        let fanout = number("FANOUT", fanout)?;
        if fanout < 2 {
            return Err(
                "FANOUT must be at least 2: a merge of one run copies it for nothing".into(),
            );
        }
        Ok(Tuning {
            flush_keys: number("FLUSH_KEYS", flush)?,
            fanout: fanout as usize,
            merge_chunk: number("MERGE_CHUNK", chunk)?,
            leaf_filter_bytes: LEAF_FILTER_BYTES,
        })
    }
}

/// What a store keeps between steps: the tuning, and roughly how many keys `search_keys`
/// holds (so that a commit does not count the table to know whether to flush).
#[derive(Debug)]
pub struct SearchRuns {
    pub tuning: Tuning,
    recent_keys: AtomicI64,
    // Keys committed since the last upkeep: what the next one has to keep up with.
    added_since_upkeep: AtomicI64,
    // Set when a look found nothing to do: until the next flush is due, nothing can be (only
    // a flush makes new runs), so commits skip the look.
    idle: AtomicBool,
    /// The live runs' leaf-hash filters.
    pub leaf_filters: Arc<LeafFilters>,
}

impl SearchRuns {
    pub fn new(tuning: Tuning, recent_keys: i64, leaf_filters: LeafFilters) -> SearchRuns {
        SearchRuns {
            tuning,
            recent_keys: AtomicI64::new(recent_keys),
            added_since_upkeep: AtomicI64::new(0),
            idle: AtomicBool::new(false),
            leaf_filters: Arc::new(leaf_filters),
        }
    }

    /// A commit wrote `n` keys into `search_keys`.
    pub fn added(&self, n: usize) {
        self.recent_keys.fetch_add(n as i64, Ordering::Relaxed);
        self.added_since_upkeep
            .fetch_add(n as i64, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Live,
    Building,
    Dead,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Live => "live",
            RunState::Building => "building",
            RunState::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Option<RunState> {
        match s {
            "live" => Some(RunState::Live),
            "building" => Some(RunState::Building),
            "dead" => Some(RunState::Dead),
            _ => None,
        }
    }
}

/// A row of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub run: i64,
    pub keys: i64,
    pub state: RunState,
    /// For a live run being merged: the building run it goes into.
    pub merge_into: Option<i64>,
}

/// The next piece of work, most urgent first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `search_keys` is full: move it into a new run.
    Flush,
    /// A run nobody reads any more (merged, or empty): drop its table.
    Drop(i64),
    /// Copy the next chunk of `sources` into the building `target`.
    Merge {
        target: i64,
        sources: Vec<i64>,
    },
    /// Enough runs of one size class: start merging these.
    StartMerge {
        sources: Vec<i64>,
    },
    Idle,
}

/// Size classes grow by `fanout`: class c holds runs of at least flush_keys * fanout^c keys,
/// so merging `fanout` runs of class c always yields a run of class c + 1 or above.
pub fn size_class(keys: i64, tuning: &Tuning) -> u32 {
    let mut class = 0;
    let mut bound = tuning.flush_keys.max(1) as i128 * tuning.fanout as i128;
    while keys as i128 >= bound {
        class += 1;
        bound *= tuning.fanout as i128;
    }
    class
}

/// The most urgent step. `may_drop` is false once an upkeep has dropped enough: the other
/// dead runs then wait for the next upkeep, and merges go on meanwhile.
pub fn next_step(runs: &[Run], recent_keys: i64, tuning: &Tuning, may_drop: bool) -> Step {
    if recent_keys >= tuning.flush_keys {
        return Step::Flush;
    }
    if let Some(dead) = runs.iter().find(|r| r.state == RunState::Dead)
        && may_drop
    {
        return Step::Drop(dead.run);
    }
    if let Some(target) = runs.iter().find(|r| r.state == RunState::Building) {
        let sources = runs
            .iter()
            .filter(|r| r.merge_into == Some(target.run))
            .map(|r| r.run)
            .collect();
        return Step::Merge {
            target: target.run,
            sources,
        };
    }
    // An empty run (the old index of a new database) would only cost every lookup a probe.
    if let Some(empty) = runs
        .iter()
        .find(|r| r.state == RunState::Live && r.keys == 0)
        && may_drop
    {
        return Step::Drop(empty.run);
    }
    let mut classes: Vec<(u32, i64)> = runs
        .iter()
        .filter(|r| r.state == RunState::Live)
        .map(|r| (size_class(r.keys, tuning), r.run))
        .collect();
    // Oldest first within a class: runs are numbered in the order they were made.
    classes.sort();
    for group in classes.chunk_by(|a, b| a.0 == b.0) {
        if group.len() >= tuning.fanout.max(2) {
            return Step::StartMerge {
                sources: group[..tuning.fanout.max(2)].iter().map(|r| r.1).collect(),
            };
        }
    }
    Step::Idle
}

/// The table holding a run's keys. Run numbers come from the catalogue's integer key, so the
/// name is always safe to put into SQL.
pub fn table(run: i64) -> String {
    format!("search_run_{run}")
}

/// Where lookups read: `search_keys` and every live run. Run it inside the read transaction
/// that also runs the lookup, so a concurrent flush, merge or drop is seen whole.
async fn live_tables(conn: &mut SqliteConnection) -> Result<Vec<String>, sqlx::Error> {
    let mut tables = vec!["search_keys".to_string()];
    tables.extend(live_runs(conn).await?.into_iter().map(table));
    Ok(tables)
}

/// The live runs, oldest first; same snapshot rule as [`live_tables`].
pub async fn live_runs(conn: &mut SqliteConnection) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT run FROM search_runs WHERE state = 'live' ORDER BY run")
        .fetch_all(&mut *conn)
        .await
}

/// One `SELECT` per table where lookups read (`arm` writes it for a table name), joined with
/// `UNION ALL`; same snapshot rule as [`live_tables`].
pub async fn union_over_live_tables(
    conn: &mut SqliteConnection,
    arm: impl Fn(&str) -> String,
) -> Result<String, sqlx::Error> {
    let arms: Vec<String> = live_tables(conn).await?.iter().map(|t| arm(t)).collect();
    Ok(arms.join(" UNION ALL "))
}

async fn catalogue(conn: &mut SqliteConnection) -> Result<Vec<Run>, sqlx::Error> {
    let rows = sqlx::query("SELECT run, keys, state, merge_into FROM search_runs ORDER BY run")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            let state: String = r.get(2);
            Ok(Run {
                run: r.get(0),
                keys: r.get(1),
                state: RunState::parse(&state).ok_or_else(|| {
                    sqlx::Error::Protocol(format!("search run in unknown state {state:?}"))
                })?,
                merge_into: r.get(3),
            })
        })
        .collect()
}

async fn create_run(
    conn: &mut SqliteConnection,
    state: RunState,
    keys: i64,
) -> Result<i64, sqlx::Error> {
    // `run` is the catalogue's integer key: SQLite assigns the next number.
    let run: i64 =
        sqlx::query_scalar("INSERT INTO search_runs (keys, state) VALUES ($1, $2) RETURNING run")
            .bind(keys)
            .bind(state.as_str())
            .fetch_one(&mut *conn)
            .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {} (log_id INTEGER NOT NULL, key BLOB NOT NULL, idx BIGINT NOT NULL, \
         PRIMARY KEY (log_id, key, idx)) WITHOUT ROWID",
        table(run)
    )))
    .execute(&mut *conn)
    .await?;
    Ok(run)
}

/// Upkeep after a commit: steps until merges have copied enough keys to keep pace with the
/// keys committed since the last upkeep (at least one chunk), or nothing is left to do. Each key is copied once per size class it passes through, so the merges of
/// one upkeep copy the keys added times the number of live size classes plus one (at least
/// `fanout` times): they keep pace with large batches (a preload commits thousands of keys
/// per batch) instead of letting runs pile up. Neither a flush nor a drop ends the upkeep:
/// when every batch brings a flush's worth of keys, ending there would starve the merges, and
/// every lookup reads every live run. Returns the first step's name, for metrics.
pub async fn maintain(
    conn: &mut SqliteConnection,
    state: &SearchRuns,
) -> Result<Option<&'static str>, sqlx::Error> {
    let tuning = state.tuning;
    if state.idle.load(Ordering::Relaxed)
        && state.recent_keys.load(Ordering::Relaxed) < tuning.flush_keys
    {
        return Ok(None);
    }
    let added = state.added_since_upkeep.swap(0, Ordering::Relaxed);
    let (mut merged, mut dropped, mut drops) = (0, 0, 0);
    let mut budget = tuning
        .merge_chunk
        .max(added.saturating_mul(tuning.fanout as i64));
    let mut first = None;
    // A drop frees every page of a run (reading each one), seconds for a large run on a cold
    // page cache: drops after the first wait for the next upkeep once they have freed the
    // budget's worth of keys. Drops must not end the upkeep: a merge leaves `fanout` dead
    // runs, and upkeeps that only dropped would let flushes outrun the merges.
    while let Some(done) = step(conn, state, drops == 0 || dropped < budget).await? {
        first.get_or_insert(done.kind.as_str());
        match done.kind {
            StepKind::Merge => merged += done.keys,
            StepKind::Drop => {
                dropped += done.keys;
                drops += 1;
            }
            StepKind::Flush | StepKind::StartMerge => {}
        }
        let per_key = (tuning.fanout as i64).max(done.live_classes as i64 + 1);
        budget = tuning.merge_chunk.max(added.saturating_mul(per_key));
        if merged >= budget {
            break;
        }
    }
    Ok(first)
}

/// Which step was taken (a metric label, through `as_str`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepKind {
    Flush,
    Drop,
    StartMerge,
    Merge,
}

impl StepKind {
    fn as_str(self) -> &'static str {
        match self {
            StepKind::Flush => "flush",
            StepKind::Drop => "drop",
            StepKind::StartMerge => "start_merge",
            StepKind::Merge => "merge",
        }
    }
}

/// What one step did.
struct StepDone {
    kind: StepKind,
    /// Keys a merge copied or a drop freed (a flush's are counted by neither).
    keys: i64,
    /// Distinct size classes among the live runs the step saw.
    live_classes: usize,
}

/// Does the most urgent step, if any, in one transaction; says what it did. Several logs' sequencers may run steps at once: the transaction takes the write
/// lock first and decides inside it, so they see each other's steps.
async fn step(
    conn: &mut SqliteConnection,
    state: &SearchRuns,
    may_drop: bool,
) -> Result<Option<StepDone>, sqlx::Error> {
    let tuning = state.tuning;
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    let mut recent = state.recent_keys.load(Ordering::Relaxed);
    if recent >= tuning.flush_keys {
        // The counter is a hint (another log's flush may have emptied the table): count.
        recent = sqlx::query_scalar("SELECT count(*) FROM search_keys")
            .fetch_one(&mut *tx)
            .await?;
        state.recent_keys.store(recent, Ordering::Relaxed);
    }
    let runs = catalogue(&mut tx).await?;
    let done = match next_step(&runs, recent, &tuning, may_drop) {
        Step::Idle => {
            // Only a full look may say so: with drops held back, a dead run may be waiting.
            if may_drop {
                state.idle.store(true, Ordering::Relaxed);
            }
            return Ok(None);
        }
        Step::Flush => {
            let run = create_run(&mut tx, RunState::Live, recent).await?;
            // In key order: the run's pages are filled one after another, each once.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {} (log_id, key, idx) SELECT log_id, key, idx FROM search_keys \
                 ORDER BY log_id, key, idx",
                table(run)
            )))
            .persistent(false)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM search_keys")
                .execute(&mut *tx)
                .await?;
            (StepKind::Flush, 0)
        }
        Step::Drop(run) => {
            sqlx::query("DELETE FROM search_runs WHERE run = $1")
                .bind(run)
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {}", table(run))))
                .execute(&mut *tx)
                .await?;
            let keys = runs.iter().find(|r| r.run == run).map_or(0, |r| r.keys);
            (StepKind::Drop, keys)
        }
        Step::StartMerge { sources } => {
            let target = create_run(&mut tx, RunState::Building, 0).await?;
            for run in sources {
                sqlx::query("UPDATE search_runs SET merge_into = $1 WHERE run = $2")
                    .bind(target)
                    .bind(run)
                    .execute(&mut *tx)
                    .await?;
            }
            (StepKind::StartMerge, 0)
        }
        Step::Merge { target, sources } => {
            let copied = merge_chunk(&mut tx, target, &sources, tuning.merge_chunk).await?;
            (StepKind::Merge, copied)
        }
    };
    tx.commit().await?;
    state.idle.store(false, Ordering::Relaxed);
    let (kind, keys) = done;
    if kind == StepKind::Flush {
        // Keys committed since the count above were flushed with it; the hint restarts at
        // zero either way (it only has to be right on average).
        state.recent_keys.store(0, Ordering::Relaxed);
    }
    let mut classes: Vec<u32> = runs
        .iter()
        .filter(|r| r.state == RunState::Live)
        .map(|r| size_class(r.keys, &tuning))
        .collect();
    classes.sort_unstable();
    classes.dedup();
    Ok(Some(StepDone {
        kind,
        keys,
        live_classes: classes.len(),
    }))
}

/// Copies the next `chunk` keys of the sources, in key order, after the last key the target
/// holds; the last chunk makes the target live and the sources dead.
async fn merge_chunk(
    conn: &mut SqliteConnection,
    target: i64,
    sources: &[i64],
    chunk: i64,
) -> Result<i64, sqlx::Error> {
    let target_table = table(target);
    let last = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT log_id, key, idx FROM {target_table} ORDER BY log_id DESC, key DESC, idx DESC LIMIT 1"
    )))
    .persistent(false)
    .fetch_optional(&mut *conn)
    .await?;
    let after = if last.is_some() {
        " WHERE (log_id, key, idx) > ($1, $2, $3)"
    } else {
        ""
    };
    // A compound SELECT ordered by the runs' common key: SQLite merges the sorted arms
    // instead of sorting their union.
    let arms: Vec<String> = sources
        .iter()
        .map(|run| format!("SELECT log_id, key, idx FROM {}{after}", table(*run)))
        .collect();
    let sql = format!(
        "INSERT INTO {target_table} (log_id, key, idx) {} ORDER BY 1, 2, 3 LIMIT {chunk}",
        arms.join(" UNION ALL ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
    if let Some(row) = &last {
        q = q
            .bind(row.get::<i64, _>(0))
            .bind(row.get::<Vec<u8>, _>(1))
            .bind(row.get::<i64, _>(2));
    }
    let copied = if sources.is_empty() {
        0
    } else {
        q.execute(&mut *conn).await?.rows_affected() as i64
    };
    sqlx::query("UPDATE search_runs SET keys = keys + $1 WHERE run = $2")
        .bind(copied)
        .bind(target)
        .execute(&mut *conn)
        .await?;
    if copied < chunk {
        sqlx::query("UPDATE search_runs SET state = 'live' WHERE run = $1")
            .bind(target)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE search_runs SET state = 'dead', merge_into = NULL WHERE merge_into = $1",
        )
        .bind(target)
        .execute(&mut *conn)
        .await?;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tuning = Tuning {
        flush_keys: 10,
        fanout: 3,
        merge_chunk: 4,
        leaf_filter_bytes: LEAF_FILTER_BYTES,
    };

    #[test]
    fn tuning_parses_and_refuses_what_cannot_work() {
        let t: Tuning = "16,3,16".parse().unwrap();
        assert_eq!((t.flush_keys, t.fanout, t.merge_chunk), (16, 3, 16));
        for bad in ["16,3", "16,3,16,1", "0,3,16", "16,1,16", "16,3,x", ""] {
            assert!(bad.parse::<Tuning>().is_err(), "{bad:?} accepted");
        }
    }

    fn live(run: i64, keys: i64) -> Run {
        Run {
            run,
            keys,
            state: RunState::Live,
            merge_into: None,
        }
    }

    #[test]
    fn size_classes_grow_by_the_fanout() {
        assert_eq!(size_class(0, &T), 0);
        assert_eq!(size_class(29, &T), 0);
        assert_eq!(size_class(30, &T), 1);
        assert_eq!(size_class(89, &T), 1);
        assert_eq!(size_class(90, &T), 2);
        assert_eq!(size_class(i64::MAX, &T), 37);
    }

    #[test]
    fn a_full_first_level_is_flushed_before_anything_else() {
        let mut building = live(9, 0);
        building.state = RunState::Building;
        let runs = [live(1, 10), building];
        assert_eq!(next_step(&runs, 10, &T, true), Step::Flush);
        assert_eq!(
            next_step(&runs, 9, &T, true),
            Step::Merge {
                target: 9,
                sources: vec![]
            }
        );
    }

    #[test]
    fn runs_of_one_class_merge_oldest_first() {
        let runs = [
            live(1, 100),
            live(2, 12),
            live(3, 10),
            live(4, 11),
            live(5, 10),
        ];
        assert_eq!(
            next_step(&runs, 0, &T, true),
            Step::StartMerge {
                sources: vec![2, 3, 4]
            }
        );
        // Two of a class are not enough, whatever their sizes.
        assert_eq!(next_step(&runs[..3], 0, &T, true), Step::Idle);
    }

    #[test]
    fn a_merge_under_way_continues_with_its_own_sources() {
        let mut runs = vec![live(1, 10), live(2, 10), live(3, 10), live(4, 10)];
        runs[0].merge_into = Some(5);
        runs[2].merge_into = Some(5);
        runs.push(Run {
            run: 5,
            keys: 4,
            state: RunState::Building,
            merge_into: None,
        });
        assert_eq!(
            next_step(&runs, 0, &T, true),
            Step::Merge {
                target: 5,
                sources: vec![1, 3]
            }
        );
    }

    #[test]
    fn dead_and_empty_runs_are_dropped() {
        let mut dead = live(2, 10);
        dead.state = RunState::Dead;
        assert_eq!(next_step(&[live(1, 10), dead], 0, &T, true), Step::Drop(2));
        assert_eq!(
            next_step(&[live(1, 0), live(3, 5)], 0, &T, true),
            Step::Drop(1)
        );
    }

    #[test]
    fn after_a_drop_merges_go_on_and_the_dead_wait() {
        let mut dead = live(2, 10);
        dead.state = RunState::Dead;
        let runs = [live(1, 10), dead, live(3, 10), live(4, 10), live(5, 10)];
        assert_eq!(
            next_step(&runs, 0, &T, false),
            Step::StartMerge {
                sources: vec![1, 3, 4]
            }
        );
        assert_eq!(next_step(&runs[..2], 0, &T, false), Step::Idle);
    }
}
