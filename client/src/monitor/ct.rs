//! The monitor's second log: the CA's certificate-transparency log (RFC 6962 `get-sth`,
//! `get-entries`). Every certificate the CA issues is there, whether or not it was ever used
//! to sign, so a certificate issued to a watched identity through the wrong issuer shows up
//! here first. As for the Rekor log, the entries read must build the root of a tree head
//! signed by a CT log key of the trusted root, so "ok" means every certificate was seen.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sigil_proto::merkle::{Frontier, Hash, leaf_hash};
use sigil_proto::trust::TransparencyLogInstance;

use super::rules::{Finding, Rules};
use crate::audit::{AuditError, describe_certificate, get_json as get};
use crate::verify::certs::{PRECERT_POISON, ParsedCert};
use crate::verify::{HashAlg, PublicKey, asn1};

/// What the monitor keeps about the CT log between runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CtState {
    /// The log's base URL (the API is under `/ct/v1/`).
    pub url: String,
    /// Size and hex root of the last verified tree head; entries [0, size) were read.
    pub size: u64,
    pub root: String,
    /// Hex hashes of the tree's right edge at `size`.
    pub frontier: Vec<String>,
}

/// The outcome of one CT scan.
#[derive(Debug)]
pub struct CtScan {
    pub state: CtState,
    pub from: u64,
    pub to: u64,
    pub findings: Vec<Finding>,
}

#[derive(Deserialize)]
struct SignedTreeHead {
    tree_size: u64,
    timestamp: u64,
    sha256_root_hash: String,
    tree_head_signature: String,
}

#[derive(Deserialize)]
struct Entries {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    leaf_input: String,
    extra_data: String,
}

/// Reads the CT log at `url` from `state` (or from its first entry) up to its current signed
/// tree head and applies the signer rules to every certificate.
pub async fn scan(
    http: &reqwest::Client,
    url: &str,
    ctlogs: &[TransparencyLogInstance],
    state: Option<&CtState>,
    rules: &Rules,
) -> Result<CtScan, AuditError> {
    let url = url.trim_end_matches('/');
    let sth: SignedTreeHead = get(http, &format!("{url}/ct/v1/get-sth")).await?;
    let root = verify_sth(&sth, ctlogs)?;
    let mut frontier = match state {
        Some(saved) => restore(saved, url, sth.tree_size, &root)?,
        None => Frontier::default(),
    };
    let from = frontier.size();
    let mut findings = Vec::new();
    while frontier.size() < sth.tree_size {
        let start = frontier.size();
        let page: Entries = get(
            http,
            &format!(
                "{url}/ct/v1/get-entries?start={start}&end={}",
                sth.tree_size - 1
            ),
        )
        .await?;
        if page.entries.is_empty() {
            return Err(entry_error(start, "the log returned no entries"));
        }
        for (offset, entry) in page.entries.iter().enumerate() {
            let index = start + offset as u64;
            if index >= sth.tree_size {
                break;
            }
            let leaf = b64(&entry.leaf_input).ok_or_else(|| entry_error(index, "leaf_input"))?;
            frontier.push_hash(leaf_hash(&leaf), &mut |_, _| {});
            if !rules.judges_certificates() {
                continue;
            }
            let extra = b64(&entry.extra_data).ok_or_else(|| entry_error(index, "extra_data"))?;
            let (kind, cert) = certificate(&leaf, &extra).map_err(|e| entry_error(index, e))?;
            rules.check_certificate(
                index,
                &describe_certificate(kind.into(), &cert),
                &mut findings,
            );
        }
    }
    if frontier.root() != root {
        return Err(AuditError::Inconsistent {
            old: from,
            new: sth.tree_size,
            reason: format!(
                "the CT log's entries build root {}, its signed tree head says {}",
                hex::encode(frontier.root()),
                hex::encode(root)
            ),
        });
    }
    Ok(CtScan {
        state: CtState {
            url: url.to_string(),
            size: sth.tree_size,
            root: hex::encode(root),
            frontier: frontier
                .nodes()
                .iter()
                .map(|(_, h)| hex::encode(h))
                .collect(),
        },
        from,
        to: sth.tree_size,
        findings,
    })
}

/// The root of a tree head whose signature (RFC 6962 §3.5) verifies with a CT log key of the
/// trusted root.
fn verify_sth(
    sth: &SignedTreeHead,
    ctlogs: &[TransparencyLogInstance],
) -> Result<Hash, AuditError> {
    let bad = |why: &str| AuditError::Malformed(format!("CT tree head: {why}"));
    let root: Hash = b64(&sth.sha256_root_hash)
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| bad("the root is not 32 bytes of base64"))?;
    let signature = b64(&sth.tree_head_signature).ok_or_else(|| bad("signature is not base64"))?;
    // DigitallySigned: hash algorithm, signature algorithm, 16-bit length, signature.
    let (header, der) = signature
        .split_at_checked(4)
        .ok_or_else(|| bad("short signature"))?;
    if header[0] != 4 || usize::from(u16::from_be_bytes([header[2], header[3]])) != der.len() {
        return Err(bad("the signature is not a SHA-256 DigitallySigned"));
    }
    let mut signed = Vec::with_capacity(50);
    signed.extend_from_slice(&[0, 1]); // v1, tree_hash
    signed.extend_from_slice(&sth.timestamp.to_be_bytes());
    signed.extend_from_slice(&sth.tree_size.to_be_bytes());
    signed.extend_from_slice(&root);
    let verified = ctlogs.iter().any(|log| {
        log.public_key
            .raw_bytes
            .as_deref()
            .and_then(|spki| PublicKey::from_spki_der(spki).ok())
            .is_some_and(|key| key.verify(HashAlg::Sha256, &signed, der).is_ok())
    });
    if !verified {
        return Err(AuditError::UnknownSigner(
            "no CT log key of the trusted root verifies the tree head".into(),
        ));
    }
    Ok(root)
}

/// The saved frontier, after checking the log has not gone back or changed its past.
fn restore(saved: &CtState, url: &str, size: u64, root: &Hash) -> Result<Frontier, AuditError> {
    let bad = |why: &str| AuditError::Malformed(format!("monitor state (CT log): {why}"));
    if saved.url != url {
        return Err(bad(&format!("it is for {}, not {url}", saved.url)));
    }
    if size < saved.size {
        return Err(AuditError::Shrunk {
            saved: saved.size,
            current: size,
        });
    }
    if size == saved.size && hex::encode(root) != saved.root {
        return Err(AuditError::SplitView {
            size,
            saved: saved.root.clone(),
            current: hex::encode(root),
        });
    }
    let hashes: Vec<Hash> = saved
        .frontier
        .iter()
        .map(|h| hex::decode(h).ok().and_then(|b| b.try_into().ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("a frontier hash is not 32 bytes of hex"))?;
    if hashes.len() != Frontier::node_ids(saved.size).len() {
        return Err(bad("the frontier does not fit its size"));
    }
    let frontier = Frontier::from_nodes(saved.size, hashes);
    if hex::encode(frontier.root()) != saved.root {
        return Err(bad("the frontier does not build its root"));
    }
    Ok(frontier)
}

/// The certificate a CT entry logs. A precertificate entry's leaf holds only the TBS; the
/// whole precertificate comes from `extra_data` and must reduce to that TBS, so what is
/// judged is what the tree commits to.
fn certificate(leaf: &[u8], extra: &[u8]) -> Result<(&'static str, ParsedCert), String> {
    let mut input = leaf;
    // MerkleTreeLeaf: version, leaf type, then a TimestampedEntry (timestamp, entry type, …).
    let header = take(&mut input, 10)?;
    if header[..2] != [0, 0] {
        return Err("not a v1 timestamped entry".into());
    }
    match take(&mut input, 2)? {
        [0, 0] => {
            let der = take_u24(&mut input)?;
            let cert = ParsedCert::from_der(der).map_err(|e| e.to_string())?;
            Ok(("x509-certificate", cert))
        }
        [0, 1] => {
            let _issuer_key_hash = take(&mut input, 32)?;
            let tbs = take_u24(&mut input)?;
            let mut extra = extra;
            let der = take_u24(&mut extra)?;
            let cert = ParsedCert::from_der(der).map_err(|e| e.to_string())?;
            let reduced = asn1::tbs_without_extension(cert.tbs_der(), PRECERT_POISON.as_bytes())
                .map_err(|e| format!("precertificate: {e}"))?;
            if reduced != tbs {
                return Err("the precertificate in extra_data is not the one the leaf logs".into());
            }
            Ok(("precertificate", cert))
        }
        other => Err(format!("unknown entry type {other:?}")),
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    let (head, rest) = input.split_at_checked(n).ok_or("truncated")?;
    *input = rest;
    Ok(head)
}

fn take_u24<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = take(input, 3)?;
    let n = (usize::from(len[0]) << 16) | (usize::from(len[1]) << 8) | usize::from(len[2]);
    take(input, n)
}

fn b64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

fn entry_error(index: u64, what: impl std::fmt::Display) -> AuditError {
    AuditError::Entry(format!("CT log entry {index}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_unknown_leaves_are_refused() {
        assert_eq!(certificate(&[0; 5], &[]).unwrap_err(), "truncated");
        let mut leaf = vec![0; 10];
        leaf.extend_from_slice(&[0, 7]);
        assert!(
            certificate(&leaf, &[])
                .unwrap_err()
                .contains("unknown entry type")
        );
        let mut leaf = vec![0; 10];
        leaf.extend_from_slice(&[0, 0, 0, 0, 9, 1, 2]);
        assert_eq!(certificate(&leaf, &[]).unwrap_err(), "truncated");
    }
}
