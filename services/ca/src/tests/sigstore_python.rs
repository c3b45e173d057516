//! sigstore-python 4.5.1 judges an issued certificate with its own code: trust config
//! parsing, chain building with the same cryptography policy its verifier uses, the embedded
//! SCT check (`verify_sct`), KU/EKU and the identity policy (issuer OID 1.1 + SAN).

use std::process::Command;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::support::*;
use crate::api::router_with_trust;
use crate::signer::CaKeyAlgorithm;
use crate::trust_config::TrustConfigInputs;

const CHECK: &str = r#"
import json, sys, datetime
from cryptography import x509
from cryptography.x509 import ExtendedKeyUsage, KeyUsage
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, ExtensionPolicy, Criticality
from sigstore.models import ClientTrustConfig
from sigstore._internal.trust import KeyringPurpose
from sigstore._internal.sct import verify_sct
from sigstore.verify.policy import Identity

config = ClientTrustConfig.from_json(open(sys.argv[1]).read())
root = config.trusted_root
chain_pem = json.load(open(sys.argv[2]))
leaf = x509.load_pem_x509_certificate(chain_pem[0].encode())

ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
verifier = (
    PolicyBuilder()
    .store(Store(root.get_fulcio_certs()))
    .time(datetime.datetime.now(datetime.timezone.utc))
    .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
    .build_client_verifier()
)
chain = verifier.verify(leaf, []).chain[1:]
verify_sct(leaf, chain, root.ct_keyring(KeyringPurpose.VERIFY))
assert leaf.extensions.get_extension_for_class(KeyUsage).value.digital_signature
assert ExtendedKeyUsageOID.CODE_SIGNING in leaf.extensions.get_extension_for_class(ExtendedKeyUsage).value
Identity(identity=sys.argv[3], issuer=sys.argv[4]).verify(leaf)
print("ok")
"#;

#[tokio::test]
async fn sigstore_python_accepts_the_chain_sct_and_identity() {
    for algorithm in [CaKeyAlgorithm::EcdsaP256, CaKeyAlgorithm::EcdsaP384] {
        check_with_sigstore_python(algorithm).await;
    }
}

async fn check_with_sigstore_python(algorithm: CaKeyAlgorithm) {
    let python = sigil_tests::sigstore_python::sigstore_cli().with_file_name("python");
    let t = test_ca_with(email_principal(), algorithm).await;
    let inputs = TrustConfigInputs {
        ca_url: "http://127.0.0.1:1".into(),
        rekor_url: "http://127.0.0.1:1".into(),
        ct_url: "http://127.0.0.1:1".into(),
        rekor_spki_der: sigil_log::LogSigner::generate().spki_der().to_vec(),
        oidc_url: None,
        operator: "127.0.0.1".into(),
        valid_from: None,
    };
    let app = router_with_trust(t.ca.clone(), Some(inputs));

    let csr = json!({ "certificateSigningRequest": STANDARD.encode(p256().csr_pem()) }).to_string();
    let resp = app
        .clone()
        .oneshot(
            Request::post("/api/v2/signingCert")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::from(csr))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    let chain = &body["signedCertificateEmbeddedSct"]["chain"]["certificates"];
    let resp = app
        .oneshot(
            Request::get("/api/v1/trust-config")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let config = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (config_path, chain_path) = (dir.path().join("trust.json"), dir.path().join("chain.json"));
    std::fs::write(&config_path, &config).unwrap();
    std::fs::write(&chain_path, chain.to_string()).unwrap();
    let run = |identity: &str| {
        Command::new(&python)
            .args(["-c", CHECK])
            .arg(&config_path)
            .arg(&chain_path)
            .args([identity, ISSUER])
            .output()
            .expect("run sigstore-python's python")
    };
    let out = run("alice@example.com");
    assert!(
        out.status.success(),
        "sigstore-python rejected the certificate from a {algorithm:?} CA:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    // The check can fail: a different identity is refused by the same script.
    assert!(!run("mallory@example.com").status.success());
}
