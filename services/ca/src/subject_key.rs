//! The key a certificate is issued for, and proof that the requester holds it: a PKCS#10
//! self-signature or a signature over the identity challenge (interop §1.2). Verification
//! goes through aws-lc-rs.

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::{AnyRef, BitStringRef, UintRef};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use thiserror::Error;
use x509_cert::request::CertReqInfo;

use crate::oids;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Ed25519,
    Rsa,
}

/// A parsed, policy-checked subject public key.
#[derive(Debug, Clone)]
pub struct SubjectKey {
    spki: SubjectPublicKeyInfoOwned,
    kind: KeyKind,
}

#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
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
            let (label, der) = der::pem::decode_vec(trimmed.as_bytes())
                .map_err(|e| SubjectKeyError::MalformedKey(e.to_string()))?;
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
        let kind = if spki.algorithm.oid == oids::EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
                .ok_or_else(|| {
                    SubjectKeyError::MalformedKey("EC key without a named curve".into())
                })?;
            match curve {
                c if c == oids::SECP256R1 => KeyKind::EcdsaP256,
                c if c == oids::SECP384R1 => KeyKind::EcdsaP384,
                c if c == oids::SECP521R1 => KeyKind::EcdsaP521,
                _ => return Err(SubjectKeyError::UnsupportedKey),
            }
        } else if spki.algorithm.oid == oids::ED25519 {
            KeyKind::Ed25519
        } else if spki.algorithm.oid == oids::RSA_ENCRYPTION {
            check_rsa(spki.subject_public_key.raw_bytes())?;
            KeyKind::Rsa
        } else {
            return Err(SubjectKeyError::UnsupportedKey);
        };
        let key = SubjectKey { spki, kind };
        // Reject keys aws-lc-rs cannot use (bad points, wrong lengths) now rather than as a
        // confusing signature failure later.
        key.check_encoding()?;
        Ok(key)
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
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
        let alg: &'static dyn VerificationAlgorithm = match self.kind {
            KeyKind::EcdsaP256 => &sig::ECDSA_P256_SHA256_ASN1,
            KeyKind::EcdsaP384 => &sig::ECDSA_P384_SHA384_ASN1,
            KeyKind::EcdsaP521 => &sig::ECDSA_P521_SHA512_ASN1,
            KeyKind::Ed25519 => &sig::ED25519,
            KeyKind::Rsa => &sig::RSA_PKCS1_2048_8192_SHA256,
        };
        self.verify(alg, challenge, signature)
            .map_err(|_| SubjectKeyError::BadProofOfPossession)
    }

    /// Verifies a signature made with the X.509 signature algorithm `algorithm`.
    fn verify_x509(
        &self,
        algorithm: &AlgorithmIdentifierOwned,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SubjectKeyError> {
        let oid = algorithm.oid;
        let unsupported = || SubjectKeyError::UnsupportedSignatureAlgorithm(oid.to_string());
        let alg: &'static dyn VerificationAlgorithm = match self.kind {
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 | KeyKind::EcdsaP521 => {
                let hash = [
                    oids::ECDSA_WITH_SHA256,
                    oids::ECDSA_WITH_SHA384,
                    oids::ECDSA_WITH_SHA512,
                ]
                .iter()
                .position(|o| *o == oid)
                .ok_or_else(unsupported)?;
                match (self.kind, hash) {
                    (KeyKind::EcdsaP256, 0) => &sig::ECDSA_P256_SHA256_ASN1,
                    (KeyKind::EcdsaP256, 1) => &sig::ECDSA_P256_SHA384_ASN1,
                    (KeyKind::EcdsaP256, _) => &sig::ECDSA_P256_SHA512_ASN1,
                    (KeyKind::EcdsaP384, 0) => &sig::ECDSA_P384_SHA256_ASN1,
                    (KeyKind::EcdsaP384, 1) => &sig::ECDSA_P384_SHA384_ASN1,
                    (KeyKind::EcdsaP384, _) => &sig::ECDSA_P384_SHA512_ASN1,
                    (_, 0) => &sig::ECDSA_P521_SHA256_ASN1,
                    (_, 1) => &sig::ECDSA_P521_SHA384_ASN1,
                    (_, _) => &sig::ECDSA_P521_SHA512_ASN1,
                }
            }
            KeyKind::Rsa => match oid {
                o if o == oids::SHA256_WITH_RSA => &sig::RSA_PKCS1_2048_8192_SHA256,
                o if o == oids::SHA384_WITH_RSA => &sig::RSA_PKCS1_2048_8192_SHA384,
                o if o == oids::SHA512_WITH_RSA => &sig::RSA_PKCS1_2048_8192_SHA512,
                _ => return Err(unsupported()),
            },
            KeyKind::Ed25519 if oid == oids::ED25519 => &sig::ED25519,
            KeyKind::Ed25519 => return Err(unsupported()),
        };
        self.verify(alg, message, signature)
            .map_err(|_| SubjectKeyError::BadCsrSignature)
    }

    fn verify(
        &self,
        alg: &'static dyn VerificationAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), aws_lc_rs::error::Unspecified> {
        UnparsedPublicKey::new(alg, self.spki.subject_public_key.raw_bytes())
            .verify(message, signature)
    }

    fn check_encoding(&self) -> Result<(), SubjectKeyError> {
        let raw = self.spki.subject_public_key.raw_bytes();
        let ok = match self.kind {
            KeyKind::EcdsaP256 => raw.len() == 65 && raw[0] == 4,
            KeyKind::EcdsaP384 => raw.len() == 97 && raw[0] == 4,
            KeyKind::EcdsaP521 => raw.len() == 133 && raw[0] == 4,
            KeyKind::Ed25519 => raw.len() == 32,
            KeyKind::Rsa => true,
        };
        if ok {
            Ok(())
        } else {
            Err(SubjectKeyError::MalformedKey(
                "unexpected public key length (EC keys must be uncompressed points)".into(),
            ))
        }
    }
}

fn check_rsa(rsa_public_key_der: &[u8]) -> Result<(), SubjectKeyError> {
    let key = RsaPublicKey::from_der(rsa_public_key_der)
        .map_err(|e| SubjectKeyError::MalformedKey(e.to_string()))?;
    let n = key.modulus.as_bytes();
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) || key.public_exponent.as_bytes() != [1, 0, 1]
    {
        return Err(SubjectKeyError::WeakRsaKey);
    }
    Ok(())
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
    key.verify_x509(&raw.algorithm, &info_der, signature)?;
    Ok(key)
}
