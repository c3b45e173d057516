//! Key material in Rekor entries: a PEM certificate or public key, parsed once (through
//! `sigil-keys`, shared with the CA and the client) and used to verify signatures and to
//! derive search keys.

use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use sigil_keys::{PublicKey, decode_pem, encode_pem};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

pub use sigil_keys::HashAlg;

/// A parsed key, with the certificate it came from if any.
#[derive(Clone, Debug)]
pub struct KeyMaterial {
    pub key: PublicKey,
    pub cert_der: Option<Vec<u8>>,
    /// Identities of the certificate, for the search index: rfc822Name SANs, and the other
    /// SAN types (URI, DNS, UTF8String otherName).
    pub emails: Vec<String>,
    pub uris: Vec<String>,
    /// The PEM re-encoded canonically (64-column lines, final newline).
    pub canonical_pem: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("public key content is not a PEM certificate or PEM public key")]
    NotPem,
    #[error("certificate does not parse: {0}")]
    BadCertificate(String),
    #[error(transparent)]
    Key(#[from] sigil_keys::KeyError),
}

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
                    key: PublicKey::from_spki_der(&spki)?,
                    canonical_pem: encode_pem("CERTIFICATE", &der),
                    cert_der: Some(der),
                    emails,
                    uris,
                })
            }
            "PUBLIC KEY" => Ok(KeyMaterial {
                key: PublicKey::from_spki_der(&der)?,
                canonical_pem: encode_pem("PUBLIC KEY", &der),
                cert_der: None,
                emails: Vec::new(),
                uris: Vec::new(),
            }),
            _ => Err(KeyError::NotPem),
        }
    }

    /// Verifies a signature over an already-computed digest (hashedrekord).
    pub fn verify_prehashed(
        &self,
        hash: HashAlg,
        digest_bytes: &[u8],
        sig: &[u8],
    ) -> Result<(), &'static str> {
        if self.key.kind() == sigil_keys::KeyKind::Ed25519 {
            return Err("Ed25519 keys cannot sign a prehashed digest; use a dsse entry");
        }
        self.key
            .verify_prehashed(hash, digest_bytes, sig)
            .map_err(|_| "signature does not verify with the given key over the given digest")
    }

    /// Verifies a signature over a message with the key's default hash (DSSE PAE).
    pub fn verify_message(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.key.verify_default(msg, sig).is_ok()
    }

    /// Search keys: the certificate's fingerprint (else the key's) and the certificate
    /// identities. As in Rekor, a certificate entry is found by its certificate, not by the
    /// bare public key inside it: that key is fresh for every keyless signing, so indexing it
    /// too would cost each write one more random index page and find nothing the certificate
    /// does not.
    pub fn index_keys(&self) -> Vec<String> {
        let mut keys = vec![match &self.cert_der {
            Some(cert) => format!("cert:{}", hex::encode(Sha256::digest(cert))),
            None => format!("key:{}", hex::encode(Sha256::digest(self.key.spki_der()))),
        }];
        keys.extend(
            self.emails
                .iter()
                .map(|e| format!("email:{}", e.to_lowercase())),
        );
        keys.extend(self.uris.iter().map(|u| format!("subject:{u}")));
        keys
    }
}

/// The certificate's identities: rfc822Name SANs as emails; URIs, DNS names and UTF8String
/// otherNames (Fulcio's username SAN) as subjects. Everything a search by email or subject
/// can name.
fn sans(cert: &Certificate) -> (Vec<String>, Vec<String>) {
    let mut emails = Vec::new();
    let mut subjects = Vec::new();
    if let Ok(Some(ext)) = cert.tbs_certificate().get_extension::<SubjectAltName>() {
        for name in ext.1.0 {
            match name {
                GeneralName::Rfc822Name(e) => emails.push(e.to_string()),
                GeneralName::UniformResourceIdentifier(u) => subjects.push(u.to_string()),
                GeneralName::DnsName(d) => subjects.push(d.to_string()),
                GeneralName::OtherName(other) => {
                    if let Ok(text) = other.value.decode_as::<der::asn1::Utf8StringRef<'_>>() {
                        subjects.push(text.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    (emails, subjects)
}
