//! The log's signing key: ECDSA P-256 with SHA-256 through aws-lc-rs, stored as a PKCS#8
//! PEM file. Used for checkpoints, signed entry timestamps and (in the CT log) SCTs and STHs.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {0} is not a PKCS#8 PEM private key of the expected type")]
    BadKey(String),
}

pub struct LogSigner {
    key: EcdsaKeyPair,
    spki_der: Vec<u8>,
    key_id: [u8; 32],
    rng: SystemRandom,
}

impl std::fmt::Debug for LogSigner {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogSigner({})", hex::encode(self.key_id))
    }
}

const PEM_LABEL: &str = "PRIVATE KEY";

impl LogSigner {
    pub fn generate() -> LogSigner {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("aws-lc-rs generates P-256 keys");
        LogSigner::from_pkcs8_der(pkcs8.as_ref()).expect("fresh key parses")
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Option<LogSigner> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der).ok()?;
        let spki_der = spki_for_p256_point(key.public_key().as_ref());
        let key_id = Sha256::digest(&spki_der).into();
        Some(LogSigner {
            key,
            spki_der,
            key_id,
            rng: SystemRandom::new(),
        })
    }

    pub fn from_pem(pem: &str) -> Option<LogSigner> {
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = STANDARD.decode(body.trim()).ok()?;
        LogSigner::from_pkcs8_der(&der)
    }

    /// Loads the key at `path`, or creates it there (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> Result<LogSigner, SignerError> {
        let der = load_or_create_pkcs8(path, || {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .expect("aws-lc-rs generates P-256 keys")
                .as_ref()
                .to_vec()
        })?;
        LogSigner::from_pkcs8_der(&der).ok_or(SignerError::BadKey(path.display().to_string()))
    }

    /// ASN.1 DER ECDSA-SHA256 signature over `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.key
            .sign(&self.rng, msg)
            .expect("ECDSA signing does not fail with a valid key")
            .as_ref()
            .to_vec()
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// SHA-256 of the SPKI DER: Rekor's logID, the CT log ID, and (first 4 bytes) the
    /// checkpoint key hint.
    pub fn key_id(&self) -> [u8; 32] {
        self.key_id
    }

    pub fn public_key_pem(&self) -> String {
        to_pem("PUBLIC KEY", &self.spki_der)
    }
}

/// Verifies an ECDSA P-256 SHA-256 DER signature against an SPKI (used by tests and tools).
pub fn verify_p256(spki_der: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let point = match spki_der.strip_prefix(&P256_SPKI_PREFIX[..]) {
        Some(p) => p,
        None => return false,
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        point,
    )
    .verify(msg, sig)
    .is_ok()
}

// SubjectPublicKeyInfo header for an uncompressed P-256 point (id-ecPublicKey, prime256v1).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn spki_for_p256_point(point: &[u8]) -> Vec<u8> {
    let mut out = P256_SPKI_PREFIX.to_vec();
    out.extend_from_slice(point);
    out
}

pub use sigil_keys::encode_pem as to_pem;

/// The PKCS#8 DER of the private key in the PEM file at `path`, or of a key from `generate`
/// written there first (mode 0600, never over an existing file).
pub(crate) fn load_or_create_pkcs8(
    path: &Path,
    generate: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, SignerError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(pem) => sigil_keys::decode_pem(&pem)
            .filter(|(label, _)| label == PEM_LABEL)
            .map(|(_, der)| der)
            .ok_or(SignerError::BadKey(shown)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let der = generate();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| SignerError::Write {
                    path: shown.clone(),
                    source,
                })?;
            }
            write_private(path, to_pem(PEM_LABEL, &der).as_bytes()).map_err(|source| {
                SignerError::Write {
                    path: shown.clone(),
                    source,
                }
            })?;
            tracing::info!(path = %shown, "created a new signing key");
            Ok(der)
        }
        Err(source) => Err(SignerError::Read {
            path: shown,
            source,
        }),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_survives_a_restart_and_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/log.pem");
        let a = LogSigner::load_or_create(&path).unwrap();
        let b = LogSigner::load_or_create(&path).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        let sig = b.sign(b"checkpoint");
        assert!(verify_p256(a.spki_der(), b"checkpoint", &sig));
        assert!(!verify_p256(a.spki_der(), b"checkpoinT", &sig));
        assert!(
            a.public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(!format!("{a:?}").contains("PRIVATE"));
    }
}
