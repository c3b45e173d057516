//! Keyless signing through the library API against a real sigild and a real OIDC provider
//! (npm oidc-provider): message signatures and in-toto statements, checked by the verifier
//! with the signer's identity.

use sigil_client::sign::{
    KeylessServices, SignError, SignedBy, http_client, sign_blob_keyless, sign_statement_keyless,
};
use sigil_client::verify::{
    Artifact, GithubClaims, IdentityPolicy, Matcher, Policy, VerifiedSigner, verify_bundle,
};
use sigil_proto::bundle::{SignatureContent, VerificationContent};
use sigil_proto::trust::TrustedRoot;
use sigil_tests::oidc_provider::OidcProvider;
use sigil_tests::stack::Stack;

async fn trusted_root(stack: &Stack) -> TrustedRoot {
    let bytes = reqwest::get(format!("{}/api/v1/trusted-root", stack.url))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    TrustedRoot::from_json(&bytes).unwrap()
}

fn policy(identity: &str, issuer: &str) -> Policy {
    Policy::Identity(IdentityPolicy {
        identity: Matcher::Exact(identity.into()),
        issuer: Matcher::Exact(issuer.into()),
        github: GithubClaims::default(),
    })
}

fn sha256(data: &[u8]) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .try_into()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_blob_and_statement_verify_for_the_token_identity() {
    let idp = OidcProvider::start();
    let stack = Stack::start(idp.issuer_url());
    let root = trusted_root(&stack).await;
    let services = KeylessServices {
        ca_url: stack.url.clone(),
        rekor_url: stack.url.clone(),
    };
    let http = http_client();
    let token = idp.token("alice@example.com").await;

    // A message signature.
    let artifact = b"keyless artifact\n";
    let signed = sign_blob_keyless(&http, sha256(artifact), &token, &services, &root)
        .await
        .unwrap();
    assert_eq!(
        signed.signed_by,
        SignedBy::Certificate {
            identities: vec!["alice@example.com".into()],
            issuer: Some(idp.issuer_url().to_string()),
        }
    );
    assert!(signed.self_checked);
    assert_eq!(signed.entry_uuid.len(), 64);
    assert!(matches!(
        signed.bundle.verification_material.content,
        VerificationContent::Certificate(_)
    ));
    let bundle =
        sigil_proto::bundle::Bundle::from_json(signed.bundle.to_json().as_bytes()).unwrap();
    let verified = verify_bundle(
        &bundle,
        Artifact::Bytes(artifact),
        &policy("alice@example.com", idp.issuer_url()),
        &root,
    )
    .unwrap();
    assert_eq!(verified.log_index, signed.log_index);
    assert_eq!(verified.log_entry_kind, "hashedrekord/0.0.1");
    if let VerifiedSigner::Certificate { identities, .. } = &verified.signer {
        assert_eq!(identities, &["alice@example.com"]);
    } else {
        panic!("expected a certificate signer");
    }
    // Another identity or another artifact must not verify.
    assert!(
        verify_bundle(
            &bundle,
            Artifact::Bytes(artifact),
            &policy("mallory@example.com", idp.issuer_url()),
            &root
        )
        .is_err()
    );
    assert!(
        verify_bundle(
            &bundle,
            Artifact::Bytes(b"other"),
            &policy("alice@example.com", idp.issuer_url()),
            &root
        )
        .is_err()
    );

    // An in-toto statement about the artifact, as a DSSE envelope logged as dsse 0.0.1.
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": hex::encode(sha256(artifact))}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": "https://example.com/t"}}
    })
    .to_string();
    let signed = sign_statement_keyless(&http, statement.as_bytes(), &token, &services, &root)
        .await
        .unwrap();
    let SignatureContent::DsseEnvelope(envelope) = &signed.bundle.content else {
        panic!("expected a DSSE envelope");
    };
    assert_eq!(envelope.payload_type, "application/vnd.in-toto+json");
    assert_eq!(envelope.payload, statement.as_bytes());
    let verified = verify_bundle(
        &signed.bundle,
        Artifact::Bytes(artifact),
        &policy("alice@example.com", idp.issuer_url()),
        &root,
    )
    .unwrap();
    assert_eq!(verified.log_entry_kind, "dsse/0.0.1");

    // sigstore-python, an independent verifier, accepts both bundles.
    let dir = tempfile::tempdir().unwrap();
    let tc = stack.trust_config_file(dir.path()).await;
    let artifact_path = dir.path().join("artifact");
    std::fs::write(&artifact_path, artifact).unwrap();
    let dsse_path = dir.path().join("statement.sigstore.json");
    std::fs::write(&dsse_path, signed.bundle.to_json()).unwrap();
    let blob_path = dir.path().join("artifact.sigstore.json");
    std::fs::write(&blob_path, bundle.to_json()).unwrap();
    for bundle_path in [&blob_path, &dsse_path] {
        let out = sigil_tests::sigstore_python::run(&[
            "--trust-config",
            tc.to_str().unwrap(),
            "verify",
            "identity",
            "--cert-identity",
            "alice@example.com",
            "--cert-oidc-issuer",
            idp.issuer_url(),
            "--bundle",
            bundle_path.to_str().unwrap(),
            artifact_path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "sigstore-python rejected {}: {}",
            bundle_path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_audience_is_refused_by_the_ca() {
    let idp = OidcProvider::start();
    let stack = Stack::start(idp.issuer_url());
    let root = trusted_root(&stack).await;
    let services = KeylessServices {
        ca_url: stack.url.clone(),
        rekor_url: stack.url.clone(),
    };
    let token = idp
        .token_for_client(
            sigil_tests::oidc_provider::OTHER_CLIENT_ID,
            "alice@example.com",
        )
        .await;
    let err = sign_blob_keyless(&http_client(), [0; 32], &token, &services, &root)
        .await
        .unwrap_err();
    match err {
        SignError::Ca(e) => assert!(e.to_string().contains("HTTP 401"), "{e}"),
        other => panic!("expected a CA refusal, got {other}"),
    }

    // A trusted root that does not hold this server's CA makes signing fail before any
    // bundle is returned: the self-check runs the verifier.
    let mut foreign = root.clone();
    foreign.certificate_authorities.clear();
    let token = idp.token("alice@example.com").await;
    let err = sign_blob_keyless(&http_client(), [1; 32], &token, &services, &foreign)
        .await
        .unwrap_err();
    assert!(matches!(err, SignError::SelfCheck(_)), "{err}");
}
