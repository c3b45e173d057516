//! Witness cosignatures on a log's checkpoint (C2SP tlog-cosignature): which of the witnesses
//! a verifier trusts vouch that the log showed them this checkpoint, consistent with
//! everything they saw before.

use sigil_proto::checkpoint::SignedNote;
use sigil_proto::trust::TransparencyLogInstance;
use sigil_proto::witness::{VerifierKey, cosigned_message, split_cosignature};

use crate::audit::{self, AuditError, VerifiedCheckpoint};
use crate::verify::PublicKey;

/// SPKI DER prefix of an Ed25519 public key (RFC 8410), followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A checkpoint signed by the log and cosigned by some trusted witnesses.
#[derive(Debug)]
pub struct Witnessed {
    pub checkpoint: VerifiedCheckpoint,
    /// Names of the trusted witnesses whose cosignature verifies, each once.
    pub witnesses: Vec<String>,
}

/// Parses `--witness` verifier keys.
pub fn parse_keys(texts: &[String]) -> Result<Vec<VerifierKey>, String> {
    texts
        .iter()
        .map(|t| VerifierKey::parse(t).map_err(|e| format!("--witness {t}: {e}")))
        .collect()
}

/// Checks `note` (the log's signature against `tlogs`, then each trusted witness's
/// cosignature) and requires at least `required` distinct witnesses.
pub fn verify_cosigned(
    note: &str,
    tlogs: &[TransparencyLogInstance],
    trusted: &[VerifierKey],
    required: usize,
) -> Result<Witnessed, AuditError> {
    let checkpoint = audit::verify_checkpoint(note, tlogs)?;
    let parsed = SignedNote::parse(note).map_err(|e| AuditError::Malformed(e.to_string()))?;
    let mut witnesses = Vec::new();
    for witness in trusted {
        let spki = [&ED25519_SPKI_PREFIX[..], &witness.key].concat();
        let Ok(key) = PublicKey::from_spki_der(&spki) else {
            continue;
        };
        let cosigned = parsed.signatures.iter().any(|line| {
            split_cosignature(witness, line).is_some_and(|(ts, sig)| {
                key.verify_default(&cosigned_message(ts, &parsed.text), &sig)
                    .is_ok()
            })
        });
        if cosigned && !witnesses.contains(&witness.name) {
            witnesses.push(witness.name.clone());
        }
    }
    if witnesses.len() < required {
        return Err(AuditError::Witnesses {
            required,
            found: witnesses,
        });
    }
    Ok(Witnessed {
        checkpoint,
        witnesses,
    })
}

/// `GET /api/v1/log/witnessed-checkpoint`, verified by [`verify_cosigned`].
pub async fn fetch_witnessed(
    http: &reqwest::Client,
    rekor_url: &str,
    tlogs: &[TransparencyLogInstance],
    trusted: &[VerifierKey],
    required: usize,
) -> Result<Witnessed, AuditError> {
    let url = format!("{rekor_url}/api/v1/log/witnessed-checkpoint");
    let failed = |reason: String| AuditError::Http {
        url: url.clone(),
        reason,
    };
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| failed(e.to_string()))?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(AuditError::Witnesses {
            required,
            found: Vec::new(),
        });
    }
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    verify_cosigned(&text, tlogs, trusted, required)
}

/// Whether the log's witnessed checkpoint covers `checkpoint` (one the client holds, e.g. a
/// bundle's): it is at least as large and the log proves it extends `checkpoint`. So the
/// entries under `checkpoint` are in the history the witnesses saw.
pub async fn check_covered(
    http: &reqwest::Client,
    rekor_url: &str,
    tlogs: &[TransparencyLogInstance],
    trusted: &[VerifierKey],
    required: usize,
    checkpoint: &str,
) -> Result<Witnessed, AuditError> {
    let held = audit::verify_checkpoint(checkpoint, tlogs)?;
    let witnessed = fetch_witnessed(http, rekor_url, tlogs, trusted, required).await?;
    let (old, new) = (&held.checkpoint, &witnessed.checkpoint.checkpoint);
    if old.size > new.size {
        return Err(AuditError::NotYetWitnessed {
            held: old.size,
            witnessed: new.size,
        });
    }
    audit::prove_extends(http, rekor_url, old, new).await?;
    Ok(witnessed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ed25519_spki_prefix_makes_a_key_sigil_keys_accepts() {
        let spki = [&ED25519_SPKI_PREFIX[..], &[3u8; 32]].concat();
        let key = PublicKey::from_spki_der(&spki).unwrap();
        assert_eq!(key.ed25519_raw(), Some(&[3u8; 32][..]));
    }
}
