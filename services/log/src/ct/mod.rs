//! sigil's Certificate Transparency log (RFC 6962) for the CA's precertificates: a second
//! log on the shared engine whose leaves are `MerkleTreeLeaf`s for precert entries and
//! whose stored `extra` is the `PrecertChainEntry` served by `get-entries`.
//!
//! The CA calls [`CtLog::add_pre_chain`] in-process (no HTTP hop); the read API lives in
//! [`http`].

pub mod codec;
pub mod http;

use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use thiserror::Error;

pub use codec::Sct;

use crate::engine::{AppendOutcome, EngineError, LogEngine, NewLeaf, TreeHead, now_ms};
use crate::signer::LogSigner;

#[derive(Debug, Error)]
pub enum CtError {
    #[error("the chain must hold the precertificate and at least its issuer")]
    ShortChain,
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    #[error("appending to the CT log failed: {0}")]
    Append(#[source] Arc<EngineError>),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A signed tree head in RFC 6962 terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTreeHead {
    pub tree_size: u64,
    pub timestamp_ms: u64,
    pub root: [u8; 32],
    /// TLS `DigitallySigned` over [`codec::tree_head_signed_data`].
    pub tree_head_signature: Vec<u8>,
}

/// The CT log: cheap to clone.
#[derive(Clone)]
pub struct CtLog {
    inner: Arc<Inner>,
}

struct Inner {
    engine: LogEngine,
    signer: LogSigner,
    /// DER roots served by `get-roots`; the CA registers its root when it opens.
    roots: RwLock<Vec<Vec<u8>>>,
}

impl CtLog {
    pub fn new(engine: LogEngine, signer: LogSigner) -> CtLog {
        CtLog {
            inner: Arc::new(Inner {
                engine,
                signer,
                roots: RwLock::new(Vec::new()),
            }),
        }
    }

    pub fn engine(&self) -> &LogEngine {
        &self.inner.engine
    }

    /// RFC 6962 log ID: SHA-256 of the log key's SPKI DER.
    pub fn log_id(&self) -> [u8; 32] {
        self.inner.signer.key_id()
    }

    pub fn public_key_spki_der(&self) -> &[u8] {
        self.inner.signer.spki_der()
    }

    /// Registers a root (DER) this log accepts chains to; idempotent.
    pub fn add_accepted_root(&self, root_der: Vec<u8>) {
        let mut roots = self.inner.roots.write().expect("roots lock poisoned");
        if !roots.contains(&root_der) {
            roots.push(root_der);
        }
    }

    pub fn accepted_roots(&self) -> Vec<Vec<u8>> {
        self.inner
            .roots
            .read()
            .expect("roots lock poisoned")
            .clone()
    }

    /// Logs a precertificate and returns its SCT once the entry is durable.
    ///
    /// `tbs_without_poison` is the precertificate's TBSCertificate with the poison extension
    /// removed (what the final certificate's TBS will be minus the SCT list);
    /// `issuer_spki_der` is the issuing CA's key; `chain` = [precert, issuer, ..., root]
    /// (DER), stored as the entry's `extra_data`.
    pub async fn add_pre_chain(
        &self,
        tbs_without_poison: &[u8],
        issuer_spki_der: &[u8],
        chain: Vec<Vec<u8>>,
    ) -> Result<Sct, CtError> {
        let (precert, rest) = chain.split_first().ok_or(CtError::ShortChain)?;
        if rest.is_empty() {
            return Err(CtError::ShortChain);
        }
        let issuer_key_hash: [u8; 32] = Sha256::digest(issuer_spki_der).into();
        let timestamp_ms = now_ms();
        let leaf = codec::precert_leaf(timestamp_ms, &issuer_key_hash, tbs_without_poison, &[])?;
        let extra = codec::precert_chain_entry(precert, rest)?;
        let outcome = self
            .inner
            .engine
            .append(NewLeaf {
                leaf,
                extra,
                timestamp_ms,
                index_keys: Vec::new(),
            })
            .await
            .map_err(CtError::Append)?;
        if let AppendOutcome::Duplicate { index } = outcome {
            // The leaf embeds our timestamp, so an identical one is the same submission
            // (same TBS, same millisecond); its SCT below is equally valid.
            tracing::debug!(index, "precertificate already in the CT log");
        }
        let signed =
            codec::precert_signed_data(timestamp_ms, &issuer_key_hash, tbs_without_poison, &[])?;
        Ok(Sct {
            log_id: self.log_id(),
            timestamp_ms,
            extensions: Vec::new(),
            hash_algorithm: codec::HASH_SHA256,
            signature_algorithm: codec::SIG_ECDSA,
            signature: self.inner.signer.sign(&signed),
        })
    }

    /// Signs the latest durable tree head.
    pub fn signed_tree_head(&self) -> Result<SignedTreeHead, CtError> {
        let TreeHead {
            size,
            root,
            timestamp_ms,
        } = self.inner.engine.tree_head();
        // An empty log has never committed; its head is "now" so the STH is still fresh.
        let timestamp_ms = if size == 0 { now_ms() } else { timestamp_ms };
        let data = codec::tree_head_signed_data(timestamp_ms, size, &root);
        let sig = self.inner.signer.sign(&data);
        Ok(SignedTreeHead {
            tree_size: size,
            timestamp_ms,
            root,
            tree_head_signature: codec::digitally_signed(
                codec::HASH_SHA256,
                codec::SIG_ECDSA,
                &sig,
            )?,
        })
    }
}

#[cfg(test)]
mod tests;
