//! Keyless round trips between sigil and sigstore-python through a real sigild and a real
//! OIDC provider, and the rejections a verifier must make, each with its own message.

use std::path::Path;
use std::process::{Command, Output};

use sigil_tests::oidc_provider::OidcProvider;
use sigil_tests::sigstore_python;
use sigil_tests::stack::{Stack, workspace_binary};

fn sigil(args: &[&str]) -> Output {
    Command::new(workspace_binary("sigil-client", "sigil"))
        .args(args)
        .output()
        .expect("run sigil")
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Asserts a verification failure (exit 1) whose output names the reason.
fn assert_rejected(out: &Output, what: &str, needle: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} should fail verification with exit 1: {}",
        show(out)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .to_lowercase();
    assert!(
        all.contains(&needle.to_lowercase()),
        "{what}: message should mention {needle:?}: {}",
        show(out)
    );
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigil_and_sigstore_python_sign_and_verify_each_other() {
    let idp = OidcProvider::start();
    let stack = Stack::start(idp.issuer_url());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let tc = stack.trust_config_file(dir).await;
    let root = dir.join("trusted_root.json");
    std::fs::write(
        &root,
        reqwest::get(format!("{}/api/v1/trusted-root", stack.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let artifact = dir.join("a.txt");
    std::fs::write(&artifact, b"round trip artifact\n").unwrap();
    let issuer = idp.issuer_url().to_string();

    // sigil signs keylessly.
    let bundle = dir.join("a.sigil.sigstore.json");
    let token = idp.token("alice@example.com").await;
    let out = sigil(&[
        "sign-blob",
        p(&artifact),
        "--bundle",
        p(&bundle),
        "--identity-token",
        &token,
        "--server",
        &stack.url,
    ]);
    assert!(out.status.success(), "sigil sign-blob: {}", show(&out));
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(
        b["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert!(
        b["verificationMaterial"]["certificate"]["rawBytes"].is_string(),
        "v0.3 keyless bundles carry the leaf only"
    );

    let verify = |bundle: &Path, file: &Path, identity: &str, issuer: &str, root: &Path| {
        sigil(&[
            "verify-blob",
            p(file),
            "--bundle",
            p(bundle),
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            issuer,
            "--trusted-root",
            p(root),
        ])
    };
    // sigil verifies its own bundle offline.
    let ok = verify(&bundle, &artifact, "alice@example.com", &issuer, &root);
    assert!(ok.status.success(), "sigil verify-blob: {}", show(&ok));

    // sigstore-python verifies sigil's bundle.
    let out = sigstore_python::run(&[
        "--trust-config",
        p(&tc),
        "verify",
        "identity",
        "--bundle",
        p(&bundle),
        "--cert-identity",
        "alice@example.com",
        "--cert-oidc-issuer",
        &issuer,
        p(&artifact),
    ]);
    assert!(
        out.status.success(),
        "sigstore-python rejected sigil's bundle: {}",
        show(&out)
    );

    // sigstore-python signs; sigil verifies.
    let py_bundle = dir.join("a.python.sigstore.json");
    let token = idp.token("bob@example.com").await;
    let out = sigstore_python::run(&[
        "--trust-config",
        p(&tc),
        "sign",
        "--identity-token",
        &token,
        "--bundle",
        p(&py_bundle),
        "--overwrite",
        p(&artifact),
    ]);
    assert!(out.status.success(), "sigstore-python sign: {}", show(&out));
    let ok = verify(&py_bundle, &artifact, "bob@example.com", &issuer, &root);
    assert!(
        ok.status.success(),
        "sigil rejected sigstore-python's bundle: {}",
        show(&ok)
    );

    // Rejections, each with its own reason.
    let tampered = dir.join("tampered.txt");
    std::fs::write(&tampered, b"round trip artifacT\n").unwrap();
    let mut messages = Vec::new();
    messages.push(assert_rejected(
        &verify(&bundle, &tampered, "alice@example.com", &issuer, &root),
        "tampered artifact",
        "digest",
    ));
    messages.push(assert_rejected(
        &verify(&bundle, &artifact, "mallory@example.com", &issuer, &root),
        "wrong identity",
        "identity",
    ));
    messages.push(assert_rejected(
        &verify(
            &bundle,
            &artifact,
            "alice@example.com",
            "https://issuer.example",
            &root,
        ),
        "wrong issuer",
        "issuer",
    ));

    // A trusted root of another sigil instance does not vouch for this one's certificates.
    let other = Stack::start(idp.issuer_url());
    let other_root = dir.join("other_root.json");
    std::fs::write(
        &other_root,
        reqwest::get(format!("{}/api/v1/trusted-root", other.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    messages.push(assert_rejected(
        &verify(
            &bundle,
            &artifact,
            "alice@example.com",
            &issuer,
            &other_root,
        ),
        "wrong trust root",
        "not in the trusted root",
    ));

    // Truncated and edited bundles.
    let text = std::fs::read_to_string(&bundle).unwrap();
    let truncated = dir.join("truncated.json");
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let out = verify(&truncated, &artifact, "alice@example.com", &issuer, &root);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a truncated bundle verified: {}",
        show(&out)
    );
    messages.push(show(&out).to_lowercase());
    let mut edited: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = &mut edited["verificationMaterial"]["tlogEntries"][0];
    let index: u64 = entry["logIndex"].as_str().unwrap().parse().unwrap();
    entry["logIndex"] = serde_json::json!((index + 1).to_string());
    let edited_path = dir.join("edited.json");
    std::fs::write(&edited_path, edited.to_string()).unwrap();
    messages.push(assert_rejected(
        &verify(&edited_path, &artifact, "alice@example.com", &issuer, &root),
        "edited bundle",
        "log",
    ));
    let mut distinct = messages.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        messages.len(),
        "every rejection has its own message: {messages:#?}"
    );
}
