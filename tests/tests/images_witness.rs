//! `--require-witnesses` on container images: sigild logs entries and has a sigild witness
//! cosign its checkpoints; `sigil verify` and `verify-attestation` keep a signature only when
//! the witnessed checkpoint covers its log entry. Bundle referrers carry a checkpoint; legacy
//! layers, sigil's and cosign's, carry only the log's promise, so sigil fetches the entry's
//! inclusion proof by index.

use std::time::{Duration, Instant};

use serde_json::Value;
use sigil_tests::oidc_provider::OidcProvider;
use sigil_tests::registry::DockerRegistry;
use sigil_tests::stack::{Stack, Witness};
use sigil_tests::world::{World, ok, text};

fn report(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_signatures_in_every_layout_are_kept_only_when_witnessed() {
    let idp = OidcProvider::start();
    let data = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let log_args = [
        "--oidc-issuer",
        idp.issuer_url(),
        "--insecure-unencrypted-ca-keys",
    ];
    // Started once to learn its origin and key, for the witness's configuration.
    let log = Stack::spawn_in(data.path(), &log_args);
    let witness = Witness::for_log(&log, "witness.test/images", scratch.path()).await;
    log.stop();
    let (vkey, endpoint) = (witness.vkey.clone(), witness.endpoint());
    let stack = Stack::spawn_in(
        data.path(),
        &[&log_args[..], &["--witness", &endpoint]].concat(),
    );
    let w = World::around(idp, stack).await;
    let registry = DockerRegistry::start();
    let host = registry.host();

    let layers: &[(&str, &[u8])] = &[("bin", b"witnessed layer")];
    let bundle_image = format!("{host}/witnessed-bundle:v1");
    let legacy_image = format!("{host}/witnessed-legacy:v1");
    let cosign_image = format!("{host}/witnessed-cosign:v1");
    for image in [&bundle_image, &legacy_image, &cosign_image] {
        w.images.push(image, layers);
    }
    ok(
        w.sigil_sign(&bundle_image, "alice@example.com", &[]).await,
        "sigil sign",
    );
    ok(
        w.sigil_sign(&legacy_image, "alice@example.com", &["--legacy-tags"])
            .await,
        "sigil sign --legacy-tags",
    );
    ok(
        w.cosign_sign_legacy("sign", &cosign_image, "alice@example.com", &[])
            .await,
        "cosign sign (legacy layout)",
    );
    let predicate = w.images.file("predicate.json", br#"{"ok":true}"#);
    ok(
        w.sigil_attest(
            &bundle_image,
            "alice@example.com",
            &predicate,
            "custom",
            &[],
        )
        .await,
        "sigil attest",
    );

    let verify = |command: &str, image: &str, trusted: &str| {
        let mut args = vec![command, image];
        args.extend(w.sigil_policy("alice@example.com"));
        args.extend([
            "--require-witnesses",
            "1",
            "--witness",
            trusted,
            "--output",
            "json",
        ]);
        w.sigil(&args)
    };
    // The log sends its checkpoint to the witness about once a second: wait until the
    // witnessed checkpoint covers the last entry.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = verify("verify-attestation", &bundle_image, &vkey);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "never witnessed: {}", text(&out));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    for (command, image, layout) in [
        ("verify", &bundle_image, "referrers-tag-schema"),
        ("verify", &legacy_image, "legacy-tags"),
        ("verify", &cosign_image, "legacy-tags"),
        ("verify-attestation", &bundle_image, "referrers-tag-schema"),
    ] {
        let what = format!("{command} {image}");
        let out = ok(verify(command, image, &vkey), &what);
        let r = report(&out);
        let verified = r["verified"].as_array().unwrap();
        assert_eq!(verified.len(), 1, "{what}: {r}");
        assert_eq!(
            verified[0]["witnesses"],
            serde_json::json!(["witness.test/images"]),
            "{what}: {r}"
        );
        assert_eq!(verified[0]["layout"], layout, "{what}: {r}");
        let expected = if layout == "legacy-tags" {
            "promise"
        } else {
            "proof"
        };
        assert_eq!(verified[0]["inclusion"], expected, "{what}: {r}");

        // A witness the verifier does not trust vouches for nothing: the signature that
        // verified above is now rejected, and says why.
        let stranger = sigil_proto::witness::VerifierKey::new(
            "witness.test/images",
            sigil_proto::witness::COSIGNATURE_ED25519,
            [7; 32],
        );
        let out = verify(command, image, &stranger.to_text());
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
        let r = report(&out);
        assert_eq!(r["verified"], serde_json::json!([]), "{what}: {r}");
        let rejected = r["rejected"].as_array().unwrap();
        assert!(
            rejected.iter().any(|x| x["check"] == "witnesses"
                && x["reason"]
                    .as_str()
                    .unwrap()
                    .contains("0 valid cosignature(s)")),
            "{what}: {r}"
        );
    }
    // Without --require-witnesses nothing is asked of the witnesses.
    let mut args = vec!["verify", legacy_image.as_str()];
    args.extend(w.sigil_policy("alice@example.com"));
    args.extend(["--output", "json"]);
    let r = report(&ok(w.sigil(&args), "verify without witnesses"));
    assert!(r["verified"][0].get("witnesses").is_none(), "{r}");
}
