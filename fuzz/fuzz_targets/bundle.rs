//! Sigstore bundles as the client reads them from a file or a registry, verified offline
//! against real trusted roots (so that inputs near the conformance bundles exercise every
//! check: log entry, checkpoint, SET, RFC 3161 timestamps, certificate chain, SCT, body),
//! and the Rekor v1 `201` response a signer turns into a bundle's log entry.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sigil_client::sign::rekor::parse_created;
use sigil_client::verify::{
    Artifact, GithubClaims, IdentityPolicy, Matcher, Policy, PublicKey, Verifier, VerifyOptions,
};
use sigil_proto::bundle::{Bundle, TransparencyLogEntry, VerificationContent};
use sigil_proto::trust::TrustedRoot;

/// A conformance trust root and its verifier; the root is leaked so that the verifier can
/// borrow it for the whole run.
struct Trusted {
    root: &'static TrustedRoot,
    verifier: Verifier<'static>,
}

/// A bundle is checked against the roots that list its log, as a verifier holding that
/// root would check it.
static TRUSTED: LazyLock<Vec<Trusted>> = LazyLock::new(|| {
    [
        include_bytes!("../fixtures/production_trusted_root.json").as_slice(),
        include_bytes!("../fixtures/staging_trusted_root.json"),
        include_bytes!("../fixtures/rekor2_dsse_trusted_root.json"),
        include_bytes!("../fixtures/intoto_trusted_root.json"),
    ]
    .into_iter()
    .map(|json| {
        let root: &'static TrustedRoot = Box::leak(Box::new(
            TrustedRoot::from_json(json).expect("fixture root parses"),
        ));
        Trusted {
            root,
            verifier: Verifier::new(root).expect("fixture root has usable authorities"),
        }
    })
    .collect()
});

/// Identity checks are not what is fuzzed here: any signer passes, so the fuzzer is not
/// stopped before the checks that come after the identity.
static IDENTITY: LazyLock<Policy> = LazyLock::new(|| {
    Policy::Identity(IdentityPolicy {
        identity: Matcher::regex("").expect("empty regex"),
        issuer: Matcher::regex("").expect("empty regex"),
        github: GithubClaims::default(),
    })
});

static KEY: LazyLock<Policy> = LazyLock::new(|| {
    let pem = std::str::from_utf8(include_bytes!("../fixtures/managed_key.pub")).expect("UTF-8");
    Policy::Key(PublicKey::from_pem(pem).expect("fixture key parses"))
});

const ARTIFACT: &[u8] = include_bytes!("../fixtures/artifact.txt");

fn verify(bundle: &Bundle) {
    let policy = match bundle.verification_material.content {
        VerificationContent::PublicKey { .. } => &*KEY,
        _ => &*IDENTITY,
    };
    let entries = &bundle.verification_material.tlog_entries;
    for trusted in TRUSTED.iter() {
        let listed = trusted
            .root
            .tlogs
            .iter()
            .any(|log| entries.iter().any(|e| e.log_id.key_id == log.log_id.key_id));
        if !listed {
            continue;
        }
        // Promise-only entries are what cosign's legacy image layout stores; allowing them
        // reaches that path too, and changes nothing for entries with a proof.
        let options = VerifyOptions {
            allow_promise_only: true,
        };
        let _ = trusted.verifier.verify_with_options(
            bundle,
            Artifact::Bytes(ARTIFACT),
            policy,
            options,
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = Bundle::from_json(data) {
        let _ = bundle.version();
        // Bundles are re-written (image attachments, --bundle output): what is written must
        // read back as the same bundle.
        let again =
            Bundle::from_json(bundle.to_json().as_bytes()).expect("a serialised bundle parses");
        assert_eq!(again, bundle, "bundle changed in a JSON round trip");
        verify(&bundle);
    }
    if let Ok(created) = parse_created(data) {
        let _ = created.uuid();
        let _ = TransparencyLogEntry::from_rekor_v1(&created.entry);
    }
});
