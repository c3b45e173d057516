//! RFC 6962 §4 read API under `/ct/v1/`: `get-sth`, `get-sth-consistency`,
//! `get-proof-by-hash`, `get-entries`, `get-roots`. Submission happens in-process
//! ([`super::CtLog::add_pre_chain`]), so there is no `add-chain` endpoint.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::CtLog;
use crate::http::HttpError;

/// Most entries one `get-entries` call returns (clients page with `start`/`end`).
pub const MAX_ENTRIES_PER_REQUEST: u64 = 256;

pub fn router(ct: CtLog) -> Router {
    Router::new()
        .route("/ct/v1/get-sth", get(get_sth))
        .route("/ct/v1/get-sth-consistency", get(get_sth_consistency))
        .route("/ct/v1/get-proof-by-hash", get(get_proof_by_hash))
        .route("/ct/v1/get-entries", get(get_entries))
        .route("/ct/v1/get-roots", get(get_roots))
        .with_state(ct)
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GetSthResponse {
    pub tree_size: u64,
    pub timestamp: u64,
    pub sha256_root_hash: String,
    pub tree_head_signature: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GetSthConsistencyResponse {
    pub consistency: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GetProofByHashResponse {
    pub leaf_index: u64,
    pub audit_path: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeafEntry {
    pub leaf_input: String,
    pub extra_data: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GetEntriesResponse {
    pub entries: Vec<LeafEntry>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GetRootsResponse {
    pub certificates: Vec<String>,
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

async fn get_sth(State(ct): State<CtLog>) -> Result<Json<GetSthResponse>, HttpError> {
    let sth = ct.signed_tree_head().map_err(HttpError::internal)?;
    Ok(Json(GetSthResponse {
        tree_size: sth.tree_size,
        timestamp: sth.timestamp_ms,
        sha256_root_hash: STANDARD.encode(sth.root),
        tree_head_signature: STANDARD.encode(&sth.tree_head_signature),
    }))
}

async fn get_sth_consistency(
    State(ct): State<CtLog>,
    params: Params,
) -> Result<Json<GetSthConsistencyResponse>, HttpError> {
    let params = params_or_error(params)?;
    let first = u64_param(&params, "first")?;
    let second = u64_param(&params, "second")?;
    let current = ct.engine().tree_head().size;
    if first > second || second > current {
        return Err(HttpError::bad_request(format!(
            "need first <= second <= current tree size {current}"
        )));
    }
    // RFC 6962 defines no proof from the empty tree; an empty proof is the only sane answer.
    let proof = if first == 0 || first == second {
        Vec::new()
    } else {
        ct.engine().consistency_proof(first, second).await?
    };
    Ok(Json(GetSthConsistencyResponse {
        consistency: proof.iter().map(|h| STANDARD.encode(h)).collect(),
    }))
}

async fn get_proof_by_hash(
    State(ct): State<CtLog>,
    params: Params,
) -> Result<Json<GetProofByHashResponse>, HttpError> {
    let params = params_or_error(params)?;
    let tree_size = u64_param(&params, "tree_size")?;
    let hash_text = params
        .get("hash")
        .ok_or_else(|| HttpError::bad_request("missing parameter hash"))?;
    // A '+' that the client did not percent-encode arrives as a space.
    let hash: [u8; 32] = STANDARD
        .decode(hash_text.replace(' ', "+"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| HttpError::bad_request("hash must be a base64 SHA-256 leaf hash"))?;
    let current = ct.engine().tree_head().size;
    if tree_size == 0 || tree_size > current {
        return Err(HttpError::bad_request(format!(
            "tree_size must be in 1..={current}"
        )));
    }
    let index = ct
        .engine()
        .index_of_leaf_hash(&hash)
        .await?
        .filter(|i| *i < tree_size)
        .ok_or_else(|| HttpError::not_found("no entry with that leaf hash in the tree"))?;
    let proof = ct.engine().inclusion_proof(index, tree_size).await?;
    Ok(Json(GetProofByHashResponse {
        leaf_index: index,
        audit_path: proof.iter().map(|h| STANDARD.encode(h)).collect(),
    }))
}

async fn get_entries(
    State(ct): State<CtLog>,
    params: Params,
) -> Result<Json<GetEntriesResponse>, HttpError> {
    let params = params_or_error(params)?;
    let start = u64_param(&params, "start")?;
    let end = u64_param(&params, "end")?;
    let size = ct.engine().tree_head().size;
    if start > end || start >= size {
        return Err(HttpError::bad_request(format!(
            "need start <= end and start < tree size {size}"
        )));
    }
    // `end` is inclusive; clamp to the tree and to the page size like other CT logs do.
    let end_exclusive = end
        .saturating_add(1)
        .min(size)
        .min(start + MAX_ENTRIES_PER_REQUEST);
    let entries = ct.engine().entries(start, end_exclusive).await?;
    Ok(Json(GetEntriesResponse {
        entries: entries
            .into_iter()
            .map(|e| LeafEntry {
                leaf_input: STANDARD.encode(&e.leaf),
                extra_data: STANDARD.encode(&e.extra),
            })
            .collect(),
    }))
}

async fn get_roots(State(ct): State<CtLog>) -> Json<GetRootsResponse> {
    Json(GetRootsResponse {
        certificates: ct
            .accepted_roots()
            .iter()
            .map(|c| STANDARD.encode(c))
            .collect(),
    })
}

fn params_or_error(params: Params) -> Result<HashMap<String, String>, HttpError> {
    params
        .map(|Query(p)| p)
        .map_err(|e| HttpError::bad_request(format!("bad query string: {}", e.body_text())))
}

fn u64_param(params: &HashMap<String, String>, name: &str) -> Result<u64, HttpError> {
    params
        .get(name)
        .ok_or_else(|| HttpError::bad_request(format!("missing parameter {name}")))?
        .parse()
        .map_err(|_| {
            HttpError::bad_request(format!("parameter {name} must be a non-negative integer"))
        })
}
