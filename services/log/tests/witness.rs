//! The witness (C2SP tlog-witness) against real signed checkpoints on both stores: every
//! refusal the spec names, with its status, and a record that only moves forward from the
//! size a request names.

mod common;

use std::sync::Arc;

use sigil_log::witness::{Refusal, Witness, WitnessSigner, WitnessedLog};
use sigil_log::{LogSigner, Store};
use sigil_proto::checkpoint::{Checkpoint, NoteSignature, SignedNote};
use sigil_proto::merkle::{Hash, consistency_ranges, leaf_hash, root_of_leaf_hashes};
use sigil_proto::witness::{AddCheckpoint, cosigned_message, split_cosignature};

const ORIGIN: &str = "log.example - 42";

struct Log {
    key: Arc<LogSigner>,
    leaves: Vec<Hash>,
}

impl Log {
    fn new(prefix: &str, n: usize) -> Log {
        Log {
            key: Arc::new(LogSigner::generate()),
            leaves: (0..n)
                .map(|i| leaf_hash(format!("{prefix}{i}").as_bytes()))
                .collect(),
        }
    }

    fn checkpoint(&self, size: usize) -> String {
        let text = Checkpoint {
            origin: ORIGIN.into(),
            size: size as u64,
            root_hash: root_of_leaf_hashes(&self.leaves[..size]),
            extensions: Vec::new(),
        }
        .to_text();
        SignedNote {
            signatures: vec![NoteSignature {
                name: "log.example".into(),
                key_hint: self.key.key_id()[..4].try_into().unwrap(),
                signature: self.key.sign(text.as_bytes()),
            }],
            text,
        }
        .to_text()
    }

    fn proof(&self, old: usize, new: usize) -> Vec<Hash> {
        consistency_ranges(old as u64, new as u64)
            .unwrap()
            .into_iter()
            .map(|r| root_of_leaf_hashes(&self.leaves[r.start as usize..r.end as usize]))
            .collect()
    }

    fn request(&self, old: usize, new: usize) -> String {
        AddCheckpoint {
            old_size: old as u64,
            proof: if old == 0 || old >= new {
                Vec::new()
            } else {
                self.proof(old, new)
            },
            checkpoint: self.checkpoint(new),
        }
        .to_body()
    }
}

fn witness(log: &Log, store: Store, dir: &std::path::Path) -> Witness {
    let signer = WitnessSigner::load_or_create(&dir.join("witness.pem"), "witness.test/w").unwrap();
    let key = sigil_keys::PublicKey::from_spki_der(log.key.spki_der()).unwrap();
    Witness::new(signer, vec![WitnessedLog::new(ORIGIN, key)], store)
}

async fn exercise(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new("entry-", 30);
    let w = witness(&log, store, dir.path());
    let status = |r: &Result<NoteSignature, Refusal>| match r {
        Ok(_) => 200,
        Err(Refusal::Bad(_)) => 400,
        Err(Refusal::Unsigned) => 403,
        Err(Refusal::UnknownLog(_)) => 404,
        Err(Refusal::Conflict(_)) => 409,
        Err(Refusal::Inconsistent) => 422,
        Err(Refusal::Store(e)) => panic!("store: {e}"),
    };

    // First sight: old 0, no proof. The cosignature verifies over the checkpoint text.
    let first = w.add_checkpoint(&log.request(0, 5)).await;
    let line = first.unwrap();
    let (ts, sig) = split_cosignature(w.vkey(), &line).unwrap();
    let note = SignedNote::parse(&log.checkpoint(5)).unwrap();
    let spki = [
        &[
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ][..],
        &w.vkey().key,
    ]
    .concat();
    sigil_keys::PublicKey::from_spki_der(&spki)
        .unwrap()
        .verify_default(&cosigned_message(ts, &note.text), &sig)
        .unwrap();

    // Old size other than the witness's: 409 with its size.
    match w.add_checkpoint(&log.request(0, 8)).await {
        Err(Refusal::Conflict(5)) => {}
        other => panic!("expected 409 with size 5, got {other:?}"),
    }
    // Forward with a proof: cosigned. The same checkpoint again: cosigned again.
    assert_eq!(status(&w.add_checkpoint(&log.request(5, 12)).await), 200);
    assert_eq!(status(&w.add_checkpoint(&log.request(12, 12)).await), 200);
    // A proof that does not hold: 422, and the record did not move.
    let mut bad = AddCheckpoint::parse(&log.request(12, 15)).unwrap();
    bad.proof[0][0] ^= 1;
    assert_eq!(status(&w.add_checkpoint(&bad.to_body()).await), 422);
    // Another history, signed by the log's own key, at a size already cosigned or growing
    // from it: refused.
    let forked = Log {
        key: log.key.clone(),
        leaves: log.leaves[..10]
            .iter()
            .copied()
            .chain((10..20).map(|i| leaf_hash(format!("fork-{i}").as_bytes())))
            .collect(),
    };
    assert_eq!(
        status(&w.add_checkpoint(&forked.request(12, 12)).await),
        409
    );
    assert_eq!(
        status(&w.add_checkpoint(&forked.request(12, 16)).await),
        422
    );
    let stranger = Log {
        key: Arc::new(LogSigner::generate()),
        leaves: log.leaves.clone(),
    };
    // Signed by another key: 403. Another origin: 404. Old above new, or junk: 400.
    assert_eq!(
        status(&w.add_checkpoint(&stranger.request(12, 16)).await),
        403
    );
    let other_origin = log.request(12, 16).replace(ORIGIN, "other.example - 1");
    assert_eq!(status(&w.add_checkpoint(&other_origin).await), 404);
    assert_eq!(status(&w.add_checkpoint(&log.request(16, 12)).await), 400);
    assert_eq!(status(&w.add_checkpoint("old 12\n").await), 400);
    // The honest log goes on from 12.
    assert_eq!(status(&w.add_checkpoint(&log.request(12, 20)).await), 200);
    // Two requests racing from one old size: one moves the record, the other is told where
    // it went; the record never goes back to the smaller size.
    let (small, large) = (log.request(20, 25), log.request(20, 30));
    let (a, b) = tokio::join!(w.add_checkpoint(&small), w.add_checkpoint(&large));
    let outcomes = [status(&a), status(&b)];
    assert!(
        outcomes == [200, 409] || outcomes == [409, 200],
        "{outcomes:?}"
    );
    let next = if status(&a) == 200 { 25 } else { 30 };
    assert_eq!(status(&w.add_checkpoint(&log.request(next, 30)).await), 200);
}

#[tokio::test]
async fn the_witness_follows_the_spec_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exercise(Store::open_sqlite(dir.path()).await.unwrap()).await;
}

#[tokio::test]
async fn the_witness_follows_the_spec_on_postgres() {
    let database = common::fresh_database().await;
    exercise(Store::open_postgres(&database).await.unwrap()).await;
}

/// The log's side: the cosigned checkpoint it keeps only moves to a larger tree, or to the
/// same checkpoint with more cosignatures.
async fn keep_cosigned(store: Store) {
    let engine = sigil_log::LogEngine::open(store, "rekor").await.unwrap();
    assert_eq!(engine.cosigned_checkpoint().await.unwrap(), None);
    let at_5 = "log - 1\n5\nroot\n\n— log sig\n— w1 sig\n";
    engine.record_cosigned(5, at_5).await.unwrap();
    let at_5_one_witness = "log - 1\n5\nroot\n\n— log sig\n";
    engine.record_cosigned(5, at_5_one_witness).await.unwrap();
    assert_eq!(
        engine.cosigned_checkpoint().await.unwrap(),
        Some((5, at_5.to_string()))
    );
    let at_5_two_witnesses = "log - 1\n5\nroot\n\n— log sig\n— w1 sig\n— w2 sig\n";
    engine.record_cosigned(5, at_5_two_witnesses).await.unwrap();
    engine.record_cosigned(3, "log - 1\n3\n...").await.unwrap();
    assert_eq!(
        engine.cosigned_checkpoint().await.unwrap(),
        Some((5, at_5_two_witnesses.to_string()))
    );
    engine.record_cosigned(8, "log - 1\n8\n...").await.unwrap();
    assert_eq!(engine.cosigned_checkpoint().await.unwrap().unwrap().0, 8);
}

#[tokio::test]
async fn the_log_keeps_its_newest_cosigned_checkpoint_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    keep_cosigned(Store::open_sqlite(dir.path()).await.unwrap()).await;
}

#[tokio::test]
async fn the_log_keeps_its_newest_cosigned_checkpoint_on_postgres() {
    let database = common::fresh_database().await;
    keep_cosigned(Store::open_postgres(&database).await.unwrap()).await;
}
