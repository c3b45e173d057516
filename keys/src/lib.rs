//! Public keys as Sigstore carries them: SubjectPublicKeyInfo DER, usually inside PEM.
//!
//! The log (entry keys), the CA (subject keys, CSRs) and the client (bundles, certificates,
//! SCTs, timestamps) all parse and verify through this one module, so a key that one of them
//! accepts the others accept too, and every signature check goes through aws-lc-rs.
//!
//! Parsing is strict where a lax parser would only defer the failure: EC keys must be
//! uncompressed points on P-256/P-384/P-521, Ed25519 keys 32 bytes, RSA keys a well-formed
//! `RSAPublicKey`. Policy beyond that (the CA's RSA size range) is the caller's, from
//! [`PublicKey::rsa_modulus_bits`] and [`PublicKey::rsa_exponent_is_65537`].

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use const_oid::ObjectIdentifier;
use der::Decode;
use der::asn1::UintRef;
use spki::SubjectPublicKeyInfoRef;

/// `id-ecPublicKey`: the SPKI algorithm of every EC key (RFC 5480).
pub const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// `rsaEncryption`: the SPKI algorithm of RSA keys (RFC 8017).
pub const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("public key is not valid SubjectPublicKeyInfo DER: {0}")]
    BadSpki(String),
    #[error("public key PEM is malformed or not a PUBLIC KEY block")]
    BadPem,
    #[error("unsupported public key algorithm {0}")]
    Unsupported(String),
    #[error("{0} public key has the wrong length (EC keys must be uncompressed points)")]
    BadEncoding(&'static str),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("signature does not verify")]
pub struct BadSignature;

/// Why an X.509 signature (a certificate's, a CSR's) did not check out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum X509SignatureError {
    #[error("the signature algorithm {0} is not allowed for this key")]
    Unsupported(String),
    #[error("signature does not verify")]
    Bad,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Ed25519,
    Rsa,
}

impl KeyKind {
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::EcdsaP384 => "ECDSA P-384",
            KeyKind::EcdsaP521 => "ECDSA P-521",
            KeyKind::Ed25519 => "Ed25519",
            KeyKind::Rsa => "RSA",
        }
    }
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

    /// From a Rekor hash algorithm name (`sha256`, ...).
    pub fn from_rekor_name(name: &str) -> Option<HashAlg> {
        match name {
            "sha256" => Some(HashAlg::Sha256),
            "sha384" => Some(HashAlg::Sha384),
            "sha512" => Some(HashAlg::Sha512),
            _ => None,
        }
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
    match *oid {
        o if o == ECDSA_WITH_SHA256 || o == SHA256_WITH_RSA => Some(Some(HashAlg::Sha256)),
        o if o == ECDSA_WITH_SHA384 || o == SHA384_WITH_RSA => Some(Some(HashAlg::Sha384)),
        o if o == ECDSA_WITH_SHA512 || o == SHA512_WITH_RSA => Some(Some(HashAlg::Sha512)),
        o if o == ED25519 => Some(None),
        _ => None,
    }
}

/// The first PEM block in `text` as `(label, DER)`. Text around the block is ignored (as Go's
/// `pem.Decode` does) and line length is not enforced: logs keep PEM as clients sent it, and
/// some clients write the base64 on one line.
pub fn decode_pem(text: &str) -> Option<(String, Vec<u8>)> {
    let begin = text.find("-----BEGIN ")?;
    let rest = &text[begin + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = &rest[..label_end];
    let body_start = label_end + "-----".len();
    let end = rest.find(&format!("-----END {label}-----"))?;
    // `get`: in a truncated block such as `-----BEGIN X-----END X-----` the end marker comes
    // before the body would start.
    let body: String = rest
        .get(body_start..end)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    Some((label.to_string(), der))
}

/// PEM with 64-column lines and a final newline: the canonical form.
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// A parsed public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyKind,
    /// The BIT STRING contents: SEC1 point, raw Ed25519 key or PKCS#1 RSAPublicKey.
    raw: Vec<u8>,
    spki: Vec<u8>,
}

impl PublicKey {
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let spki =
            SubjectPublicKeyInfoRef::from_der(der).map_err(|e| KeyError::BadSpki(e.to_string()))?;
        let oid = spki.algorithm.oid;
        let kind = if oid == EC_PUBLIC_KEY {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as().ok())
                .ok_or_else(|| KeyError::BadSpki("EC key without a named curve".into()))?;
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
            .ok_or_else(|| KeyError::BadSpki("key bit string has unused bits".into()))?
            .to_vec();
        // Keys aws-lc-rs cannot use are refused now, not as a puzzling signature failure later.
        let well_formed = match kind {
            KeyKind::EcdsaP256 => raw.len() == 65 && raw[0] == 4,
            KeyKind::EcdsaP384 => raw.len() == 97 && raw[0] == 4,
            KeyKind::EcdsaP521 => raw.len() == 133 && raw[0] == 4,
            KeyKind::Ed25519 => raw.len() == 32,
            KeyKind::Rsa => RsaPublicKey::from_der(&raw).is_ok(),
        };
        if !well_formed {
            return Err(KeyError::BadEncoding(kind.name()));
        }
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

    /// Bits in an RSA key's modulus; `None` for other key types.
    pub fn rsa_modulus_bits(&self) -> Option<usize> {
        let key = self.rsa()?;
        let n = key.modulus.as_bytes();
        Some(n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize))
    }

    /// Whether an RSA key's public exponent is 65537 (`false` for other key types).
    pub fn rsa_exponent_is_65537(&self) -> bool {
        self.rsa()
            .is_some_and(|k| k.public_exponent.as_bytes() == [1, 0, 1])
    }

    fn rsa(&self) -> Option<RsaPublicKey<'_>> {
        (self.kind == KeyKind::Rsa)
            .then(|| RsaPublicKey::from_der(&self.raw).ok())
            .flatten()
    }

    /// The hash the key's usual Sigstore signature scheme uses (proofs of possession, DSSE).
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

    /// Verifies with the key's default hash (see [`PublicKey::default_hash`]).
    pub fn verify_default(&self, msg: &[u8], sig: &[u8]) -> Result<(), BadSignature> {
        self.verify(self.default_hash(), msg, sig)
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

    /// Verifies a signature made with the X.509 signature algorithm `algorithm`, which must
    /// suit the key (no RSA OID for an EC key, no hash for Ed25519).
    pub fn verify_x509(
        &self,
        algorithm: &ObjectIdentifier,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), X509SignatureError> {
        let unsupported = || X509SignatureError::Unsupported(algorithm.to_string());
        let ecdsa = [ECDSA_WITH_SHA256, ECDSA_WITH_SHA384, ECDSA_WITH_SHA512];
        let rsa = [SHA256_WITH_RSA, SHA384_WITH_RSA, SHA512_WITH_RSA];
        let fits = match self.kind {
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 | KeyKind::EcdsaP521 => {
                ecdsa.contains(algorithm)
            }
            KeyKind::Rsa => rsa.contains(algorithm),
            KeyKind::Ed25519 => *algorithm == ED25519,
        };
        let hash = signature_hash_from_oid(algorithm)
            .filter(|_| fits)
            .ok_or_else(unsupported)?;
        self.verify(hash.unwrap_or(HashAlg::Sha512), msg, sig)
            .map_err(|_| X509SignatureError::Bad)
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
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
        Ed25519KeyPair, KeyPair,
    };

    fn der(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match body.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(body);
        out
    }

    /// SEQUENCE { algorithm, BIT STRING key }.
    fn spki(algorithm_hex: &str, key: &[u8]) -> Vec<u8> {
        let mut bits = vec![0u8];
        bits.extend_from_slice(key);
        der(
            0x30,
            &[hex::decode(algorithm_hex).unwrap(), der(0x03, &bits)].concat(),
        )
    }

    const P256_ALG: &str = "301306072a8648ce3d020106082a8648ce3d030107";
    const P384_ALG: &str = "301006072a8648ce3d020106052b81040022";
    const ED25519_ALG: &str = "300506032b6570";
    const RSA_ALG: &str = "300d06092a864886f70d0101010500";

    fn p256() -> (EcdsaKeyPair, PublicKey) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let key = PublicKey::from_spki_der(&spki(P256_ALG, pair.public_key().as_ref())).unwrap();
        (pair, key)
    }

    #[test]
    fn verifies_p256_messages_prehashes_and_x509_signatures() {
        let (pair, key) = p256();
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        let sig = pair.sign(&SystemRandom::new(), b"hello").unwrap();
        key.verify(HashAlg::Sha256, b"hello", sig.as_ref()).unwrap();
        key.verify_default(b"hello", sig.as_ref()).unwrap();
        assert!(key.verify(HashAlg::Sha256, b"hellO", sig.as_ref()).is_err());
        let digest = HashAlg::Sha256.digest(b"hello");
        key.verify_prehashed(HashAlg::Sha256, &digest, sig.as_ref())
            .unwrap();
        assert!(
            key.verify_prehashed(HashAlg::Sha256, &digest[1..], sig.as_ref())
                .is_err()
        );
        key.verify_x509(&ECDSA_WITH_SHA256, b"hello", sig.as_ref())
            .unwrap();
        assert_eq!(
            key.verify_x509(&ECDSA_WITH_SHA384, b"hello", sig.as_ref()),
            Err(X509SignatureError::Bad)
        );
        assert_eq!(
            key.verify_x509(&SHA256_WITH_RSA, b"hello", sig.as_ref()),
            Err(X509SignatureError::Unsupported(SHA256_WITH_RSA.to_string()))
        );
    }

    #[test]
    fn p384_and_ed25519_use_their_default_hashes() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let key = PublicKey::from_spki_der(&spki(P384_ALG, pair.public_key().as_ref())).unwrap();
        assert_eq!(key.default_hash(), HashAlg::Sha384);
        let sig = pair.sign(&rng, b"m").unwrap();
        key.verify_default(b"m", sig.as_ref()).unwrap();

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key = PublicKey::from_spki_der(&spki(ED25519_ALG, pair.public_key().as_ref())).unwrap();
        let sig = pair.sign(b"m");
        key.verify_default(b"m", sig.as_ref()).unwrap();
        key.verify_x509(&ED25519, b"m", sig.as_ref()).unwrap();
        assert_eq!(key.ed25519_raw(), Some(pair.public_key().as_ref()));
        // Ed25519 signs messages, never digests.
        let digest = HashAlg::Sha256.digest(b"m");
        assert!(
            key.verify_prehashed(HashAlg::Sha256, &digest, sig.as_ref())
                .is_err()
        );
    }

    #[test]
    fn malformed_and_unsupported_keys_are_refused_with_a_reason() {
        assert!(matches!(
            PublicKey::from_spki_der(b"\x30\x00"),
            Err(KeyError::BadSpki(_))
        ));
        // A compressed P-256 point.
        let mut compressed = vec![2u8];
        compressed.extend([7u8; 32]);
        assert_eq!(
            PublicKey::from_spki_der(&spki(P256_ALG, &compressed)),
            Err(KeyError::BadEncoding("ECDSA P-256"))
        );
        assert_eq!(
            PublicKey::from_spki_der(&spki(ED25519_ALG, &[1; 31])),
            Err(KeyError::BadEncoding("Ed25519"))
        );
        assert_eq!(
            PublicKey::from_spki_der(&spki(RSA_ALG, b"not an RSAPublicKey")),
            Err(KeyError::BadEncoding("RSA"))
        );
        // DSA.
        assert!(matches!(
            PublicKey::from_spki_der(&spki("300906072a8648ce380401", &[0; 4])),
            Err(KeyError::Unsupported(_))
        ));
        assert_eq!(
            PublicKey::from_pem("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"),
            Err(KeyError::BadPem)
        );
    }

    #[test]
    fn rsa_size_and_exponent_are_reported() {
        // RSAPublicKey { n = 2^2047 + 1 (2048 bits), e = 65537 }.
        let mut n = vec![0u8, 0x80];
        n.extend([0u8; 254]);
        n.push(1);
        let body = [der(0x02, &n), der(0x02, &[1, 0, 1])].concat();
        let key = PublicKey::from_spki_der(&spki(RSA_ALG, &der(0x30, &body))).unwrap();
        assert_eq!(key.kind(), KeyKind::Rsa);
        assert_eq!(key.rsa_modulus_bits(), Some(2048));
        assert!(key.rsa_exponent_is_65537());
        let (_, ec) = p256();
        assert_eq!(ec.rsa_modulus_bits(), None);
        assert!(!ec.rsa_exponent_is_65537());
    }

    #[test]
    fn pem_blocks_decode_with_any_line_length_and_round_trip() {
        let one_line = "junk before\n-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==\n-----END CERTIFICATE-----\n";
        let (label, der) = decode_pem(one_line).unwrap();
        assert_eq!(label, "CERTIFICATE");
        assert_eq!(der, (0u8..64).collect::<Vec<_>>());
        let canonical = encode_pem("CERTIFICATE", &der);
        assert!(canonical.lines().all(|l| l.len() <= 64));
        assert_eq!(decode_pem(&canonical).unwrap().1, der);
        assert!(
            decode_pem("-----BEGIN CERTIFICATE-----\nAA==\n-----END PUBLIC KEY-----\n").is_none()
        );
    }

    #[test]
    fn truncated_pem_blocks_are_refused_not_a_panic() {
        for text in [
            "-----BEGIN PUBLIC KEY-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----",
            "-----BEGIN -----END -----",
            "-----BEGIN é-----END é-----",
        ] {
            assert_eq!(decode_pem(text), None, "{text:?}");
        }
        assert_eq!(
            decode_pem("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----"),
            Some(("PUBLIC KEY".into(), Vec::new()))
        );
    }
}
