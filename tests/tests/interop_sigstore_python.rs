//! sigstore-python 4.5.1 signs against sigil with a token from a real OIDC provider and
//! verifies the bundle: right identity and issuer accepted, wrong ones rejected.

use sigil_tests::oidc_provider::OidcProvider;
use sigil_tests::sigstore_python;
use sigil_tests::stack::Stack;

fn text(out: &std::process::Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstore_python_signs_with_sigil_and_verifies_identity() {
    let idp = OidcProvider::start();
    let stack = Stack::start(idp.issuer_url());
    let work = tempfile::tempdir().unwrap();
    let tc = stack.trust_config_file(work.path()).await;
    let artifact = work.path().join("a.txt");
    std::fs::write(&artifact, b"signed by sigstore-python through sigil\n").unwrap();
    let bundle = work.path().join("a.txt.sigstore.json");
    let token = idp.token("alice@example.com").await;
    let (tc, artifact_s, bundle_s) = (
        tc.to_str().unwrap(),
        artifact.to_str().unwrap(),
        bundle.to_str().unwrap(),
    );

    let out = sigstore_python::run(&[
        "--trust-config",
        tc,
        "sign",
        "--identity-token",
        &token,
        "--bundle",
        bundle_s,
        "--overwrite",
        artifact_s,
    ]);
    assert!(out.status.success(), "sigstore sign failed: {}", text(&out));
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(
        b["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "hashedrekord"
    );

    let verify = |identity: &str, issuer: &str| {
        sigstore_python::run(&[
            "--trust-config",
            tc,
            "verify",
            "identity",
            "--bundle",
            bundle_s,
            "--cert-identity",
            identity,
            "--cert-oidc-issuer",
            issuer,
            artifact_s,
        ])
    };
    let ok = verify("alice@example.com", idp.issuer_url());
    assert!(
        ok.status.success(),
        "verify with the right identity failed: {}",
        text(&ok)
    );
    let wrong_id = verify("mallory@example.com", idp.issuer_url());
    assert!(!wrong_id.status.success(), "a wrong identity was accepted");
    let wrong_iss = verify("alice@example.com", "https://accounts.example.com");
    assert!(!wrong_iss.status.success(), "a wrong issuer was accepted");

    // The attestation path: DSSE entries in the same log.
    let predicate = work.path().join("predicate.json");
    std::fs::write(&predicate, br#"{"buildDefinition":{"buildType":"https://example.com/build/v1","externalParameters":{}},"runDetails":{"builder":{"id":"https://example.com/builder"}}}"#).unwrap();
    let token = idp.token("alice@example.com").await;
    let att_bundle = work.path().join("a.txt.att.sigstore.json");
    let out = sigstore_python::run(&[
        "--trust-config",
        tc,
        "attest",
        "--predicate",
        predicate.to_str().unwrap(),
        "--predicate-type",
        "https://slsa.dev/provenance/v1",
        "--identity-token",
        &token,
        "--bundle",
        att_bundle.to_str().unwrap(),
        "--overwrite",
        artifact_s,
    ]);
    assert!(
        out.status.success(),
        "sigstore attest failed: {}",
        text(&out)
    );
}
