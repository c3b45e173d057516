//! Public keys as Sigstore carries them (SPKI DER or PEM), verified through aws-lc-rs.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use const_oid::ObjectIdentifier;
use der::Decode;
use spki::SubjectPublicKeyInfoRef;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("public key is not valid SubjectPublicKeyInfo DER")]
    BadSpki,
    #[error("public key PEM is malformed or not a PUBLIC KEY block")]
    BadPem,
    #[error("unsupported public key algorithm {0}")]
    Unsupported(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("signature does not verify")]
pub struct BadSignature;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Ed25519,
    Rsa,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.aws(), data).as_ref().to_vec()
    }

    fn aws(self) -> &'static digest::Algorithm {
        match self {
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
            HashAlg::Sha512 => &digest::SHA512,
        }
    }

    pub fn output_len(self) -> usize {
        self.aws().output_len()
    }

    /// From a digest AlgorithmIdentifier OID (CMS, RFC 3161).
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<HashAlg> {
        match oid.to_string().as_str() {
            "2.16.840.1.101.3.4.2.1" => Some(HashAlg::Sha256),
            "2.16.840.1.101.3.4.2.2" => Some(HashAlg::Sha384),
            "2.16.840.1.101.3.4.2.3" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// From a protobuf `HashAlgorithm` enum name.
    pub fn from_proto_name(name: &str) -> Option<HashAlg> {
        match name {
            "SHA2_256" => Some(HashAlg::Sha256),
            "SHA2_384" => Some(HashAlg::Sha384),
            "SHA2_512" => Some(HashAlg::Sha512),
            _ => None,
        }
    }
}

/// A signature algorithm named by an X.509/CMS AlgorithmIdentifier: which hash it implies
/// (`None` for pure Ed25519).
pub fn signature_hash_from_oid(oid: &ObjectIdentifier) -> Option<Option<HashAlg>> {
    match oid.to_string().as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => Some(Some(HashAlg::Sha256)),
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => Some(Some(HashAlg::Sha384)),
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => Some(Some(HashAlg::Sha512)),
        "1.3.101.112" => Some(None),
        _ => None,
    }
}

/// Decodes one PEM block to `(label, DER)`. Line length is not enforced: logs store PEM as
/// clients sent it, and some clients write the base64 on a single line.
pub fn decode_pem(text: &str) -> Option<(String, Vec<u8>)> {
    let text = text.trim();
    let rest = text.strip_prefix("-----BEGIN ")?;
    let (label, rest) = rest.split_once("-----")?;
    let end = format!("-----END {label}-----");
    let body = rest.trim_end().strip_suffix(end.as_str())?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((label.to_string(), der))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyKind,
    /// The BIT STRING contents: SEC1 point, raw Ed25519 key or PKCS#1 RSAPublicKey.
    raw: Vec<u8>,
    spki: Vec<u8>,
}

impl PublicKey {
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|_| KeyError::BadSpki)?;
        let oid = spki.algorithm.oid;
        let kind = if oid == EC_PUBLIC_KEY {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as().ok())
                .ok_or(KeyError::BadSpki)?;
            match curve {
                c if c == P256 => KeyKind::EcdsaP256,
                c if c == P384 => KeyKind::EcdsaP384,
                c if c == P521 => KeyKind::EcdsaP521,
                other => return Err(KeyError::Unsupported(format!("EC curve {other}"))),
            }
        } else if oid == ED25519 {
            KeyKind::Ed25519
        } else if oid == RSA {
            KeyKind::Rsa
        } else {
            return Err(KeyError::Unsupported(oid.to_string()));
        };
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or(KeyError::BadSpki)?
            .to_vec();
        Ok(PublicKey {
            kind,
            raw,
            spki: der.to_vec(),
        })
    }

    /// A PEM `PUBLIC KEY` block (PKIX SubjectPublicKeyInfo).
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        let (label, der) = decode_pem(text).ok_or(KeyError::BadPem)?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::BadPem);
        }
        PublicKey::from_spki_der(&der)
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The hash the key's usual Sigstore signature scheme uses.
    pub fn default_hash(&self) -> HashAlg {
        match self.kind {
            KeyKind::EcdsaP384 => HashAlg::Sha384,
            KeyKind::EcdsaP521 | KeyKind::Ed25519 => HashAlg::Sha512,
            KeyKind::EcdsaP256 | KeyKind::Rsa => HashAlg::Sha256,
        }
    }

    fn algorithm(&self, hash: HashAlg) -> &'static dyn VerificationAlgorithm {
        use HashAlg::*;
        match (self.kind, hash) {
            (KeyKind::EcdsaP256, Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (KeyKind::EcdsaP256, Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
            (KeyKind::EcdsaP256, Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
            (KeyKind::EcdsaP384, Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
            (KeyKind::EcdsaP384, Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
            (KeyKind::EcdsaP384, Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
            (KeyKind::EcdsaP521, Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
            (KeyKind::EcdsaP521, Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
            (KeyKind::EcdsaP521, Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
            (KeyKind::Rsa, Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Rsa, Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyKind::Rsa, Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (KeyKind::Ed25519, _) => &signature::ED25519,
        }
    }

    /// Verifies `sig` over `msg`, hashing with `hash` (ignored for Ed25519, which signs the
    /// message itself).
    pub fn verify(&self, hash: HashAlg, msg: &[u8], sig: &[u8]) -> Result<(), BadSignature> {
        UnparsedPublicKey::new(self.algorithm(hash), &self.raw)
            .verify(msg, sig)
            .map_err(|_| BadSignature)
    }

    /// Verifies `sig` over an already computed digest (hashedrekord signatures). Ed25519
    /// cannot sign a prehash, so it always fails here.
    pub fn verify_prehashed(
        &self,
        hash: HashAlg,
        digest_bytes: &[u8],
        sig: &[u8],
    ) -> Result<(), BadSignature> {
        if self.kind == KeyKind::Ed25519 {
            return Err(BadSignature);
        }
        let d =
            digest::Digest::import_less_safe(digest_bytes, hash.aws()).map_err(|_| BadSignature)?;
        UnparsedPublicKey::new(self.algorithm(hash), &self.raw)
            .verify_digest(&d, sig)
            .map_err(|_| BadSignature)
    }

    /// The raw Ed25519 key (for C2SP key ids); `None` for other key types.
    pub fn ed25519_raw(&self) -> Option<&[u8]> {
        (self.kind == KeyKind::Ed25519).then_some(self.raw.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn spki_p256(point: &[u8]) -> Vec<u8> {
        // SEQUENCE { SEQUENCE { ecPublicKey, prime256v1 }, BIT STRING point }
        let alg = hex::decode("301306072a8648ce3d020106082a8648ce3d030107").unwrap();
        let mut bits = vec![0u8];
        bits.extend_from_slice(point);
        let body = [alg, crate::verify::asn1::encode(0x03, &bits)].concat();
        crate::verify::asn1::encode(0x30, &body)
    }

    #[test]
    fn verifies_p256_messages_and_prehashes() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let key = PublicKey::from_spki_der(&spki_p256(pair.public_key().as_ref())).unwrap();
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        let sig = pair.sign(&rng, b"hello").unwrap();
        key.verify(HashAlg::Sha256, b"hello", sig.as_ref()).unwrap();
        assert!(key.verify(HashAlg::Sha256, b"hellO", sig.as_ref()).is_err());
        let digest = HashAlg::Sha256.digest(b"hello");
        key.verify_prehashed(HashAlg::Sha256, &digest, sig.as_ref())
            .unwrap();
        assert!(
            key.verify_prehashed(HashAlg::Sha256, &digest[1..], sig.as_ref())
                .is_err()
        );
    }

    #[test]
    fn decodes_pem_with_any_line_length() {
        let one_line = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==\n-----END CERTIFICATE-----\n";
        let (label, der) = decode_pem(one_line).unwrap();
        assert_eq!(label, "CERTIFICATE");
        assert_eq!(der, (0u8..64).collect::<Vec<_>>());
        assert!(
            decode_pem("-----BEGIN CERTIFICATE-----\nAA==\n-----END PUBLIC KEY-----\n").is_none()
        );
    }

    #[test]
    fn rejects_non_keys() {
        assert_eq!(
            PublicKey::from_spki_der(b"\x30\x00"),
            Err(KeyError::BadSpki)
        );
        assert_eq!(
            PublicKey::from_pem("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"),
            Err(KeyError::BadPem)
        );
    }
}
