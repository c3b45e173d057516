//! Copying every log from one store to another, byte for byte: how an operator moves from the
//! embedded SQLite database to PostgreSQL (`sigild migrate-sqlite-to-postgres`). The copy is
//! one transaction on the target, so a failed run leaves it empty; afterwards each log's root
//! is recomputed from the copied nodes and compared with its head.

use sigil_proto::merkle::{fold_range, leaf_hash};

use crate::store::{Store, StoreError};
use crate::tree::Frontier;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the target database already holds logs ({0}); copy into an empty database")]
    TargetNotEmpty(String),
    #[error("entry {index} of log {log}: stored leaf hash does not match its leaf")]
    LeafHash { log: i64, index: u64 },
    #[error("log {log}: {what}")]
    Mismatch { log: i64, what: String },
}

/// What was copied, per log: (name, tree size, entries copied).
#[derive(Debug, Default)]
pub struct CopyReport {
    pub logs: Vec<(String, u64, u64)>,
    pub nodes: u64,
    pub search_keys: u64,
}

/// Rows per read and per insert: large enough to amortise round trips, small enough that a
/// chunk of 1.6 KB entries stays in the tens of megabytes.
pub const CHUNK: u64 = 5000;

/// Copies everything from `source` into the empty `target`; `progress(done, total)` is
/// called after each chunk of entries.
pub async fn copy_logs(
    source: &Store,
    target: &Store,
    mut progress: impl FnMut(u64, u64),
) -> Result<CopyReport, CopyError> {
    let existing = target.log_names().await?;
    if !existing.is_empty() {
        return Err(CopyError::TargetNotEmpty(existing.join(", ")));
    }
    let logs = source.log_rows().await?;
    let total: u64 = {
        let mut t = 0;
        for log in &logs {
            t += source.tree_head(log.id).await?.map_or(0, |h| h.size);
        }
        t
    };
    let mut tx = target.begin_copy().await?;
    let mut report = CopyReport::default();
    let mut done = 0;
    for log in &logs {
        tx.insert_log(log).await?;
        let head = source.tree_head(log.id).await?;
        let size = head.map_or(0, |h| h.size);
        let mut start = 0;
        while start < size {
            let end = (start + CHUNK).min(size);
            let rows = source.entries(log.id, start, end).await?;
            if rows.len() as u64 != end - start {
                return Err(CopyError::Mismatch {
                    log: log.id,
                    what: format!("entries {start}..{end}: {} rows", rows.len()),
                });
            }
            for row in &rows {
                if leaf_hash(&row.leaf) != row.leaf_hash {
                    return Err(CopyError::LeafHash {
                        log: log.id,
                        index: row.index,
                    });
                }
            }
            tx.insert_entries(log.id, &rows).await?;
            done += rows.len() as u64;
            progress(done, total);
            start = end;
        }
        let mut after = None;
        loop {
            let (rows, last) = source.node_rows(log.id, after, CHUNK).await?;
            report.nodes += rows.len() as u64;
            if !rows.is_empty() {
                tx.insert_nodes(log.id, &rows).await?;
            }
            if (rows.len() as u64) < CHUNK {
                break;
            }
            after = last;
        }
        let mut after = None;
        loop {
            let (rows, last) = source.search_key_rows(log.id, after, CHUNK).await?;
            report.search_keys += rows.len() as u64;
            if !rows.is_empty() {
                tx.insert_search_keys(log.id, &rows).await?;
            }
            if (rows.len() as u64) < CHUNK {
                break;
            }
            after = last;
        }
        if let Some(head) = head {
            tx.insert_head(log.id, &head).await?;
        }
        report.logs.push((log.name.clone(), size, size));
    }
    tx.commit().await?;
    for log in &logs {
        check_copied_log(source, target, log.id).await?;
    }
    Ok(report)
}

/// The target's head matches the source's, and the target's own nodes recompute its root.
async fn check_copied_log(source: &Store, target: &Store, log_id: i64) -> Result<(), CopyError> {
    let mismatch = |what: String| CopyError::Mismatch { log: log_id, what };
    let want = source.tree_head(log_id).await?;
    let got = target.tree_head(log_id).await?;
    if want != got {
        return Err(mismatch(format!(
            "head {got:?} after the copy, {want:?} before"
        )));
    }
    if let Some(head) = got {
        let hashes = target.nodes(log_id, &Frontier::node_ids(head.size)).await?;
        if fold_range(&hashes) != head.root {
            return Err(mismatch(
                "the copied nodes do not recompute the head's root".into(),
            ));
        }
    }
    Ok(())
}
