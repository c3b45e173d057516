//! Real components for CA tests: a SQLite-backed CT log in a temp dir, CA keys on disk, and
//! subject keys of every supported type (aws-lc-rs) with PKCS#10 requests built from them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use der::asn1::BitString;
use der::{Decode, Encode};
use sigil_log::ct::CtLog;
use sigil_log::{LogEngine, LogSigner, Store};
use sigil_proto::fulcio::{Configuration, OidcIssuer};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::ca::{Ca, IdentityCheck, IdentityVerifier};
use crate::identity::{ExtEncoding, FulcioExtension, Principal, SubjectAltName, fulcio_oid};
use crate::keystore::{self, KeyProtection, KeyStoreOptions};
use crate::oidc::TokenError;
use crate::oids;
use crate::signer::CaKeyAlgorithm;

pub const TOKEN: &str = "test-token";
pub const ISSUER: &str = "https://issuer.example.com";

/// Stands in for the OIDC verifier (tested on its own against a real provider): accepts one
/// token and maps it to a fixed principal, so issuance can be tested with any identity. It
/// notes the thread each check ran on.
pub struct FixedIdentity(pub Principal, pub CheckThreads);

pub type CheckThreads = Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>;

impl IdentityVerifier for FixedIdentity {
    fn prepare<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<IdentityCheck, TokenError>> + Send + 'a>> {
        let principal = self.0.clone();
        let valid = token == TOKEN;
        let threads = self.1.clone();
        Box::pin(async move {
            Ok(Box::new(move || {
                threads.lock().unwrap().push(std::thread::current().id());
                if valid {
                    Ok(principal)
                } else {
                    Err(TokenError::BadSignature)
                }
            }) as IdentityCheck)
        })
    }

    fn configuration(&self) -> Configuration {
        Configuration {
            issuers: vec![OidcIssuer {
                issuer_url: Some(ISSUER.into()),
                wildcard_issuer_url: None,
                audience: "sigstore".into(),
                challenge_claim: "email".into(),
                spiffe_trust_domain: String::new(),
                issuer_type: "email".into(),
                subject_domain: String::new(),
                skip_email_verification: false,
            }],
        }
    }
}

pub fn email_principal() -> Principal {
    Principal {
        issuer: ISSUER.into(),
        san: SubjectAltName::Email("alice@example.com".into()),
        challenge: "alice@example.com".into(),
        extensions: Vec::new(),
    }
}

/// A GitHub-Actions-like principal with raw (1.2–1.6) and UTF8String (1.9+) extensions.
pub fn ci_principal() -> Principal {
    Principal {
        issuer: "https://token.actions.githubusercontent.com".into(),
        san: SubjectAltName::Uri(
            "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main".into(),
        ),
        challenge: "repo:o/r:ref:refs/heads/main".into(),
        extensions: vec![
            FulcioExtension {
                oid: fulcio_oid(2),
                value: "push".into(),
                encoding: ExtEncoding::Raw,
            },
            FulcioExtension {
                oid: fulcio_oid(3),
                value: "abc123".into(),
                encoding: ExtEncoding::Raw,
            },
            FulcioExtension {
                oid: fulcio_oid(9),
                value: "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main".into(),
                encoding: ExtEncoding::Utf8String,
            },
            FulcioExtension {
                oid: fulcio_oid(12),
                value: "https://github.com/o/r".into(),
                encoding: ExtEncoding::Utf8String,
            },
        ],
    }
}

pub struct TestCa {
    pub ca: Arc<Ca>,
    pub ct: CtLog,
    /// Where each identity check ran.
    pub checked_on: CheckThreads,
    _dir: tempfile::TempDir,
}

pub async fn test_ca(principal: Principal) -> TestCa {
    test_ca_with(principal, CaKeyAlgorithm::EcdsaP256).await
}

pub async fn test_ca_with(principal: Principal, algorithm: CaKeyAlgorithm) -> TestCa {
    test_ca_configured(principal, algorithm, |ca| ca).await
}

/// A test CA with extra configuration applied (limits, pools).
pub async fn test_ca_configured(
    principal: Principal,
    algorithm: CaKeyAlgorithm,
    configure: impl FnOnce(Ca) -> Ca,
) -> TestCa {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("db")).await.unwrap();
    let engine = LogEngine::open(store, "ct").await.unwrap();
    let ct = CtLog::new(engine, LogSigner::generate());
    let material = keystore::load_or_create(&KeyStoreOptions {
        data_dir: dir.path().to_path_buf(),
        algorithm,
        protection: KeyProtection::InsecureUnencrypted,
        imported: None,
        organization: "sigil test".into(),
    })
    .unwrap();
    let checked_on = CheckThreads::default();
    let ca = Ca::from_material(
        material,
        Duration::from_secs(600),
        FixedIdentity(principal, checked_on.clone()),
        ct.clone(),
    )
    .unwrap();
    TestCa {
        ca: Arc::new(configure(ca)),
        ct,
        checked_on,
        _dir: dir,
    }
}

type SignFn = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// A subject key of one of the supported types, able to sign like a client would.
pub struct TestKey {
    pub name: &'static str,
    pub spki_der: Vec<u8>,
    csr_algorithm: const_oid::ObjectIdentifier,
    sign: SignFn,
}

impl TestKey {
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        (self.sign)(msg)
    }

    pub fn spki_pem(&self) -> String {
        der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &self.spki_der).unwrap()
    }

    /// A PKCS#10 request like sigstore-python's: empty subject, self-signed.
    pub fn csr_der(&self) -> Vec<u8> {
        let info = CertReqInfo {
            version: Version::V1,
            subject: Name::default(),
            public_key: SubjectPublicKeyInfoOwned::from_der(&self.spki_der).unwrap(),
            attributes: Default::default(),
        };
        let signature = self.sign(&info.to_der().unwrap());
        CertReq {
            info,
            algorithm: AlgorithmIdentifierOwned {
                oid: self.csr_algorithm,
                parameters: None,
            },
            signature: BitString::from_bytes(&signature).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    pub fn csr_pem(&self) -> String {
        der::pem::encode_string(
            "CERTIFICATE REQUEST",
            der::pem::LineEnding::LF,
            &self.csr_der(),
        )
        .unwrap()
    }
}

fn ecdsa(
    name: &'static str,
    alg: &'static sig::EcdsaSigningAlgorithm,
    csr_algorithm: const_oid::ObjectIdentifier,
) -> TestKey {
    let key = EcdsaKeyPair::generate(alg).unwrap();
    let spki_der = key.public_key().as_der().unwrap().as_ref().to_vec();
    TestKey {
        name,
        spki_der,
        csr_algorithm,
        sign: Box::new(move |m| key.sign(&SystemRandom::new(), m).unwrap().as_ref().to_vec()),
    }
}

pub fn p256() -> TestKey {
    ecdsa(
        "P-256",
        &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
        oids::ECDSA_WITH_SHA256,
    )
}

pub fn p384() -> TestKey {
    ecdsa(
        "P-384",
        &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
        oids::ECDSA_WITH_SHA384,
    )
}

pub fn ed25519() -> TestKey {
    let key = Ed25519KeyPair::generate().unwrap();
    let spki_der = key.public_key().as_der().unwrap().as_ref().to_vec();
    TestKey {
        name: "Ed25519",
        spki_der,
        csr_algorithm: oids::ED25519,
        sign: Box::new(move |m| key.sign(m).as_ref().to_vec()),
    }
}

pub fn rsa2048() -> TestKey {
    let key = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
    let spki_der = key.public_key().as_der().unwrap().as_ref().to_vec();
    TestKey {
        name: "RSA-2048",
        spki_der,
        csr_algorithm: oids::SHA256_WITH_RSA,
        sign: Box::new(move |m| {
            let mut out = vec![0u8; key.public_modulus_len()];
            key.sign(&sig::RSA_PKCS1_SHA256, &SystemRandom::new(), m, &mut out)
                .unwrap();
            out
        }),
    }
}

pub fn all_key_types() -> Vec<TestKey> {
    vec![p256(), p384(), ed25519(), rsa2048()]
}
