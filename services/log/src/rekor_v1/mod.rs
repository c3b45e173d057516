//! The Rekor v1 REST personality (interop doc §3): what sigstore-python, sigstore-js and
//! cosign write to and read from.

pub mod entries;
pub mod keys;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sigil_proto::checkpoint::{Checkpoint, NoteSignature, SignedNote};
use sigil_proto::merkle::Hash;
use sigil_proto::rekor_v1::{
    ConsistencyProof, InclusionProof, LogEntry, LogEntryMap, LogInfo, ProposedEntry,
    RetrieveRequest, SearchIndexRequest, Verification, set_payload,
};

use crate::engine::{AppendOutcome, LogEngine, NewLeaf, TreeHead, now_ms};
use crate::http::{HttpError, body_or_error, parse_json};
use crate::signer::LogSigner;
use crate::work::{WorkError, WorkPool};

/// A Rekor v1 log: the engine plus the key and names that make its checkpoints.
pub struct RekorLog {
    engine: LogEngine,
    signer: Arc<LogSigner>,
    /// Host of the public URL: checkpoint key name and first half of the origin.
    host: String,
    base_url: String,
    latest_checkpoint: Mutex<Option<(u64, Arc<str>)>>,
    /// Where submissions are checked (signature verification is CPU work).
    work: WorkPool,
}

impl RekorLog {
    pub fn new(engine: LogEngine, signer: Arc<LogSigner>, public_url: &str) -> RekorLog {
        let base_url = public_url.trim_end_matches('/').to_string();
        let host = url_host(&base_url);
        RekorLog {
            engine,
            signer,
            host,
            base_url,
            latest_checkpoint: Mutex::new(None),
            work: WorkPool::default(),
        }
    }

    /// Checks submissions in `pool` (shared with the other services of the process).
    pub fn with_work_pool(mut self, pool: WorkPool) -> RekorLog {
        self.work = pool;
        self
    }

    pub fn engine(&self) -> &LogEngine {
        &self.engine
    }

    pub fn signer(&self) -> &LogSigner {
        &self.signer
    }

    pub fn origin(&self) -> String {
        format!("{} - {}", self.host, self.engine.tree_id())
    }

    pub fn log_id_hex(&self) -> String {
        hex::encode(self.signer.key_id())
    }

    /// The signed checkpoint for a tree head; the newest one is cached because every
    /// response in a batch names the same head.
    pub fn checkpoint(&self, head: &TreeHead) -> Arc<str> {
        if let Some((size, text)) = self
            .latest_checkpoint
            .lock()
            .expect("checkpoint lock")
            .as_ref()
            && *size == head.size
        {
            return text.clone();
        }
        let body = Checkpoint {
            origin: self.origin(),
            size: head.size,
            root_hash: head.root,
            extensions: Vec::new(),
        }
        .to_text();
        let signature = self.signer.sign(body.as_bytes());
        let note = SignedNote {
            text: body,
            signatures: vec![NoteSignature {
                name: self.host.clone(),
                key_hint: self.signer.key_id()[..4].try_into().expect("4 bytes"),
                signature,
            }],
        };
        let text: Arc<str> = note.to_text().into();
        let mut cache = self.latest_checkpoint.lock().expect("checkpoint lock");
        if cache.as_ref().is_none_or(|(size, _)| *size <= head.size) {
            *cache = Some((head.size, text.clone()));
        }
        text
    }

    fn entry_id(&self, leaf_hash: &Hash) -> String {
        format!("{:016x}{}", self.engine.tree_id(), hex::encode(leaf_hash))
    }

    fn log_entry(
        &self,
        body: &[u8],
        timestamp_ms: u64,
        index: u64,
        head: &TreeHead,
        proof: &[Hash],
    ) -> LogEntry {
        let body_b64 = STANDARD.encode(body);
        let integrated_time = (timestamp_ms / 1000) as i64;
        let log_id = self.log_id_hex();
        let set = self
            .signer
            .sign(&set_payload(&body_b64, integrated_time, &log_id, index));
        LogEntry {
            body: body_b64,
            integrated_time,
            log_id,
            log_index: index,
            verification: Verification {
                inclusion_proof: InclusionProof {
                    checkpoint: self.checkpoint(head).to_string(),
                    hashes: proof.iter().map(hex::encode).collect(),
                    log_index: index,
                    root_hash: hex::encode(head.root),
                    tree_size: head.size,
                },
                signed_entry_timestamp: STANDARD.encode(set),
            },
        }
    }

    /// A stored entry with a fresh proof against the current head.
    async fn stored_log_entry(&self, index: u64) -> Result<Option<(String, LogEntry)>, HttpError> {
        let Some(entry) = self.engine.entry(index).await? else {
            return Ok(None);
        };
        let head = self.engine.tree_head();
        let proof = self.engine.inclusion_proof(index, head.size).await?;
        let le = self.log_entry(&entry.leaf, entry.timestamp_ms, index, &head, &proof);
        Ok(Some((self.entry_id(&entry.leaf_hash), le)))
    }

    /// Accepts a 64-hex UUID or an 80-hex entry ID of this tree.
    fn parse_uuid(&self, id: &str) -> Result<Hash, HttpError> {
        // Hex only, checked before slicing: byte offsets inside a multi-byte character panic.
        if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HttpError::bad_request("entry UUID is not hex"));
        }
        let hex_part = match id.len() {
            64 => id,
            80 => {
                let tree = &id[..16];
                if tree != format!("{:016x}", self.engine.tree_id()) {
                    return Err(HttpError::not_found(format!(
                        "entry {id} is not in this log's tree"
                    )));
                }
                &id[16..]
            }
            _ => {
                return Err(HttpError::bad_request(
                    "entry UUID must be 64 hex characters (or 80 with the tree ID)",
                ));
            }
        };
        hex::decode(hex_part)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| HttpError::bad_request("entry UUID is not hex"))
    }

    /// `cost` is the size of the request that carried the entry: what it may keep waiting.
    async fn submit(
        &self,
        entry: ProposedEntry,
        cost: usize,
    ) -> Result<(String, LogEntry), HttpError> {
        let validated = self
            .work
            .run(cost, move || entries::validate(&entry))
            .await
            .map_err(|e| match e {
                WorkError::Busy(_) => HttpError::unavailable(e.to_string()),
                WorkError::Panicked => HttpError::internal(e),
            })?
            .map_err(|e| HttpError::bad_request(e.to_string()))?;
        let timestamp_ms = now_ms();
        let outcome = self
            .engine
            .append(NewLeaf {
                leaf: validated.body.clone(),
                extra: Vec::new(),
                timestamp_ms,
                index_keys: validated.index_keys,
            })
            .await?;
        match outcome {
            AppendOutcome::New(a) => {
                let le = self.log_entry(
                    &validated.body,
                    timestamp_ms,
                    a.index,
                    &a.tree_head,
                    &a.inclusion_proof,
                );
                Ok((self.entry_id(&a.leaf_hash), le))
            }
            AppendOutcome::Duplicate { .. } => {
                let id = self.entry_id(&sigil_proto::merkle::leaf_hash(&validated.body));
                let mut err = HttpError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "an equivalent entry already exists in the transparency log with UUID {id}"
                    ),
                );
                err.location = Some(format!("{}/api/v1/log/entries/{id}", self.base_url));
                Err(err)
            }
        }
    }
}

/// The routes, with `body_limit` bytes as the cap on request bodies.
pub fn router(log: Arc<RekorLog>, body_limit: usize) -> Router {
    let routes = Router::new()
        .route("/api/v1/log", get(get_log_info))
        .route("/api/v1/log/publicKey", get(get_public_key))
        .route("/api/v1/log/proof", get(get_consistency_proof))
        .route(
            "/api/v1/log/entries",
            post(create_entry).get(get_entry_by_index),
        )
        .route("/api/v1/log/entries/{uuid}", get(get_entry_by_uuid))
        .route("/api/v1/log/entries/retrieve", post(retrieve_entries))
        .route("/api/v1/log/entries/retrieve/", post(retrieve_entries))
        .route("/api/v1/index/retrieve", post(search_index));
    crate::http::limit_bodies(routes, body_limit, crate::http::too_large).with_state(log)
}

fn entry_response(status: StatusCode, id: String, entry: LogEntry, base_url: &str) -> Response {
    let mut map = LogEntryMap::new();
    let location = format!("{base_url}/api/v1/log/entries/{id}");
    let etag = id.clone();
    map.insert(id, entry);
    let mut resp = (status, Json(map)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

async fn create_entry(
    State(log): State<Arc<RekorLog>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body = body_or_error(body)?;
    let entry =
        ProposedEntry::from_json(&body).map_err(|e| HttpError::bad_request(e.to_string()))?;
    let started = std::time::Instant::now();
    let result = log.submit(entry, body.len()).await;
    metrics::histogram!("sigil_rekor_submit_seconds").record(started.elapsed().as_secs_f64());
    let (id, le) = result?;
    metrics::counter!("sigil_rekor_entries_created_total").increment(1);
    Ok(entry_response(StatusCode::CREATED, id, le, &log.base_url))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexQuery {
    log_index: Option<String>,
}

async fn get_entry_by_index(
    State(log): State<Arc<RekorLog>>,
    Query(q): Query<IndexQuery>,
) -> Result<Response, HttpError> {
    let raw = q
        .log_index
        .ok_or_else(|| HttpError::bad_request("logIndex query parameter is required"))?;
    let index: u64 = raw.parse().map_err(|_| {
        HttpError::bad_request(format!("logIndex {raw:?} is not a non-negative integer"))
    })?;
    match log.stored_log_entry(index).await? {
        Some((id, le)) => Ok(entry_response(StatusCode::OK, id, le, &log.base_url)),
        None => Err(HttpError::not_found(format!(
            "no entry at logIndex {index}"
        ))),
    }
}

async fn get_entry_by_uuid(
    State(log): State<Arc<RekorLog>>,
    Path(uuid): Path<String>,
) -> Result<Response, HttpError> {
    let leaf_hash = log.parse_uuid(&uuid)?;
    let index = log
        .engine
        .index_of_leaf_hash(&leaf_hash)
        .await?
        .ok_or_else(|| HttpError::not_found(format!("no entry with UUID {uuid}")))?;
    match log.stored_log_entry(index).await? {
        Some((id, le)) => Ok(entry_response(StatusCode::OK, id, le, &log.base_url)),
        None => Err(HttpError::not_found(format!("no entry with UUID {uuid}"))),
    }
}

const MAX_RETRIEVE: usize = 10;

async fn retrieve_entries(
    State(log): State<Arc<RekorLog>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body = body_or_error(body)?;
    let req: RetrieveRequest = parse_json(&body)?;
    let total = req.entry_uuids.len() + req.log_indexes.len() + req.entries.len();
    if total > MAX_RETRIEVE {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("at most {MAX_RETRIEVE} entries may be retrieved at once, got {total}"),
        ));
    }
    let mut indexes = Vec::new();
    for uuid in &req.entry_uuids {
        let h = log.parse_uuid(uuid)?;
        if let Some(i) = log.engine.index_of_leaf_hash(&h).await? {
            indexes.push(i);
        }
    }
    indexes.extend(&req.log_indexes);
    for proposed in req.entries {
        let entry = ProposedEntry::from_value(proposed)
            .map_err(|e| HttpError::bad_request(e.to_string()))?;
        let validated =
            entries::validate(&entry).map_err(|e| HttpError::bad_request(e.to_string()))?;
        let h = sigil_proto::merkle::leaf_hash(&validated.body);
        if let Some(i) = log.engine.index_of_leaf_hash(&h).await? {
            indexes.push(i);
        }
    }
    let mut out: Vec<LogEntryMap> = Vec::new();
    for i in indexes {
        if let Some((id, le)) = log.stored_log_entry(i).await? {
            out.push(LogEntryMap::from([(id, le)]));
        }
    }
    Ok(Json(out).into_response())
}

/// Results per search page. A client that does not page (Rekor's API has no paging) gets the
/// newest page; the `Link: <…>; rel="next"` header says more exist and where they are.
const SEARCH_PAGE: u64 = 1000;

/// `?cursor=N&limit=M` on `POST /api/v1/index/retrieve`: entries below index N, M at most.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchPage {
    cursor: Option<u64>,
    limit: Option<u64>,
}

async fn search_index(
    State(log): State<Arc<RekorLog>>,
    page: Result<Query<SearchPage>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let Query(page) = page.map_err(|e| {
        HttpError::bad_request(format!("search paging takes ?cursor=N&limit=M: {e}"))
    })?;
    let limit = page.limit.unwrap_or(SEARCH_PAGE);
    if limit == 0 || limit > SEARCH_PAGE {
        return Err(HttpError::bad_request(format!(
            "limit must be between 1 and {SEARCH_PAGE}"
        )));
    }
    let body = body_or_error(body)?;
    let req: SearchIndexRequest = parse_json(&body)?;
    let mut key_sets: Vec<Vec<String>> = Vec::new();
    if let Some(hash) = &req.hash {
        // Without an algorithm prefix the digest's length says which one it is, as in Rekor.
        let (alg, value) = match hash.split_once(':') {
            Some((alg, value)) => (alg.to_lowercase(), value.to_lowercase()),
            None => {
                let alg = match hash.len() {
                    96 => "sha384",
                    128 => "sha512",
                    _ => "sha256",
                };
                (alg.to_string(), hash.to_lowercase())
            }
        };
        if !value.bytes().all(|b| b.is_ascii_hexdigit())
            || keys::HashAlg::from_rekor_name(&alg).map(|a| a.output_len() * 2) != Some(value.len())
        {
            return Err(HttpError::bad_request(
                "hash must be a hex digest (64, 96 or 128 characters), optionally prefixed with \
                 its algorithm (sha256:, sha384:, sha512:)",
            ));
        }
        key_sets.push(vec![format!("{alg}:{value}")]);
    }
    if let Some(email) = &req.email {
        key_sets.push(vec![format!("email:{}", email.to_lowercase())]);
    }
    if let Some(subject) = &req.subject {
        key_sets.push(vec![
            format!("subject:{subject}"),
            format!("email:{}", subject.to_lowercase()),
        ]);
    }
    if let Some(pk) = &req.public_key {
        if pk.format != "x509" {
            return Err(HttpError::bad_request(format!(
                "publicKey format {:?} is not supported (supported: x509)",
                pk.format
            )));
        }
        let content = pk
            .content
            .as_ref()
            .ok_or_else(|| HttpError::bad_request("publicKey.content is required"))?;
        let pem = STANDARD
            .decode(content)
            .map_err(|_| HttpError::bad_request("publicKey.content is not valid base64"))?;
        let key = keys::KeyMaterial::from_pem(&pem)
            .map_err(|e| HttpError::bad_request(format!("publicKey.content: {e}")))?;
        key_sets.push(match &key.cert_der {
            Some(cert) => vec![format!("cert:{}", hex::encode(Sha256::digest(cert)))],
            None => vec![format!(
                "key:{}",
                hex::encode(Sha256::digest(key.key.spki_der()))
            )],
        });
    }
    if key_sets.is_empty() {
        return Err(HttpError::bad_request(
            "give at least one of hash, email, subject or publicKey",
        ));
    }
    // Rekor's default is the union of what each term finds.
    let and = match req.operator.as_deref() {
        Some("and") => true,
        None | Some("or") => false,
        Some(other) => {
            return Err(HttpError::bad_request(format!(
                "operator {other:?} must be \"and\" or \"or\""
            )));
        }
    };
    // One more than a page tells whether another page exists.
    let mut found = log
        .engine
        .search(&key_sets, and, page.cursor.unwrap_or(u64::MAX), limit + 1)
        .await?;
    let more = found.len() as u64 > limit;
    found.truncate(limit as usize);
    let ids: Vec<String> = found.iter().map(|(_, h)| log.entry_id(h)).collect();
    let mut response = Json(ids).into_response();
    if more && let Some((last, _)) = found.last() {
        let next = format!(
            "<{}/api/v1/index/retrieve?cursor={last}&limit={limit}>; rel=\"next\"",
            log.base_url
        );
        if let Ok(value) = HeaderValue::from_str(&next) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

async fn get_log_info(State(log): State<Arc<RekorLog>>) -> Json<LogInfo> {
    let head = log.engine.tree_head();
    Json(LogInfo {
        root_hash: hex::encode(head.root),
        tree_size: head.size,
        signed_tree_head: log.checkpoint(&head).to_string(),
        tree_id: log.engine.tree_id().to_string(),
        inactive_shards: Vec::new(),
    })
}

async fn get_public_key(State(log): State<Arc<RekorLog>>) -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    (headers, log.signer.public_key_pem())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProofQuery {
    first_size: Option<String>,
    last_size: Option<String>,
    #[serde(rename = "treeID")]
    tree_id: Option<String>,
}

async fn get_consistency_proof(
    State(log): State<Arc<RekorLog>>,
    Query(q): Query<ProofQuery>,
) -> Result<Json<ConsistencyProof>, HttpError> {
    let parse = |name: &str, v: Option<String>, default: Option<u64>| -> Result<u64, HttpError> {
        match v {
            Some(s) => s.parse().map_err(|_| {
                HttpError::bad_request(format!("{name} {s:?} is not a non-negative integer"))
            }),
            None => default.ok_or_else(|| {
                HttpError::bad_request(format!("{name} query parameter is required"))
            }),
        }
    };
    if let Some(t) = &q.tree_id
        && t != &log.engine.tree_id().to_string()
    {
        return Err(HttpError::not_found(format!("unknown treeID {t}")));
    }
    let first = parse("firstSize", q.first_size, Some(1))?;
    let last = parse("lastSize", q.last_size, None)?;
    let size = log.engine.tree_head().size;
    if first < 1 || first > last {
        return Err(HttpError::bad_request(format!(
            "need 1 <= firstSize <= lastSize, got {first} and {last}"
        )));
    }
    if last > size {
        return Err(HttpError::bad_request(format!(
            "lastSize {last} is beyond the tree size {size}"
        )));
    }
    let hashes = log.engine.consistency_proof(first, last).await?;
    let root = log.engine.root_at(last).await?;
    Ok(Json(ConsistencyProof {
        root_hash: hex::encode(root),
        hashes: hashes.iter().map(hex::encode).collect(),
    }))
}

/// Host part of a URL (no scheme, port or path): the checkpoint key name clients expect.
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = if let Some(stripped) = authority.strip_prefix('[') {
        stripped.split(']').next().unwrap_or(stripped)
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
    };
    host.to_string()
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn host_is_stripped_of_scheme_port_and_path() {
        assert_eq!(url_host("http://127.0.0.1:3000"), "127.0.0.1");
        assert_eq!(
            url_host("https://rekor.example.com/prefix"),
            "rekor.example.com"
        );
        assert_eq!(url_host("http://[::1]:80/x"), "::1");
    }
}
