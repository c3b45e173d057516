//! The transparency log entry: which trusted log it claims, its Merkle inclusion proof, the
//! signed checkpoint the proof ends in, and (Rekor v1) the signed entry timestamp.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sigil_proto::bundle::TransparencyLogEntry;
use sigil_proto::checkpoint::{Checkpoint, SignedNote};
use sigil_proto::merkle::{self, Hash};
use sigil_proto::rekor_v1::set_payload;
use sigil_proto::trust::TransparencyLogInstance;
use time::OffsetDateTime;

use super::keys::PublicKey;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlogError {
    #[error("log entry is from a transparency log that is not in the trusted root (log id {0})")]
    UnknownLog(String),
    #[error("trusted root key for log {0} is unusable: {1}")]
    BadLogKey(String, String),
    #[error("log entry has no inclusion proof")]
    MissingInclusionProof,
    #[error("inclusion proof has no checkpoint")]
    MissingCheckpoint,
    #[error("inclusion proof is for index {proof} but the entry is at index {entry}")]
    IndexMismatch { entry: u64, proof: u64 },
    #[error("inclusion proof hashes must be 32 bytes")]
    BadHashLength,
    #[error("inclusion proof does not lead to the claimed root: {0}")]
    InclusionProof(merkle::MerkleError),
    #[error("checkpoint is malformed: {0}")]
    MalformedCheckpoint(String),
    #[error(
        "checkpoint (size {cp_size}) does not match the inclusion proof (size {proof_size}) or its root hash"
    )]
    CheckpointMismatch { cp_size: u64, proof_size: u64 },
    #[error("checkpoint has no signature from the log's key (key hint {0})")]
    NoLogSignature(String),
    #[error("checkpoint signature from the log's key does not verify")]
    BadCheckpointSignature,
    #[error("signed entry timestamp does not verify")]
    BadSignedEntryTimestamp,
    #[error("log key is not valid at {0} according to the trusted root")]
    KeyNotValid(OffsetDateTime),
}

/// The trusted log that produced `entry`, with its parsed key.
pub fn find_log<'a>(
    tlogs: &'a [TransparencyLogInstance],
    entry: &TransparencyLogEntry,
) -> Result<(&'a TransparencyLogInstance, PublicKey), TlogError> {
    let log = tlogs
        .iter()
        .find(|l| l.log_id.key_id == entry.log_id.key_id)
        .ok_or_else(|| TlogError::UnknownLog(hex::encode(&entry.log_id.key_id)))?;
    let key = log
        .public_key
        .raw_bytes
        .as_deref()
        .ok_or_else(|| TlogError::BadLogKey(log.base_url.clone(), "no key bytes".into()))
        .and_then(|der| {
            PublicKey::from_spki_der(der)
                .map_err(|e| TlogError::BadLogKey(log.base_url.clone(), e.to_string()))
        })?;
    Ok((log, key))
}

pub fn check_key_validity(
    log: &TransparencyLogInstance,
    t: OffsetDateTime,
) -> Result<(), TlogError> {
    match &log.public_key.valid_for {
        Some(range) if !range.contains(t) => Err(TlogError::KeyNotValid(t)),
        _ => Ok(()),
    }
}

fn to_hash(bytes: &[u8]) -> Result<Hash, TlogError> {
    bytes.try_into().map_err(|_| TlogError::BadHashLength)
}

/// Merkle inclusion of the canonicalized body, then the checkpoint: same tree, and signed
/// by the log's key (selected by the 4-byte key hint; other signers such as witnesses are
/// ignored).
pub fn verify_inclusion(
    entry: &TransparencyLogEntry,
    log_key: &PublicKey,
) -> Result<(), TlogError> {
    let proof = entry
        .inclusion_proof
        .as_ref()
        .ok_or(TlogError::MissingInclusionProof)?;
    let root = to_hash(&proof.root_hash)?;
    let hashes: Vec<Hash> = proof
        .hashes
        .iter()
        .map(|h| to_hash(h))
        .collect::<Result<_, _>>()?;
    // Rekor v2 has no shards, so the proof must be for the entry's own index.
    let rekor_v2 = entry.kind_version.version == "0.0.2"
        && matches!(entry.kind_version.kind.as_str(), "hashedrekord" | "dsse");
    if rekor_v2 && proof.log_index != entry.log_index {
        return Err(TlogError::IndexMismatch {
            entry: entry.log_index,
            proof: proof.log_index,
        });
    }
    let leaf = merkle::leaf_hash(&entry.canonicalized_body);
    merkle::verify_inclusion(&leaf, proof.log_index, proof.tree_size, &hashes, &root)
        .map_err(TlogError::InclusionProof)?;

    let checkpoint = proof
        .checkpoint
        .as_ref()
        .ok_or(TlogError::MissingCheckpoint)?;
    let note = SignedNote::parse(&checkpoint.envelope)
        .map_err(|e| TlogError::MalformedCheckpoint(e.to_string()))?;
    if checkpoint.envelope.matches("\n\n").count() != 1 {
        return Err(TlogError::MalformedCheckpoint(
            "expected exactly one blank line".into(),
        ));
    }
    let cp =
        Checkpoint::parse(&note.text).map_err(|e| TlogError::MalformedCheckpoint(e.to_string()))?;
    if cp.root_hash != root || cp.size != proof.tree_size {
        return Err(TlogError::CheckpointMismatch {
            cp_size: cp.size,
            proof_size: proof.tree_size,
        });
    }
    let hint = entry.log_id.key_id.get(..4).unwrap_or_default();
    let mut candidates = note
        .signatures
        .iter()
        .filter(|s| s.key_hint == hint)
        .peekable();
    if candidates.peek().is_none() {
        return Err(TlogError::NoLogSignature(hex::encode(hint)));
    }
    let verified = candidates.any(|s| {
        log_key
            .verify(log_key.default_hash(), note.text.as_bytes(), &s.signature)
            .is_ok()
    });
    if verified {
        Ok(())
    } else {
        Err(TlogError::BadCheckpointSignature)
    }
}

/// Verifies the Rekor v1 signed entry timestamp and returns the integrated time it vouches for.
pub fn verify_set(
    entry: &TransparencyLogEntry,
    set: &[u8],
    log_key: &PublicKey,
) -> Result<OffsetDateTime, TlogError> {
    let payload = set_payload(
        &STANDARD.encode(&entry.canonicalized_body),
        entry.integrated_time,
        &hex::encode(&entry.log_id.key_id),
        entry.log_index,
    );
    log_key
        .verify(log_key.default_hash(), &payload, set)
        .map_err(|_| TlogError::BadSignedEntryTimestamp)?;
    OffsetDateTime::from_unix_timestamp(entry.integrated_time)
        .map_err(|_| TlogError::BadSignedEntryTimestamp)
}
