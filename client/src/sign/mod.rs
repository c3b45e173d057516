//! Signing: a file's SHA-256 (or an in-toto statement) signed with a managed key or an
//! ephemeral key certified by the CA, logged in Rekor v1 and packed into a v0.3 bundle.
//!
//! Every bundle is run through the verifier before it is handed back whenever a trusted
//! root is known, so a bad chain, SCT or log answer fails signing rather than verification.

pub mod bundle;
pub mod config;
pub mod digest;
pub mod fulcio;
pub mod rekor;

use serde::Serialize;
use sigil_proto::bundle::{Bundle, LogEntryConversionError};
use sigil_proto::dsse::{Envelope, EnvelopeSignature, IN_TOTO_PAYLOAD_TYPE, pae};
use sigil_proto::trust::TrustedRoot;

use crate::keys::{KeyFileError, SigningKey};
use crate::oidc::{TokenClaims, TokenError};
use crate::verify::certs::ParsedCert;
use crate::verify::{
    Artifact, GithubClaims, IdentityPolicy, Matcher, Policy, PublicKey, VerifiedSigner,
    VerifyError, verify_bundle,
};
use bundle::{Content, Signer};
use fulcio::CaError;
use rekor::{CreatedEntry, RekorError};

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing key: {0}")]
    Key(#[from] KeyFileError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("the CA certified a different public key than the one it was sent")]
    WrongCertifiedKey,
    #[error("the CA's certificate cannot be parsed: {0}")]
    Certificate(VerifyError),
    #[error(transparent)]
    Rekor(#[from] RekorError),
    #[error("transparency log answer cannot go into a bundle: {0}")]
    LogEntry(#[from] LogEntryConversionError),
    #[error("the signed bundle does not verify, so it was not written: {0}")]
    SelfCheck(VerifyError),
    #[error("in-toto statement: {0}")]
    Statement(String),
}

/// Where keyless signing goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeylessServices {
    /// Base URL of the CA (`<ca_url>/api/v2/signingCert`).
    pub ca_url: String,
    /// Base URL of the Rekor v1 log (`<rekor_url>/api/v1/log/entries`).
    pub rekor_url: String,
}

/// Who the finished bundle names as signer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignedBy {
    Key {
        hint: String,
    },
    Certificate {
        identities: Vec<String>,
        issuer: Option<String>,
    },
}

#[derive(Clone, Debug)]
pub struct SignedBundle {
    pub bundle: Bundle,
    pub log_url: String,
    pub log_index: u64,
    /// 64-hex entry UUID (leaf hash).
    pub entry_uuid: String,
    pub signed_by: SignedBy,
    /// Whether the bundle was verified against a trusted root before being returned.
    pub self_checked: bool,
}

fn finish(
    bundle: Bundle,
    created: &CreatedEntry,
    log_url: &str,
    signed_by: SignedBy,
    self_checked: bool,
) -> SignedBundle {
    SignedBundle {
        bundle,
        log_url: log_url.to_string(),
        log_index: created.entry.log_index,
        entry_uuid: created.uuid().to_string(),
        signed_by,
        self_checked,
    }
}

/// The bundle of a keyed signature (named by its key hint), verified with that key against
/// `trusted_root` when there is one. `artifact` is the SHA-256 the verifier is given.
fn finish_keyed(
    content: Content,
    artifact: [u8; 32],
    key: &SigningKey,
    created: &CreatedEntry,
    rekor_url: &str,
    trusted_root: Option<&TrustedRoot>,
) -> Result<SignedBundle, SignError> {
    let hint = bundle::key_hint(&key.public_key_der());
    let assembled = bundle::assemble(
        Signer::Key {
            hint: Some(hint.clone()),
        },
        content,
        &created.entry,
    )?;
    if let Some(root) = trusted_root {
        let public = PublicKey::from_spki_der(&key.public_key_der())
            .map_err(|_| SignError::Key(KeyFileError::UnsupportedKey))?;
        verify_bundle(
            &assembled,
            Artifact::Sha256(artifact),
            &Policy::Key(public),
            root,
        )
        .map_err(SignError::SelfCheck)?;
    }
    Ok(finish(
        assembled,
        created,
        rekor_url,
        SignedBy::Key { hint },
        trusted_root.is_some(),
    ))
}

/// Signs a SHA-256 digest with a managed key, logs a hashedrekord entry with the PEM public
/// key, and, when `trusted_root` is given, verifies the bundle with that key before returning.
pub async fn sign_blob_keyed(
    http: &reqwest::Client,
    sha256: [u8; 32],
    key: &SigningKey,
    rekor_url: &str,
    trusted_root: Option<&TrustedRoot>,
) -> Result<SignedBundle, SignError> {
    let signature = key.sign_sha256_digest(&sha256)?;
    let proposed = rekor::hashedrekord_entry(&sha256, &signature, &key.public_key_pem());
    let created = rekor::submit(http, rekor_url, &proposed).await?;
    finish_keyed(
        Content::Message { sha256, signature },
        sha256,
        key,
        &created,
        rekor_url,
        trusted_root,
    )
}

/// A fresh key certified by the CA for the token's identity. The private key never leaves
/// this process.
pub struct Certified {
    key: SigningKey,
    chain: fulcio::IssuedChain,
}

impl Certified {
    /// PEM of the leaf certificate.
    pub fn leaf_pem(&self) -> &str {
        &self.chain.leaf_pem
    }
}

/// Gets a certificate for a fresh key from the CA at `ca_url` for `identity_token`.
pub async fn certify(
    http: &reqwest::Client,
    identity_token: &str,
    ca_url: &str,
) -> Result<Certified, SignError> {
    let claims = TokenClaims::from_unverified_jwt(identity_token)?;
    // The CA says which claim it checks for this issuer; a CA without the configuration
    // endpoint gets the rule cosign and sigstore-js use.
    let ca_config = fulcio::configuration(http, ca_url).await.ok();
    let claim = ca_config
        .as_ref()
        .and_then(|c| fulcio::challenge_claim_for(c, &claims.iss));
    let key = SigningKey::generate()?;
    let request = fulcio::request(&key, identity_token, claims.challenge_for_claim(claim)?)?;
    let chain = fulcio::signing_cert(http, ca_url, &request).await?;
    let leaf = ParsedCert::from_der(chain.leaf_der())
        .map_err(|e| SignError::Certificate(VerifyError::Certificate(e)))?;
    if leaf.key.spki_der() != key.public_key_der().as_slice() {
        return Err(SignError::WrongCertifiedKey);
    }
    Ok(Certified { key, chain })
}

/// Any identity: the self-check is about chain, SCT, log and signature, not about policy.
fn any_identity() -> Policy {
    let any = || Matcher::regex("").expect("empty regex is valid");
    Policy::Identity(IdentityPolicy {
        identity: any(),
        issuer: any(),
        github: GithubClaims::default(),
    })
}

fn self_check(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    trusted_root: &TrustedRoot,
) -> Result<SignedBy, SignError> {
    let verified = verify_bundle(bundle, artifact, &any_identity(), trusted_root)
        .map_err(SignError::SelfCheck)?;
    match verified.signer {
        VerifiedSigner::Certificate { identities, issuer } => {
            Ok(SignedBy::Certificate { identities, issuer })
        }
        // An identity policy only passes certificate bundles; anything else is a verifier bug
        // that must not produce a bundle.
        VerifiedSigner::Key => Err(SignError::SelfCheck(VerifyError::KeyRequired)),
    }
}

/// Keyless signing of a SHA-256 digest: ephemeral P-256 key, certificate from the CA
/// (proof of possession over the token's verified email, else its subject), hashedrekord
/// entry carrying the leaf certificate, v0.3 bundle with the leaf only. The bundle is verified
/// against `trusted_root` (chain, embedded SCT, log proof and SET) before it is returned.
pub async fn sign_blob_keyless(
    http: &reqwest::Client,
    sha256: [u8; 32],
    identity_token: &str,
    services: &KeylessServices,
    trusted_root: &TrustedRoot,
) -> Result<SignedBundle, SignError> {
    let certified = certify(http, identity_token, &services.ca_url).await?;
    sign_digest_certified(http, sha256, &certified, &services.rekor_url, trusted_root).await
}

/// [`sign_blob_keyless`] with a key the CA has already certified, so that one login and one
/// certificate can sign many things (an image index and its platform manifests).
pub async fn sign_digest_certified(
    http: &reqwest::Client,
    sha256: [u8; 32],
    certified: &Certified,
    rekor_url: &str,
    trusted_root: &TrustedRoot,
) -> Result<SignedBundle, SignError> {
    let Certified { key, chain } = certified;
    let signature = key.sign_sha256_digest(&sha256)?;
    let proposed = rekor::hashedrekord_entry(&sha256, &signature, &chain.leaf_pem);
    let created = rekor::submit(http, rekor_url, &proposed).await?;
    let assembled = bundle::assemble(
        Signer::Certificate(chain.leaf_der().to_vec()),
        Content::Message { sha256, signature },
        &created.entry,
    )?;
    let signed_by = self_check(&assembled, Artifact::Sha256(sha256), trusted_root)?;
    Ok(finish(assembled, &created, rekor_url, signed_by, true))
}

/// The SHA-256 of the first subject of an in-toto statement: the artifact the verifier will
/// be given for it.
pub fn statement_subject_sha256(statement: &[u8]) -> Result<[u8; 32], SignError> {
    let value: serde_json::Value = serde_json::from_slice(statement)
        .map_err(|e| SignError::Statement(format!("not JSON: {e}")))?;
    let hex_digest = value
        .get("subject")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .find_map(|s| s.get("digest")?.get("sha256")?.as_str())
        .ok_or_else(|| SignError::Statement("no subject with a sha256 digest".into()))?;
    hex::decode(hex_digest)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| {
            SignError::Statement(format!("subject digest {hex_digest:?} is not SHA-256 hex"))
        })
}

/// Keyless signing of an in-toto statement: a DSSE envelope (payload type
/// `application/vnd.in-toto+json`) logged as dsse 0.0.1.
pub async fn sign_statement_keyless(
    http: &reqwest::Client,
    statement: &[u8],
    identity_token: &str,
    services: &KeylessServices,
    trusted_root: &TrustedRoot,
) -> Result<SignedBundle, SignError> {
    let certified = certify(http, identity_token, &services.ca_url).await?;
    sign_statement_certified(
        http,
        statement,
        &certified,
        &services.rekor_url,
        trusted_root,
    )
    .await
}

/// [`sign_statement_keyless`] with a key the CA has already certified.
pub async fn sign_statement_certified(
    http: &reqwest::Client,
    statement: &[u8],
    certified: &Certified,
    rekor_url: &str,
    trusted_root: &TrustedRoot,
) -> Result<SignedBundle, SignError> {
    let subject = statement_subject_sha256(statement)?;
    let Certified { key, chain } = certified;
    let sig = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement))?;
    let envelope = Envelope {
        payload: statement.to_vec(),
        payload_type: IN_TOTO_PAYLOAD_TYPE.to_string(),
        signatures: vec![EnvelopeSignature { sig, keyid: None }],
    };
    let proposed = rekor::dsse_entry(&envelope, &chain.leaf_pem);
    let created = rekor::submit(http, rekor_url, &proposed).await?;
    let assembled = bundle::assemble(
        Signer::Certificate(chain.leaf_der().to_vec()),
        Content::Dsse(envelope),
        &created.entry,
    )?;
    let signed_by = self_check(&assembled, Artifact::Sha256(subject), trusted_root)?;
    Ok(finish(assembled, &created, rekor_url, signed_by, true))
}

/// Signing of an in-toto statement with a managed key: a DSSE envelope logged as dsse 0.0.1
/// with the PEM public key as its verifier. With a trusted root, the bundle is verified with
/// that key before it is returned.
pub async fn sign_statement_keyed(
    http: &reqwest::Client,
    statement: &[u8],
    key: &SigningKey,
    rekor_url: &str,
    trusted_root: Option<&TrustedRoot>,
) -> Result<SignedBundle, SignError> {
    let subject = statement_subject_sha256(statement)?;
    let sig = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement))?;
    let envelope = Envelope {
        payload: statement.to_vec(),
        payload_type: IN_TOTO_PAYLOAD_TYPE.to_string(),
        signatures: vec![EnvelopeSignature { sig, keyid: None }],
    };
    let proposed = rekor::dsse_entry(&envelope, &key.public_key_pem());
    let created = rekor::submit(http, rekor_url, &proposed).await?;
    finish_keyed(
        Content::Dsse(envelope),
        subject,
        key,
        &created,
        rekor_url,
        trusted_root,
    )
}

/// An HTTP client for the signing services.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("sigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_subject_is_read_from_the_first_sha256_subject() {
        let digest = "a".repeat(64);
        let s = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "x", "digest": {"sha512": "00"}}, {"name": "y", "digest": {"sha256": digest}}],
            "predicateType": "https://example.com/p", "predicate": {}
        });
        assert_eq!(
            statement_subject_sha256(s.to_string().as_bytes()).unwrap(),
            [0xaa; 32]
        );
        assert!(statement_subject_sha256(b"{\"subject\":[]}").is_err());
        assert!(statement_subject_sha256(b"not json").is_err());
    }
}
