//! The operator commands around signed images, against real registries: `tree` lists every
//! layout, `download` and `triangulate` find what is stored where, `copy` promotes an image
//! with its signatures and attestations to another registry where cosign and sigil still
//! verify them; and file attestations (`attest-blob`, `verify-blob-attestation`) interoperate
//! with cosign.

use sigil_tests::registry::{DockerRegistry, ReferrersRegistry};
use sigil_tests::world::{World, fails, ok, payloads};

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_download_triangulate_and_copy_across_registries() {
    let w = World::start().await;
    let staging = DockerRegistry::start();
    let prod = ReferrersRegistry::start();
    let (s, p) = (staging.host(), prod.host());
    let alice = "alice@example.com";
    let predicate = w.images.file(
        "sbom.json",
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#,
    );
    let digest = w.images.push(
        &format!("{s}/app:1.0"),
        &[("app", b"release 1.0".as_slice())],
    );
    let hex = digest.trim_start_matches("sha256:");
    let image = format!("{s}/app@{digest}");
    ok(
        w.sigil_sign(&image, alice, &[]).await,
        "sign (bundle layout)",
    );
    ok(
        w.sigil_sign(&image, alice, &["--legacy-tags"]).await,
        "sign (legacy layout)",
    );
    ok(
        w.sigil_attest(&image, alice, &predicate, "cyclonedx", &[])
            .await,
        "attest an SBOM",
    );

    // tree: both layouts, kinds told apart.
    let tree = json(&ok(
        w.sigil(&["tree", &format!("{s}/app:1.0"), "--output", "json"]),
        "tree",
    ));
    assert_eq!(tree["digest"], digest.as_str());
    assert_eq!(tree["referrersApi"], false);
    assert_eq!(tree["referrersTagSchema"], true);
    let kinds: Vec<&str> = tree["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"signature") && kinds.contains(&"sbom"),
        "{tree}"
    );
    assert_eq!(tree["legacy"][0]["kind"], "sig", "{tree}");
    assert_eq!(
        tree["legacy"][0]["tag"],
        format!("{s}/app:sha256-{hex}.sig")
    );
    let text = ok(w.sigil(&["tree", &image]), "tree (text)");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("referrers tag schema") && text.contains("Legacy signatures"),
        "{text}"
    );

    // triangulate: cosign's legacy names, and where referrers are listed.
    let out = ok(w.sigil(&["triangulate", &image]), "triangulate");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{s}/app:sha256-{hex}.sig")
    );
    let out = ok(
        w.sigil(&["triangulate", "--type", "referrers", &image]),
        "triangulate referrers",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{s}/app:sha256-{hex}")
    );

    // download: a bundle and a legacy signature; SBOM attestations by type.
    let out = ok(
        w.sigil(&["download", "signature", &image]),
        "download signature",
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0]["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert!(
        lines[1]["Base64Signature"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let out = ok(
        w.sigil(&[
            "download",
            "attestation",
            &image,
            "--predicate-type",
            "cyclonedx",
        ]),
        "download attestation",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    fails(
        w.sigil(&[
            "download",
            "attestation",
            &image,
            "--predicate-type",
            "slsaprovenance1",
        ]),
        "download of a type that is not there",
        "no attestations attached",
    );

    // copy to another registry (with the referrers API): image, referrers, legacy tags.
    let out = ok(
        w.sigil(&[
            "copy",
            &format!("{s}/app:1.0"),
            &format!("{p}/app"),
            "--output",
            "json",
        ]),
        "copy",
    );
    let report = json(&out);
    assert_eq!(report["copied"]["digest"], digest.as_str());
    assert_eq!(report["copied"]["referrers"], 2, "{report}");
    assert_eq!(report["copied"]["tag"], format!("{p}/app:1.0"));
    // Both layouts verify at the destination, with cosign and with sigil.
    let promoted = format!("{p}/app:1.0");
    let out = ok(
        w.cosign_verify(&format!("{p}/app@{digest}"), alice, &[]),
        "cosign verify at the destination",
    );
    assert!(!payloads(&out).is_empty());
    let mut args = vec!["verify", promoted.as_str(), "--output", "json"];
    args.extend(w.sigil_policy(alice));
    let r = json(&ok(w.sigil(&args), "sigil verify at the destination"));
    let layouts: Vec<&str> = r["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["layout"].as_str().unwrap())
        .collect();
    assert!(
        layouts.contains(&"referrers-api") && layouts.contains(&"legacy-tags"),
        "{r}"
    );
    let mut args = vec![
        "verify-attestation",
        promoted.as_str(),
        "--type",
        "cyclonedx",
    ];
    args.extend(w.sigil_policy(alice));
    ok(
        w.sigil(&args),
        "the SBOM attestation verifies at the destination",
    );

    // A destination tag naming other content is only moved with --force.
    w.images
        .push(&format!("{s}/other:1.0"), &[("o", b"other".as_slice())]);
    fails(
        w.sigil(&["copy", &format!("{s}/other:1.0"), &format!("{p}/app:1.0")]),
        "copy over another image's tag",
        "pass --force",
    );
    ok(
        w.sigil(&[
            "copy",
            &format!("{s}/other:1.0"),
            &format!("{p}/app:1.0"),
            "--force",
        ]),
        "copy --force",
    );

    // Back to a registry without the referrers API: the tag schema index is written there.
    ok(
        w.sigil(&[
            "copy",
            &format!("{p}/app@{digest}"),
            &format!("{s}/promoted:1.0"),
        ]),
        "copy back",
    );
    let mut args = vec!["verify", &format!("{s}/promoted:1.0")]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    args.extend(w.sigil_policy(alice).into_iter().map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(w.sigil(&args), "verify after copying back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_attestations_interoperate_with_cosign() {
    let w = World::start().await;
    let alice = "alice@example.com";
    let artifact = w.images.file("release.tar.gz", b"release tarball");
    let predicate = w.images.file(
        "provenance.json",
        br#"{"buildDefinition":{"buildType":"https://example.com/b"}}"#,
    );
    let bundle = w.path("release.att.json");
    let token = w.token(alice).await;
    ok(
        w.sigil(&[
            "attest-blob",
            artifact.to_str().unwrap(),
            "--predicate",
            predicate.to_str().unwrap(),
            "--type",
            "slsaprovenance1",
            "--bundle",
            bundle.to_str().unwrap(),
            "--server",
            &w.stack.url,
            "--identity-token",
            &token,
        ]),
        "sigil attest-blob",
    );
    let policy = [
        "--trusted-root",
        w.tr(),
        "--certificate-identity",
        alice,
        "--certificate-oidc-issuer",
        w.issuer(),
    ];
    let out = ok(
        w.sigil(
            &[
                &[
                    "verify-blob-attestation",
                    artifact.to_str().unwrap(),
                    "--bundle",
                    bundle.to_str().unwrap(),
                    "--type",
                    "slsaprovenance1",
                ][..],
                &policy[..],
            ]
            .concat(),
        ),
        "sigil verify-blob-attestation",
    );
    let statement: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(statement["subject"][0]["name"], "release.tar.gz");
    ok(
        w.cosign(
            &[
                &[
                    "verify-blob-attestation",
                    "--bundle",
                    bundle.to_str().unwrap(),
                    "--type",
                    "slsaprovenance1",
                ][..],
                &policy[..],
                &[artifact.to_str().unwrap()][..],
            ]
            .concat(),
        ),
        "cosign verify-blob-attestation of sigil's bundle",
    );
    // Another file, another predicate type: each refused with its reason.
    let other = w.images.file("other.tar.gz", b"another tarball");
    fails(
        w.sigil(
            &[
                &[
                    "verify-blob-attestation",
                    other.to_str().unwrap(),
                    "--bundle",
                    bundle.to_str().unwrap(),
                    "--type",
                    "any",
                ][..],
                &policy[..],
            ]
            .concat(),
        ),
        "an attestation about another file",
        "not a subject of the in-toto statement",
    );
    fails(
        w.sigil(
            &[
                &[
                    "verify-blob-attestation",
                    artifact.to_str().unwrap(),
                    "--bundle",
                    bundle.to_str().unwrap(),
                    "--type",
                    "spdxjson",
                ][..],
                &policy[..],
            ]
            .concat(),
        ),
        "another predicate type",
        "not https://spdx.dev/Document",
    );

    // cosign attests a file against sigild; sigil verifies it.
    let cosign_bundle = w.path("cosign.att.json");
    let token = w.token_file(alice).await;
    ok(
        w.cosign(&[
            "attest-blob",
            "--signing-config",
            w.signing_config.to_str().unwrap(),
            "--trusted-root",
            w.tr(),
            "--identity-token",
            token.to_str().unwrap(),
            "--yes",
            "--type",
            "slsaprovenance1",
            "--predicate",
            predicate.to_str().unwrap(),
            "--bundle",
            cosign_bundle.to_str().unwrap(),
            artifact.to_str().unwrap(),
        ]),
        "cosign attest-blob",
    );
    ok(
        w.sigil(
            &[
                &[
                    "verify-blob-attestation",
                    artifact.to_str().unwrap(),
                    "--bundle",
                    cosign_bundle.to_str().unwrap(),
                    "--type",
                    "slsaprovenance1",
                ][..],
                &policy[..],
            ]
            .concat(),
        ),
        "sigil verify-blob-attestation of cosign's bundle",
    );
}
