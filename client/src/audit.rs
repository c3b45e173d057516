//! Auditing a Rekor v1 transparency log from the client: its signed checkpoint, one entry
//! with its proofs, and proof that the log only grew between two checkpoints. Everything the
//! server says is checked against the trusted root before it is shown.

use sigil_proto::bundle::TransparencyLogEntry;
use sigil_proto::checkpoint::{Checkpoint, SignedNote};
use sigil_proto::merkle::{self, Hash};
use sigil_proto::rekor_v1::{ConsistencyProof, LogEntry, LogEntryMap, LogInfo};
use sigil_proto::trust::TransparencyLogInstance;

use crate::verify::certs::{ParsedCert, fulcio_extension};
use crate::verify::keys::{PublicKey, decode_pem};
use crate::verify::tlog::{self, TlogError};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("checkpoint is malformed: {0}")]
    Malformed(String),
    #[error("checkpoint is not signed by any transparency log in the trusted root (signers: {0})")]
    UnknownSigner(String),
    #[error("the saved checkpoint is for log {saved:?}, the server's for {current:?}")]
    OtherLog { saved: String, current: String },
    #[error(
        "the log is at size {current}, smaller than the saved checkpoint's {saved}: it went back"
    )]
    Shrunk { saved: u64, current: u64 },
    #[error(
        "split view: two checkpoints for size {size} with different roots ({saved} saved, {current} now)"
    )]
    SplitView {
        size: u64,
        saved: String,
        current: String,
    },
    #[error("the log did not only grow from size {old} to {new}: {reason}")]
    Inconsistent { old: u64, new: u64, reason: String },
    #[error("entry: {0}")]
    Entry(String),
    #[error(
        "the checkpoint has {} valid cosignature(s) from trusted witnesses ({}), {required} required",
        found.len(),
        if found.is_empty() { "none".to_string() } else { found.join(", ") }
    )]
    Witnesses { required: usize, found: Vec<String> },
    #[error(
        "the newest witnessed checkpoint (size {witnessed}) does not cover this one (size {held}) yet; witnesses are asked about once a second"
    )]
    NotYetWitnessed { held: u64, witnessed: u64 },
    #[error(transparent)]
    Tlog(#[from] TlogError),
}

/// A checkpoint whose signature by a trusted log key has been checked.
#[derive(Clone, Debug)]
pub struct VerifiedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The signed note as served (to save and check against later).
    pub note: String,
    /// Hex SHA-256 of the log key's SPKI.
    pub log_key_id: String,
}

/// Checks a signed note against every log in the trusted root: it must carry a signature
/// whose key hint names one of them and which verifies with that log's key.
pub fn verify_checkpoint(
    note_text: &str,
    tlogs: &[TransparencyLogInstance],
) -> Result<VerifiedCheckpoint, AuditError> {
    let note = SignedNote::parse(note_text).map_err(|e| AuditError::Malformed(e.to_string()))?;
    let checkpoint =
        Checkpoint::parse(&note.text).map_err(|e| AuditError::Malformed(e.to_string()))?;
    for log in tlogs {
        let Some(key) = log
            .public_key
            .raw_bytes
            .as_deref()
            .and_then(|der| PublicKey::from_spki_der(der).ok())
        else {
            continue;
        };
        let hint = log.log_id.key_id.get(..4).unwrap_or_default();
        let signed = note.signatures.iter().any(|s| {
            s.key_hint == hint
                && key
                    .verify(key.default_hash(), note.text.as_bytes(), &s.signature)
                    .is_ok()
        });
        if signed {
            return Ok(VerifiedCheckpoint {
                checkpoint,
                note: note_text.to_string(),
                log_key_id: hex::encode(&log.log_id.key_id),
            });
        }
    }
    let signers: Vec<String> = note
        .signatures
        .iter()
        .map(|s| format!("{} ({})", s.name, hex::encode(s.key_hint)))
        .collect();
    Err(AuditError::UnknownSigner(signers.join(", ")))
}

/// Checks that `new` extends `old`: same log, no smaller, the same root at the same size, and
/// a consistency proof between them.
pub fn check_consistency(
    old: &Checkpoint,
    new: &Checkpoint,
    proof: &[Hash],
) -> Result<(), AuditError> {
    if old.origin != new.origin {
        return Err(AuditError::OtherLog {
            saved: old.origin.clone(),
            current: new.origin.clone(),
        });
    }
    if new.size < old.size {
        return Err(AuditError::Shrunk {
            saved: old.size,
            current: new.size,
        });
    }
    if new.size == old.size && new.root_hash != old.root_hash {
        return Err(AuditError::SplitView {
            size: old.size,
            saved: hex::encode(old.root_hash),
            current: hex::encode(new.root_hash),
        });
    }
    if old.size == 0 || old.size == new.size {
        return Ok(());
    }
    merkle::verify_consistency(old.size, new.size, &old.root_hash, &new.root_hash, proof).map_err(
        |e| AuditError::Inconsistent {
            old: old.size,
            new: new.size,
            reason: e.to_string(),
        },
    )
}

/// Checks that `new` extends `old` with a consistency proof fetched from the log (none is
/// needed from an empty tree or between equal sizes).
pub async fn prove_extends(
    http: &reqwest::Client,
    rekor_url: &str,
    old: &Checkpoint,
    new: &Checkpoint,
) -> Result<(), AuditError> {
    if old.size > new.size {
        return Err(AuditError::Shrunk {
            saved: old.size,
            current: new.size,
        });
    }
    let proof = if old.size == 0 || old.size == new.size {
        Vec::new()
    } else {
        consistency_proof(http, rekor_url, old.size, new.size).await?
    };
    check_consistency(old, new, &proof)
}

/// GET `url`: the answer's status and body, whatever the status; only a failure to get an
/// answer is an error (naming the URL).
pub(crate) async fn get_raw(
    http: &reqwest::Client,
    url: &str,
) -> Result<(reqwest::StatusCode, Vec<u8>), AuditError> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| http_failure(url, e.to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| http_failure(url, e.to_string()))?;
    Ok((status, body.to_vec()))
}

pub(crate) fn http_failure(url: &str, reason: String) -> AuditError {
    AuditError::Http {
        url: url.to_string(),
        reason,
    }
}

pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, AuditError> {
    json_answer(http.get(url).send().await, url).await
}

/// The JSON body of a successful answer, or an error naming the URL and the log's message.
async fn json_answer<T: serde::de::DeserializeOwned>(
    sent: Result<reqwest::Response, reqwest::Error>,
    url: &str,
) -> Result<T, AuditError> {
    let failed = |reason: String| http_failure(url, reason);
    let response = sent.map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| failed(e.to_string()))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        return Err(failed(format!("HTTP {status}: {message}")));
    }
    serde_json::from_slice(&body).map_err(|e| failed(format!("unexpected answer: {e}")))
}

/// `GET /api/v1/log`, with its checkpoint verified.
pub async fn log_info(
    http: &reqwest::Client,
    rekor_url: &str,
    tlogs: &[TransparencyLogInstance],
) -> Result<(LogInfo, VerifiedCheckpoint), AuditError> {
    let info: LogInfo = get_json(http, &format!("{rekor_url}/api/v1/log")).await?;
    let verified = verify_checkpoint(&info.signed_tree_head, tlogs)?;
    if verified.checkpoint.size != info.tree_size
        || hex::encode(verified.checkpoint.root_hash) != info.root_hash
    {
        return Err(AuditError::Malformed(
            "the log's size or root hash differs from its own signed checkpoint".into(),
        ));
    }
    Ok((info, verified))
}

/// `GET /api/v1/log/proof` from `old` to `new`.
pub async fn consistency_proof(
    http: &reqwest::Client,
    rekor_url: &str,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, AuditError> {
    let proof: ConsistencyProof = get_json(
        http,
        &format!("{rekor_url}/api/v1/log/proof?firstSize={old}&lastSize={new}"),
    )
    .await?;
    proof
        .hashes
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| AuditError::Malformed(format!("proof hash {h:?} is not 32 bytes")))
        })
        .collect()
}

/// Which entry to get.
#[derive(Clone, Debug)]
pub enum EntryRef {
    Index(u64),
    Uuid(String),
}

/// An entry, fetched and checked: inclusion in a checkpoint signed by a trusted log, and
/// (Rekor v1) the signed entry timestamp.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckedEntry {
    pub uuid: String,
    pub log_index: u64,
    pub integrated_time: i64,
    pub kind: String,
    pub api_version: String,
    /// `sha256:<hex>` (or another algorithm) of what was signed.
    pub artifact_digest: Option<String>,
    /// The certificate's identity (SAN), for keyless entries.
    pub identity: Option<String>,
    /// The OIDC issuer recorded in the certificate.
    pub issuer: Option<String>,
    /// Hex SHA-256 of the signer's public key, for keyed entries.
    pub public_key_sha256: Option<String>,
    /// Tree size of the checkpoint the inclusion proof was checked against.
    pub proven_in_tree_size: u64,
    /// That checkpoint, as the log signed it.
    #[serde(skip)]
    pub checkpoint: Option<String>,
}

pub async fn get_entry(
    http: &reqwest::Client,
    rekor_url: &str,
    which: &EntryRef,
    tlogs: &[TransparencyLogInstance],
) -> Result<CheckedEntry, AuditError> {
    let url = match which {
        EntryRef::Index(i) => format!("{rekor_url}/api/v1/log/entries?logIndex={i}"),
        EntryRef::Uuid(u) => format!("{rekor_url}/api/v1/log/entries/{u}"),
    };
    let map: LogEntryMap = get_json(http, &url).await?;
    let (uuid, entry) = map
        .into_iter()
        .next()
        .ok_or_else(|| AuditError::Entry("the log answered with no entry".into()))?;
    if let EntryRef::Index(i) = which
        && entry.log_index != *i
    {
        return Err(AuditError::Entry(format!(
            "asked for index {i}, got index {}",
            entry.log_index
        )));
    }
    check_entry(&uuid, &entry, tlogs)
}

/// Verifies an entry offline and describes it.
pub fn check_entry(
    uuid: &str,
    entry: &LogEntry,
    tlogs: &[TransparencyLogInstance],
) -> Result<CheckedEntry, AuditError> {
    let tle =
        TransparencyLogEntry::from_rekor_v1(entry).map_err(|e| AuditError::Entry(e.to_string()))?;
    // The UUID is the leaf hash (optionally after a 16-hex tree id): it must name this body.
    let leaf = hex::encode(merkle::leaf_hash(&tle.canonicalized_body));
    if !uuid.ends_with(&leaf) {
        return Err(AuditError::Entry(format!(
            "UUID {uuid} does not name the returned body (leaf hash {leaf})"
        )));
    }
    let (_, key) = tlog::find_log(tlogs, &tle)?;
    tlog::verify_inclusion(&tle, &key)?;
    if let Some(promise) = &tle.inclusion_promise {
        tlog::verify_set(&tle, &promise.signed_entry_timestamp, &key)?;
    }
    let described = describe_body(&tle.canonicalized_body)?;
    Ok(CheckedEntry {
        uuid: uuid.to_string(),
        log_index: tle.log_index,
        integrated_time: tle.integrated_time,
        kind: tle.kind_version.kind.clone(),
        api_version: tle.kind_version.version.clone(),
        artifact_digest: described.artifact_digest,
        identity: described.identity,
        issuer: described.issuer,
        public_key_sha256: described.public_key_sha256,
        proven_in_tree_size: tle
            .inclusion_proof
            .as_ref()
            .map(|p| p.tree_size)
            .unwrap_or_default(),
        checkpoint: tle
            .inclusion_proof
            .and_then(|p| p.checkpoint)
            .map(|c| c.envelope),
    })
}

/// What an entry's body says: who signed what.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescribedBody {
    pub kind: String,
    pub artifact_digest: Option<String>,
    pub identity: Option<String>,
    pub issuer: Option<String>,
    pub public_key_sha256: Option<String>,
    /// The certificate's source repository (Fulcio extension 1.12, or the deprecated GitHub
    /// workflow repository 1.5), for CI identities.
    pub repository: Option<String>,
    /// When the signing happened, as far as the body tells: the certificate's notBefore in
    /// Unix seconds (keyless certificates are issued at signing and live minutes).
    pub signed_at: Option<i64>,
}

/// Decodes a Rekor v1 canonical body (hashedrekord or dsse): the artifact digest, and the
/// certificate's identity and issuer (keyless) or the key's SHA-256 (keyed).
pub fn describe_body(canonical_body: &[u8]) -> Result<DescribedBody, AuditError> {
    let body: serde_json::Value = serde_json::from_slice(canonical_body)
        .map_err(|e| AuditError::Entry(format!("body is not JSON: {e}")))?;
    let spec = &body["spec"];
    let kind = body["kind"].as_str().unwrap_or_default().to_string();
    let (artifact_digest, signer_pem) = match kind.as_str() {
        "hashedrekord" => (
            spec["data"]["hash"]["algorithm"]
                .as_str()
                .zip(spec["data"]["hash"]["value"].as_str())
                .map(|(a, v)| format!("{a}:{v}")),
            spec["signature"]["publicKey"]["content"].as_str(),
        ),
        "dsse" => (
            spec["payloadHash"]["algorithm"]
                .as_str()
                .zip(spec["payloadHash"]["value"].as_str())
                .map(|(a, v)| format!("{a}:{v}")),
            spec["signatures"][0]["verifier"].as_str(),
        ),
        _ => (None, None),
    };
    let mut described = DescribedBody {
        kind,
        artifact_digest,
        ..DescribedBody::default()
    };
    let pem = signer_pem
        .and_then(|b64| sigil_proto::encoding::decode_base64(b64).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| decode_pem(&text));
    match pem {
        Some((label, der)) if label == "CERTIFICATE" => {
            let cert = ParsedCert::from_der(&der).map_err(|e| AuditError::Entry(e.to_string()))?;
            let kind = std::mem::take(&mut described.kind);
            let digest = described.artifact_digest.take();
            described = describe_certificate(kind, &cert);
            described.artifact_digest = digest;
        }
        Some((_, der)) => described.public_key_sha256 = Some(sha256_hex(&der)),
        None => {}
    }
    Ok(described)
}

/// Who a certificate names as its subject: identity, OIDC issuer, source repository, and
/// its notBefore as the signing time.
pub fn describe_certificate(kind: String, cert: &ParsedCert) -> DescribedBody {
    DescribedBody {
        kind,
        artifact_digest: None,
        identity: cert.san_identities().into_iter().next(),
        // 1.8 (DER) supersedes the deprecated raw 1.1.
        issuer: fulcio_extension(cert, 8).or_else(|| fulcio_extension(cert, 1)),
        public_key_sha256: Some(sha256_hex(cert.spki_der())),
        repository: fulcio_extension(cert, 12).or_else(|| fulcio_extension(cert, 5)),
        signed_at: Some(cert.not_before.unix_timestamp()),
    }
}

/// What to search the log's index for (`POST /api/v1/index/retrieve`).
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    pub email: Option<String>,
    pub subject: Option<String>,
    /// `sha256:<hex>` or a bare hex digest.
    pub hash: Option<String>,
    /// PEM of a public key or certificate.
    pub public_key_pem: Option<String>,
    /// Every term must match (`and`) instead of any (`or`, the default).
    pub all: bool,
}

/// The UUIDs of the entries that match.
pub async fn search(
    http: &reqwest::Client,
    rekor_url: &str,
    query: &SearchQuery,
) -> Result<Vec<String>, AuditError> {
    use base64::Engine;
    let mut body = serde_json::Map::new();
    if let Some(e) = &query.email {
        body.insert("email".into(), e.clone().into());
    }
    if let Some(s) = &query.subject {
        body.insert("subject".into(), s.clone().into());
    }
    if let Some(h) = &query.hash {
        body.insert("hash".into(), h.clone().into());
    }
    if let Some(pem) = &query.public_key_pem {
        body.insert(
            "publicKey".into(),
            serde_json::json!({
                "format": "x509",
                "content": base64::engine::general_purpose::STANDARD.encode(pem),
            }),
        );
    }
    body.insert(
        "operator".into(),
        if query.all { "and" } else { "or" }.into(),
    );
    // Every page, following the log's `Link: <…>; rel="next"` until there is none.
    let first = format!("{rekor_url}/api/v1/index/retrieve");
    let mut next = Some(first);
    let mut uuids: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while let Some(url) = next.take() {
        let sent = http.post(&url).json(&body).send().await;
        let link = sent
            .as_ref()
            .ok()
            .and_then(|r| r.headers().get(reqwest::header::LINK))
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let page: Vec<String> = json_answer(sent, &url).await?;
        let before = uuids.len();
        // Some logs answer with duplicates (one per matching term); each entry counts once.
        uuids.extend(page.into_iter().filter(|u| seen.insert(u.clone())));
        // A next page that adds nothing would loop forever; a log must make progress.
        if uuids.len() > before {
            next = link.map(|l| absolute(rekor_url, &l));
        }
    }
    Ok(uuids)
}

/// The target of `rel="next"` in a Link header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("rel=\"next\"") || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

/// A Link target may be a path on the log's own server.
fn absolute(base: &str, target: &str) -> String {
    if target.starts_with("http://") || target.starts_with("https://") {
        return target.to_string();
    }
    match url::Url::parse(base).and_then(|b| b.join(target)) {
        Ok(u) => u.to_string(),
        Err(_) => target.to_string(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_links_are_found_and_made_absolute() {
        let h = r#"<https://log.example/api/v1/index/retrieve?cursor=41&limit=1000>; rel="next""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://log.example/api/v1/index/retrieve?cursor=41&limit=1000")
        );
        assert_eq!(next_link(r#"</x?cursor=1>; rel="prev""#), None);
        assert_eq!(
            absolute(
                "https://log.example/rekor",
                "/api/v1/index/retrieve?cursor=5"
            ),
            "https://log.example/api/v1/index/retrieve?cursor=5"
        );
    }

    fn cp(origin: &str, size: u64, root: u8) -> Checkpoint {
        Checkpoint {
            origin: origin.into(),
            size,
            root_hash: [root; 32],
            extensions: Vec::new(),
        }
    }

    #[test]
    fn consistency_refuses_other_logs_shrinking_and_split_views() {
        let old = cp("log - 1", 5, 1);
        assert!(matches!(
            check_consistency(&old, &cp("log - 2", 6, 2), &[]),
            Err(AuditError::OtherLog { .. })
        ));
        assert!(matches!(
            check_consistency(&old, &cp("log - 1", 4, 2), &[]),
            Err(AuditError::Shrunk {
                saved: 5,
                current: 4
            })
        ));
        assert!(matches!(
            check_consistency(&old, &cp("log - 1", 5, 2), &[]),
            Err(AuditError::SplitView { size: 5, .. })
        ));
        assert!(check_consistency(&old, &cp("log - 1", 5, 1), &[]).is_ok());
        assert!(matches!(
            check_consistency(&old, &cp("log - 1", 7, 2), &[]),
            Err(AuditError::Inconsistent { old: 5, new: 7, .. })
        ));
    }

    #[test]
    fn a_real_consistency_proof_passes() {
        let leaves: Vec<Hash> = (0u8..7).map(|i| merkle::leaf_hash(&[i])).collect();
        let root = |n: usize| merkle::root_of_leaf_hashes(&leaves[..n]);
        let old = Checkpoint {
            root_hash: root(3),
            ..cp("log - 1", 3, 0)
        };
        let new = Checkpoint {
            root_hash: root(7),
            ..cp("log - 1", 7, 0)
        };
        let proof: Vec<Hash> = merkle::consistency_ranges(3, 7)
            .unwrap()
            .iter()
            .map(|r| merkle::root_of_leaf_hashes(&leaves[r.start as usize..r.end as usize]))
            .collect();
        check_consistency(&old, &new, &proof).unwrap();
        let mut bad = proof.clone();
        bad[0][0] ^= 1;
        assert!(check_consistency(&old, &new, &bad).is_err());
    }
}
