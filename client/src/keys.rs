//! Signing keys: an ECDSA P-256 key pair (aws-lc-rs) and the cosign encrypted private key
//! file format (interop §8.1): PEM `ENCRYPTED SIGSTORE PRIVATE KEY` around a JSON document,
//! scrypt-derived key, NaCl secretbox over the PKCS#8 DER.

use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use serde::{Deserialize, Serialize};

use crate::verify::keys::decode_pem;

pub const ENCRYPTED_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The label cosign wrote before it switched to the Sigstore name; still accepted.
pub const LEGACY_ENCRYPTED_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

const KDF_NAME: &str = "scrypt";
const CIPHER_NAME: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// scrypt (N, r, p) that cosign's decrypter accepts; the middle one is what it writes.
pub const ACCEPTED_SCRYPT_PARAMS: [ScryptParams; 3] = [
    ScryptParams {
        n: 32768,
        r: 8,
        p: 1,
    },
    ScryptParams {
        n: 65536,
        r: 8,
        p: 1,
    },
    ScryptParams {
        n: 131072,
        r: 8,
        p: 1,
    },
];
pub const DEFAULT_SCRYPT_PARAMS: ScryptParams = ACCEPTED_SCRYPT_PARAMS[1];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFileError {
    #[error("not a PEM file")]
    NotPem,
    #[error(
        "PEM block is {0:?}, expected {ENCRYPTED_KEY_LABEL:?} or {LEGACY_ENCRYPTED_KEY_LABEL:?}"
    )]
    WrongLabel(String),
    #[error("encrypted key body is not the cosign JSON format: {0}")]
    BadJson(String),
    #[error("unsupported key derivation {0:?} (expected scrypt)")]
    UnsupportedKdf(String),
    #[error("unsupported cipher {0:?} (expected nacl/secretbox)")]
    UnsupportedCipher(String),
    #[error("unsupported scrypt parameters N={n} r={r} p={p}")]
    UnsupportedParams { n: u64, r: u32, p: u32 },
    #[error("bad {0} length")]
    BadLength(&'static str),
    #[error("decryption failed: wrong password or corrupted key file")]
    WrongPassword,
    #[error("decrypted key is not an ECDSA P-256 PKCS#8 private key")]
    UnsupportedKey,
    #[error("key generation or encoding failed")]
    Crypto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScryptParams {
    #[serde(rename = "N")]
    pub n: u64,
    pub r: u32,
    pub p: u32,
}

impl ScryptParams {
    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<[u8; 32], KeyFileError> {
        let unsupported = KeyFileError::UnsupportedParams {
            n: self.n,
            r: self.r,
            p: self.p,
        };
        if !ACCEPTED_SCRYPT_PARAMS.contains(self) {
            return Err(unsupported);
        }
        let log_n = self.n.trailing_zeros() as u8;
        let params = scrypt::Params::new(log_n, self.r, self.p).map_err(|_| unsupported)?;
        let mut out = [0u8; 32];
        scrypt::scrypt(password, salt, &params, &mut out).map_err(|_| KeyFileError::Crypto)?;
        Ok(out)
    }
}

/// go-securesystemslib's `encrypted` JSON, as cosign writes it.
#[derive(Debug, Serialize, Deserialize)]
struct EncryptedKeyJson {
    kdf: KdfJson,
    cipher: CipherJson,
    ciphertext: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct KdfJson {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CipherJson {
    name: String,
    nonce: String,
}

/// An ECDSA P-256 signing key. The PKCS#8 document is kept so the key can be re-encrypted.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SigningKey").finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate() -> Result<SigningKey, KeyFileError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| KeyFileError::Crypto)?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| KeyFileError::Crypto)?
            .as_ref()
            .to_vec();
        Ok(SigningKey { pair, pkcs8 })
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyFileError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map_err(|_| KeyFileError::UnsupportedKey)?;
        Ok(SigningKey {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.pair
            .public_key()
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default()
    }

    pub fn public_key_pem(&self) -> String {
        encode_pem(PUBLIC_KEY_LABEL, &self.public_key_der())
    }

    /// ECDSA-SHA256 (ASN.1 DER signature) over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyFileError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyFileError::Crypto)
    }

    /// ECDSA over an already computed SHA-256 digest (hashedrekord signs the digest).
    pub fn sign_sha256_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, KeyFileError> {
        let digest = Digest::import_less_safe(digest, &SHA256).map_err(|_| KeyFileError::Crypto)?;
        self.pair
            .sign_digest(&digest)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyFileError::Crypto)
    }

    /// The cosign `cosign.key` PEM, encrypted under `password` with fresh salt and nonce.
    pub fn to_encrypted_pem(
        &self,
        password: &[u8],
        params: ScryptParams,
    ) -> Result<String, KeyFileError> {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut salt);
        rand::fill(&mut nonce);
        self.encrypt_with(password, params, &salt, &nonce)
    }

    fn encrypt_with(
        &self,
        password: &[u8],
        params: ScryptParams,
        salt: &[u8; SALT_LEN],
        nonce: &[u8; NONCE_LEN],
    ) -> Result<String, KeyFileError> {
        let key = params.derive(password, salt)?;
        let ciphertext = XSalsa20Poly1305::new(Key::from_slice(&key))
            .encrypt(Nonce::from_slice(nonce), self.pkcs8.as_slice())
            .map_err(|_| KeyFileError::Crypto)?;
        let json = EncryptedKeyJson {
            kdf: KdfJson {
                name: KDF_NAME.into(),
                params,
                salt: STANDARD.encode(salt),
            },
            cipher: CipherJson {
                name: CIPHER_NAME.into(),
                nonce: STANDARD.encode(nonce),
            },
            ciphertext: STANDARD.encode(ciphertext),
        };
        let body = serde_json::to_vec(&json).map_err(|_| KeyFileError::Crypto)?;
        Ok(encode_pem(ENCRYPTED_KEY_LABEL, &body))
    }

    /// Loads a cosign encrypted private key (either PEM label).
    pub fn from_encrypted_pem(pem: &str, password: &[u8]) -> Result<SigningKey, KeyFileError> {
        let (label, body) = decode_pem(pem).ok_or(KeyFileError::NotPem)?;
        if label != ENCRYPTED_KEY_LABEL && label != LEGACY_ENCRYPTED_KEY_LABEL {
            return Err(KeyFileError::WrongLabel(label));
        }
        let json: EncryptedKeyJson =
            serde_json::from_slice(&body).map_err(|e| KeyFileError::BadJson(e.to_string()))?;
        if json.kdf.name != KDF_NAME {
            return Err(KeyFileError::UnsupportedKdf(json.kdf.name));
        }
        if json.cipher.name != CIPHER_NAME {
            return Err(KeyFileError::UnsupportedCipher(json.cipher.name));
        }
        let b64 = |s: &str, what| {
            STANDARD
                .decode(s)
                .map_err(|_| KeyFileError::BadLength(what))
        };
        let salt = b64(&json.kdf.salt, "salt")?;
        let nonce = b64(&json.cipher.nonce, "nonce")?;
        let ciphertext = b64(&json.ciphertext, "ciphertext")?;
        if nonce.len() != NONCE_LEN {
            return Err(KeyFileError::BadLength("nonce"));
        }
        let key = json.kdf.params.derive(password, &salt)?;
        let pkcs8 = XSalsa20Poly1305::new(Key::from_slice(&key))
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
            .map_err(|_| KeyFileError::WrongPassword)?;
        SigningKey::from_pkcs8(&pkcs8)
    }
}

/// PEM with 64-character lines and a trailing newline.
pub use sigil_keys::encode_pem;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{HashAlg, PublicKey};

    /// Written once by `COSIGN_PASSWORD=sigil-fixture-password sigil generate-key-pair`; it
    /// pins the format, so a change to encryption or encoding cannot go unnoticed.
    const FIXTURE_KEY: &str = include_str!("../tests/fixtures/cosign-fixture.key");
    const FIXTURE_PUB: &str = include_str!("../tests/fixtures/cosign-fixture.pub");
    const FIXTURE_PASSWORD: &[u8] = b"sigil-fixture-password";

    #[test]
    fn round_trip_signs_and_verifies() {
        let key = SigningKey::generate().unwrap();
        let pem = key
            .to_encrypted_pem(b"hunter2", DEFAULT_SCRYPT_PARAMS)
            .unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let loaded = SigningKey::from_encrypted_pem(&pem, b"hunter2").unwrap();
        assert_eq!(loaded.public_key_der(), key.public_key_der());
        let public = PublicKey::from_pem(&key.public_key_pem()).unwrap();
        let sig = loaded.sign(b"message").unwrap();
        public.verify(HashAlg::Sha256, b"message", &sig).unwrap();
        let digest: [u8; 32] = HashAlg::Sha256.digest(b"message").try_into().unwrap();
        let sig = loaded.sign_sha256_digest(&digest).unwrap();
        public.verify(HashAlg::Sha256, b"message", &sig).unwrap();
    }

    #[test]
    fn wrong_password_is_reported_as_such() {
        let key = SigningKey::generate().unwrap();
        let pem = key
            .to_encrypted_pem(b"right", DEFAULT_SCRYPT_PARAMS)
            .unwrap();
        let err = SigningKey::from_encrypted_pem(&pem, b"wrong").unwrap_err();
        assert_eq!(err, KeyFileError::WrongPassword);
        assert!(err.to_string().contains("wrong password"));
    }

    #[test]
    fn legacy_label_and_every_accepted_param_set_load() {
        let key = SigningKey::generate().unwrap();
        for params in ACCEPTED_SCRYPT_PARAMS {
            let pem = key.to_encrypted_pem(b"", params).unwrap();
            let legacy = pem.replace(ENCRYPTED_KEY_LABEL, LEGACY_ENCRYPTED_KEY_LABEL);
            let loaded = SigningKey::from_encrypted_pem(&legacy, b"").unwrap();
            assert_eq!(loaded.public_key_der(), key.public_key_der());
        }
    }

    #[test]
    fn unaccepted_params_and_labels_are_rejected() {
        let key = SigningKey::generate().unwrap();
        let weak = ScryptParams {
            n: 1024,
            r: 8,
            p: 1,
        };
        assert!(matches!(
            key.to_encrypted_pem(b"", weak),
            Err(KeyFileError::UnsupportedParams { n: 1024, .. })
        ));
        let public = key.public_key_pem();
        assert_eq!(
            SigningKey::from_encrypted_pem(&public, b"").unwrap_err(),
            KeyFileError::WrongLabel("PUBLIC KEY".into())
        );
        // A different cipher name must be refused even if the bytes would decrypt.
        let pem = key.to_encrypted_pem(b"", DEFAULT_SCRYPT_PARAMS).unwrap();
        let (_, body) = decode_pem(&pem).unwrap();
        let tampered = String::from_utf8(body)
            .unwrap()
            .replace("nacl/secretbox", "aes-gcm");
        let pem = encode_pem(ENCRYPTED_KEY_LABEL, tampered.as_bytes());
        assert_eq!(
            SigningKey::from_encrypted_pem(&pem, b"").unwrap_err(),
            KeyFileError::UnsupportedCipher("aes-gcm".into())
        );
    }

    #[test]
    fn committed_fixture_decrypts_to_its_public_key() {
        let key = SigningKey::from_encrypted_pem(FIXTURE_KEY, FIXTURE_PASSWORD).unwrap();
        assert_eq!(key.public_key_pem(), FIXTURE_PUB);
        assert_eq!(
            SigningKey::from_encrypted_pem(FIXTURE_KEY, b"not it").unwrap_err(),
            KeyFileError::WrongPassword
        );
        // Same key, salt and nonce give the same bytes: the encoding is stable.
        let (_, body) = decode_pem(FIXTURE_KEY).unwrap();
        let json: EncryptedKeyJson = serde_json::from_slice(&body).unwrap();
        let salt: [u8; 32] = STANDARD.decode(json.kdf.salt).unwrap().try_into().unwrap();
        let nonce: [u8; 24] = STANDARD
            .decode(json.cipher.nonce)
            .unwrap()
            .try_into()
            .unwrap();
        let again = key
            .encrypt_with(FIXTURE_PASSWORD, json.kdf.params, &salt, &nonce)
            .unwrap();
        assert_eq!(again, FIXTURE_KEY);
    }
}
