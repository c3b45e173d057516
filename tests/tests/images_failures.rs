//! What must not verify, and the message that says why: a tag moved to other content, the
//! wrong signer, a bundle moved onto another image, a legacy signature moved onto another
//! image, a referrer listed for the wrong subject, a registry serving content that does not
//! match its digest, a registry that is down. And concurrency: signers racing on one image
//! must all end up attached, in both layouts.

use sigil_tests::registry::{DockerRegistry, ReferrersRegistry, raw};
use sigil_tests::world::{World, fails, ok};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn report(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_has_its_own_message() {
    let w = World::start().await;
    let mut registry = DockerRegistry::start();
    let host = registry.host();
    let alice = "alice@example.com";

    // A tag moved to another image after signing: verifying the tag finds nothing signed.
    let first = w
        .images
        .push(&format!("{host}/moving:v1"), &[("a", b"first".as_slice())]);
    ok(
        w.sigil_sign(&format!("{host}/moving:v1"), alice, &[]).await,
        "sign v1",
    );
    let second = w
        .images
        .push(&format!("{host}/moving:v1"), &[("a", b"second".as_slice())]);
    assert_ne!(first, second);
    let mut args = vec!["verify", "placeholder"];
    args.extend(w.sigil_policy(alice));
    let moved = format!("{host}/moving:v1");
    args[1] = &moved;
    let out = fails(w.sigil(&args), "verify a moved tag", "no signatures found");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&second),
        "the message names the digest now behind the tag: {stderr}"
    );
    // The signed digest still verifies.
    let pinned = format!("{host}/moving@{first}");
    args[1] = &pinned;
    ok(w.sigil(&args), "verify the signed digest");

    // The wrong identity and the wrong issuer, each named.
    let mut wrong_identity = vec!["verify", pinned.as_str()];
    wrong_identity.extend(w.sigil_policy("mallory@example.com"));
    fails(
        w.sigil(&wrong_identity),
        "wrong identity",
        "certificate identity does not match",
    );
    let wrong_issuer = [
        "verify",
        pinned.as_str(),
        "--trusted-root",
        w.tr(),
        "--certificate-identity",
        alice,
        "--certificate-oidc-issuer",
        "https://accounts.example.net",
    ];
    let out = fails(
        w.sigil(&wrong_issuer),
        "wrong issuer",
        "certificate OIDC issuer does not match",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no matching signatures"));

    // A bundle made for image B, attached to image A as a referrer whose (unsigned) subject
    // field says A: the signed statement names B, so it does not verify for A.
    let a = w
        .images
        .push(&format!("{host}/victim:a"), &[("a", b"image a".as_slice())]);
    let b = w
        .images
        .push(&format!("{host}/victim:b"), &[("b", b"image b".as_slice())]);
    let b_bundle = w.path("b.sigstore.json");
    ok(
        w.sigil_sign(
            &format!("{host}/victim@{b}"),
            alice,
            &["--upload=false", "--bundle", b_bundle.to_str().unwrap()],
        )
        .await,
        "sign B without uploading",
    );
    let bundle = std::fs::read(&b_bundle).unwrap();
    let layer = raw::put_blob(&host, "victim", &bundle).await;
    let config = raw::put_blob(&host, "victim", b"{}").await;
    let forged = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": layer, "size": bundle.len()}],
        "subject": {"mediaType": MANIFEST, "digest": a, "size": 1},
        "annotations": {"dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"}
    });
    let forged_bytes = serde_json::to_vec(&forged).unwrap();
    let forged_digest = format!("sha256:{}", sha256_hex(&forged_bytes));
    raw::put_manifest(&host, "victim", &forged_digest, MANIFEST, &forged_bytes).await;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{"mediaType": MANIFEST, "digest": forged_digest, "size": forged_bytes.len(),
                       "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}]
    });
    let a_tag = format!("sha256-{}", a.trim_start_matches("sha256:"));
    raw::put_manifest(
        &host,
        "victim",
        &a_tag,
        INDEX,
        &serde_json::to_vec(&index).unwrap(),
    )
    .await;
    let a_ref = format!("{host}/victim@{a}");
    let mut args = vec!["verify", a_ref.as_str(), "--output", "json"];
    args.extend(w.sigil_policy(alice));
    let out = fails(w.sigil(&args), "a bundle for another image", "");
    let r = report(&out);
    assert_eq!(r["rejected"][0]["check"], "artifact", "{r}");
    assert!(
        r["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a subject of the in-toto statement"),
        "{r}"
    );

    // A referrer whose own subject is another image, listed in A's tag schema index by
    // someone with write access: skipped, and the reason says so.
    ok(
        w.sigil_sign(&format!("{host}/victim@{b}"), alice, &[])
            .await,
        "sign B",
    );
    let b_index = raw::get_manifest(
        &host,
        "victim",
        &format!("sha256-{}", b.trim_start_matches("sha256:")),
    )
    .await
    .unwrap();
    raw::put_manifest(
        &host,
        "victim",
        &a_tag,
        INDEX,
        &serde_json::to_vec(&b_index).unwrap(),
    )
    .await;
    let out = fails(w.sigil(&args), "a referrer of another image", "");
    let r = report(&out);
    assert!(
        r["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .contains(&format!("its subject is {b}")),
        "{r}"
    );

    // A legacy signature of B copied onto A's .sig tag: the payload names B.
    let c = w
        .images
        .push(&format!("{host}/legacy:c"), &[("c", b"image c".as_slice())]);
    let d = w
        .images
        .push(&format!("{host}/legacy:d"), &[("d", b"image d".as_slice())]);
    ok(
        w.sigil_sign(&format!("{host}/legacy@{d}"), alice, &["--legacy-tags"])
            .await,
        "legacy sign D",
    );
    let d_sig = raw::get_manifest(
        &host,
        "legacy",
        &format!("sha256-{}.sig", d.trim_start_matches("sha256:")),
    )
    .await
    .unwrap();
    raw::put_manifest(
        &host,
        "legacy",
        &format!("sha256-{}.sig", c.trim_start_matches("sha256:")),
        MANIFEST,
        &serde_json::to_vec(&d_sig).unwrap(),
    )
    .await;
    let c_ref = format!("{host}/legacy@{c}");
    let mut args = vec!["verify", c_ref.as_str(), "--output", "json"];
    args.extend(w.sigil_policy(alice));
    let r = report(&fails(
        w.sigil(&args),
        "a legacy signature moved onto another image",
        "",
    ));
    assert_eq!(r["rejected"][0]["check"], "image_digest", "{r}");
    assert!(
        r["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("it signs image {d}, not {c}")),
        "{r}"
    );

    // The registry serves a bundle that does not match its digest (its storage was altered).
    let e = w.images.push(
        &format!("{host}/tampered:v1"),
        &[("e", b"image e".as_slice())],
    );
    let out = ok(
        w.sigil_sign(
            &format!("{host}/tampered@{e}"),
            alice,
            &["--output", "json"],
        )
        .await,
        "sign E",
    );
    let referrer = report(&out)["signed"][0]["stored"]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let referrer_digest = referrer.rsplit_once('@').unwrap().1.to_string();
    let referrer_manifest = raw::get_manifest(&host, "tampered", &referrer_digest)
        .await
        .unwrap();
    let bundle_hex = referrer_manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let path = registry.blob_path(&bundle_hex);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let e_ref = format!("{host}/tampered@{e}");
    let mut args = vec!["verify", e_ref.as_str(), "--output", "json"];
    args.extend(w.sigil_policy(alice));
    let r = report(&fails(w.sigil(&args), "a tampered bundle", ""));
    assert!(
        r["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .contains("does not match its digest"),
        "{r}"
    );
    // The image manifest itself altered: the digest check refuses it before anything else.
    let image_hex = e.trim_start_matches("sha256:").to_string();
    let path = registry.blob_path(&image_hex);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"schemaVersion\""));
    // Same length, other bytes.
    std::fs::write(
        &path,
        text.replacen("\"schemaVersion\"", "\"schemaVersioN\"", 1),
    )
    .unwrap();
    let mut args = vec!["verify", e_ref.as_str()];
    args.extend(w.sigil_policy(alice));
    fails(
        w.sigil(&args),
        "a tampered image manifest",
        "does not match its digest",
    );

    // The registry is down.
    registry.stop();
    let out = fails(
        w.sigil(&args),
        "a registry that is down",
        "cannot reach registry",
    );
    assert_eq!(out.status.code(), Some(1));
}

/// go-containerregistry's registry stores whatever it is given as a manifest, so it can serve
/// what no well-behaved registry would: garbage where an index or a referrer should be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_manifests_get_a_clear_error_and_never_a_panic() {
    let w = World::start().await;
    let registry = ReferrersRegistry::start();
    let host = registry.host();
    let alice = "alice@example.com";
    let digest = w.images.push(
        &format!("{host}/garbled:v1"),
        &[("g", b"garbled".as_slice())],
    );
    let image = format!("{host}/garbled@{digest}");
    ok(w.sigil_sign(&image, alice, &[]).await, "sign");
    let tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));

    // The tag schema index lists a "manifest" that is not JSON: that candidate is skipped
    // with the reason, and the real signature (through the referrers API) still verifies.
    let garbage = b"\x00\x01 not a manifest {".to_vec();
    let garbage_digest = format!("sha256:{}", sha256_hex(&garbage));
    raw::put_manifest(&host, "garbled", &garbage_digest, MANIFEST, &garbage).await;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{"mediaType": MANIFEST, "digest": garbage_digest, "size": garbage.len()}]
    });
    raw::put_manifest(
        &host,
        "garbled",
        &tag,
        INDEX,
        &serde_json::to_vec(&index).unwrap(),
    )
    .await;
    let mut args = vec!["verify", image.as_str(), "--output", "json"];
    args.extend(w.sigil_policy(alice));
    let r = report(&ok(w.sigil(&args), "verify next to a garbage referrer"));
    assert_eq!(r["verified"].as_array().unwrap().len(), 1, "{r}");
    assert!(
        r["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .contains("not an OCI manifest"),
        "{r}"
    );

    // The tag schema index itself is garbage: the command fails and says what is wrong.
    // (Stored as an image manifest: this registry parses what it is told is an index.)
    raw::put_manifest(
        &host,
        "garbled",
        &tag,
        MANIFEST,
        b"{\"schemaVersion\": \"two\"}",
    )
    .await;
    let mut args = vec!["verify", image.as_str()];
    args.extend(w.sigil_policy(alice));
    let out = fails(
        w.sigil(&args),
        "verify with a garbage index",
        "is not valid",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn sha256_hex(content: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(content))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signers_all_end_up_attached_in_both_layouts() {
    let w = World::start().await;
    let registry = DockerRegistry::start();
    let host = registry.host();
    for legacy in [false, true] {
        let repo = format!("{host}/race-{legacy}");
        let digest = w.images.push(
            &format!("{repo}:v1"),
            &[("r", format!("race {legacy}").as_bytes())],
        );
        let image = format!("{repo}@{digest}");
        let signers = ["one@example.com", "two@example.com", "three@example.com"];
        let mut children = Vec::new();
        for email in signers {
            let token = w.token(email).await;
            let mut cmd = std::process::Command::new(sigil_tests::stack::workspace_binary(
                "sigil-client",
                "sigil",
            ));
            cmd.args([
                "sign",
                &image,
                "--server",
                &w.stack.url,
                "--identity-token",
                &token,
                "--yes",
            ])
            .env("HOME", w.dir.path())
            .env("DOCKER_CONFIG", w.path("none"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
            if legacy {
                cmd.arg("--legacy-tags");
            }
            children.push(cmd.spawn().unwrap());
        }
        for child in children {
            ok(child.wait_with_output().unwrap(), "a concurrent signer");
        }
        let out = ok(
            w.sigil(&[
                "verify",
                &image,
                "--output",
                "json",
                "--trusted-root",
                w.tr(),
                "--certificate-identity-regexp",
                "@example\\.com$",
                "--certificate-oidc-issuer",
                w.issuer(),
            ]),
            "verify after the race",
        );
        let r = report(&out);
        let mut who: Vec<String> = r["verified"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["signer"]["identities"][0].as_str().unwrap().to_string())
            .collect();
        who.sort();
        let mut expected: Vec<String> = signers.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(
            who, expected,
            "legacy={legacy}: every signer's signature is attached: {r}"
        );
    }
}
