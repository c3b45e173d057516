//! Witness cosignatures on a log's checkpoint (C2SP tlog-cosignature): which of the witnesses
//! a verifier trusts vouch that the log showed them this checkpoint, consistent with
//! everything they saw before.

use sigil_proto::checkpoint::SignedNote;
use sigil_proto::trust::TransparencyLogInstance;
use sigil_proto::witness::{VerifierKey, cosigned_message, split_cosignature};

use crate::audit::{self, AuditError, EntryRef, VerifiedCheckpoint};
use crate::verify::{LoggedAt, PublicKey};

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

/// Where the witnesses a verifier trusts are listed when no `--witness` is given: one verifier
/// key per line, `#` starting a comment. (Sigstore's trust config has no place for them, and
/// its parsers refuse unknown fields.)
pub const WITNESSES_FILE: &str = "~/.config/sigil/witnesses";

/// The witnesses to trust: `--witness` keys if any, else `$SIGIL_WITNESS_KEYS`
/// (whitespace-separated), else the lines of [`WITNESSES_FILE`]. An error when `required` > 0
/// and none are found anywhere.
pub fn trusted_keys(flags: &[String], required: usize) -> Result<Vec<VerifierKey>, String> {
    let (texts, from): (Vec<String>, String) = if !flags.is_empty() {
        (flags.to_vec(), "--witness".into())
    } else if let Some(env) = std::env::var("SIGIL_WITNESS_KEYS")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        (
            env.split_whitespace().map(str::to_string).collect(),
            "SIGIL_WITNESS_KEYS".into(),
        )
    } else {
        let path = std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(".config/sigil/witnesses"));
        let text = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        (
            text.lines()
                .map(|l| l.split('#').next().unwrap_or_default().trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
            WITNESSES_FILE.into(),
        )
    };
    if required > 0 && texts.is_empty() {
        return Err(format!(
            "{required} witness(es) required but no witness keys given: use --witness, set \
             SIGIL_WITNESS_KEYS, or list them in {WITNESSES_FILE}"
        ));
    }
    texts
        .iter()
        .map(|t| VerifierKey::parse(t).map_err(|e| format!("{from}: {t}: {e}")))
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
    let (status, body) = audit::get_raw(http, &url).await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(AuditError::Witnesses {
            required,
            found: Vec::new(),
        });
    }
    if !status.is_success() {
        return Err(audit::http_failure(&url, format!("HTTP {status}")));
    }
    let text = String::from_utf8(body)
        .map_err(|_| audit::http_failure(&url, "the checkpoint is not UTF-8".into()))?;
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

/// Whether the log's witnessed checkpoint covers a verified entry: through the checkpoint its
/// inclusion proof ended in, or, for an entry the log only promised to include (cosign's
/// legacy layers), through the inclusion proof the log gives now for that index, which must
/// be for the very leaf that was verified.
pub async fn check_logged(
    http: &reqwest::Client,
    log_url: &str,
    log_index: u64,
    logged_at: &LoggedAt,
    tlogs: &[TransparencyLogInstance],
    trusted: &[VerifierKey],
    required: usize,
) -> Result<Witnessed, AuditError> {
    let fetched;
    let checkpoint = match &logged_at.checkpoint {
        Some(c) => c,
        None => {
            let entry = audit::get_entry(http, log_url, &EntryRef::Index(log_index), tlogs).await?;
            let leaf = hex::encode(logged_at.leaf_hash);
            if !entry.uuid.ends_with(&leaf) {
                return Err(AuditError::Entry(format!(
                    "the log's entry {log_index} is {}, not the verified entry {leaf}",
                    entry.uuid
                )));
            }
            fetched = entry.checkpoint.ok_or_else(|| {
                AuditError::Entry(format!(
                    "the log gave no checkpoint with entry {log_index}'s inclusion proof"
                ))
            })?;
            &fetched
        }
    };
    check_covered(http, log_url, tlogs, trusted, required, checkpoint).await
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
