//! One log: a sequencer that batches appends into durable transactions (group commit), and
//! proof/entry reads over the same storage. Every personality (Rekor, CT, tiles) uses this.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sigil_proto::merkle::{
    Hash, NodeId, Range, consistency_ranges, fold_range, inclusion_ranges, leaf_hash, range_nodes,
};
use tokio::sync::{mpsc, oneshot};

use crate::store::{BatchWrite, NewRow, Store, StoreError, Writer};
use crate::tree::{Frontier, proof_from_map};

/// Upper bound on entries per durable transaction.
pub const MAX_BATCH: usize = 2048;
/// Queue depth before submitters wait: back-pressure instead of unbounded memory.
const QUEUE_DEPTH: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the log is shutting down")]
    ShuttingDown,
    #[error("tree size {requested} is beyond the current size {current}")]
    FutureSize { requested: u64, current: u64 },
    #[error("{0}")]
    BadRange(#[from] sigil_proto::merkle::MerkleError),
    #[error(
        "stored root {stored} does not match the root recomputed from the stored frontier {computed}"
    )]
    RootMismatch { stored: String, computed: String },
}

#[derive(Clone, Debug)]
pub struct NewLeaf {
    /// The RFC 6962 leaf input (Rekor: canonical body; CT: MerkleTreeLeaf).
    pub leaf: Vec<u8>,
    /// Opaque per-personality data stored beside the leaf.
    pub extra: Vec<u8>,
    pub timestamp_ms: u64,
    /// Search keys written in the same transaction as the entry.
    pub index_keys: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
    pub timestamp_ms: u64,
}

#[derive(Clone, Debug)]
pub struct Appended {
    pub index: u64,
    pub leaf_hash: Hash,
    pub tree_head: TreeHead,
    pub inclusion_proof: Vec<Hash>,
}

#[derive(Clone, Debug)]
pub enum AppendOutcome {
    New(Appended),
    Duplicate { index: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    pub index: u64,
    pub leaf_hash: Hash,
    pub leaf: Vec<u8>,
    pub extra: Vec<u8>,
    pub timestamp_ms: u64,
}

struct Submission {
    leaf: NewLeaf,
    reply: oneshot::Sender<Result<AppendOutcome, Arc<EngineError>>>,
}

#[derive(Clone)]
pub struct LogEngine {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    log_id: i64,
    tree_id: i64,
    store: Store,
    head: RwLock<TreeHead>,
    queue: mpsc::Sender<Submission>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl LogEngine {
    /// Opens the log called `name`, loading only its head and frontier (O(log n) reads), and
    /// starts its sequencer.
    pub async fn open(store: Store, name: &str) -> Result<LogEngine, EngineError> {
        let (log_id, tree_id) = store.ensure_log(name, now_ms()).await?;
        let writer = store.writer(log_id, name).await?;
        let head = store.tree_head(log_id).await?.unwrap_or(TreeHead {
            size: 0,
            root: sigil_proto::merkle::EMPTY_ROOT,
            timestamp_ms: 0,
        });
        let frontier_hashes = store.nodes(log_id, &Frontier::node_ids(head.size)).await?;
        let frontier = Frontier::from_nodes(head.size, frontier_hashes);
        if frontier.root() != head.root {
            return Err(EngineError::RootMismatch {
                stored: hex::encode(head.root),
                computed: hex::encode(frontier.root()),
            });
        }
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let inner = Arc::new(Inner {
            name: name.to_string(),
            log_id,
            tree_id,
            store: store.clone(),
            head: RwLock::new(head),
            queue,
        });
        let sequencer = Sequencer {
            inner: Arc::downgrade(&inner),
            _store: store,
            log_id,
            log_name: name.to_string(),
            writer,
            frontier,
        };
        tokio::spawn(sequencer.run(rx));
        tracing::info!(log = name, tree_id, size = head.size, "log opened");
        Ok(LogEngine { inner })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn tree_id(&self) -> i64 {
        self.inner.tree_id
    }

    pub fn tree_head(&self) -> TreeHead {
        *self.inner.head.read().expect("tree head lock")
    }

    /// Sequences one leaf. Returns only after the entry is durable and in the tree.
    pub async fn append(&self, leaf: NewLeaf) -> Result<AppendOutcome, Arc<EngineError>> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .queue
            .send(Submission { leaf, reply })
            .await
            .map_err(|_| Arc::new(EngineError::ShuttingDown))?;
        rx.await.map_err(|_| Arc::new(EngineError::ShuttingDown))?
    }

    fn check_size(&self, size: u64) -> Result<(), EngineError> {
        let current = self.tree_head().size;
        if size > current {
            return Err(EngineError::FutureSize {
                requested: size,
                current,
            });
        }
        Ok(())
    }

    async fn range_hashes(&self, ranges: &[Range]) -> Result<Vec<Hash>, EngineError> {
        let ids: Vec<NodeId> = ranges.iter().flat_map(|r| range_nodes(*r)).collect();
        let hashes = self.inner.store.nodes(self.inner.log_id, &ids).await?;
        let mut at = 0;
        Ok(ranges
            .iter()
            .map(|r| {
                let n = range_nodes(*r).len();
                let h = fold_range(&hashes[at..at + n]);
                at += n;
                h
            })
            .collect())
    }

    pub async fn inclusion_proof(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash>, EngineError> {
        self.check_size(tree_size)?;
        let ranges = inclusion_ranges(index, tree_size)?;
        self.range_hashes(&ranges).await
    }

    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, EngineError> {
        self.check_size(new_size)?;
        let ranges = consistency_ranges(old_size, new_size)?;
        self.range_hashes(&ranges).await
    }

    /// The root of the tree at an earlier size.
    pub async fn root_at(&self, size: u64) -> Result<Hash, EngineError> {
        self.check_size(size)?;
        let ids = Frontier::node_ids(size);
        let hashes = self.inner.store.nodes(self.inner.log_id, &ids).await?;
        Ok(fold_range(&hashes))
    }

    pub async fn entry(&self, index: u64) -> Result<Option<StoredEntry>, EngineError> {
        if index >= self.tree_head().size {
            return Ok(None);
        }
        Ok(self.entries(index, index + 1).await?.pop())
    }

    pub async fn entries(
        &self,
        start: u64,
        end_exclusive: u64,
    ) -> Result<Vec<StoredEntry>, EngineError> {
        let end = end_exclusive.min(self.tree_head().size);
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self
            .inner
            .store
            .entries(self.inner.log_id, start, end)
            .await?)
    }

    pub async fn index_of_leaf_hash(&self, h: &Hash) -> Result<Option<u64>, EngineError> {
        let found = self
            .inner
            .store
            .index_of_leaf_hash(self.inner.log_id, h)
            .await?;
        // Rows become visible with the head in one transaction, but the cached head is
        // updated just after commit; never report an index beyond it.
        Ok(found.filter(|i| *i < self.tree_head().size))
    }

    pub async fn search(&self, key: &str, limit: u64) -> Result<Vec<u64>, EngineError> {
        let size = self.tree_head().size;
        let found = self
            .inner
            .store
            .search(self.inner.log_id, key, limit)
            .await?;
        Ok(found.into_iter().filter(|i| *i < size).collect())
    }

    /// Hashes at one tree level, for the tiles API.
    pub async fn level_hashes(
        &self,
        level: u8,
        start: u64,
        count: u64,
    ) -> Result<Vec<Hash>, EngineError> {
        Ok(self
            .inner
            .store
            .level_hashes(self.inner.log_id, level, start, count)
            .await?)
    }
}

struct Sequencer {
    // Weak: when every LogEngine handle is gone the queue closes and the sequencer ends
    // after finishing what it holds.
    inner: std::sync::Weak<Inner>,
    // Keeps the pool (and SQLite's lock file) alive until the last batch is written, even
    // after every LogEngine handle is gone.
    _store: Store,
    log_id: i64,
    log_name: String,
    writer: Writer,
    frontier: Frontier,
}

impl Sequencer {
    async fn run(mut self, mut rx: mpsc::Receiver<Submission>) {
        let mut batch: Vec<Submission> = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            // Whatever queued while the previous batch was committing joins this one.
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
            self.process(std::mem::take(&mut batch)).await;
        }
        tracing::info!(log = %self.log_name, "sequencer stopped");
    }

    async fn process(&mut self, batch: Vec<Submission>) {
        let started = Instant::now();
        let hashes: Vec<Hash> = batch.iter().map(|s| leaf_hash(&s.leaf.leaf)).collect();
        let existing = match Store::existing_leaves(&mut self.writer, self.log_id, &hashes).await {
            Ok(e) => e.into_iter().collect::<HashMap<Hash, u64>>(),
            Err(e) => return fail_all(batch, e.into()),
        };

        // Decide every submission's fate before writing anything.
        let mut frontier = self.frontier.clone();
        let mut known: HashMap<NodeId, Hash> = frontier.nodes().iter().copied().collect();
        let mut new_nodes: Vec<(NodeId, Hash)> = Vec::new();
        let mut in_batch: HashMap<Hash, u64> = HashMap::new();
        let mut rows: Vec<NewRow> = Vec::new();
        let mut fates: Vec<Fate> = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut max_ts = 0;
        for (sub, lh) in batch.into_iter().zip(hashes) {
            replies.push(sub.reply);
            if let Some(index) = existing.get(&lh).or_else(|| in_batch.get(&lh)) {
                fates.push(Fate::Duplicate(*index));
                continue;
            }
            let index = frontier.size();
            frontier.push_hash(lh, &mut |id, h| {
                known.insert(id, h);
                if id.level > 0 {
                    new_nodes.push((id, h));
                }
            });
            in_batch.insert(lh, index);
            max_ts = max_ts.max(sub.leaf.timestamp_ms);
            fates.push(Fate::New(index, lh));
            rows.push(NewRow {
                index,
                leaf_hash: lh,
                leaf: sub.leaf.leaf,
                extra: sub.leaf.extra,
                timestamp_ms: sub.leaf.timestamp_ms,
                index_keys: sub.leaf.index_keys,
            });
        }
        let head = TreeHead {
            size: frontier.size(),
            root: frontier.root(),
            timestamp_ms: now_ms().max(max_ts),
        };

        if !rows.is_empty() {
            let write = BatchWrite {
                log_id: self.log_id,
                entries: &rows,
                nodes: &new_nodes,
                head,
            };
            if let Err(e) = Store::commit_batch(&mut self.writer, write).await {
                tracing::error!(log = %self.log_name, error = %e, "batch commit failed; nothing acknowledged");
                let err = Arc::new(EngineError::from(e));
                for r in replies {
                    let _ = r.send(Err(err.clone()));
                }
                return;
            }
            self.frontier = frontier;
            if let Some(inner) = self.inner.upgrade() {
                *inner.head.write().expect("tree head lock") = head;
            }
        }
        metrics::histogram!("sigil_log_batch_size", "log" => self.log_name.clone())
            .record(rows.len() as f64);
        metrics::histogram!("sigil_log_commit_seconds", "log" => self.log_name.clone())
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("sigil_log_entries_appended_total", "log" => self.log_name.clone())
            .increment(rows.len() as u64);
        metrics::gauge!("sigil_log_tree_size", "log" => self.log_name.clone())
            .set(self.frontier.size() as f64);

        for (reply, fate) in replies.into_iter().zip(fates) {
            let outcome = match fate {
                Fate::Duplicate(index) => Ok(AppendOutcome::Duplicate { index }),
                Fate::New(index, lh) => {
                    let ranges = inclusion_ranges(index, head.size).expect("index below size");
                    match proof_from_map(&ranges, &known) {
                        Some(proof) => Ok(AppendOutcome::New(Appended {
                            index,
                            leaf_hash: lh,
                            tree_head: head,
                            inclusion_proof: proof,
                        })),
                        // Cannot happen (see tree.rs tests); refuse rather than answer wrongly.
                        None => Err(Arc::new(EngineError::Store(StoreError::Corrupt(
                            "inclusion proof node missing from batch".into(),
                        )))),
                    }
                }
            };
            let _ = reply.send(outcome);
        }
    }
}

enum Fate {
    New(u64, Hash),
    Duplicate(u64),
}

fn fail_all(batch: Vec<Submission>, e: EngineError) {
    tracing::error!(error = %e, "batch failed before writing");
    let e = Arc::new(e);
    for s in batch {
        let _ = s.reply.send(Err(e.clone()));
    }
}
