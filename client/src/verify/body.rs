//! Does the log entry describe this bundle? The canonicalized body is rebuilt in meaning
//! (not byte for byte: PEM line lengths and key order are the log's business) and compared
//! with the bundle's signature, signer and digest.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sigil_proto::bundle::TransparencyLogEntry;
use sigil_proto::dsse::{Envelope, pae};

use super::keys::{HashAlg, decode_pem};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("log entry body is not JSON")]
    NotJson,
    #[error("log entry body is {body_kind}/{body_version} but the bundle says {kind}/{version}")]
    KindMismatch {
        kind: String,
        version: String,
        body_kind: String,
        body_version: String,
    },
    #[error("unsupported log entry type {0}/{1} for this kind of bundle")]
    Unsupported(String, String),
    #[error("log entry field {0} is missing or malformed")]
    Field(&'static str),
    #[error("log entry {0} does not match the bundle")]
    Mismatch(&'static str),
}

/// Who signed, as the body must name it.
#[derive(Clone, Copy, Debug)]
pub enum Signer<'a> {
    /// DER certificate.
    Certificate(&'a [u8]),
    /// DER SubjectPublicKeyInfo.
    Key(&'a [u8]),
}

impl Signer<'_> {
    fn matches_der(&self, der: &[u8]) -> bool {
        match self {
            Signer::Certificate(c) => *c == der,
            Signer::Key(k) => *k == der,
        }
    }

    /// `b64(PEM)` as Rekor v1 bodies store verifiers.
    fn matches_b64_pem(&self, b64: &str) -> bool {
        let Ok(pem) = STANDARD.decode(b64) else {
            return false;
        };
        let Some((label, der)) = std::str::from_utf8(&pem).ok().and_then(decode_pem) else {
            return false;
        };
        let label_ok = match self {
            Signer::Certificate(_) => label == "CERTIFICATE",
            Signer::Key(_) => label == "PUBLIC KEY",
        };
        label_ok && self.matches_der(&der)
    }
}

fn get<'a>(v: &'a Value, path: &[&str], name: &'static str) -> Result<&'a Value, BodyError> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .ok_or(BodyError::Field(name))
}

fn get_str<'a>(v: &'a Value, path: &[&str], name: &'static str) -> Result<&'a str, BodyError> {
    get(v, path, name)?.as_str().ok_or(BodyError::Field(name))
}

fn b64_eq(b64: &str, bytes: &[u8]) -> bool {
    STANDARD.decode(b64).is_ok_and(|d| d == bytes)
}

fn ensure(ok: bool, what: &'static str) -> Result<(), BodyError> {
    if ok {
        Ok(())
    } else {
        Err(BodyError::Mismatch(what))
    }
}

fn hash_name_v1(alg: HashAlg) -> &'static str {
    match alg {
        HashAlg::Sha256 => "sha256",
        HashAlg::Sha384 => "sha384",
        HashAlg::Sha512 => "sha512",
    }
}

fn hash_name_v2(alg: HashAlg) -> &'static str {
    match alg {
        HashAlg::Sha256 => "SHA2_256",
        HashAlg::Sha384 => "SHA2_384",
        HashAlg::Sha512 => "SHA2_512",
    }
}

fn parse(entry: &TransparencyLogEntry) -> Result<(Value, String, String), BodyError> {
    let body: Value =
        serde_json::from_slice(&entry.canonicalized_body).map_err(|_| BodyError::NotJson)?;
    let kind = get_str(&body, &["kind"], "kind")?.to_string();
    let version = get_str(&body, &["apiVersion"], "apiVersion")?.to_string();
    if kind != entry.kind_version.kind || version != entry.kind_version.version {
        return Err(BodyError::KindMismatch {
            kind: entry.kind_version.kind.clone(),
            version: entry.kind_version.version.clone(),
            body_kind: kind,
            body_version: version,
        });
    }
    Ok((body, kind, version))
}

/// A message signature: the body must be hashedrekord over `digest` with `signature` by `signer`.
pub fn check_message_signature(
    entry: &TransparencyLogEntry,
    alg: HashAlg,
    digest: &[u8],
    signature: &[u8],
    signer: Signer<'_>,
) -> Result<(), BodyError> {
    let (body, kind, version) = parse(entry)?;
    match (kind.as_str(), version.as_str()) {
        ("hashedrekord", "0.0.1") => check_hashedrekord_v1(&body, alg, digest, signature, signer),
        ("hashedrekord", "0.0.2") => check_hashedrekord_v2(&body, alg, digest, signature, signer),
        _ => Err(BodyError::Unsupported(kind, version)),
    }
}

fn check_hashedrekord_v1(
    body: &Value,
    alg: HashAlg,
    digest: &[u8],
    signature: &[u8],
    signer: Signer<'_>,
) -> Result<(), BodyError> {
    let spec = get(body, &["spec"], "spec")?;
    ensure(
        get_str(spec, &["data", "hash", "algorithm"], "data.hash.algorithm")? == hash_name_v1(alg),
        "digest algorithm",
    )?;
    ensure(
        get_str(spec, &["data", "hash", "value"], "data.hash.value")?
            .eq_ignore_ascii_case(&hex::encode(digest)),
        "artifact digest",
    )?;
    ensure(
        b64_eq(
            get_str(spec, &["signature", "content"], "signature.content")?,
            signature,
        ),
        "signature",
    )?;
    ensure(
        signer.matches_b64_pem(get_str(
            spec,
            &["signature", "publicKey", "content"],
            "signature.publicKey.content",
        )?),
        "signing certificate or key",
    )
}

fn check_hashedrekord_v2(
    body: &Value,
    alg: HashAlg,
    digest: &[u8],
    signature: &[u8],
    signer: Signer<'_>,
) -> Result<(), BodyError> {
    let spec = get(body, &["spec", "hashedRekordV002"], "spec.hashedRekordV002")?;
    ensure(
        get_str(spec, &["data", "algorithm"], "data.algorithm")? == hash_name_v2(alg),
        "digest algorithm",
    )?;
    ensure(
        b64_eq(get_str(spec, &["data", "digest"], "data.digest")?, digest),
        "artifact digest",
    )?;
    ensure(
        b64_eq(
            get_str(spec, &["signature", "content"], "signature.content")?,
            signature,
        ),
        "signature",
    )?;
    let verifier = get(spec, &["signature", "verifier"], "signature.verifier")?;
    let raw = match signer {
        Signer::Certificate(_) => get_str(
            verifier,
            &["x509Certificate", "rawBytes"],
            "verifier.x509Certificate",
        ),
        Signer::Key(_) => get_str(verifier, &["publicKey", "rawBytes"], "verifier.publicKey"),
    }?;
    let der = STANDARD
        .decode(raw)
        .map_err(|_| BodyError::Field("verifier rawBytes"))?;
    ensure(signer.matches_der(&der), "signing certificate or key")
}

/// A DSSE envelope: dsse 0.0.1, intoto 0.0.2, or hashedrekord 0.0.2 over the PAE.
pub fn check_dsse(
    entry: &TransparencyLogEntry,
    envelope: &Envelope,
    signer: Signer<'_>,
) -> Result<(), BodyError> {
    let (body, kind, version) = parse(entry)?;
    let payload_hash = hex::encode(HashAlg::Sha256.digest(&envelope.payload));
    match (kind.as_str(), version.as_str()) {
        ("dsse", "0.0.1") => {
            let spec = get(&body, &["spec"], "spec")?;
            ensure(
                get_str(spec, &["payloadHash", "algorithm"], "payloadHash.algorithm")? == "sha256"
                    && get_str(spec, &["payloadHash", "value"], "payloadHash.value")?
                        == payload_hash,
                "payload hash",
            )?;
            let logged = get(spec, &["signatures"], "signatures")?
                .as_array()
                .ok_or(BodyError::Field("signatures"))?;
            ensure(logged.len() == envelope.signatures.len(), "signature count")?;
            for sig in &envelope.signatures {
                let found = logged.iter().any(|l| {
                    l.get("signature")
                        .and_then(Value::as_str)
                        .is_some_and(|s| b64_eq(s, &sig.sig))
                        && l.get("verifier")
                            .and_then(Value::as_str)
                            .is_some_and(|v| signer.matches_b64_pem(v))
                });
                ensure(found, "signatures")?;
            }
            Ok(())
        }
        ("intoto", "0.0.2") => {
            let content = get(&body, &["spec", "content"], "spec.content")?;
            ensure(
                get_str(content, &["payloadHash", "value"], "payloadHash.value")? == payload_hash,
                "payload hash",
            )?;
            let logged_env = get(content, &["envelope"], "envelope")?;
            ensure(
                get_str(logged_env, &["payloadType"], "envelope.payloadType")?
                    == envelope.payload_type,
                "payload type",
            )?;
            let logged = get(logged_env, &["signatures"], "envelope.signatures")?
                .as_array()
                .ok_or(BodyError::Field("envelope.signatures"))?;
            ensure(logged.len() == envelope.signatures.len(), "signature count")?;
            for sig in &envelope.signatures {
                // intoto stores the envelope's base64 strings base64-encoded once more.
                let sig_b64 = STANDARD.encode(&sig.sig);
                let found = logged.iter().any(|l| {
                    l.get("sig")
                        .and_then(Value::as_str)
                        .is_some_and(|s| b64_eq(s, sig_b64.as_bytes()))
                        && l.get("publicKey")
                            .and_then(Value::as_str)
                            .is_some_and(|v| signer.matches_b64_pem(v))
                });
                ensure(found, "signatures")?;
            }
            Ok(())
        }
        ("hashedrekord", "0.0.2") => {
            let [sig] = envelope.signatures.as_slice() else {
                return Err(BodyError::Mismatch("signature count"));
            };
            let digest = HashAlg::Sha256.digest(&pae(&envelope.payload_type, &envelope.payload));
            check_hashedrekord_v2(&body, HashAlg::Sha256, &digest, &sig.sig, signer)
        }
        _ => Err(BodyError::Unsupported(kind, version)),
    }
}
