//! The signature over the artifact: a message signature over its digest, or a DSSE
//! envelope whose in-toto statement names it; and that the log entry records exactly that.

use sigil_proto::bundle::{SignatureContent, TransparencyLogEntry};
use sigil_proto::dsse::{IN_TOTO_PAYLOAD_TYPE, pae};

use super::keys::{HashAlg, KeyKind, PublicKey};
use super::{Artifact, VerifyError, body, shape};

/// Verifies the artifact signature with `key` and the log entry's agreement with it.
/// Returns the DSSE payload type and payload, if any.
pub(super) fn verify_content(
    content: &SignatureContent,
    artifact: Artifact<'_>,
    key: &PublicKey,
    signer: body::Signer<'_>,
    entry: &TransparencyLogEntry,
) -> Result<Option<(String, Vec<u8>)>, VerifyError> {
    match content {
        SignatureContent::MessageSignature(m) => {
            let alg = match &m.message_digest {
                Some(d) => HashAlg::from_proto_name(&d.algorithm).ok_or_else(|| {
                    shape(format!(
                        "unsupported message digest algorithm {}",
                        d.algorithm
                    ))
                })?,
                None => HashAlg::Sha256,
            };
            let digest = artifact.digest(alg)?;
            if m.message_digest
                .as_ref()
                .is_some_and(|d| d.digest != digest)
            {
                return Err(VerifyError::ArtifactMismatch(
                    "the bundle's message digest is not the artifact's digest".into(),
                ));
            }
            // Ed25519 signs the message itself; everything else signs the digest.
            let ok = match (key.kind(), artifact) {
                (KeyKind::Ed25519, Artifact::Bytes(b)) => key.verify(alg, b, &m.signature).is_ok(),
                _ => key.verify_prehashed(alg, &digest, &m.signature).is_ok(),
            };
            if !ok {
                return Err(VerifyError::Signature);
            }
            body::check_message_signature(entry, alg, &digest, &m.signature, signer)?;
            Ok(None)
        }
        SignatureContent::DsseEnvelope(env) => {
            let [sig] = env.signatures.as_slice() else {
                return Err(shape("DSSE envelope must have exactly one signature"));
            };
            key.verify(
                key.default_hash(),
                &pae(&env.payload_type, &env.payload),
                &sig.sig,
            )
            .map_err(|_| VerifyError::Signature)?;
            check_statement_subject(&env.payload_type, &env.payload, artifact)?;
            body::check_dsse(entry, env, signer)?;
            Ok(Some((env.payload_type.clone(), env.payload.clone())))
        }
    }
}

/// For in-toto statements the artifact must be one of the subjects (by SHA-256).
fn check_statement_subject(
    payload_type: &str,
    payload: &[u8],
    artifact: Artifact<'_>,
) -> Result<(), VerifyError> {
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(VerifyError::ArtifactMismatch(format!(
            "DSSE payload type {payload_type:?} is not an in-toto statement"
        )));
    }
    let statement: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|_| VerifyError::ArtifactMismatch("in-toto statement is not JSON".into()))?;
    let want = hex::encode(artifact.digest(HashAlg::Sha256)?);
    let found = statement
        .get("subject")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("digest")?.get("sha256")?.as_str())
        .any(|d| d.eq_ignore_ascii_case(&want));
    if found {
        Ok(())
    } else {
        Err(VerifyError::ArtifactMismatch(
            "the artifact's SHA-256 is not a subject of the in-toto statement".into(),
        ))
    }
}
