//! The Rekor log's side of witnessing: send each new checkpoint to the configured witnesses
//! (C2SP tlog-witness `add-checkpoint`, with a consistency proof from the size each witness
//! last cosigned), keep the cosignatures that verify, and serve the newest cosigned
//! checkpoint at `GET /api/v1/log/witnessed-checkpoint`.
//!
//! The cosignatures are not added to the checkpoints in entries and bundles: Rekor v1
//! verifiers (cosign, sigstore-go) require every signature line of a v1 checkpoint to come
//! from the log's key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sigil_proto::checkpoint::{NoteSignature, SignedNote};
use sigil_proto::witness::{AddCheckpoint, VerifierKey, cosigned_message, split_cosignature};

use crate::http::HttpError;
use crate::rekor_v1::RekorLog;

/// How often the log looks for a new checkpoint to send.
pub const COSIGN_INTERVAL: Duration = Duration::from_secs(1);

/// A witness the log asks for cosignatures: its submission prefix and verifier key.
#[derive(Clone, Debug)]
pub struct WitnessEndpoint {
    pub url: String,
    pub vkey: VerifierKey,
}

impl WitnessEndpoint {
    /// `VKEY@URL`, e.g. `witness.example/w1+1a2b3c4d+BK…@https://witness.example/witness`.
    pub fn parse(text: &str) -> Result<WitnessEndpoint, String> {
        // The URL starts after the first '@' past the key id: base64 has no '@'.
        let shape = "expected VKEY@URL (the witness's verifier key, '@', its URL)";
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(shape.into());
        };
        let (b64, url) = rest.split_once('@').ok_or(shape)?;
        let vkey = VerifierKey::parse(&format!("{name}+{id}+{b64}")).map_err(|e| e.to_string())?;
        if vkey.key_type != sigil_proto::witness::COSIGNATURE_ED25519 {
            return Err("a witness key has type 0x04 (tlog-cosignature Ed25519)".into());
        }
        Ok(WitnessEndpoint {
            url: url.trim_end_matches('/').to_string(),
            vkey,
        })
    }
}

/// Collects cosignatures for one log.
pub struct Cosigner {
    log: Arc<RekorLog>,
    witnesses: Vec<WitnessEndpoint>,
    http: reqwest::Client,
    /// Per witness, the size it last cosigned (as far as this node knows).
    known: Mutex<Vec<u64>>,
    /// The newest checkpoint with at least one verified cosignature.
    latest: Mutex<Option<(u64, Arc<str>)>>,
}

impl Cosigner {
    pub fn new(log: Arc<RekorLog>, witnesses: Vec<WitnessEndpoint>) -> Arc<Cosigner> {
        let n = witnesses.len();
        Arc::new(Cosigner {
            log,
            witnesses,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("TLS backend available"),
            known: Mutex::new(vec![0; n]),
            latest: Mutex::new(None),
        })
    }

    /// Sends each new checkpoint to the witnesses, forever, when this node sequences the log;
    /// on every node, serves the newest cosigned checkpoint recorded in the database.
    pub async fn run(self: Arc<Self>) {
        let mut done = None;
        loop {
            self.refresh().await;
            let head = self.log.engine().tree_head();
            // Followers leave the asking to the leader: their head lags, and two nodes asking
            // at once only earn each other 409s.
            if self.log.engine().is_leader() && done != Some(head.size) && self.round(&head).await {
                done = Some(head.size);
            }
            tokio::time::sleep(COSIGN_INTERVAL).await;
        }
    }

    /// Takes the database's cosigned checkpoint when it is at least as new as the one held.
    pub async fn refresh(&self) {
        match self.log.engine().cosigned_checkpoint().await {
            Ok(Some((size, note))) => self.hold(size, note.into()),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the cosigned checkpoint"),
        }
    }

    fn hold(&self, size: u64, note: Arc<str>) {
        let mut latest = self.latest.lock().expect("cosigner lock");
        if latest.as_ref().is_none_or(|(held, _)| *held <= size) {
            *latest = Some((size, note));
            metrics::gauge!("sigil_log_witnessed_size").set(size as f64);
        }
    }

    /// One round for `head`: true when every witness cosigned it.
    async fn round(&self, head: &crate::TreeHead) -> bool {
        let note_text = self.log.checkpoint(head).to_string();
        let Ok(mut note) = SignedNote::parse(&note_text) else {
            return false;
        };
        // Witnesses are few and each request is bounded by the client's timeout; asking
        // them in turn keeps a round simple.
        let mut cosigned: Vec<NoteSignature> = Vec::new();
        for (i, w) in self.witnesses.iter().enumerate() {
            if let Some(line) = self.ask(i, w, &note_text, &note.text, head.size).await {
                cosigned.push(line);
            }
        }
        let all = cosigned.len() == self.witnesses.len();
        if !cosigned.is_empty() {
            note.signatures.extend(cosigned);
            let text = note.to_text();
            if let Err(e) = self.log.engine().record_cosigned(head.size, &text).await {
                // Served from memory until a later round records one.
                tracing::warn!(error = %e, "cannot record the cosigned checkpoint");
            }
            self.hold(head.size, text.into());
        }
        all
    }

    /// Asks witness `i` to cosign; on a 409 it learns the witness's size and asks once more
    /// with a proof from there.
    async fn ask(
        &self,
        i: usize,
        witness: &WitnessEndpoint,
        checkpoint: &str,
        note_text: &str,
        size: u64,
    ) -> Option<NoteSignature> {
        for _ in 0..2 {
            let old = self.known.lock().expect("cosigner lock")[i];
            if old > size {
                // The witness has seen more of this log than this node's head: a follower
                // that is behind. Nothing to ask until it catches up.
                return None;
            }
            let proof = if old == 0 || old == size {
                Vec::new()
            } else {
                self.log.engine().consistency_proof(old, size).await.ok()?
            };
            let body = AddCheckpoint {
                old_size: old,
                proof,
                checkpoint: checkpoint.to_string(),
            }
            .to_body();
            let answer = self
                .http
                .post(format!("{}/add-checkpoint", witness.url))
                .body(body)
                .send()
                .await;
            let response = match answer {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(witness = %witness.url, error = %e, "witness unreachable");
                    return None;
                }
            };
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status == StatusCode::CONFLICT {
                let Ok(theirs) = text.trim_end().parse::<u64>() else {
                    tracing::warn!(witness = %witness.url, "witness answered 409 without a size");
                    return None;
                };
                if theirs == old {
                    // Same size, another root: the witness holds a different history.
                    tracing::error!(witness = %witness.url, size = theirs, "the witness cosigned another checkpoint of this size");
                    return None;
                }
                self.known.lock().expect("cosigner lock")[i] = theirs;
                continue;
            }
            if !status.is_success() {
                tracing::warn!(witness = %witness.url, %status, answer = %text.chars().take(200).collect::<String>(), "witness refused the checkpoint");
                return None;
            }
            let line = verified_cosignature(witness, note_text, &text);
            if line.is_some() {
                self.known.lock().expect("cosigner lock")[i] = size;
            } else {
                tracing::warn!(witness = %witness.url, "witness answered without a valid cosignature");
            }
            return line;
        }
        None
    }

    /// The newest checkpoint with its cosignatures, as a signed note.
    pub fn latest(&self) -> Option<Arc<str>> {
        self.latest
            .lock()
            .expect("cosigner lock")
            .as_ref()
            .map(|(_, n)| n.clone())
    }
}

/// The line of `answer` that is `witness`'s valid cosignature over `note_text`.
fn verified_cosignature(
    witness: &WitnessEndpoint,
    note_text: &str,
    answer: &str,
) -> Option<NoteSignature> {
    // Parse the answer as the signature block of the note it signs.
    let note = SignedNote::parse(&format!("{note_text}\n{answer}")).ok()?;
    note.signatures.into_iter().find(|line| {
        split_cosignature(&witness.vkey, line).is_some_and(|(ts, sig)| {
            aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::ED25519,
                witness.vkey.key,
            )
            .verify(&cosigned_message(ts, note_text), &sig)
            .is_ok()
        })
    })
}

/// `GET /api/v1/log/witnessed-checkpoint`.
pub fn router(cosigner: Arc<Cosigner>) -> Router {
    Router::new()
        .route(
            "/api/v1/log/witnessed-checkpoint",
            get(witnessed_checkpoint),
        )
        .with_state(cosigner)
}

async fn witnessed_checkpoint(State(cosigner): State<Arc<Cosigner>>) -> Response {
    match cosigner.latest() {
        Some(note) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            note.to_string(),
        )
            .into_response(),
        None => {
            HttpError::not_found("no checkpoint has been cosigned by a witness yet").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_proto::witness::COSIGNATURE_ED25519;

    #[test]
    fn witness_endpoints_split_key_and_url() {
        let mut key = [0xfb; 32];
        key[1] = 0xef;
        let vkey = VerifierKey::new("w@example/1", COSIGNATURE_ED25519, key);
        let text = format!("{}@https://w.example/witness/", vkey.to_text());
        let endpoint = WitnessEndpoint::parse(&text).unwrap();
        assert_eq!(endpoint.vkey, vkey);
        assert_eq!(endpoint.url, "https://w.example/witness");
        assert!(WitnessEndpoint::parse(&vkey.to_text()).is_err());
        let note_key = VerifierKey::new("n", sigil_proto::witness::NOTE_ED25519, key);
        assert!(WitnessEndpoint::parse(&format!("{}@http://x", note_key.to_text())).is_err());
    }
}
