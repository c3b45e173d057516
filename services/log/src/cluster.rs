//! Several sigild on one PostgreSQL database. Each log is sequenced by the node holding its
//! advisory lock (the engine takes it); that node records its URL in `log_leaders`. Every
//! other node serves reads from the database and forwards appends to the leader over
//! `POST /internal/v1/logs/{log}/append`, authenticated by a secret kept in the database.
//! The forwarded leaf is the one the follower validated; the leader only sequences it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sigil_proto::merkle::Hash;

use crate::engine::{AppendOutcome, Appended, EngineError, LogEngine, NewLeaf, TreeHead};
use crate::http::{HttpError, body_or_error};

/// The header a forwarding node authenticates with.
const SECRET_HEADER: &str = "x-sigil-cluster-secret";
/// A leaf is at most 64 KiB; its base64, extra data and search keys fit well inside this.
const BODY_LIMIT: usize = 512 * 1024;

/// What a node needs to take part: where the others reach it, and the shared secret.
#[derive(Clone)]
pub struct Cluster {
    advertise_url: String,
    secret: Arc<[u8]>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Cluster")
            .field("advertise_url", &self.advertise_url)
            .finish_non_exhaustive()
    }
}

/// Why a forward did not give an outcome.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The leader is gone, changing, or busy: look it up again and retry.
    #[error("leader at {url} unavailable: {reason}")]
    Retry { url: String, reason: String },
    /// The leader refused the leaf itself; retrying cannot help.
    #[error("leader at {url} refused the entry ({status}): {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
}

impl Cluster {
    pub fn new(advertise_url: &str, secret: Vec<u8>) -> Cluster {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client with default TLS settings");
        Cluster {
            advertise_url: advertise_url.trim_end_matches('/').to_string(),
            secret: secret.into(),
            http,
        }
    }

    pub fn advertise_url(&self) -> &str {
        &self.advertise_url
    }

    /// Sends `leaf` to the leader at `leader_url` and waits for its durable outcome.
    pub async fn forward(
        &self,
        leader_url: &str,
        log: &str,
        leaf: &NewLeaf,
    ) -> Result<AppendOutcome, ForwardError> {
        let retry = |reason: String| ForwardError::Retry {
            url: leader_url.to_string(),
            reason,
        };
        let body = WireLeaf {
            leaf: STANDARD.encode(&leaf.leaf),
            extra: STANDARD.encode(&leaf.extra),
            timestamp_ms: leaf.timestamp_ms.to_string(),
            index_keys: leaf.index_keys.clone(),
        };
        let resp = self
            .http
            .post(format!("{leader_url}/internal/v1/logs/{log}/append"))
            .header(SECRET_HEADER, hex::encode(&self.secret))
            .json(&body)
            .send()
            .await
            .map_err(|e| retry(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| retry(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            // 421: that node is not (or no longer) the leader; 5xx: it is failing or busy.
            return if status == StatusCode::MISDIRECTED_REQUEST || status.is_server_error() {
                Err(retry(format!("{status}: {message}")))
            } else {
                Err(ForwardError::Refused {
                    url: leader_url.to_string(),
                    status: status.as_u16(),
                    message,
                })
            };
        }
        let outcome: WireOutcome =
            serde_json::from_slice(&bytes).map_err(|e| retry(format!("unreadable answer: {e}")))?;
        outcome
            .into_outcome()
            .map_err(|e| retry(format!("unreadable answer: {e}")))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| hex::decode(v).ok())
        else {
            return false;
        };
        aws_lc_rs::constant_time::verify_slices_are_equal(&given, &self.secret).is_ok()
    }
}

/// The internal route, for the logs this node runs.
pub fn router(cluster: Cluster, engines: Vec<LogEngine>) -> Router {
    let engines: HashMap<String, LogEngine> = engines
        .into_iter()
        .map(|e| (e.name().to_string(), e))
        .collect();
    let routes = Router::new().route("/internal/v1/logs/{log}/append", post(append));
    crate::http::limit_bodies(routes, BODY_LIMIT, crate::http::too_large)
        .with_state(Arc::new((cluster, engines)))
}

type ClusterState = Arc<(Cluster, HashMap<String, LogEngine>)>;

async fn append(
    State(state): State<ClusterState>,
    Path(log): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let (cluster, engines) = &*state;
    if !cluster.authorized(&headers) {
        return Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "forwarded writes need this cluster's secret",
        ));
    }
    let engine = engines
        .get(&log)
        .ok_or_else(|| HttpError::not_found(format!("no log named {log:?} on this node")))?;
    let body = body_or_error(body)?;
    let wire: WireLeaf = serde_json::from_slice(&body)
        .map_err(|e| HttpError::bad_request(format!("not a forwarded leaf: {e}")))?;
    let leaf = wire
        .into_leaf()
        .map_err(|e| HttpError::bad_request(format!("not a forwarded leaf: {e}")))?;
    // Sequenced here or nowhere: a node that lost the lock says so and the sender looks again.
    match engine.append_here(leaf).await {
        Ok(outcome) => Ok(axum::Json(WireOutcome::from(outcome)).into_response()),
        Err(e) if matches!(*e, EngineError::NotLeader(_)) => Err(HttpError::new(
            StatusCode::MISDIRECTED_REQUEST,
            e.to_string(),
        )),
        Err(e) => Err(e.into()),
    }
}

// u64s as strings, bytes as base64: the same rules as every other JSON sigil speaks.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireLeaf {
    leaf: String,
    extra: String,
    timestamp_ms: String,
    index_keys: Vec<String>,
}

impl WireLeaf {
    fn into_leaf(self) -> Result<NewLeaf, String> {
        Ok(NewLeaf {
            leaf: STANDARD
                .decode(self.leaf)
                .map_err(|e| format!("leaf: {e}"))?,
            extra: STANDARD
                .decode(self.extra)
                .map_err(|e| format!("extra: {e}"))?,
            timestamp_ms: self
                .timestamp_ms
                .parse()
                .map_err(|e| format!("timestampMs: {e}"))?,
            index_keys: self.index_keys,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireOutcome {
    /// Set for an entry that was already in the log.
    duplicate: bool,
    index: String,
    #[serde(default)]
    leaf_hash: String,
    #[serde(default)]
    tree_size: String,
    #[serde(default)]
    root_hash: String,
    #[serde(default)]
    timestamp_ms: String,
    #[serde(default)]
    inclusion_proof: Vec<String>,
}

impl From<AppendOutcome> for WireOutcome {
    fn from(outcome: AppendOutcome) -> WireOutcome {
        match outcome {
            AppendOutcome::Duplicate { index } => WireOutcome {
                duplicate: true,
                index: index.to_string(),
                leaf_hash: String::new(),
                tree_size: String::new(),
                root_hash: String::new(),
                timestamp_ms: String::new(),
                inclusion_proof: Vec::new(),
            },
            AppendOutcome::New(a) => WireOutcome {
                duplicate: false,
                index: a.index.to_string(),
                leaf_hash: hex::encode(a.leaf_hash),
                tree_size: a.tree_head.size.to_string(),
                root_hash: hex::encode(a.tree_head.root),
                timestamp_ms: a.tree_head.timestamp_ms.to_string(),
                inclusion_proof: a.inclusion_proof.iter().map(hex::encode).collect(),
            },
        }
    }
}

impl WireOutcome {
    fn into_outcome(self) -> Result<AppendOutcome, String> {
        let number = |s: &str, what: &str| s.parse::<u64>().map_err(|e| format!("{what}: {e}"));
        let hash = |s: &str| -> Result<Hash, String> {
            hex::decode(s)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("not a hash: {s:?}"))
        };
        let index = number(&self.index, "index")?;
        if self.duplicate {
            return Ok(AppendOutcome::Duplicate { index });
        }
        Ok(AppendOutcome::New(Appended {
            index,
            leaf_hash: hash(&self.leaf_hash)?,
            tree_head: TreeHead {
                size: number(&self.tree_size, "treeSize")?,
                root: hash(&self.root_hash)?,
                timestamp_ms: number(&self.timestamp_ms, "timestampMs")?,
            },
            inclusion_proof: self
                .inclusion_proof
                .iter()
                .map(|h| hash(h))
                .collect::<Result<_, _>>()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_survive_the_wire() {
        let new = AppendOutcome::New(Appended {
            index: 41,
            leaf_hash: [7; 32],
            tree_head: TreeHead {
                size: 42,
                root: [9; 32],
                timestamp_ms: 1_700_000_000_000,
            },
            inclusion_proof: vec![[1; 32], [2; 32]],
        });
        let json = serde_json::to_string(&WireOutcome::from(new.clone())).unwrap();
        let back: WireOutcome = serde_json::from_str(&json).unwrap();
        assert_eq!(
            format!("{:?}", back.into_outcome().unwrap()),
            format!("{new:?}")
        );
        let dup = WireOutcome::from(AppendOutcome::Duplicate { index: 3 });
        assert!(matches!(
            dup.into_outcome().unwrap(),
            AppendOutcome::Duplicate { index: 3 }
        ));
    }

    #[test]
    fn the_secret_is_checked_and_never_printed() {
        let cluster = Cluster::new("http://10.0.0.1:3000/", vec![0xab; 32]);
        assert_eq!(cluster.advertise_url(), "http://10.0.0.1:3000");
        let mut headers = HeaderMap::new();
        assert!(!cluster.authorized(&headers));
        headers.insert(SECRET_HEADER, hex::encode([0xab; 31]).parse().unwrap());
        assert!(!cluster.authorized(&headers));
        headers.insert(SECRET_HEADER, hex::encode([0xab; 32]).parse().unwrap());
        assert!(cluster.authorized(&headers));
        assert!(!format!("{cluster:?}").contains("abab"));
    }
}
