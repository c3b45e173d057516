//! The key a certificate is issued for, and proof that the requester holds it: a PKCS#10
//! self-signature or a signature over the identity challenge (interop §1.2). Parsing and
//! verification go through `sigil-keys`, shared with the log and the client.

use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Encode, Sequence};
use sigil_keys::{KeyError, PublicKey, X509SignatureError};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use thiserror::Error;
use x509_cert::request::CertReqInfo;

/// Smallest and largest RSA moduli accepted (Fulcio's range).
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 4096;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SubjectKeyError {
    #[error("the public key is malformed: {0}")]
    MalformedKey(String),
    #[error(
        "the public key algorithm is not supported (allowed: ECDSA P-256/P-384/P-521, Ed25519, RSA 2048-4096)"
    )]
    UnsupportedKey,
    #[error("RSA keys must have a 2048-4096 bit modulus and exponent 65537")]
    WeakRsaKey,
    #[error("the certificate signing request is malformed: {0}")]
    MalformedCsr(String),
    #[error("the signature algorithm {0} is not allowed for this key")]
    UnsupportedSignatureAlgorithm(String),
    #[error("the certificate signing request's signature does not verify")]
    BadCsrSignature,
    #[error(
        "the proof of possession does not verify against the public key for the token's identity"
    )]
    BadProofOfPossession,
}

pub use sigil_keys::KeyKind;

/// A parsed, policy-checked subject public key: the SPKI as it goes into the certificate,
/// and the same key parsed for verification.
#[derive(Debug, Clone)]
pub struct SubjectKey {
    spki: SubjectPublicKeyInfoOwned,
    key: PublicKey,
}

#[derive(Sequence)]
struct RawCsr<'a> {
    info: AnyRef<'a>,
    algorithm: AlgorithmIdentifierOwned,
    signature: BitStringRef<'a>,
}

impl SubjectKey {
    pub fn from_spki_der(der: &[u8]) -> Result<SubjectKey, SubjectKeyError> {
        let spki = SubjectPublicKeyInfoOwned::from_der(der)
            .map_err(|e| SubjectKeyError::MalformedKey(e.to_string()))?;
        SubjectKey::from_spki(spki)
    }

    /// The `publicKey.content` of a `publicKeyRequest`: PEM `PUBLIC KEY`, base64 DER, or raw DER.
    pub fn from_request_content(content: &str) -> Result<SubjectKey, SubjectKeyError> {
        let trimmed = content.trim();
        if trimmed.starts_with("-----BEGIN") {
            let (label, der) = sigil_keys::decode_pem(trimmed)
                .ok_or_else(|| SubjectKeyError::MalformedKey("malformed PEM".into()))?;
            if label != "PUBLIC KEY" {
                return Err(SubjectKeyError::MalformedKey(format!(
                    "unexpected PEM label {label:?}"
                )));
            }
            return SubjectKey::from_spki_der(&der);
        }
        use base64::Engine as _;
        match base64::engine::general_purpose::STANDARD.decode(trimmed) {
            Ok(der) => SubjectKey::from_spki_der(&der),
            Err(_) => SubjectKey::from_spki_der(content.as_bytes()),
        }
    }

    pub fn from_spki(spki: SubjectPublicKeyInfoOwned) -> Result<SubjectKey, SubjectKeyError> {
        let der = spki
            .to_der()
            .map_err(|e| SubjectKeyError::MalformedKey(e.to_string()))?;
        let key = PublicKey::from_spki_der(&der).map_err(|e| match e {
            KeyError::Unsupported(_) => SubjectKeyError::UnsupportedKey,
            other => SubjectKeyError::MalformedKey(other.to_string()),
        })?;
        if key.kind() == KeyKind::Rsa
            && (!key
                .rsa_modulus_bits()
                .is_some_and(|bits| (RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits))
                || !key.rsa_exponent_is_65537())
        {
            return Err(SubjectKeyError::WeakRsaKey);
        }
        Ok(SubjectKey { spki, key })
    }

    pub fn kind(&self) -> KeyKind {
        self.key.kind()
    }

    pub fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    pub fn into_spki(self) -> SubjectPublicKeyInfoOwned {
        self.spki
    }

    /// Verifies a proof of possession: a signature over `challenge` with the key's default
    /// hash (P-256 SHA-256, P-384 SHA-384, P-521 SHA-512, RSA PKCS#1 v1.5 SHA-256, Ed25519).
    pub fn verify_proof_of_possession(
        &self,
        challenge: &[u8],
        signature: &[u8],
    ) -> Result<(), SubjectKeyError> {
        self.key
            .verify_default(challenge, signature)
            .map_err(|_| SubjectKeyError::BadProofOfPossession)
    }
}

/// Parses a PKCS#10 request (PEM or DER), checks its self-signature and returns its key.
/// Subject and attributes are ignored: only the key and the proof it gives matter (§1.2).
pub fn verify_csr(bytes: &[u8]) -> Result<SubjectKey, SubjectKeyError> {
    let malformed = |e: der::Error| SubjectKeyError::MalformedCsr(e.to_string());
    // Only PEM may be trimmed: DER can legitimately end in a byte that looks like whitespace.
    let pem = bytes.trim_ascii();
    let der = if pem.starts_with(b"-----BEGIN") {
        let (label, der) = der::pem::decode_vec(pem).map_err(|e| malformed(e.into()))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(SubjectKeyError::MalformedCsr(format!(
                "unexpected PEM label {label:?}"
            )));
        }
        der
    } else {
        bytes.to_vec()
    };
    let raw = RawCsr::from_der(&der).map_err(malformed)?;
    // The signature covers the CertificationRequestInfo exactly as sent.
    let info_der = raw.info.to_der().map_err(malformed)?;
    let info = CertReqInfo::from_der(&info_der).map_err(malformed)?;
    let key = SubjectKey::from_spki(info.public_key)?;
    let signature = raw
        .signature
        .as_bytes()
        .ok_or_else(|| SubjectKeyError::MalformedCsr("signature has unused bits".into()))?;
    key.key
        .verify_x509(&raw.algorithm.oid, &info_der, signature)
        .map_err(|e| match e {
            X509SignatureError::Unsupported(oid) => {
                SubjectKeyError::UnsupportedSignatureAlgorithm(oid)
            }
            X509SignatureError::Bad => SubjectKeyError::BadCsrSignature,
        })?;
    Ok(key)
}
