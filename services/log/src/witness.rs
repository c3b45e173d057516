//! sigild as a witness (C2SP tlog-witness): `POST <prefix>/add-checkpoint` takes a log's
//! signed checkpoint with a consistency proof from the last checkpoint this witness cosigned
//! for that log, and answers with a tlog-cosignature/v1 line. The record of the last
//! cosigned checkpoint lives in the store and moves only from the size the request names, so
//! the witness never cosigns two histories of one log, nor one that went back.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sigil_keys::PublicKey;
use sigil_proto::checkpoint::{Checkpoint, NoteSignature, SignedNote};
use sigil_proto::merkle;
use sigil_proto::witness::{
    AddCheckpoint, COSIGNATURE_ED25519, NOTE_ED25519, SIZE_CONTENT_TYPE, VerifierKey,
    cosignature_line, cosigned_message,
};

use crate::Store;
use crate::http::{HttpError, body_or_error};
use crate::signer::{SignerError, load_or_create_pkcs8};

/// Largest `add-checkpoint` body: 63 proof lines and a checkpoint with a few signatures.
const BODY_LIMIT: usize = 16 * 1024;

/// The witness's Ed25519 key and the name it cosigns under.
pub struct WitnessSigner {
    key: Ed25519KeyPair,
    vkey: VerifierKey,
}

impl std::fmt::Debug for WitnessSigner {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WitnessSigner({})", self.vkey.to_text())
    }
}

impl WitnessSigner {
    /// Loads the Ed25519 key at `path`, or creates it there on first start.
    pub fn load_or_create(path: &Path, name: &str) -> Result<WitnessSigner, SignerError> {
        let der = load_or_create_pkcs8(path, || {
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .expect("aws-lc-rs generates Ed25519 keys")
                .as_ref()
                .to_vec()
        })?;
        let bad = || SignerError::BadKey(path.display().to_string());
        let key = Ed25519KeyPair::from_pkcs8(&der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der))
            .map_err(|_| bad())?;
        let raw: [u8; 32] = key.public_key().as_ref().try_into().map_err(|_| bad())?;
        Ok(WitnessSigner {
            vkey: VerifierKey::new(name, COSIGNATURE_ED25519, raw),
            key,
        })
    }

    /// The verifier key text logs and clients configure to trust this witness.
    pub fn vkey(&self) -> &VerifierKey {
        &self.vkey
    }

    /// A cosignature line over `checkpoint_text` at `timestamp` (POSIX seconds).
    pub fn cosign(&self, checkpoint_text: &str, timestamp: u64) -> NoteSignature {
        let signature = self.key.sign(&cosigned_message(timestamp, checkpoint_text));
        let bytes: [u8; 64] = signature
            .as_ref()
            .try_into()
            .expect("Ed25519 signatures are 64 bytes");
        cosignature_line(&self.vkey, timestamp, &bytes)
    }
}

/// A log this witness follows: its checkpoint origin and the key that signs its checkpoints.
#[derive(Debug)]
pub struct WitnessedLog {
    pub origin: String,
    key: PublicKey,
}

/// One entry of the witness's logs file (`--witness-logs`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogConfig {
    origin: String,
    /// PEM `PUBLIC KEY` (ECDSA, RSA or Ed25519) of the log's checkpoint key.
    public_key: String,
}

impl WitnessedLog {
    /// Parses the logs file: `{"logs": [{"origin": …, "publicKey": "<PEM>"}]}`.
    pub fn from_config(json: &[u8]) -> Result<Vec<WitnessedLog>, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            logs: Vec<LogConfig>,
        }
        let file: File = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        file.logs
            .into_iter()
            .map(|l| {
                let key = PublicKey::from_pem(&l.public_key)
                    .map_err(|e| format!("log {:?}: {e}", l.origin))?;
                Ok(WitnessedLog {
                    origin: l.origin,
                    key,
                })
            })
            .collect()
    }

    pub fn new(origin: &str, key: PublicKey) -> WitnessedLog {
        WitnessedLog {
            origin: origin.to_string(),
            key,
        }
    }

    /// Whether one of `note`'s signature lines is this log's: the key hint names its key
    /// (C2SP key id for Ed25519, the start of SHA-256 of the SPKI otherwise, as Rekor does)
    /// and the signature verifies. Lines from other keys are ignored.
    fn signed(&self, note: &SignedNote) -> bool {
        note.signatures.iter().any(|line| {
            let hint = match self.key.ed25519_raw() {
                Some(raw) => sigil_proto::witness::key_id(&line.name, NOTE_ED25519, raw),
                None => {
                    let full = Sha256::digest(self.key.spki_der());
                    [full[0], full[1], full[2], full[3]]
                }
            };
            line.key_hint == hint
                && self
                    .key
                    .verify_default(note.text.as_bytes(), &line.signature)
                    .is_ok()
        })
    }
}

/// The witness service.
pub struct Witness {
    signer: WitnessSigner,
    logs: Vec<WitnessedLog>,
    store: Store,
}

impl Witness {
    pub fn new(signer: WitnessSigner, logs: Vec<WitnessedLog>, store: Store) -> Witness {
        Witness {
            signer,
            logs,
            store,
        }
    }

    pub fn vkey(&self) -> &VerifierKey {
        self.signer.vkey()
    }

    /// Checks a request and, if it holds, records the checkpoint and cosigns it.
    pub async fn add_checkpoint(&self, body: &str) -> Result<NoteSignature, Refusal> {
        let request = AddCheckpoint::parse(body).map_err(|e| Refusal::Bad(e.to_string()))?;
        let note =
            SignedNote::parse(&request.checkpoint).map_err(|e| Refusal::Bad(e.to_string()))?;
        let checkpoint = Checkpoint::parse(&note.text).map_err(|e| Refusal::Bad(e.to_string()))?;
        let log = self
            .logs
            .iter()
            .find(|l| l.origin == checkpoint.origin)
            .ok_or_else(|| Refusal::UnknownLog(checkpoint.origin.clone()))?;
        if !log.signed(&note) {
            return Err(Refusal::Unsigned);
        }
        if request.old_size > checkpoint.size {
            return Err(Refusal::Bad(format!(
                "old size {} is larger than the checkpoint's {}",
                request.old_size, checkpoint.size
            )));
        }
        let known = self
            .store
            .witnessed(&log.origin)
            .await
            .map_err(Refusal::Store)?;
        let known_size = known.map_or(0, |(size, _)| size);
        if request.old_size != known_size {
            return Err(Refusal::Conflict(known_size));
        }
        match known {
            Some((size, root)) if size == checkpoint.size => {
                if root != checkpoint.root_hash {
                    tracing::warn!(origin = %log.origin, size, "a checkpoint with another root for a size already cosigned: the log forked");
                    metrics::counter!("sigil_witness_conflicts_total").increment(1);
                    return Err(Refusal::Conflict(size));
                }
            }
            _ => {
                let proven = match known {
                    // From nothing there is nothing to prove.
                    _ if request.old_size == 0 => request.proof.is_empty(),
                    Some((_, old_root)) => merkle::verify_consistency(
                        request.old_size,
                        checkpoint.size,
                        &old_root,
                        &checkpoint.root_hash,
                        &request.proof,
                    )
                    .is_ok(),
                    None => false,
                };
                if !proven {
                    tracing::warn!(origin = %log.origin, old = request.old_size, new = checkpoint.size, "a signed checkpoint that does not extend the one cosigned: the log forked or rewrote history");
                    metrics::counter!("sigil_witness_conflicts_total").increment(1);
                    return Err(Refusal::Inconsistent);
                }
                let moved = self
                    .store
                    .advance_witnessed(
                        &log.origin,
                        request.old_size,
                        checkpoint.size,
                        &checkpoint.root_hash,
                        &request.checkpoint,
                    )
                    .await
                    .map_err(Refusal::Store)?;
                if !moved {
                    let now = self
                        .store
                        .witnessed(&log.origin)
                        .await
                        .map_err(Refusal::Store)?;
                    return Err(Refusal::Conflict(now.map_or(0, |(s, _)| s)));
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        metrics::counter!("sigil_witness_cosignatures_total").increment(1);
        Ok(self.signer.cosign(&note.text, now))
    }
}

/// Why a checkpoint was not cosigned, with the status tlog-witness gives each reason.
#[derive(Debug)]
pub enum Refusal {
    Bad(String),
    UnknownLog(String),
    Unsigned,
    /// The old size is not the witness's (which is given), or the same size came with
    /// another root.
    Conflict(u64),
    Inconsistent,
    Store(crate::store::StoreError),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Bad(why) => HttpError::bad_request(why).into_response(),
            Refusal::UnknownLog(origin) => {
                HttpError::not_found(format!("this witness does not follow log {origin:?}"))
                    .into_response()
            }
            Refusal::Unsigned => HttpError::new(
                StatusCode::FORBIDDEN,
                "no signature on the checkpoint verifies with the log's key",
            )
            .into_response(),
            Refusal::Conflict(size) => (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
                format!("{size}\n"),
            )
                .into_response(),
            Refusal::Inconsistent => HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the consistency proof does not prove the checkpoint extends the one cosigned",
            )
            .into_response(),
            Refusal::Store(e) => {
                HttpError::unavailable(format!("witness storage: {e}")).into_response()
            }
        }
    }
}

/// `POST /witness/add-checkpoint`, and `GET /witness/vkey` (the key to configure).
pub fn router(witness: Arc<Witness>) -> Router {
    let routes = Router::new()
        .route("/witness/add-checkpoint", post(add_checkpoint))
        .route(
            "/witness/vkey",
            get(|State(w): State<Arc<Witness>>| async move { format!("{}\n", w.vkey().to_text()) }),
        );
    crate::http::limit_bodies(routes, BODY_LIMIT, crate::http::too_large).with_state(witness)
}

async fn add_checkpoint(
    State(witness): State<Arc<Witness>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body_or_error(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return HttpError::bad_request("request body is not UTF-8").into_response();
    };
    match witness.add_checkpoint(text).await {
        Ok(line) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            line.to_line(),
        )
            .into_response(),
        Err(refusal) => refusal.into_response(),
    }
}
