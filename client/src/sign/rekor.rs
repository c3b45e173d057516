//! Writing entries to a Rekor v1 log: the proposed entries and `POST /api/v1/log/entries`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigil_proto::dsse::Envelope;
use sigil_proto::rekor_v1::{ApiError, LogEntry, LogEntryMap};

#[derive(Debug, thiserror::Error)]
pub enum RekorError {
    #[error("cannot reach the transparency log at {0}: {1}")]
    Transport(String, String),
    #[error("transparency log {url} rejected the entry (HTTP {status}): {message}")]
    Rejected {
        url: String,
        status: u16,
        message: String,
    },
    #[error("transparency log response is not a single LogEntry: {0}")]
    BadResponse(String),
}

/// hashedrekord 0.0.1 for a SHA-256 digest, signed by the key or certificate in `signer_pem`.
pub fn hashedrekord_entry(digest: &[u8; 32], signature: &[u8], signer_pem: &str) -> Value {
    json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "signature": {
                "content": STANDARD.encode(signature),
                "publicKey": {"content": STANDARD.encode(signer_pem)}
            },
            "data": {"hash": {"algorithm": "sha256", "value": hex::encode(digest)}}
        }
    })
}

/// dsse 0.0.1: the envelope travels as a JSON string, verified by `signer_pem`.
pub fn dsse_entry(envelope: &Envelope, signer_pem: &str) -> Value {
    let envelope_json = serde_json::to_string(envelope).unwrap_or_default();
    json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "proposedContent": {
                "envelope": envelope_json,
                "verifiers": [STANDARD.encode(signer_pem)]
            }
        }
    })
}

/// The created entry and its UUID (the map key Rekor returns).
#[derive(Clone, Debug)]
pub struct CreatedEntry {
    pub entry_id: String,
    pub entry: LogEntry,
}

impl CreatedEntry {
    /// The 64-hex UUID (leaf hash) without the tree-ID prefix.
    pub fn uuid(&self) -> &str {
        let id = self.entry_id.as_str();
        if id.len() == 80 { &id[16..] } else { id }
    }
}

/// Parses a `201 {entryID: LogEntry}` body.
pub fn parse_created(body: &[u8]) -> Result<CreatedEntry, RekorError> {
    let map: LogEntryMap =
        serde_json::from_slice(body).map_err(|e| RekorError::BadResponse(e.to_string()))?;
    let mut entries = map.into_iter();
    match (entries.next(), entries.next()) {
        (Some((entry_id, entry)), None) => Ok(CreatedEntry { entry_id, entry }),
        _ => Err(RekorError::BadResponse(
            "expected exactly one entry in the response".into(),
        )),
    }
}

pub async fn submit(
    http: &reqwest::Client,
    rekor_url: &str,
    proposed: &Value,
) -> Result<CreatedEntry, RekorError> {
    let url = format!("{}/api/v1/log/entries", rekor_url.trim_end_matches('/'));
    let response = http
        .post(&url)
        .json(proposed)
        .send()
        .await
        .map_err(|e| RekorError::Transport(url.clone(), e.to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| RekorError::Transport(url.clone(), e.to_string()))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ApiError>(&body)
            .map(|e| e.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(300).collect());
        return Err(RekorError::Rejected {
            url,
            status: status.as_u16(),
            message,
        });
    }
    parse_created(&body)
}
