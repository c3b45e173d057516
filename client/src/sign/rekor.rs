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
        // The ID is the log's to choose: an 80-byte one that is not ASCII may have no
        // character boundary at 16, and slicing there would panic.
        match id.get(16..) {
            Some(uuid) if id.len() == 80 => uuid,
            _ => id,
        }
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

/// Attempts for one submission: transport failures and 5xx/429 answers are retried, which is
/// safe because a repeated entry comes back as 409 and is then fetched.
const ATTEMPTS: u32 = 3;

/// Submits `proposed`; if the log already holds an equivalent entry (409), that entry is
/// fetched and returned instead, so a retried or repeated submission still yields a bundle.
pub async fn submit(
    http: &reqwest::Client,
    rekor_url: &str,
    proposed: &Value,
) -> Result<CreatedEntry, RekorError> {
    let base = rekor_url.trim_end_matches('/');
    let url = format!("{base}/api/v1/log/entries");
    let mut attempt = 1;
    loop {
        let result = post_once(http, &url, proposed).await;
        let retryable = match &result {
            Err(RekorError::Transport(..)) => true,
            Err(RekorError::Rejected { status, .. }) => *status >= 500 || *status == 429,
            _ => false,
        };
        if !retryable || attempt >= ATTEMPTS {
            return match result {
                Ok(Posted::Created(entry)) => Ok(entry),
                Ok(Posted::Exists(uuid)) => fetch(http, base, &uuid).await,
                Err(e) => Err(e),
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt))).await;
        attempt += 1;
    }
}

enum Posted {
    Created(CreatedEntry),
    /// 409 with the existing entry's ID (the last segment of `Location`).
    Exists(String),
}

async fn post_once(
    http: &reqwest::Client,
    url: &str,
    proposed: &Value,
) -> Result<Posted, RekorError> {
    let response = http
        .post(url)
        .json(proposed)
        .send()
        .await
        .map_err(|e| RekorError::Transport(url.to_string(), e.to_string()))?;
    let status = response.status();
    let existing = (status == reqwest::StatusCode::CONFLICT)
        .then(|| response.headers().get(reqwest::header::LOCATION))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|loc| loc.rsplit('/').next())
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let body = response
        .bytes()
        .await
        .map_err(|e| RekorError::Transport(url.to_string(), e.to_string()))?;
    if let Some(id) = existing {
        return Ok(Posted::Exists(id));
    }
    if !status.is_success() {
        return Err(rejected(url, status, &body));
    }
    parse_created(&body).map(Posted::Created)
}

fn rejected(url: &str, status: reqwest::StatusCode, body: &[u8]) -> RekorError {
    let message = serde_json::from_slice::<ApiError>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(300).collect());
    RekorError::Rejected {
        url: url.to_string(),
        status: status.as_u16(),
        message,
    }
}

/// `GET <rekor>/api/v1/log/entries/<id>`: the entry in the same shape as a creation answer.
pub async fn fetch(
    http: &reqwest::Client,
    rekor_url: &str,
    entry_id: &str,
) -> Result<CreatedEntry, RekorError> {
    let url = format!(
        "{}/api/v1/log/entries/{entry_id}",
        rekor_url.trim_end_matches('/')
    );
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| RekorError::Transport(url.clone(), e.to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| RekorError::Transport(url.clone(), e.to_string()))?;
    if !status.is_success() {
        return Err(rejected(&url, status, &body));
    }
    parse_created(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reproduced with the fuzz/ `bundle` target (Rekor `201` responses): an 80-byte entry ID
    // with a multi-byte character across byte 16 panicked.
    #[test]
    fn uuid_of_a_non_ascii_entry_id_is_the_whole_id_not_a_panic() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rekor-v1-created.json"
        ))
        .unwrap();
        let mut created = parse_created(&body).unwrap();
        assert_eq!(created.uuid(), &created.entry_id[16..]);
        created.entry_id = format!("{}é{}", "a".repeat(15), "b".repeat(63));
        assert_eq!(created.entry_id.len(), 80);
        assert_eq!(created.uuid(), created.entry_id);
    }
}
