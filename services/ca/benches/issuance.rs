//! Issuance throughput and latency: CSR verification, precertificate signing, the durable
//! CT log append (SQLite, group commit) and final signing, with concurrent requests.
//! Token verification is excluded (it is the OIDC verifier's cost, measured separately).
//!
//! `cargo bench -p sigil-ca --bench issuance -- [--count N] [--concurrency C] [--p384]`

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use der::asn1::BitString;
use der::{Decode, Encode};
use sigil_ca::identity::{Principal, SubjectAltName};
use sigil_ca::keystore::{self, KeyProtection, KeyStoreOptions};
use sigil_ca::oidc::TokenError;
use sigil_ca::{Ca, CaKeyAlgorithm, IdentityCheck, IdentityVerifier};
use sigil_log::ct::CtLog;
use sigil_log::{LogEngine, LogSigner, Store};
use sigil_proto::fulcio::{Configuration, CreateSigningCertificateRequest};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

struct BenchIdentity;

impl IdentityVerifier for BenchIdentity {
    fn prepare<'a>(
        &'a self,
        _token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<IdentityCheck, TokenError>> + Send + 'a>> {
        Box::pin(async {
            Ok(Box::new(|| {
                Ok(Principal {
                    issuer: "https://issuer.example.com".into(),
                    san: SubjectAltName::Email("bench@example.com".into()),
                    challenge: "bench@example.com".into(),
                    extensions: Vec::new(),
                })
            }) as IdentityCheck)
        })
    }

    fn configuration(&self) -> Configuration {
        Configuration {
            issuers: Vec::new(),
        }
    }
}

fn csr() -> Vec<u8> {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let info = CertReqInfo {
        version: Version::V1,
        subject: Name::default(),
        public_key: SubjectPublicKeyInfoOwned::from_der(
            key.public_key().as_der().unwrap().as_ref(),
        )
        .unwrap(),
        attributes: Default::default(),
    };
    let sig = key
        .sign(&SystemRandom::new(), &info.to_der().unwrap())
        .unwrap();
    CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned {
            oid: sigil_ca::oids::ECDSA_WITH_SHA256,
            parameters: None,
        },
        signature: BitString::from_bytes(sig.as_ref()).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = arg(&args, "--count", 5000);
    let concurrency = arg(&args, "--concurrency", 64).max(1);
    let algorithm = if args.iter().any(|a| a == "--p384") {
        CaKeyAlgorithm::EcdsaP384
    } else {
        CaKeyAlgorithm::EcdsaP256
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(count, concurrency, algorithm));
}

async fn run(count: usize, concurrency: usize, algorithm: CaKeyAlgorithm) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path()).await.unwrap();
    let ct = CtLog::new(
        LogEngine::open(store, "ct").await.unwrap(),
        LogSigner::generate(),
    );
    let material = keystore::load_or_create(&KeyStoreOptions {
        data_dir: dir.path().to_path_buf(),
        algorithm,
        protection: KeyProtection::InsecureUnencrypted,
        imported: None,
        organization: "bench".into(),
    })
    .unwrap();
    let ca = Arc::new(
        Ca::from_material(
            material,
            Duration::from_secs(600),
            BenchIdentity,
            ct.clone(),
        )
        .unwrap(),
    );

    // Client-side work (key generation, CSR signing) happens before the clock starts.
    let requests: Vec<Vec<u8>> = (0..count).map(|_| csr()).collect();
    let per_worker = count.div_ceil(concurrency);
    let started = Instant::now();
    let mut workers = Vec::new();
    for chunk in requests.chunks(per_worker) {
        let ca = ca.clone();
        let chunk = chunk.to_vec();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(chunk.len());
            for csr in chunk {
                let t = Instant::now();
                let request = CreateSigningCertificateRequest {
                    certificate_signing_request: Some(csr),
                    ..Default::default()
                };
                ca.handle_signing_request(request, Some("token"))
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    assert_eq!(
        ct.engine().tree_head().size,
        count as u64,
        "every precertificate was logged"
    );
    println!(
        "issuance ({algorithm:?} CA, CSR path, durable CT append): {count} certs, concurrency {concurrency}: \
         {:.0} certs/s; latency p50 {:?} p90 {:?} p99 {:?} max {:?}",
        count as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies[latencies.len() - 1],
    );
}
