//! Public key material in Rekor entries: PEM certificates or public keys, parsed once and
//! used to verify signatures (aws-lc-rs) and to derive search keys.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::signer::to_pem;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa,
    Ed25519,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn from_rekor(name: &str) -> Option<HashAlg> {
        match name {
            "sha256" => Some(HashAlg::Sha256),
            "sha384" => Some(HashAlg::Sha384),
            "sha512" => Some(HashAlg::Sha512),
            _ => None,
        }
    }
    pub fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
    fn aws(self) -> &'static digest::Algorithm {
        match self {
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
            HashAlg::Sha512 => &digest::SHA512,
        }
    }
}

/// A verified-parseable key, with the certificate it came from if any.
#[derive(Clone, Debug)]
pub struct KeyMaterial {
    pub kind: KeyKind,
    pub spki_der: Vec<u8>,
    pub cert_der: Option<Vec<u8>>,
    /// rfc822Name and URI SANs of the certificate, for the search index.
    pub emails: Vec<String>,
    pub uris: Vec<String>,
    /// The PEM re-encoded canonically (64-column lines, final newline).
    pub canonical_pem: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("public key content is not valid base64")]
    Base64,
    #[error("public key content is not a PEM certificate or PEM public key")]
    NotPem,
    #[error("certificate does not parse: {0}")]
    BadCertificate(String),
    #[error("public key does not parse: {0}")]
    BadKey(String),
    #[error("unsupported public key algorithm")]
    Unsupported,
}

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

impl KeyMaterial {
    /// Parses the PEM text of a certificate or a public key.
    pub fn from_pem(pem: &[u8]) -> Result<KeyMaterial, KeyError> {
        let text = std::str::from_utf8(pem).map_err(|_| KeyError::NotPem)?;
        let (label, der) = decode_pem(text).ok_or(KeyError::NotPem)?;
        match label.as_str() {
            "CERTIFICATE" => {
                let cert = Certificate::from_der(&der)
                    .map_err(|e| KeyError::BadCertificate(e.to_string()))?;
                let spki = cert
                    .tbs_certificate()
                    .subject_public_key_info()
                    .to_der()
                    .map_err(|e| KeyError::BadCertificate(e.to_string()))?;
                let (emails, uris) = sans(&cert);
                Ok(KeyMaterial {
                    kind: key_kind(&spki)?,
                    spki_der: spki,
                    canonical_pem: to_pem("CERTIFICATE", &der),
                    cert_der: Some(der),
                    emails,
                    uris,
                })
            }
            "PUBLIC KEY" => Ok(KeyMaterial {
                kind: key_kind(&der)?,
                canonical_pem: to_pem("PUBLIC KEY", &der),
                spki_der: der,
                cert_der: None,
                emails: Vec::new(),
                uris: Vec::new(),
            }),
            _ => Err(KeyError::NotPem),
        }
    }

    fn algorithm(&self, hash: HashAlg) -> Option<&'static dyn VerificationAlgorithm> {
        Some(match (self.kind, hash) {
            (KeyKind::EcdsaP256, HashAlg::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (KeyKind::EcdsaP256, HashAlg::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
            (KeyKind::EcdsaP256, HashAlg::Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
            (KeyKind::EcdsaP384, HashAlg::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
            (KeyKind::EcdsaP384, HashAlg::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
            (KeyKind::EcdsaP384, HashAlg::Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
            (KeyKind::EcdsaP521, HashAlg::Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
            (KeyKind::EcdsaP521, HashAlg::Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
            (KeyKind::EcdsaP521, HashAlg::Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
            (KeyKind::Rsa, HashAlg::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Rsa, HashAlg::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyKind::Rsa, HashAlg::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (KeyKind::Ed25519, _) => return None,
        })
    }

    /// Verifies a signature over an already-computed digest (hashedrekord).
    pub fn verify_prehashed(
        &self,
        hash: HashAlg,
        digest_bytes: &[u8],
        sig: &[u8],
    ) -> Result<(), &'static str> {
        let alg = self
            .algorithm(hash)
            .ok_or("Ed25519 keys cannot sign a prehashed digest; use a dsse entry")?;
        let d = digest::Digest::import_less_safe(digest_bytes, hash.aws())
            .map_err(|_| "digest length does not match its algorithm")?;
        UnparsedPublicKey::new(alg, &self.spki_der)
            .verify_digest(&d, sig)
            .map_err(|_| "signature does not verify with the given key over the given digest")
    }

    /// Verifies a signature over a message with the key's default hash (DSSE PAE).
    pub fn verify_message(&self, msg: &[u8], sig: &[u8]) -> bool {
        let alg: &'static dyn VerificationAlgorithm = match self.kind {
            KeyKind::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
            KeyKind::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1,
            KeyKind::EcdsaP521 => &signature::ECDSA_P521_SHA512_ASN1,
            KeyKind::Rsa => &signature::RSA_PKCS1_2048_8192_SHA256,
            KeyKind::Ed25519 => &signature::ED25519,
        };
        let key: &[u8] = if self.kind == KeyKind::Ed25519 {
            // aws-lc-rs wants the raw 32-byte Ed25519 key.
            &self.spki_der[self.spki_der.len().saturating_sub(32)..]
        } else {
            &self.spki_der
        };
        UnparsedPublicKey::new(alg, key).verify(msg, sig).is_ok()
    }

    /// Search keys: the key's and certificate's fingerprints and the certificate identities.
    pub fn index_keys(&self) -> Vec<String> {
        let mut keys = vec![format!(
            "key:{}",
            hex::encode(Sha256::digest(&self.spki_der))
        )];
        if let Some(cert) = &self.cert_der {
            keys.push(format!("cert:{}", hex::encode(Sha256::digest(cert))));
        }
        keys.extend(
            self.emails
                .iter()
                .map(|e| format!("email:{}", e.to_lowercase())),
        );
        keys.extend(self.uris.iter().map(|u| format!("subject:{u}")));
        keys
    }
}

fn key_kind(spki_der: &[u8]) -> Result<KeyKind, KeyError> {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| KeyError::BadKey(e.to_string()))?;
    let alg = spki.algorithm.oid.to_string();
    let param = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
        .map(|o| o.to_string());
    match (alg.as_str(), param.as_deref()) {
        (OID_EC, Some(OID_P256)) => Ok(KeyKind::EcdsaP256),
        (OID_EC, Some(OID_P384)) => Ok(KeyKind::EcdsaP384),
        (OID_EC, Some(OID_P521)) => Ok(KeyKind::EcdsaP521),
        (OID_RSA, _) => Ok(KeyKind::Rsa),
        (OID_ED25519, _) => Ok(KeyKind::Ed25519),
        _ => Err(KeyError::Unsupported),
    }
}

fn sans(cert: &Certificate) -> (Vec<String>, Vec<String>) {
    let mut emails = Vec::new();
    let mut uris = Vec::new();
    if let Ok(Some(ext)) = cert.tbs_certificate().get_extension::<SubjectAltName>() {
        for name in ext.1.0 {
            match name {
                GeneralName::Rfc822Name(e) => emails.push(e.to_string()),
                GeneralName::UniformResourceIdentifier(u) => uris.push(u.to_string()),
                _ => {}
            }
        }
    }
    (emails, uris)
}

/// First PEM block in `text`: (label, DER).
pub fn decode_pem(text: &str) -> Option<(String, Vec<u8>)> {
    use base64::Engine;
    let begin = text.find("-----BEGIN ")?;
    let rest = &text[begin + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let end = rest.find(&end_marker)?;
    // `get`: a truncated block such as `-----BEGIN PUBLIC KEY-----END PUBLIC KEY-----` puts
    // the end marker before the body's start.
    let body: String = rest
        .get(body_start..end)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    Some((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_pem_blocks_are_refused_not_a_panic() {
        for text in [
            "-----BEGIN PUBLIC KEY-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----",
            "-----BEGIN -----END -----",
            "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----",
        ] {
            assert_eq!(
                decode_pem(text).map(|(_, der)| der.is_empty()),
                match text {
                    "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----" => Some(true),
                    _ => None,
                },
                "{text:?}"
            );
        }
    }
}
