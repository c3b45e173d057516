//! Container images, end to end with real peers: sigild with a real OIDC provider, Debian's
//! docker-registry (no referrers API: the referrers tag schema) and go-containerregistry's
//! registry with the referrers API, images pushed by crane, and cosign v3 as the judge.
//! sigil signs and attests, cosign verifies; cosign signs and attests, sigil verifies; in the
//! bundle-referrer layout and in the legacy tag layout; keyless and keyed.

use std::path::PathBuf;

use sigil_tests::registry::{DockerRegistry, ReferrersRegistry};
use sigil_tests::world::{World, fails, ok, payloads};

fn provenance(world: &World) -> PathBuf {
    world.images.file(
        "provenance.json",
        br#"{"buildDefinition":{"buildType":"https://example.com/ci/v1","externalParameters":{}},"runDetails":{"builder":{"id":"https://ci.example.com"}}}"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigil_signs_and_attests_and_cosign_verifies_in_both_layouts_and_registries() {
    let w = World::start().await;
    let plain = DockerRegistry::start();
    let referrers = ReferrersRegistry::start();
    let predicate = provenance(&w);
    for (registry, host) in [
        ("docker-registry", plain.host()),
        ("referrers-api", referrers.host()),
    ] {
        for legacy in [false, true] {
            let layout: &[&str] = if legacy { &["--legacy-tags"] } else { &[] };
            let what = format!("{registry}, legacy={legacy}");
            let image = format!("{host}/app-{}:v1", if legacy { "legacy" } else { "bundle" });
            let digest = w.images.push(
                &image,
                &[
                    ("bin", b"binary layer".as_slice()),
                    ("etc", b"config layer".as_slice()),
                ],
            );
            let by_digest = format!(
                "{host}/app-{}@{digest}",
                if legacy { "legacy" } else { "bundle" }
            );

            let signed = ok(
                w.sigil_sign(
                    &image,
                    "alice@example.com",
                    &[&["-a", "env=prod", "--output", "json"][..], layout].concat(),
                )
                .await,
                &format!("sigil sign ({what})"),
            );
            let summary: serde_json::Value = serde_json::from_slice(&signed.stdout).unwrap();
            assert_eq!(
                summary["signed"][0]["digest"],
                digest.as_str(),
                "{what}: the tag's digest was signed"
            );
            assert_eq!(summary["signed"][0]["resolvedFromTag"], "v1");
            let stderr = String::from_utf8_lossy(&signed.stderr);
            assert!(
                stderr.contains("tags can move"),
                "{what}: no warning about the tag: {stderr}"
            );

            let verified = ok(
                w.cosign_verify(&by_digest, "alice@example.com", &["-a", "env=prod"]),
                &format!("cosign verify of sigil's signature ({what})"),
            );
            let p = payloads(&verified);
            assert_eq!(
                p[0]["critical"]["image"]["docker-manifest-digest"],
                digest.as_str()
            );
            fails(
                w.cosign_verify(&by_digest, "mallory@example.com", &[]),
                &format!("cosign verify with another identity ({what})"),
                "no matching",
            );

            ok(
                w.sigil_attest(
                    &by_digest,
                    "alice@example.com",
                    &predicate,
                    "slsaprovenance1",
                    layout,
                )
                .await,
                &format!("sigil attest ({what})"),
            );
            let att = ok(
                w.cosign(&[
                    "verify-attestation",
                    "--type",
                    "slsaprovenance1",
                    "--trusted-root",
                    w.tr(),
                    "--certificate-identity",
                    "alice@example.com",
                    "--certificate-oidc-issuer",
                    w.issuer(),
                    &by_digest,
                ]),
                &format!("cosign verify-attestation of sigil's attestation ({what})"),
            );
            assert!(
                String::from_utf8_lossy(&att.stdout).contains("payload"),
                "{what}: cosign printed no envelope"
            );

            // sigil itself, by tag: the signature verifies, the attestation is not taken for
            // a signature, and verify-attestation prints the statement.
            let mut args = vec!["verify", image.as_str(), "-a", "env=prod"];
            args.extend(w.sigil_policy("alice@example.com"));
            let out = ok(w.sigil(&args), &format!("sigil verify ({what})"));
            assert_eq!(
                payloads(&out).len(),
                1,
                "{what}: exactly the signature verifies"
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !legacy {
                assert!(
                    stderr.contains("not a signature"),
                    "{what}: the attestation was not told apart: {stderr}"
                );
            }
            let mut args = vec![
                "verify-attestation",
                image.as_str(),
                "--type",
                "slsaprovenance1",
            ];
            args.extend(w.sigil_policy("alice@example.com"));
            let out = ok(
                w.sigil(&args),
                &format!("sigil verify-attestation ({what})"),
            );
            let statement: serde_json::Value =
                serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap())
                    .unwrap();
            assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
            assert_eq!(
                statement["subject"][0]["digest"]["sha256"],
                digest.trim_start_matches("sha256:")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosign_signs_and_attests_and_sigil_verifies_in_both_layouts_and_registries() {
    let w = World::start().await;
    let plain = DockerRegistry::start();
    let referrers = ReferrersRegistry::start();
    let predicate = provenance(&w);
    for (registry, host) in [
        ("docker-registry", plain.host()),
        ("referrers-api", referrers.host()),
    ] {
        // cosign's bundle layout.
        let image = format!("{host}/by-cosign:v1");
        let digest = w.images.push(&image, &[("a", b"cosign-signed".as_slice())]);
        let by_digest = format!("{host}/by-cosign@{digest}");
        ok(
            w.cosign_sign(&by_digest, "bob@example.com", &["-a", "team=core"])
                .await,
            &format!("cosign sign ({registry})"),
        );
        ok(
            {
                let token = w.token_file("bob@example.com").await;
                w.cosign(&[
                    "attest",
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
                    &by_digest,
                ])
            },
            &format!("cosign attest ({registry})"),
        );
        let mut args = vec![
            "verify",
            image.as_str(),
            "-a",
            "team=core",
            "--output",
            "json",
        ];
        args.extend(w.sigil_policy("bob@example.com"));
        let out = ok(
            w.sigil(&args),
            &format!("sigil verify of cosign's signature ({registry})"),
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["verified"].as_array().unwrap().len(),
            1,
            "{registry}: {report}"
        );
        assert_eq!(report["verified"][0]["annotations"]["team"], "core");
        assert_eq!(
            report["rejected"][0]["check"], "predicate_type",
            "{registry}: cosign's attestation must not pass as a signature: {report}"
        );
        let mut args = vec![
            "verify-attestation",
            image.as_str(),
            "--type",
            "slsaprovenance1",
        ];
        args.extend(w.sigil_policy("bob@example.com"));
        ok(
            w.sigil(&args),
            &format!("sigil verify-attestation of cosign's attestation ({registry})"),
        );

        // cosign's legacy layout.
        let legacy = format!("{host}/by-cosign-legacy:v1");
        let legacy_digest = w
            .images
            .push(&legacy, &[("b", b"cosign-legacy".as_slice())]);
        let legacy_by_digest = format!("{host}/by-cosign-legacy@{legacy_digest}");
        ok(
            w.cosign_sign_legacy(
                "sign",
                &legacy_by_digest,
                "bob@example.com",
                &["-a", "team=core"],
            )
            .await,
            &format!("cosign sign --new-bundle-format=false ({registry})"),
        );
        ok(
            w.cosign_sign_legacy(
                "attest",
                &legacy_by_digest,
                "bob@example.com",
                &[
                    "--type",
                    "slsaprovenance1",
                    "--predicate",
                    predicate.to_str().unwrap(),
                ],
            )
            .await,
            &format!("cosign attest --new-bundle-format=false ({registry})"),
        );
        let mut args = vec![
            "verify",
            legacy.as_str(),
            "-a",
            "team=core",
            "--output",
            "json",
        ];
        args.extend(w.sigil_policy("bob@example.com"));
        let out = ok(
            w.sigil(&args),
            &format!("sigil verify of cosign's legacy signature ({registry})"),
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["verified"][0]["layout"], "legacy-tags", "{report}");
        assert_eq!(report["verified"][0]["inclusion"], "promise", "{report}");
        let mut args = vec![
            "verify-attestation",
            legacy.as_str(),
            "--type",
            "slsaprovenance1",
        ];
        args.extend(w.sigil_policy("bob@example.com"));
        ok(
            w.sigil(&args),
            &format!("sigil verify-attestation of cosign's legacy attestation ({registry})"),
        );
        // Someone else's identity is refused, with the reason.
        let mut args = vec!["verify", legacy.as_str()];
        args.extend(w.sigil_policy("alice@example.com"));
        fails(
            w.sigil(&args),
            "sigil verify with another identity",
            "certificate identity does not match",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_signatures_cross_verify_between_sigil_and_cosign() {
    let w = World::start().await;
    let registry = DockerRegistry::start();
    let host = registry.host();
    let key_prefix = w.path("release");
    ok(
        w.sigil(&[
            "generate-key-pair",
            "--output-key-prefix",
            key_prefix.to_str().unwrap(),
        ]),
        "sigil generate-key-pair",
    );
    let key = w.path("release.key");
    let public = w.path("release.pub");
    let (key, public) = (key.to_str().unwrap(), public.to_str().unwrap());

    // sigil signs with the key, both layouts; cosign verifies with the public key.
    for legacy in [false, true] {
        let repo = format!("{host}/keyed-{legacy}");
        let digest = w.images.push(
            &format!("{repo}:v1"),
            &[("k", format!("keyed {legacy}").as_bytes())],
        );
        let image = format!("{repo}@{digest}");
        let mut args = vec![
            "sign",
            image.as_str(),
            "--key",
            key,
            "--server",
            w.stack.url.as_str(),
        ];
        if legacy {
            args.push("--legacy-tags");
        }
        ok(w.sigil(&args), "sigil sign --key");
        ok(
            w.cosign(&["verify", "--key", public, "--trusted-root", w.tr(), &image]),
            &format!("cosign verify --key of sigil's signature (legacy={legacy})"),
        );
        let out = ok(
            w.sigil(&["verify", &image, "--key", public, "--trusted-root", w.tr()]),
            "sigil verify --key",
        );
        assert_eq!(payloads(&out).len(), 1);

        // A keyed attestation, checked by cosign with the public key.
        let predicate = provenance(&w);
        let mut args = vec![
            "attest",
            image.as_str(),
            "--key",
            key,
            "--server",
            w.stack.url.as_str(),
            "--predicate",
            predicate.to_str().unwrap(),
            "--type",
            "slsaprovenance1",
        ];
        if legacy {
            args.push("--legacy-tags");
        }
        ok(w.sigil(&args), "sigil attest --key");
        ok(
            w.cosign(&[
                "verify-attestation",
                "--type",
                "slsaprovenance1",
                "--key",
                public,
                "--trusted-root",
                w.tr(),
                &image,
            ]),
            &format!("cosign verify-attestation --key of sigil's attestation (legacy={legacy})"),
        );
    }

    // cosign signs with sigil's key file; sigil verifies with the public key.
    let repo = format!("{host}/keyed-by-cosign");
    let digest = w.images.push(
        &format!("{repo}:v1"),
        &[("k", b"keyed by cosign".as_slice())],
    );
    let image = format!("{repo}@{digest}");
    ok(
        w.cosign(&[
            "sign",
            "--key",
            key,
            "--signing-config",
            w.signing_config.to_str().unwrap(),
            "--trusted-root",
            w.tr(),
            "--yes",
            &image,
        ]),
        "cosign sign --key",
    );
    let out = ok(
        w.sigil(&["verify", &image, "--key", public, "--trusted-root", w.tr()]),
        "sigil verify --key of cosign's signature",
    );
    assert_eq!(payloads(&out).len(), 1);
    // Another key does not verify it.
    let other = w.path("other");
    ok(
        w.sigil(&[
            "generate-key-pair",
            "--output-key-prefix",
            other.to_str().unwrap(),
        ]),
        "second key",
    );
    fails(
        w.sigil(&[
            "verify",
            &image,
            "--key",
            w.path("other.pub").to_str().unwrap(),
            "--trusted-root",
            w.tr(),
        ]),
        "sigil verify with another key",
        "no matching signatures",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_signing_covers_the_index_and_each_platform() {
    let w = World::start().await;
    let registry = DockerRegistry::start();
    let host = registry.host();
    let (index, platforms) = w.images.push_index(
        &format!("{host}/multi:v1"),
        &[("app", b"multi-platform app".as_slice())],
    );
    let out = ok(
        w.sigil_sign(
            &format!("{host}/multi:v1"),
            "alice@example.com",
            &["--recursive", "--output", "json"],
        )
        .await,
        "sigil sign --recursive",
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signed: Vec<&str> = summary["signed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["digest"].as_str().unwrap())
        .collect();
    assert_eq!(signed.len(), 3, "{summary}");
    assert_eq!(signed[0], index);
    for p in &platforms {
        assert!(
            signed.contains(&p.as_str()),
            "platform {p} not signed: {summary}"
        );
        ok(
            w.cosign_verify(&format!("{host}/multi@{p}"), "alice@example.com", &[]),
            "cosign verify of a platform manifest",
        );
    }
    ok(
        w.cosign_verify(&format!("{host}/multi@{index}"), "alice@example.com", &[]),
        "cosign verify of the index",
    );
}
