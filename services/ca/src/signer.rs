//! The CA's signing key behind [`CaSigner`], so a KMS or PKCS#11 key can replace the local
//! one without touching issuance. The local signer is aws-lc-rs ECDSA (the hot path).

use std::future::Future;
use std::pin::Pin;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair,
};
use const_oid::ObjectIdentifier;
use der::zeroize::Zeroizing;
use spki::AlgorithmIdentifierOwned;
use thiserror::Error;

use crate::oids;

#[derive(Debug, Error)]
pub enum SignError {
    #[error("the CA key failed to sign: {0}")]
    Failed(String),
}

/// A signature in progress: local keys finish at once, KMS/HSM keys may await the network.
pub type SignFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, SignError>> + Send + 'a>>;

/// A CA private key: anything that signs a TBS structure with a fixed X.509 algorithm.
/// Issuance only talks to this trait, so a KMS or PKCS#11 key is one more implementation.
pub trait CaSigner: Send + Sync {
    /// The X.509 `AlgorithmIdentifier` of the signatures this key makes.
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned;
    /// The key's SubjectPublicKeyInfo, DER.
    fn spki_der(&self) -> &[u8];
    /// A signature over `message` in the encoding X.509 expects (DER for ECDSA).
    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a>;
}

/// Curves sigil generates CA keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaKeyAlgorithm {
    #[default]
    EcdsaP256,
    EcdsaP384,
}

impl CaKeyAlgorithm {
    fn signing(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            CaKeyAlgorithm::EcdsaP256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
            CaKeyAlgorithm::EcdsaP384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
        }
    }

    /// The signature OID that goes with the curve (SHA-256 for P-256, SHA-384 for P-384).
    pub fn signature_oid(self) -> ObjectIdentifier {
        match self {
            CaKeyAlgorithm::EcdsaP256 => oids::ECDSA_WITH_SHA256,
            CaKeyAlgorithm::EcdsaP384 => oids::ECDSA_WITH_SHA384,
        }
    }
}

impl std::str::FromStr for CaKeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa-p256" => Ok(CaKeyAlgorithm::EcdsaP256),
            "p384" | "p-384" | "ecdsa-p384" => Ok(CaKeyAlgorithm::EcdsaP384),
            other => Err(format!(
                "unknown CA key algorithm {other:?} (expected p256 or p384)"
            )),
        }
    }
}

/// An ECDSA key held in this process.
pub struct LocalSigner {
    key: EcdsaKeyPair,
    algorithm: CaKeyAlgorithm,
    spki_der: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for LocalSigner {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalSigner({:?})", self.algorithm)
    }
}

impl LocalSigner {
    /// A fresh key and its unencrypted PKCS#8 DER (for the caller to protect and store).
    pub fn generate(
        algorithm: CaKeyAlgorithm,
    ) -> Result<(LocalSigner, Zeroizing<Vec<u8>>), SignError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm.signing(), &rng)
            .map_err(|_| SignError::Failed("key generation failed".into()))?;
        let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
        let signer = LocalSigner::from_pkcs8(&pkcs8)?;
        Ok((signer, pkcs8))
    }

    /// Loads a P-256 or P-384 PKCS#8 (v1 or v2) private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<LocalSigner, SignError> {
        for algorithm in [CaKeyAlgorithm::EcdsaP256, CaKeyAlgorithm::EcdsaP384] {
            if let Ok(key) = EcdsaKeyPair::from_pkcs8(algorithm.signing(), der) {
                let spki_der = key
                    .public_key()
                    .as_der()
                    .map_err(|_| SignError::Failed("cannot encode the public key".into()))?
                    .as_ref()
                    .to_vec();
                return Ok(LocalSigner {
                    key,
                    algorithm,
                    spki_der,
                    rng: SystemRandom::new(),
                });
            }
        }
        Err(SignError::Failed(
            "the key is not an ECDSA P-256 or P-384 PKCS#8 private key".into(),
        ))
    }

    pub fn algorithm(&self) -> CaKeyAlgorithm {
        self.algorithm
    }

    /// Signs synchronously (aws-lc-rs, ~25 µs for P-256).
    pub fn sign_now(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.key
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| SignError::Failed("ECDSA signing failed".into()))
    }
}

impl CaSigner for LocalSigner {
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.algorithm.signature_oid(),
            parameters: None,
        }
    }

    fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        Box::pin(std::future::ready(self.sign_now(message)))
    }
}
