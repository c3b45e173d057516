//! The trust documents clients need to use this instance (interop §7, §11.1): a TrustedRoot
//! (v0.1 media type, the only one sigstore-python 4.5.1 accepts) with the CA chain, the CT
//! log key and the transparency log key, and a SigningConfig v0.2 with the public URLs.

use der::Decode;
use sha2::{Digest, Sha256};
use sigil_proto::bundle::{LogId, X509Certificate, X509CertificateChain};
use sigil_proto::trust::{
    CLIENT_TRUST_CONFIG_MEDIA_TYPE_V0_1, CertificateAuthority, ClientTrustConfig,
    DistinguishedName, PublicKey, SIGNING_CONFIG_MEDIA_TYPE_V0_2, Service, ServiceConfiguration,
    SigningConfig, TRUSTED_ROOT_MEDIA_TYPE_V0_1, TimeRange, TransparencyLogInstance, TrustedRoot,
};
use spki::SubjectPublicKeyInfoRef;
use thiserror::Error;
use time::OffsetDateTime;
use x509_cert::Certificate;

use crate::oids;

#[derive(Debug, Error)]
pub enum TrustConfigError {
    #[error("the CA chain is empty")]
    EmptyChain,
    #[error("cannot parse {what}: {reason}")]
    Parse { what: &'static str, reason: String },
    #[error("unsupported {0} key type for a trusted root")]
    UnsupportedKey(&'static str),
}

/// What the CA does not know by itself: where clients reach the services and the
/// transparency log's key.
#[derive(Debug, Clone)]
pub struct TrustConfigInputs {
    /// Base URL of the CA, served at the host root (sigstore-python drops any path).
    pub ca_url: String,
    /// Rekor v1 base URL (clients append `/api/v1/...`); no trailing slash.
    pub rekor_url: String,
    /// Base URL of the CT log (the prefix before `/ct/v1/`).
    pub ct_url: String,
    /// SubjectPublicKeyInfo DER of the transparency log's key.
    pub rekor_spki_der: Vec<u8>,
    /// OIDC issuer URL clients should use to obtain tokens, if any.
    pub oidc_url: Option<String>,
    /// `operator` on every service entry (sigstore-python requires it).
    pub operator: String,
    /// Start of every validity window; defaults to the CA chain's earliest notBefore.
    pub valid_from: Option<OffsetDateTime>,
}

/// Everything the trusted root needs from our side of the stack.
pub struct TrustMaterial<'a> {
    /// `[intermediate, ..., root]`, DER.
    pub ca_chain: &'a [Vec<u8>],
    pub ct_spki_der: &'a [u8],
}

pub fn client_trust_config(
    material: &TrustMaterial<'_>,
    inputs: &TrustConfigInputs,
) -> Result<ClientTrustConfig, TrustConfigError> {
    Ok(ClientTrustConfig {
        media_type: CLIENT_TRUST_CONFIG_MEDIA_TYPE_V0_1.to_string(),
        trusted_root: trusted_root(material, inputs)?,
        signing_config: signing_config(material, inputs)?,
    })
}

pub fn trusted_root(
    material: &TrustMaterial<'_>,
    inputs: &TrustConfigInputs,
) -> Result<TrustedRoot, TrustConfigError> {
    let start = valid_from(material, inputs)?;
    let root_der = material
        .ca_chain
        .last()
        .ok_or(TrustConfigError::EmptyChain)?;
    let root = parse_cert(root_der, "the root certificate")?;
    let subject = root.tbs_certificate().subject();
    let attr = |oid| {
        subject
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| {
                a.value
                    .decode_as::<der::asn1::Utf8StringRef<'_>>()
                    .ok()
                    .map(|s| s.to_string())
            })
            .unwrap_or_default()
    };
    let organization = attr(const_oid::db::rfc4519::O);
    let common_name = attr(const_oid::db::rfc4519::CN);
    Ok(TrustedRoot {
        media_type: TRUSTED_ROOT_MEDIA_TYPE_V0_1.to_string(),
        tlogs: vec![log_instance(
            &inputs.rekor_url,
            &inputs.rekor_spki_der,
            start,
            inputs,
            "transparency log",
        )?],
        certificate_authorities: vec![CertificateAuthority {
            subject: DistinguishedName {
                organization: if organization.is_empty() {
                    inputs.operator.clone()
                } else {
                    organization
                },
                common_name,
            },
            uri: inputs.ca_url.clone(),
            cert_chain: X509CertificateChain {
                certificates: material
                    .ca_chain
                    .iter()
                    .map(|der| X509Certificate {
                        raw_bytes: der.clone(),
                    })
                    .collect(),
            },
            valid_for: TimeRange { start, end: None },
            operator: Some(inputs.operator.clone()),
        }],
        ctlogs: vec![log_instance(
            &inputs.ct_url,
            material.ct_spki_der,
            start,
            inputs,
            "CT log",
        )?],
        timestamp_authorities: Vec::new(),
    })
}

pub fn signing_config(
    material: &TrustMaterial<'_>,
    inputs: &TrustConfigInputs,
) -> Result<SigningConfig, TrustConfigError> {
    let start = valid_from(material, inputs)?;
    let service = |url: &str| Service {
        url: url.trim_end_matches('/').to_string(),
        major_api_version: 1,
        valid_for: TimeRange { start, end: None },
        operator: inputs.operator.clone(),
    };
    Ok(SigningConfig {
        media_type: SIGNING_CONFIG_MEDIA_TYPE_V0_2.to_string(),
        // Fulcio is API "v1" in signing configs even though its paths are /api/v2 (§7.2).
        ca_urls: vec![service(&inputs.ca_url)],
        oidc_urls: inputs.oidc_url.iter().map(|u| service(u)).collect(),
        rekor_tlog_urls: vec![service(&inputs.rekor_url)],
        tsa_urls: Vec::new(),
        rekor_tlog_config: Some(ServiceConfiguration {
            selector: "ANY".into(),
            count: None,
        }),
        tsa_config: Some(ServiceConfiguration {
            selector: "ANY".into(),
            count: None,
        }),
    })
}

fn log_instance(
    base_url: &str,
    spki_der: &[u8],
    start: OffsetDateTime,
    inputs: &TrustConfigInputs,
    what: &'static str,
) -> Result<TransparencyLogInstance, TrustConfigError> {
    Ok(TransparencyLogInstance {
        base_url: base_url.trim_end_matches('/').to_string(),
        hash_algorithm: "SHA2_256".into(),
        public_key: PublicKey {
            raw_bytes: Some(spki_der.to_vec()),
            key_details: key_details(spki_der, what)?.into(),
            valid_for: Some(TimeRange { start, end: None }),
        },
        log_id: LogId {
            key_id: Sha256::digest(spki_der).to_vec(),
        },
        checkpoint_key_id: None,
        operator: Some(inputs.operator.clone()),
    })
}

/// protobuf-specs `PublicKeyDetails` name for a log key.
fn key_details(spki_der: &[u8], what: &'static str) -> Result<&'static str, TrustConfigError> {
    let spki =
        SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|e| TrustConfigError::Parse {
            what,
            reason: e.to_string(),
        })?;
    let oid = spki.algorithm.oid;
    if oid == oids::ED25519 {
        return Ok("PKIX_ED25519");
    }
    if oid != oids::EC_PUBLIC_KEY {
        return Err(TrustConfigError::UnsupportedKey(what));
    }
    let curve = spki
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
    match curve {
        Some(c) if c == oids::SECP256R1 => Ok("PKIX_ECDSA_P256_SHA_256"),
        Some(c) if c == oids::SECP384R1 => Ok("PKIX_ECDSA_P384_SHA_384"),
        Some(c) if c == oids::SECP521R1 => Ok("PKIX_ECDSA_P521_SHA_512"),
        _ => Err(TrustConfigError::UnsupportedKey(what)),
    }
}

fn valid_from(
    material: &TrustMaterial<'_>,
    inputs: &TrustConfigInputs,
) -> Result<OffsetDateTime, TrustConfigError> {
    if let Some(t) = inputs.valid_from {
        return Ok(t);
    }
    let mut earliest = None;
    for der in material.ca_chain {
        let cert = parse_cert(der, "a CA certificate")?;
        let not_before = cert
            .tbs_certificate()
            .validity()
            .not_before
            .to_unix_duration();
        earliest = Some(earliest.map_or(not_before, |e: std::time::Duration| e.min(not_before)));
    }
    let secs = earliest.ok_or(TrustConfigError::EmptyChain)?.as_secs() as i64;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| TrustConfigError::Parse {
        what: "a CA certificate's notBefore",
        reason: e.to_string(),
    })
}

fn parse_cert(der: &[u8], what: &'static str) -> Result<Certificate, TrustConfigError> {
    Certificate::from_der(der).map_err(|e| TrustConfigError::Parse {
        what,
        reason: e.to_string(),
    })
}
