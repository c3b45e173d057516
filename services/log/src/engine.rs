//! One log: a sequencer that batches appends into durable transactions (group commit), and
//! proof/entry reads over the same storage. Every personality (Rekor, CT, tiles) uses this.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sigil_proto::merkle::{
    Hash, NodeId, Range, consistency_ranges, fold_range, inclusion_ranges, leaf_hash, range_nodes,
};
use tokio::sync::{mpsc, oneshot};

use crate::cluster::{Cluster, ForwardError};
use crate::head_file::{HeadFile, HeadFileError};
use crate::store::{BatchWrite, NewRow, Store, StoreError, Writer};
use crate::tree::{Frontier, proof_from_map};

/// Upper bound on entries per durable transaction.
pub const MAX_BATCH: usize = 2048;
/// Queue depth before submitters wait: back-pressure instead of unbounded memory.
const QUEUE_DEPTH: usize = 16 * 1024;
/// How often a sequencer whose writer failed tries to take a new one.
const RECOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a writer may sit idle before its connection is checked.
const WRITER_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// In a cluster, how often a follower reads the head from the database and tries to take
/// the log's lock. This bounds both how far its reads lag the leader and how long a dead
/// leader goes unreplaced (after the database notices the leader's connection is gone).
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
/// How long an append keeps looking for a leader before answering "unavailable".
const FORWARD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
const FORWARD_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
/// Longest wait for the database on the writer's connection. Past it the connection is
/// treated as broken: a database that stopped answering without closing the connection (a
/// partition) would otherwise hold the sequencer, and every write queued behind it, for as
/// long as the kernel keeps retransmitting. Generous, because a healthy database under load
/// can be slow: a 2,048-entry commit on PostgreSQL took more than 10 s during a checkpoint
/// (bulk load at 1.8M entries with the other core busy), and giving up on it only turns a slow
/// commit into a recovery and a burst of 503s.
const WRITER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// How often opening a log asks again for a lock held by another session.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// The writer a log opens with: None for a cluster follower (the log is locked by the
/// leader); without a cluster, the lock is waited for up to `options.lock_wait`.
async fn first_writer(
    store: &Store,
    log_id: i64,
    name: &str,
    options: &EngineOptions,
) -> Result<Option<Writer>, EngineError> {
    let deadline = Instant::now() + options.lock_wait;
    let mut waiting = false;
    loop {
        match store.writer(log_id, name).await {
            Ok(w) => {
                if waiting {
                    tracing::info!(log = name, "the log's lock was released; writing");
                }
                return Ok(Some(w));
            }
            Err(StoreError::Locked(_)) if options.cluster.is_some() => return Ok(None),
            Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                if !waiting {
                    tracing::warn!(
                        log = name,
                        wait = ?options.lock_wait,
                        "another database session holds the log's lock (a sigild that just \
                         stopped, or a second one on this database); waiting for it"
                    );
                    waiting = true;
                }
                tokio::time::sleep(LOCK_RETRY).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `op` on the writer's connection, failed with [`EngineError::WriterUnavailable`] when the
/// database does not answer within [`WRITER_DEADLINE`]. Whatever the abandoned statement did
/// is found by recovery, as after any lost acknowledgement.
async fn on_writer<T, E: Into<EngineError>>(
    op: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, EngineError> {
    match tokio::time::timeout(WRITER_DEADLINE, op).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(EngineError::WriterUnavailable(format!(
            "the database did not answer on the writer's connection within {WRITER_DEADLINE:?}"
        ))),
    }
}

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
    /// The database does not hold (or extend) the tree this server already published.
    #[error("refusing to write log {log}: {reason}")]
    Diverged { log: String, reason: String },
    #[error(transparent)]
    HeadFile(#[from] HeadFileError),
    /// The writer lost its database and has not got it back yet.
    #[error("log storage is unavailable: {0}")]
    WriterUnavailable(String),
    /// Another node sequences this log (cluster mode).
    #[error("this node does not sequence log {0}; another node holds its lock")]
    NotLeader(String),
    /// The leader refused a forwarded entry.
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

impl EngineError {
    /// Faults a client may retry later (the store is down, the process is stopping), as
    /// opposed to bugs and corruption.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            EngineError::ShuttingDown
                | EngineError::WriterUnavailable(_)
                | EngineError::NotLeader(_)
                | EngineError::Forward(ForwardError::Retry { .. })
                | EngineError::Store(StoreError::Db(_))
        )
    }
}

/// How a log is opened.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    /// Where the last committed head is kept outside the database (see `head_file`).
    pub head_file: Option<HeadFile>,
    /// Set when several nodes share the database: a node that finds the log locked follows
    /// it (reads, forwards appends) instead of refusing to start, and takes over when the
    /// leader's lock is released.
    pub cluster: Option<Cluster>,
    /// Without a cluster: how long opening waits for another session's lock on the log to
    /// end before refusing. A sigild killed a moment ago leaves its PostgreSQL session, and
    /// the lock, behind until the server notices (a commit in flight finishes first; a host
    /// that vanished takes the writer keepalives' ~5 s), and a restart that refused at once
    /// would turn every crash under a supervisor into a crash loop. Zero refuses at once.
    pub lock_wait: std::time::Duration,
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
    leaf_hash: Hash,
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
    /// SQLite: the read-ahead of leaf hashes ([`read_ahead`]).
    read_ahead: Option<ReadAhead>,
    /// Why the writer cannot commit right now, if it cannot.
    writer_fault: RwLock<Option<String>>,
    /// Whether this node holds the log's lock and sequences it.
    leader: AtomicBool,
    cluster: Option<Cluster>,
    /// The leader's URL as last read from the database.
    leader_url: RwLock<Option<String>>,
}

impl Inner {
    /// Shows `head` to readers if it is newer than what they see. Heads come from this node's
    /// commits, from the database (a follower, a recovery) and from forwarded answers, in
    /// any order; the one readers see never goes back.
    fn advance_head(&self, head: TreeHead) {
        let mut current = self.head.write().expect("tree head lock");
        if head.size > current.size {
            *current = head;
        }
    }
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
        LogEngine::open_with(store, name, EngineOptions::default()).await
    }

    pub async fn open_with(
        store: Store,
        name: &str,
        options: EngineOptions,
    ) -> Result<LogEngine, EngineError> {
        let (log_id, tree_id) = store.ensure_log(name, now_ms()).await?;
        let writer = first_writer(&store, log_id, name, &options).await?;
        if let (Some(_), Some(cluster)) = (&writer, &options.cluster) {
            store
                .set_leader(log_id, cluster.advertise_url(), now_ms())
                .await?;
        }
        let frontier = load_frontier(&store, log_id).await?;
        if let Some(file) = &options.head_file {
            check_recorded_head(&store, log_id, tree_id, name, &frontier, file).await?;
            // From here the file describes this database (it may have been missing or behind).
            file.write(tree_id, &frontier_head(&frontier, 0))?;
        }
        let head = store.tree_head(log_id).await?.unwrap_or(TreeHead {
            size: 0,
            root: sigil_proto::merkle::EMPTY_ROOT,
            timestamp_ms: 0,
        });
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let read_ahead = (store.backend() == "sqlite").then(|| {
            let (hints, rx) = mpsc::channel(QUEUE_DEPTH);
            let index_cold = Arc::new(AtomicBool::new(false));
            tokio::spawn(read_ahead(
                store.clone(),
                log_id,
                name.to_string(),
                rx,
                index_cold.clone(),
            ));
            metrics::gauge!("sigil_log_read_ahead_active", "log" => name.to_string()).set(0.0);
            ReadAhead { hints, index_cold }
        });
        let index_cold = read_ahead.as_ref().map(|r| r.index_cold.clone());
        let inner = Arc::new(Inner {
            name: name.to_string(),
            log_id,
            tree_id,
            store: store.clone(),
            head: RwLock::new(head),
            queue,
            read_ahead,
            writer_fault: RwLock::new(None),
            leader: AtomicBool::new(writer.is_some()),
            cluster: options.cluster.clone(),
            leader_url: RwLock::new(None),
        });
        let leader = writer.is_some();
        let sequencer = Sequencer {
            index_cold,
            inner: Arc::downgrade(&inner),
            store,
            log_id,
            tree_id,
            log_name: name.to_string(),
            writer,
            frontier,
            head_file: options.head_file,
            cluster: options.cluster,
            recovery_failed_at: None,
        };
        tokio::spawn(sequencer.run(rx));
        metrics::gauge!("sigil_log_writer_up", "log" => name.to_string()).set(1.0);
        metrics::gauge!("sigil_log_leader", "log" => name.to_string()).set(if leader {
            1.0
        } else {
            0.0
        });
        tracing::info!(
            log = name,
            tree_id,
            size = head.size,
            role = if leader { "leader" } else { "follower" },
            "log opened"
        );
        Ok(LogEngine { inner })
    }

    /// Binds this log to its signing key (SHA-256 of the SPKI) and checkpoint origin on first
    /// use, and refuses a later start with different ones.
    pub async fn bind_identity(&self, key_id: &[u8], origin: &str) -> Result<(), EngineError> {
        let (bound_key, bound_origin) = self
            .inner
            .store
            .bind_log_identity(self.inner.log_id, key_id, origin)
            .await?;
        let diverged = |reason: String| EngineError::Diverged {
            log: self.inner.name.clone(),
            reason,
        };
        if bound_key != key_id {
            return Err(diverged(format!(
                "its tree was signed with key {} but this server has key {}; start with the log's \
                 own key, or a new database for a new log",
                hex::encode(&bound_key),
                hex::encode(key_id)
            )));
        }
        if bound_origin != origin {
            return Err(diverged(format!(
                "its checkpoints carry the origin {bound_origin:?} but this server would sign \
                 {origin:?} (did --public-url change?); a log cannot be renamed, start a new \
                 database for a new name"
            )));
        }
        Ok(())
    }

    /// Whether the log can take writes now: its sequencer runs, its writer is connected and
    /// the database answers.
    pub async fn check_ready(&self) -> Result<(), EngineError> {
        if self.inner.queue.is_closed() {
            return Err(EngineError::ShuttingDown);
        }
        if let Some(fault) = self.inner.writer_fault.read().expect("fault lock").clone() {
            return Err(EngineError::WriterUnavailable(fault));
        }
        match tokio::time::timeout(std::time::Duration::from_secs(2), self.inner.store.ping()).await
        {
            Ok(result) => Ok(result?),
            Err(_) => Err(EngineError::WriterUnavailable(
                "the database did not answer within 2 s".into(),
            )),
        }
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

    /// Whether this node sequences the log (always, outside a cluster).
    pub fn is_leader(&self) -> bool {
        self.inner.leader.load(Ordering::Acquire)
    }

    /// Sequences one leaf. Returns only after the entry is durable and in the tree. In a
    /// cluster, a follower forwards it to the leader, looking the leader up again (for up to
    /// FORWARD_DEADLINE) while leadership moves.
    pub async fn append(&self, leaf: NewLeaf) -> Result<AppendOutcome, Arc<EngineError>> {
        let Some(cluster) = &self.inner.cluster else {
            return self.append_here(leaf).await;
        };
        let deadline = Instant::now() + FORWARD_DEADLINE;
        // Once an attempt may have reached a leader, a later "duplicate" can be that attempt,
        // committed before its answer was lost.
        let mut maybe_sent = false;
        loop {
            let last_error = if self.is_leader() {
                match self.append_here(leaf.clone()).await {
                    Err(e) if matches!(*e, EngineError::NotLeader(_)) => e,
                    Ok(AppendOutcome::Duplicate { index }) if maybe_sent => {
                        return self.own_duplicate(index, &leaf).await.map_err(Arc::new);
                    }
                    other => return other,
                }
            } else {
                maybe_sent = true;
                match self.forward(cluster, &leaf).await {
                    Ok(AppendOutcome::Duplicate { index }) => {
                        return self.own_duplicate(index, &leaf).await.map_err(Arc::new);
                    }
                    Ok(outcome) => return Ok(outcome),
                    Err(e @ EngineError::Forward(ForwardError::Refused { .. })) => {
                        return Err(Arc::new(e));
                    }
                    Err(e) => Arc::new(e),
                }
            };
            if Instant::now() >= deadline {
                return Err(Arc::new(EngineError::WriterUnavailable(format!(
                    "no leader for log {} answered within {FORWARD_DEADLINE:?}: {last_error}",
                    self.inner.name
                ))));
            }
            tokio::time::sleep(FORWARD_RETRY).await;
        }
    }

    /// One attempt at the leader the database names.
    async fn forward(
        &self,
        cluster: &Cluster,
        leaf: &NewLeaf,
    ) -> Result<AppendOutcome, EngineError> {
        let cached = self
            .inner
            .leader_url
            .read()
            .expect("leader url lock")
            .clone();
        let url = match cached {
            Some(url) => url,
            None => self
                .inner
                .store
                .leader(self.inner.log_id)
                .await?
                .ok_or_else(|| EngineError::NotLeader(self.inner.name.clone()))?,
        };
        if url == cluster.advertise_url() {
            // The database still names this node, which no longer (or not yet) holds the lock.
            *self.inner.leader_url.write().expect("leader url lock") = None;
            return Err(EngineError::NotLeader(self.inner.name.clone()));
        }
        let sent = tokio::select! {
            sent = cluster.forward(&url, &self.inner.name, leaf) => sent,
            // A leader cut off from the network answers nothing, and its answer could take
            // as long as the forward timeout. Once the database names another leader the old
            // one cannot commit any more, so the entry is either in the log already (the
            // retry finds it as this submission's own duplicate) or nowhere.
            moved_to = self.leader_moved_from(&url) => Err(ForwardError::Retry {
                url: url.clone(),
                reason: format!("leadership moved to {moved_to} while waiting for an answer"),
            }),
        };
        match sent {
            Ok(outcome) => {
                *self.inner.leader_url.write().expect("leader url lock") = Some(url);
                if let AppendOutcome::New(a) = &outcome {
                    // The leader committed this head before answering: reads here may use it.
                    self.observe_head(a.tree_head);
                }
                Ok(outcome)
            }
            Err(e) => {
                *self.inner.leader_url.write().expect("leader url lock") = None;
                Err(e.into())
            }
        }
    }

    /// Resolves when the database names a leader other than `url`. A node records itself
    /// there only after taking the log's lock, which PostgreSQL grants only once the previous
    /// holder's session has ended: from then on `url` can commit nothing more.
    async fn leader_moved_from(&self, url: &str) -> String {
        loop {
            tokio::time::sleep(FOLLOW_INTERVAL).await;
            if let Ok(Some(now)) = self.inner.store.leader(self.inner.log_id).await
                && now != url
            {
                return now;
            }
        }
    }

    /// A duplicate found after a retry: if the stored entry carries this leaf's own timestamp
    /// it is this submission, committed by a leader that died before answering, and the
    /// caller gets it as appended (with a proof at the committed head). Another submitter's
    /// identical entry stays a duplicate.
    async fn own_duplicate(
        &self,
        index: u64,
        leaf: &NewLeaf,
    ) -> Result<AppendOutcome, EngineError> {
        let duplicate = AppendOutcome::Duplicate { index };
        let Some(head) = self.inner.store.tree_head(self.inner.log_id).await? else {
            return Ok(duplicate);
        };
        if index >= head.size {
            return Ok(duplicate);
        }
        let Some(stored) = self
            .inner
            .store
            .entries(self.inner.log_id, index, index + 1)
            .await?
            .pop()
        else {
            return Ok(duplicate);
        };
        if stored.timestamp_ms != leaf.timestamp_ms || stored.leaf != leaf.leaf {
            return Ok(duplicate);
        }
        self.observe_head(head);
        let proof = self
            .range_hashes(&inclusion_ranges(index, head.size)?)
            .await?;
        Ok(AppendOutcome::New(Appended {
            index,
            leaf_hash: stored.leaf_hash,
            tree_head: head,
            inclusion_proof: proof,
        }))
    }

    /// Moves the cached head forward (never back) to one committed by another node.
    fn observe_head(&self, head: TreeHead) {
        self.inner.advance_head(head);
    }

    /// Sequences one leaf on this node; a node that does not hold the log's lock answers
    /// `NotLeader`.
    pub async fn append_here(&self, leaf: NewLeaf) -> Result<AppendOutcome, Arc<EngineError>> {
        if !self.is_leader() {
            return Err(Arc::new(EngineError::NotLeader(self.inner.name.clone())));
        }
        let leaf_hash = leaf_hash(&leaf.leaf);
        if let Some(ahead) = &self.inner.read_ahead
            && ahead.index_cold.load(Ordering::Relaxed)
        {
            // Full means the reader is far behind: this one is left to the writer.
            let _ = ahead.hints.try_send(leaf_hash);
        }
        let (reply, rx) = oneshot::channel();
        self.inner
            .queue
            .send(Submission {
                leaf,
                leaf_hash,
                reply,
            })
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

    /// The newest checkpoint with witness cosignatures any node of this log recorded.
    pub async fn cosigned_checkpoint(&self) -> Result<Option<(u64, String)>, EngineError> {
        Ok(self
            .inner
            .store
            .cosigned_checkpoint(self.inner.log_id)
            .await?)
    }

    pub async fn record_cosigned(&self, size: u64, checkpoint: &str) -> Result<(), EngineError> {
        Ok(self
            .inner
            .store
            .record_cosigned(self.inner.log_id, size, checkpoint)
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

    /// One page of a search (see `Store::search`): entries below `before` (and below the
    /// current head) matching any term group, or every group when `all`, newest first.
    pub async fn search(
        &self,
        groups: &[Vec<String>],
        all: bool,
        before: u64,
        limit: u64,
    ) -> Result<Vec<(u64, Hash)>, EngineError> {
        let keys: Vec<(String, i32)> = groups
            .iter()
            .enumerate()
            .flat_map(|(g, keys)| keys.iter().map(move |k| (k.clone(), g as i32)))
            .collect();
        let min_groups = if all { groups.len() as i64 } else { 1 };
        let before = before.min(self.tree_head().size);
        Ok(self
            .inner
            .store
            .search(self.inner.log_id, &keys, min_groups, before, limit)
            .await?)
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

/// Bytes this process has had read from storage (`read_bytes` in `/proc/self/io`): page
/// cache hits do not count, so it tells a look-up that went to the disk from one that did
/// not, which timing cannot on a busy machine (a cached look-up waiting for a core takes as
/// long as a disk read). None where the kernel does not count; the read-ahead then stays off.
fn disk_read_bytes() -> Option<u64> {
    read_bytes_in(&std::fs::read_to_string("/proc/self/io").ok()?)
}

fn read_bytes_in(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Leaf hashes the read-ahead looks up without a disk read before it stops: enough that a
/// partly evicted index (a few pages in a hundred missing) keeps it going, few enough that a
/// false start (another reader's disk read) costs a fraction of a second.
const READ_AHEAD_UNTIL_CLEAN: usize = 1024;

/// Whether the read-ahead should go on after a look-up of `n` hashes.
#[derive(Default)]
struct CleanRun {
    hashes: usize,
}

impl CleanRun {
    fn go_on(&mut self, n: usize, read_disk: bool) -> bool {
        self.hashes = if read_disk { 0 } else { self.hashes + n };
        if self.hashes >= READ_AHEAD_UNTIL_CLEAN {
            self.hashes = 0;
            return false;
        }
        true
    }
}

/// The read-ahead's side of a log: where submitters send leaf hashes, and whether the
/// pages the duplicate check reads are missing from the page cache (only then is it worth a
/// query).
struct ReadAhead {
    hints: mpsc::Sender<Hash>,
    index_cold: Arc<AtomicBool>,
}

/// Looks up, on a reader connection, the leaf hashes of submissions as they arrive, ahead of
/// the writer, and throws the answers away (only the writer's look-up, inside its transaction,
/// is safe to act on). What it buys is the pages the writer's duplicate check reads in the OS
/// page cache by the time it asks: on SQLite the run pages a leaf hash's probes land on
/// (`leaf_index`; before leaf hashes moved into the runs, a B-tree over random keys of 500 MB
/// at 10M), which hosts evict when rarely touched, and the one writer would otherwise wait on
/// the disk for each while every submitter waits on the writer. This task waits instead,
/// beside it.
///
/// It runs only while look-ups go to the disk: the writer turns it on when its own look-up
/// read the disk, and it turns itself off after READ_AHEAD_UNTIL_CLEAN hashes found without
/// one. On a cached log its queries only take CPU from the requests (a version that always
/// read ahead wrote 5-10 % slower on a cached log). Submissions it has not reached are read by
/// the writer, as without it. PostgreSQL, with its own buffers, runs without it.
async fn read_ahead(
    store: Store,
    log_id: i64,
    log_name: String,
    mut hints: mpsc::Receiver<Hash>,
    index_cold: Arc<AtomicBool>,
) {
    let mut group = Vec::with_capacity(MAX_BATCH);
    let mut clean = CleanRun::default();
    // Everything queued since the last look-up, in one query.
    while hints.recv_many(&mut group, MAX_BATCH).await > 0 {
        if !index_cold.load(Ordering::Relaxed) {
            group.clear();
            continue;
        }
        let started = Instant::now();
        let before = disk_read_bytes();
        // Skipped when every reader is busy, so that reads never queue behind this; a failure
        // costs only speed.
        match store.read_leaves_ahead(log_id, &group).await {
            Ok(true) => {
                let read_disk = disk_read_bytes() > before;
                if !clean.go_on(group.len(), read_disk) {
                    index_cold.store(false, Ordering::Relaxed);
                    tracing::debug!(log = %log_name, "leaf-hash look-ups found the page cache; no more reading ahead");
                    metrics::gauge!("sigil_log_read_ahead_active", "log" => log_name.clone())
                        .set(0.0);
                }
                metrics::histogram!("sigil_log_read_ahead_seconds", "log" => log_name.clone())
                    .record(started.elapsed().as_secs_f64());
            }
            Ok(false) => {
                metrics::counter!("sigil_log_read_ahead_skipped_total", "log" => log_name.clone())
                    .increment(1)
            }
            Err(e) => {
                tracing::debug!(log = %log_name, error = %e, "reading leaf hashes ahead failed")
            }
        }
        group.clear();
    }
}

struct Sequencer {
    /// SQLite: set when this writer's duplicate check went to the disk ([`read_ahead`]).
    index_cold: Option<Arc<AtomicBool>>,
    // Weak: when every LogEngine handle is gone the queue closes and the sequencer ends
    // after finishing what it holds.
    inner: std::sync::Weak<Inner>,
    // Keeps the pool (and SQLite's lock file) alive until the last batch is written, even
    // after every LogEngine handle is gone.
    store: Store,
    log_id: i64,
    tree_id: i64,
    log_name: String,
    /// None after a failure, until `recover` takes a new one.
    writer: Option<Writer>,
    frontier: Frontier,
    head_file: Option<HeadFile>,
    cluster: Option<Cluster>,
    /// When the last try to take a writer failed (or found the lock held elsewhere).
    recovery_failed_at: Option<Instant>,
}

/// A follower's view of the head: what the leader last committed.
async fn follow_head(store: Store, log_id: i64, log_name: String, inner: std::sync::Weak<Inner>) {
    match store.tree_head(log_id).await {
        Ok(Some(head)) => {
            if let Some(inner) = inner.upgrade() {
                inner.advance_head(head);
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(log = %log_name, error = %e, "reading the head failed"),
    }
}

impl Sequencer {
    async fn run(mut self, mut rx: mpsc::Receiver<Submission>) {
        let mut batch: Vec<Submission> = Vec::with_capacity(MAX_BATCH);
        loop {
            if self.writer.is_none() {
                // Without a writer, keep trying to get one even when nobody writes, so that
                // readiness comes back by itself. A follower also keeps its head fresh.
                let interval = match self.cluster {
                    Some(_) => FOLLOW_INTERVAL,
                    None => RECOVERY_INTERVAL,
                };
                match tokio::time::timeout(interval, rx.recv_many(&mut batch, MAX_BATCH)).await {
                    Err(_) => {
                        // Side by side, not one after the other: against a silent database
                        // each waits out the 5 s bound, and writes queue behind both.
                        if self.cluster.is_some() {
                            let follow = follow_head(
                                self.store.clone(),
                                self.log_id,
                                self.log_name.clone(),
                                self.inner.clone(),
                            );
                            tokio::join!(follow, self.try_recover());
                        } else {
                            self.try_recover().await;
                        }
                        continue;
                    }
                    Ok(0) => break,
                    Ok(_) => {}
                }
            } else {
                // An idle writer is checked now and then, so that a connection the database
                // dropped (a restart) shows in /readyz and is replaced before the next write.
                match tokio::time::timeout(
                    WRITER_CHECK_INTERVAL,
                    rx.recv_many(&mut batch, MAX_BATCH),
                )
                .await
                {
                    Err(_) => {
                        self.check_writer().await;
                        continue;
                    }
                    Ok(0) => break,
                    Ok(_) => {}
                }
            }
            // `recv_many` took whatever queued while the previous batch was committing.
            self.process(std::mem::take(&mut batch)).await;
        }
        tracing::info!(log = %self.log_name, "sequencer stopped");
    }

    fn set_fault(&self, fault: Option<String>) {
        if let Some(inner) = self.inner.upgrade() {
            *inner.writer_fault.write().expect("fault lock") = fault;
        }
        metrics::gauge!("sigil_log_writer_up", "log" => self.log_name.clone())
            .set(if self.writer.is_some() { 1.0 } else { 0.0 });
    }

    /// After a failed read or commit the connection may be dead (a restarted database) or
    /// the transaction may even have committed with the acknowledgement lost: drop it, and
    /// let `recover` start again from what the database holds.
    fn break_writer(&mut self, error: &dyn std::fmt::Display) {
        if let Some(writer) = self.writer.take() {
            Store::discard_writer(writer);
        }
        tracing::error!(log = %self.log_name, error = %error, "writer failed; nothing in this batch acknowledged; reconnecting");
        self.set_fault(Some(error.to_string()));
    }

    async fn check_writer(&mut self) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        if let Err(e) = on_writer(Store::ping_writer(writer)).await {
            self.break_writer(&e);
        }
    }

    fn set_leader(&self, leader: bool) {
        if let Some(inner) = self.inner.upgrade() {
            let was = inner.leader.swap(leader, Ordering::AcqRel);
            if was != leader {
                *inner.leader_url.write().expect("leader url lock") = None;
                tracing::warn!(
                    log = %self.log_name,
                    size = self.frontier.size(),
                    "{}",
                    if leader { "this node now sequences the log" } else { "another node sequences the log; following it" }
                );
            }
        }
        metrics::gauge!("sigil_log_leader", "log" => self.log_name.clone()).set(if leader {
            1.0
        } else {
            0.0
        });
    }

    /// Whether a batch has a writer. Right after a failed try, within the interval the
    /// sequencer retries on anyway, the batch is answered from that try instead of making
    /// another: against a silent database each try waits out the 5 s connect bound, and
    /// writes that queued behind one failed try would otherwise wait out a second (seen in
    /// the partition test: 9.5 s).
    async fn writer_for_batch(&mut self) -> bool {
        if self.writer.is_some() {
            return true;
        }
        let interval = match self.cluster {
            Some(_) => FOLLOW_INTERVAL,
            None => RECOVERY_INTERVAL,
        };
        if self
            .recovery_failed_at
            .is_some_and(|at| at.elapsed() < interval)
        {
            return false;
        }
        self.try_recover().await
    }

    async fn try_recover(&mut self) -> bool {
        let result = self.recover().await;
        self.recovery_failed_at = result.is_err().then(Instant::now);
        match result {
            Ok(()) => {
                tracing::info!(log = %self.log_name, size = self.frontier.size(), "writer reconnected");
                self.set_fault(None);
                if self.cluster.is_some() {
                    self.set_leader(true);
                }
                true
            }
            // In a cluster, a lock held elsewhere is the normal state of a follower.
            Err(EngineError::Store(StoreError::Locked(_))) if self.cluster.is_some() => {
                self.set_leader(false);
                self.set_fault(None);
                false
            }
            Err(e) => {
                tracing::warn!(log = %self.log_name, error = %e, "writer still unavailable");
                self.set_fault(Some(e.to_string()));
                false
            }
        }
    }

    /// Takes a new writer (and, on PostgreSQL, the log's lock again), reloads the head, and
    /// goes on only if the database holds the tree this sequencer built, or extends it (a
    /// commit whose acknowledgement was lost).
    async fn recover(&mut self) -> Result<(), EngineError> {
        let writer = self.store.writer(self.log_id, &self.log_name).await?;
        let ours = self.frontier.size();
        let frontier = load_frontier(&self.store, self.log_id).await?;
        let diverged = |reason: String| EngineError::Diverged {
            log: self.log_name.clone(),
            reason,
        };
        if frontier.size() < ours {
            Store::discard_writer(writer);
            return Err(diverged(format!(
                "the database came back with {} entries, but this server already committed {ours}",
                frontier.size()
            )));
        }
        let root_then = root_at(&self.store, self.log_id, ours).await?;
        if root_then != self.frontier.root() {
            Store::discard_writer(writer);
            return Err(diverged(format!(
                "the database's tree at size {ours} has root {} but this server committed root {}",
                hex::encode(root_then),
                hex::encode(self.frontier.root())
            )));
        }
        if let Some(cluster) = &self.cluster
            && let Err(e) = self
                .store
                .set_leader(self.log_id, cluster.advertise_url(), now_ms())
                .await
        {
            // Unannounced, no other node could forward here: let the lock go again.
            Store::discard_writer(writer);
            return Err(e.into());
        }
        let head = frontier_head(&frontier, now_ms());
        if let Some(file) = &self.head_file {
            let (file, tree_id) = (file.clone(), self.tree_id);
            blocking_write(file, tree_id, head)
                .await
                .map_err(head_record_unavailable)?;
        }
        self.frontier = frontier;
        self.writer = Some(writer);
        if let Some(inner) = self.inner.upgrade() {
            inner.advance_head(head);
        }
        Ok(())
    }

    async fn process(&mut self, batch: Vec<Submission>) {
        let started = Instant::now();
        if !self.writer_for_batch().await {
            if self.cluster.is_some()
                && self
                    .inner
                    .upgrade()
                    .is_some_and(|i| !i.leader.load(Ordering::Acquire))
            {
                // The callers forward these to the leader.
                return fail_all(batch, EngineError::NotLeader(self.log_name.clone()));
            }
            let fault = self
                .inner
                .upgrade()
                .and_then(|i| i.writer_fault.read().expect("fault lock").clone())
                .unwrap_or_else(|| "no writer".into());
            return fail_all(batch, EngineError::WriterUnavailable(fault));
        }
        let Some(writer) = self.writer.as_mut() else {
            return fail_all(batch, EngineError::WriterUnavailable("no writer".into()));
        };
        let hashes: Vec<Hash> = batch.iter().map(|s| s.leaf_hash).collect();
        // Measured only while the read-ahead is off: once on, it decides when to stop.
        let read_before = self
            .index_cold
            .as_ref()
            .filter(|cold| !cold.load(Ordering::Relaxed))
            .and_then(|_| disk_read_bytes());
        let existing = match on_writer(Store::existing_leaves(writer, self.log_id, &hashes)).await {
            Ok(e) => e,
            // Nothing is written yet, so after a failed read the batch can safely go to a new
            // writer once: a connection dropped while idle costs no request an error.
            Err(e) => {
                self.break_writer(&e);
                let retried = match self.try_recover().await {
                    true => match self.writer.as_mut() {
                        Some(w) => on_writer(Store::existing_leaves(w, self.log_id, &hashes)).await,
                        None => Err(e),
                    },
                    false => Err(e),
                };
                match retried {
                    Ok(e) => e,
                    Err(e) => {
                        self.break_writer(&e);
                        return fail_all(batch, e);
                    }
                }
            }
        };
        let existing: HashMap<Hash, u64> = existing.into_iter().collect();
        // Read by this process from the disk (not the page cache) during the look-up: the
        // writer's, mostly, though a reader's at the same time counts too (it costs at most a
        // trial of the read-ahead).
        if let (Some(cold), Some(before), Some(after)) =
            (&self.index_cold, read_before, disk_read_bytes())
            && after > before
            && !cold.swap(true, Ordering::Relaxed)
        {
            tracing::debug!(log = %self.log_name, "leaf-hash look-ups read the disk; reading ahead");
            metrics::gauge!("sigil_log_read_ahead_active", "log" => self.log_name.clone()).set(1.0);
        }

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
            let committed = match self.writer.as_mut() {
                Some(writer) => on_writer(Store::commit_batch(writer, write)).await,
                None => Err(EngineError::WriterUnavailable("no writer".into())),
            };
            // The head is recorded outside the database before anyone can see it.
            let recorded = match (&committed, &self.head_file) {
                (Ok(()), Some(file)) => blocking_write(file.clone(), self.tree_id, head)
                    .await
                    .map_err(head_record_unavailable),
                _ => Ok(()),
            };
            if let Err(e) = committed.and(recorded) {
                self.break_writer(&e);
                let err = Arc::new(e);
                for r in replies {
                    let _ = r.send(Err(err.clone()));
                }
                return;
            }
            self.frontier = frontier;
            if let Some(inner) = self.inner.upgrade() {
                inner.advance_head(head);
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
        // After the answers, so a step delays the next batch and never this one.
        self.maintain_indexes().await;
    }

    /// One step of index upkeep ([`Store::maintain_indexes`]). A failed step rolled back and
    /// is tried again after the next batch; the connection is replaced in case it was the
    /// cause (or was abandoned mid-statement by the deadline).
    async fn maintain_indexes(&mut self) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let started = Instant::now();
        match on_writer(Store::maintain_indexes(writer)).await {
            Ok(Some(step)) => {
                metrics::histogram!("sigil_log_index_step_seconds", "step" => step)
                    .record(started.elapsed().as_secs_f64());
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(log = %self.log_name, error = %e, "search index upkeep failed; tried again after the next batch");
                if let Some(writer) = self.writer.take() {
                    Store::discard_writer(writer);
                }
            }
        }
    }
}

enum Fate {
    New(u64, Hash),
    Duplicate(u64),
}

async fn load_frontier(store: &Store, log_id: i64) -> Result<Frontier, EngineError> {
    let head = store.tree_head(log_id).await?.unwrap_or(TreeHead {
        size: 0,
        root: sigil_proto::merkle::EMPTY_ROOT,
        timestamp_ms: 0,
    });
    let hashes = store.nodes(log_id, &Frontier::node_ids(head.size)).await?;
    let frontier = Frontier::from_nodes(head.size, hashes);
    if frontier.root() != head.root {
        return Err(EngineError::RootMismatch {
            stored: hex::encode(head.root),
            computed: hex::encode(frontier.root()),
        });
    }
    Ok(frontier)
}

fn frontier_head(frontier: &Frontier, timestamp_ms: u64) -> TreeHead {
    TreeHead {
        size: frontier.size(),
        root: frontier.root(),
        timestamp_ms,
    }
}

/// The root of the stored tree at `size` (which the database must hold).
async fn root_at(store: &Store, log_id: i64, size: u64) -> Result<Hash, EngineError> {
    let hashes = store.nodes(log_id, &Frontier::node_ids(size)).await?;
    Ok(fold_range(&hashes))
}

/// Start-up check: the database must hold the head this server last recorded, or extend it.
async fn check_recorded_head(
    store: &Store,
    log_id: i64,
    tree_id: i64,
    name: &str,
    frontier: &Frontier,
    file: &HeadFile,
) -> Result<(), EngineError> {
    let Some(recorded) = file.read()? else {
        return Ok(());
    };
    let diverged = |reason: String| EngineError::Diverged {
        log: name.to_string(),
        reason,
    };
    let path = file.path().display();
    if recorded.tree_id != tree_id {
        return Err(diverged(format!(
            "the database holds tree {tree_id}, but {path} records that this server wrote tree {}; \
             is this the right database?",
            recorded.tree_id
        )));
    }
    if frontier.size() < recorded.size {
        return Err(diverged(format!(
            "the database holds {} entries, but {path} records that this server committed {} \
             (root {}) and may have published checkpoints for them. A restored backup or a \
             promoted asynchronous replica lost entries; writing now would reissue their indexes \
             and fork the log. Restore the lost entries, or see docs/security.md",
            frontier.size(),
            recorded.size,
            hex::encode(recorded.root)
        )));
    }
    let root = root_at(store, log_id, recorded.size).await?;
    if root != recorded.root {
        return Err(diverged(format!(
            "the database's tree at size {} has root {}, but {path} records root {}: the \
             database holds a different history (a fork). See docs/security.md",
            recorded.size,
            hex::encode(root),
            hex::encode(recorded.root)
        )));
    }
    Ok(())
}

/// A head record that cannot be written (a full disk) is a storage outage like any other:
/// the batch is not acknowledged, the client may retry, and the writer recovers when it can
/// write again. The path stays in the server's log, not in the client's answer.
fn head_record_unavailable(e: EngineError) -> EngineError {
    match e {
        EngineError::HeadFile(HeadFileError::Io { source, .. }) => {
            tracing::error!(error = %source, "recording the committed head failed");
            EngineError::WriterUnavailable(format!(
                "the committed head could not be recorded: {source}"
            ))
        }
        other => other,
    }
}

async fn blocking_write(file: HeadFile, tree_id: i64, head: TreeHead) -> Result<(), EngineError> {
    tokio::task::spawn_blocking(move || file.write(tree_id, &head))
        .await
        .map_err(|e| EngineError::WriterUnavailable(format!("head file writer panicked: {e}")))?
        .map_err(EngineError::from)
}

fn fail_all(batch: Vec<Submission>, e: EngineError) {
    if !matches!(e, EngineError::NotLeader(_)) {
        tracing::error!(error = %e, "batch failed before writing");
    }
    let e = Arc::new(e);
    for s in batch {
        let _ = s.reply.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod read_ahead_tests {
    use super::*;

    #[test]
    fn read_bytes_come_from_their_own_line() {
        let io = "rchar: 6976\nwchar: 0\nsyscr: 10\nsyscw: 0\nread_bytes: 40960\nwrite_bytes: 0\ncancelled_write_bytes: 0\n";
        assert_eq!(read_bytes_in(io), Some(40960));
        assert_eq!(read_bytes_in("rchar: 1\n"), None);
        // This platform's own counter, where it exists, parses.
        if std::path::Path::new("/proc/self/io").exists() {
            assert!(disk_read_bytes().is_some());
        }
    }

    #[test]
    fn reading_ahead_stops_only_after_enough_hashes_without_a_disk_read() {
        let mut clean = CleanRun::default();
        for _ in 0..(READ_AHEAD_UNTIL_CLEAN / 30) {
            assert!(clean.go_on(30, false));
        }
        // One disk read starts the count again.
        assert!(clean.go_on(30, true));
        for _ in 0..(READ_AHEAD_UNTIL_CLEAN / 30) {
            assert!(clean.go_on(30, false));
        }
        assert!(
            !clean.go_on(30, false),
            "past {READ_AHEAD_UNTIL_CLEAN} clean hashes"
        );
        // And a later start begins from nothing.
        assert!(clean.go_on(1, false));
    }

    fn leaf(i: usize) -> NewLeaf {
        NewLeaf {
            leaf: format!("entry {i}").into_bytes(),
            extra: Vec::new(),
            timestamp_ms: 1,
            index_keys: Vec::new(),
        }
    }

    /// With the read-ahead running (as after a look-up that read the disk), appends and
    /// duplicates come out as without it, and on an index that is all in the page cache (this
    /// small log, just written) it turns itself off.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_read_ahead_changes_no_answer_and_stops_on_a_cached_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(None, dir.path()).await.unwrap();
        let log = LogEngine::open(store, "rekor").await.unwrap();
        let ahead = log.inner.read_ahead.as_ref().expect("SQLite reads ahead");
        assert!(!ahead.index_cold.load(Ordering::Relaxed), "off at start");
        ahead.index_cold.store(true, Ordering::Relaxed);
        let cold = ahead.index_cold.clone();
        let stopped = tokio::spawn(async move {
            while cold.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });

        let n = 3 * READ_AHEAD_UNTIL_CLEAN;
        let appends = (0..n).map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(leaf(i)).await })
        });
        let mut indexes = Vec::new();
        for a in appends {
            match a.await.unwrap().unwrap() {
                AppendOutcome::New(a) => indexes.push(a.index),
                AppendOutcome::Duplicate { index } => panic!("entry at {index} counted twice"),
            }
        }
        indexes.sort_unstable();
        assert_eq!(indexes, (0..n as u64).collect::<Vec<_>>());
        for i in [0, n / 2, n - 1] {
            let AppendOutcome::Duplicate { index } = log.append(leaf(i)).await.unwrap() else {
                panic!("entry {i} appended twice");
            };
            assert_eq!(log.entry(index).await.unwrap().unwrap().leaf, leaf(i).leaf);
        }
        // Stopped at some point: a page the test binary faults in from the disk can turn it on
        // again (this process's reads count), so its final state proves nothing.
        tokio::time::timeout(std::time::Duration::from_secs(10), stopped)
            .await
            .expect("the read-ahead kept going over cached look-ups")
            .unwrap();
    }
}
