//! Assembling a v0.3 bundle from the signature, the signer and the log's answer.

use sigil_proto::bundle::{
    Bundle, HashOutput, LogEntryConversionError, MEDIA_TYPE_V0_3, MessageSignature,
    SignatureContent, TransparencyLogEntry, VerificationContent, VerificationMaterial,
};
use sigil_proto::dsse::Envelope;
use sigil_proto::rekor_v1::LogEntry;

/// What identifies the signer in the bundle.
#[derive(Clone, Debug)]
pub enum Signer {
    /// DER of the leaf certificate (v0.3 carries the leaf only).
    Certificate(Vec<u8>),
    /// A managed key, optionally named by a hint.
    Key { hint: Option<String> },
}

pub enum Content {
    /// A SHA-256 digest and the signature over it.
    Message {
        sha256: [u8; 32],
        signature: Vec<u8>,
    },
    Dsse(Envelope),
}

pub fn assemble(
    signer: Signer,
    content: Content,
    entry: &LogEntry,
) -> Result<Bundle, LogEntryConversionError> {
    let tlog_entry = TransparencyLogEntry::from_rekor_v1(entry)?;
    let content = match content {
        Content::Message { sha256, signature } => {
            SignatureContent::MessageSignature(MessageSignature {
                message_digest: Some(HashOutput {
                    algorithm: "SHA2_256".into(),
                    digest: sha256.to_vec(),
                }),
                signature,
            })
        }
        Content::Dsse(envelope) => SignatureContent::DsseEnvelope(envelope),
    };
    Ok(Bundle {
        media_type: MEDIA_TYPE_V0_3.into(),
        verification_material: VerificationMaterial {
            content: match signer {
                Signer::Certificate(der) => VerificationContent::Certificate(der),
                Signer::Key { hint } => VerificationContent::PublicKey { hint },
            },
            tlog_entries: vec![tlog_entry],
            timestamp_verification_data: None,
        },
        content,
    })
}

/// The key hint cosign and sigstore-go use: base64 of SHA-256 over the SPKI DER.
pub fn key_hint(spki_der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        spki_der,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::rekor::parse_created;

    /// What sigild answered to `POST /api/v1/log/entries` for a hashedrekord entry.
    const RECORDED: &str = include_str!("../../tests/fixtures/rekor-v1-created.json");

    #[test]
    fn maps_the_rekor_response_into_a_v0_3_bundle() {
        let created = parse_created(RECORDED.as_bytes()).unwrap();
        assert_eq!(created.uuid().len(), 64);
        let bundle = assemble(
            Signer::Key {
                hint: Some("hint".into()),
            },
            Content::Message {
                sha256: [7; 32],
                signature: vec![1, 2, 3],
            },
            &created.entry,
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(&bundle.to_json()).unwrap();
        assert_eq!(json["mediaType"], MEDIA_TYPE_V0_3);
        let vm = &json["verificationMaterial"];
        assert_eq!(vm["publicKey"]["hint"], "hint");
        let e = &vm["tlogEntries"][0];
        assert_eq!(e["logIndex"], "2");
        assert_eq!(e["integratedTime"], "1795325004");
        assert_eq!(
            e["logId"]["keyId"],
            "5swdOvpi7rzK71fnf5pl7pPM+DtOL6bdb0vqGLySfP4="
        );
        assert_eq!(
            e["kindVersion"],
            serde_json::json!({"kind":"hashedrekord","version":"0.0.1"})
        );
        assert_eq!(
            e["inclusionPromise"]["signedEntryTimestamp"],
            created.entry.verification.signed_entry_timestamp.as_str()
        );
        let p = &e["inclusionProof"];
        assert_eq!(p["treeSize"], "3");
        assert_eq!(p["logIndex"], "2");
        assert_eq!(
            p["rootHash"],
            "KfdjPe86dB7CX0hs0EDETXwZgN3kMy8okC4m2U/uh8I="
        );
        assert_eq!(
            p["hashes"],
            serde_json::json!(["TcWGCg4POjtwFoXTniGKJcnVa/kVWqtx7ww57yVOsok="])
        );
        assert_eq!(
            p["checkpoint"]["envelope"],
            created
                .entry
                .verification
                .inclusion_proof
                .checkpoint
                .as_str()
        );
        assert_eq!(e["canonicalizedBody"], created.entry.body.as_str());
        assert_eq!(json["messageSignature"]["signature"], "AQID");
        assert_eq!(
            json["messageSignature"]["messageDigest"]["algorithm"],
            "SHA2_256"
        );
        // And it parses back as a bundle.
        sigil_proto::bundle::Bundle::from_json(bundle.to_json().as_bytes()).unwrap();
    }

    #[test]
    fn rejects_a_response_with_two_entries_or_a_non_hex_log_id() {
        let v: serde_json::Value = serde_json::from_str(RECORDED).unwrap();
        let entry = v.as_object().unwrap().values().next().unwrap().clone();
        let two = serde_json::json!({"a": entry.clone(), "b": entry.clone()});
        assert!(parse_created(two.to_string().as_bytes()).is_err());
        let mut bad = entry;
        bad["logID"] = "not hex".into();
        let created = parse_created(serde_json::json!({"x": bad}).to_string().as_bytes()).unwrap();
        assert!(
            assemble(
                Signer::Key { hint: None },
                Content::Message {
                    sha256: [0; 32],
                    signature: vec![]
                },
                &created.entry
            )
            .is_err()
        );
    }
}
