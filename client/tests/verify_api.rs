//! The verification library on real public-good bundles (from the sigstore-conformance
//! assets): what it reports on success, and which check rejects each kind of tampering.

use std::path::PathBuf;

use sigil_client::verify::{
    Artifact, GithubClaims, IdentityPolicy, Matcher, Policy, PublicKey, TimeSource, VerifiedSigner,
    Verifier, VerifyError, tlog::TlogError, verify_bundle,
};
use sigil_proto::bundle::Bundle;
use sigil_proto::trust::TrustedRoot;

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn assets() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance-assets");
    if dir.join("bundle-verify").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "conformance assets missing at {}",
        dir.display()
    );
    None
}

struct Case {
    bundle: Bundle,
    root: TrustedRoot,
    artifact: Vec<u8>,
}

fn case(name: &str) -> Option<Case> {
    let assets = assets()?;
    let dir = assets.join("bundle-verify").join(name);
    let root_path = if dir.join("trusted_root.json").exists() {
        dir.join("trusted_root.json")
    } else {
        assets.join("production_trusted_root.json")
    };
    let artifact_path = if dir.join("artifact").exists() {
        dir.join("artifact")
    } else {
        assets.join("bundle-verify/a.txt")
    };
    Some(Case {
        bundle: Bundle::from_json(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap())
            .unwrap(),
        root: TrustedRoot::from_json(&std::fs::read(root_path).unwrap()).unwrap(),
        artifact: std::fs::read(artifact_path).unwrap(),
    })
}

fn identity(identity: Matcher, issuer: Matcher, github: GithubClaims) -> Policy {
    Policy::Identity(IdentityPolicy {
        identity,
        issuer,
        github,
    })
}

fn default_policy() -> Policy {
    identity(
        Matcher::Exact(IDENTITY.into()),
        Matcher::Exact(ISSUER.into()),
        GithubClaims::default(),
    )
}

#[test]
fn rekor_v1_bundle_reports_signer_log_and_signed_entry_time() {
    let Some(c) = case("happy-path-v0.3") else {
        return;
    };
    let v = verify_bundle(
        &c.bundle,
        Artifact::Bytes(&c.artifact),
        &default_policy(),
        &c.root,
    )
    .unwrap();
    assert_eq!(
        v.signer,
        VerifiedSigner::Certificate {
            identities: vec![IDENTITY.to_string()],
            issuer: Some(ISSUER.to_string())
        }
    );
    assert_eq!(v.log_entry_kind, "hashedrekord/0.0.1");
    assert_eq!(v.log_url, "https://rekor.sigstore.dev");
    assert_eq!(v.verified_times.len(), 1);
    assert_eq!(v.verified_times[0].source, TimeSource::SignedEntryTimestamp);
}

#[test]
fn rekor_v2_bundle_is_timed_by_its_rfc3161_timestamp() {
    let Some(c) = case("rekor2-happy-path") else {
        return;
    };
    let v = verify_bundle(
        &c.bundle,
        Artifact::Bytes(&c.artifact),
        &default_policy(),
        &c.root,
    )
    .unwrap();
    assert_eq!(v.log_entry_kind, "hashedrekord/0.0.2");
    assert_eq!(v.verified_times.len(), 1);
    assert_eq!(v.verified_times[0].source, TimeSource::Rfc3161);

    let mut untimed = c.bundle.clone();
    untimed.verification_material.timestamp_verification_data = None;
    let err = verify_bundle(
        &untimed,
        Artifact::Bytes(&c.artifact),
        &default_policy(),
        &c.root,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::BundleShape(_)), "{err}");
}

#[test]
fn identity_and_issuer_policies_are_enforced() {
    let Some(c) = case("happy-path-v0.3") else {
        return;
    };
    let artifact = Artifact::Bytes(&c.artifact);
    let regex = identity(
        Matcher::regex("^https://github.com/sigstore-conformance/").unwrap(),
        Matcher::regex(r"^https://token\.actions\.githubusercontent\.com$").unwrap(),
        GithubClaims::default(),
    );
    verify_bundle(&c.bundle, artifact, &regex, &c.root).unwrap();

    let wrong_id = identity(
        Matcher::Exact("alice@example.com".into()),
        Matcher::Exact(ISSUER.into()),
        GithubClaims::default(),
    );
    let err = verify_bundle(&c.bundle, artifact, &wrong_id, &c.root).unwrap_err();
    assert!(
        matches!(&err, VerifyError::Identity { found, .. } if found == &[IDENTITY.to_string()]),
        "{err}"
    );

    let wrong_issuer = identity(
        Matcher::Exact(IDENTITY.into()),
        Matcher::Exact("https://accounts.google.com".into()),
        GithubClaims::default(),
    );
    let err = verify_bundle(&c.bundle, artifact, &wrong_issuer, &c.root).unwrap_err();
    assert!(
        matches!(&err, VerifyError::Issuer { found: Some(f), .. } if f == ISSUER),
        "{err}"
    );
}

#[test]
fn github_workflow_claims_are_enforced() {
    let Some(c) = case("happy-path-v0.1") else {
        return;
    };
    let artifact = Artifact::Bytes(&c.artifact);
    let claims = GithubClaims {
        trigger: Some("workflow_dispatch".into()),
        sha: Some("af785b6d3b0fa0c0aa1305faee7ce6036e8d90c4".into()),
        name: Some("Extremely dangerous OIDC beacon".into()),
        repository: Some("sigstore-conformance/extremely-dangerous-public-oidc-beacon".into()),
        git_ref: Some("refs/heads/main".into()),
    };
    let ok = identity(
        Matcher::Exact(IDENTITY.into()),
        Matcher::Exact(ISSUER.into()),
        claims.clone(),
    );
    verify_bundle(&c.bundle, artifact, &ok, &c.root).unwrap();

    let push = GithubClaims {
        trigger: Some("push".into()),
        ..claims
    };
    let wrong = identity(
        Matcher::Exact(IDENTITY.into()),
        Matcher::Exact(ISSUER.into()),
        push,
    );
    let err = verify_bundle(&c.bundle, artifact, &wrong, &c.root).unwrap_err();
    assert!(
        matches!(&err, VerifyError::GithubClaim { claim: "trigger", found: Some(f), .. } if f == "workflow_dispatch"),
        "{err}"
    );
}

#[test]
fn a_different_artifact_is_rejected_by_bytes_and_by_digest() {
    let Some(c) = case("happy-path-v0.3") else {
        return;
    };
    let err = verify_bundle(
        &c.bundle,
        Artifact::Bytes(b"not the artifact"),
        &default_policy(),
        &c.root,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::ArtifactMismatch(_)), "{err}");
    let err = verify_bundle(
        &c.bundle,
        Artifact::Sha256([0; 32]),
        &default_policy(),
        &c.root,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::ArtifactMismatch(_)), "{err}");
}

#[test]
fn tampered_log_material_is_caught_by_the_matching_check() {
    let Some(c) = case("happy-path-v0.3") else {
        return;
    };
    let artifact = Artifact::Bytes(&c.artifact);

    let mut set = c.bundle.clone();
    let promise = set.verification_material.tlog_entries[0]
        .inclusion_promise
        .as_mut()
        .unwrap();
    promise.signed_entry_timestamp[10] ^= 1;
    let err = verify_bundle(&set, artifact, &default_policy(), &c.root).unwrap_err();
    assert!(
        matches!(err, VerifyError::Tlog(TlogError::BadSignedEntryTimestamp)),
        "{err}"
    );

    let mut unknown_log = c.bundle.clone();
    unknown_log.verification_material.tlog_entries[0]
        .log_id
        .key_id[0] ^= 1;
    let err = verify_bundle(&unknown_log, artifact, &default_policy(), &c.root).unwrap_err();
    assert!(
        matches!(err, VerifyError::Tlog(TlogError::UnknownLog(_))),
        "{err}"
    );

    let mut two_entries = c.bundle.clone();
    let entry = two_entries.verification_material.tlog_entries[0].clone();
    two_entries.verification_material.tlog_entries.push(entry);
    let err = verify_bundle(&two_entries, artifact, &default_policy(), &c.root).unwrap_err();
    assert!(matches!(err, VerifyError::BundleShape(_)), "{err}");
}

#[test]
fn a_rekor_v2_checkpoint_is_bound_to_the_proof() {
    let Some(c) = case("rekor2-happy-path") else {
        return;
    };
    let mut bundle = c.bundle.clone();
    let proof = bundle.verification_material.tlog_entries[0]
        .inclusion_proof
        .as_mut()
        .unwrap();
    proof.hashes[0][0] ^= 1;
    let err = verify_bundle(
        &bundle,
        Artifact::Bytes(&c.artifact),
        &default_policy(),
        &c.root,
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::Tlog(TlogError::InclusionProof(_))),
        "{err}"
    );
}

#[test]
fn key_and_identity_policies_must_fit_the_bundle() {
    let Some(keyless) = case("happy-path-v0.3") else {
        return;
    };
    let Some(keyed) = case("managed-key-happy-path") else {
        return;
    };
    let assets = assets().unwrap();
    let pem = std::fs::read_to_string(assets.join("bundle-verify/managed-key-happy-path/key.pub"))
        .unwrap();
    let key = Policy::Key(PublicKey::from_pem(&pem).unwrap());

    let v = verify_bundle(
        &keyed.bundle,
        Artifact::Bytes(&keyed.artifact),
        &key,
        &keyed.root,
    )
    .unwrap();
    assert_eq!(v.signer, VerifiedSigner::Key);
    let err = verify_bundle(
        &keyless.bundle,
        Artifact::Bytes(&keyless.artifact),
        &key,
        &keyless.root,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::CertificateNotKey), "{err}");
    let err = verify_bundle(
        &keyed.bundle,
        Artifact::Bytes(&keyed.artifact),
        &default_policy(),
        &keyed.root,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::KeyRequired), "{err}");
}

#[test]
fn a_verifier_parses_the_root_once_for_many_bundles() {
    let Some(v03) = case("happy-path-v0.3") else {
        return;
    };
    let Some(v01) = case("happy-path-v0.1") else {
        return;
    };
    let verifier = Verifier::new(&v03.root).unwrap();
    verifier
        .verify(
            &v03.bundle,
            Artifact::Bytes(&v03.artifact),
            &default_policy(),
        )
        .unwrap();
    verifier
        .verify(
            &v01.bundle,
            Artifact::Bytes(&v01.artifact),
            &default_policy(),
        )
        .unwrap();
}

#[test]
fn dsse_bundles_check_the_statement_subject() {
    let Some(c) = case("happy-path-intoto-in-dsse-v3") else {
        return;
    };
    let v = verify_bundle(
        &c.bundle,
        Artifact::Bytes(&c.artifact),
        &default_policy(),
        &c.root,
    )
    .unwrap();
    let (payload_type, _) = v.dsse_payload.unwrap();
    assert_eq!(payload_type, "application/vnd.in-toto+json");
    let err = verify_bundle(
        &c.bundle,
        Artifact::Bytes(b"other"),
        &default_policy(),
        &c.root,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::ArtifactMismatch(_)), "{err}");
}

/// Every byte of the leaf certificate and of the log entry body is covered by a signature
/// or a comparison: flipping any one of them must be rejected (and never panic).
#[test]
fn every_single_byte_change_to_certificate_or_body_is_rejected() {
    use sigil_proto::bundle::VerificationContent;
    let Some(c) = case("happy-path-v0.3") else {
        return;
    };
    let verifier = Verifier::new(&c.root).unwrap();
    let artifact = Artifact::Bytes(&c.artifact);
    let policy = default_policy();
    verifier.verify(&c.bundle, artifact, &policy).unwrap();

    let VerificationContent::Certificate(cert) = &c.bundle.verification_material.content else {
        panic!("expected a v0.3 certificate");
    };
    for i in 0..cert.len() {
        let mut bundle = c.bundle.clone();
        let mut flipped = cert.clone();
        flipped[i] ^= 0x01;
        bundle.verification_material.content = VerificationContent::Certificate(flipped);
        assert!(
            verifier.verify(&bundle, artifact, &policy).is_err(),
            "certificate byte {i} flipped was accepted"
        );
    }
    let body = &c.bundle.verification_material.tlog_entries[0].canonicalized_body;
    for i in 0..body.len() {
        let mut bundle = c.bundle.clone();
        bundle.verification_material.tlog_entries[0].canonicalized_body[i] ^= 0x01;
        assert!(
            verifier.verify(&bundle, artifact, &policy).is_err(),
            "body byte {i} flipped was accepted"
        );
    }
}

/// Corrupt RFC 3161 timestamps are rejected or, where the byte is outside what is signed
/// or compared (e.g. a version number), still verify; they never panic.
#[test]
fn corrupt_timestamps_never_panic() {
    let Some(c) = case("rekor2-happy-path") else {
        return;
    };
    let verifier = Verifier::new(&c.root).unwrap();
    let artifact = Artifact::Bytes(&c.artifact);
    let policy = default_policy();
    let ts = c
        .bundle
        .verification_material
        .timestamp_verification_data
        .as_ref()
        .unwrap()
        .rfc3161_timestamps[0]
        .signed_timestamp
        .clone();
    let mut rejected = 0;
    for i in 0..ts.len() {
        let mut bundle = c.bundle.clone();
        let data = bundle
            .verification_material
            .timestamp_verification_data
            .as_mut()
            .unwrap();
        data.rfc3161_timestamps[0].signed_timestamp[i] ^= 0x01;
        if verifier.verify(&bundle, artifact, &policy).is_err() {
            rejected += 1;
        }
    }
    // All but version numbers, the digestAlgorithms set, "granted" vs "granted with
    // modifications" and a few tags are signed or checked.
    assert!(
        rejected * 100 >= ts.len() * 97,
        "only {rejected} of {} flips rejected",
        ts.len()
    );
}
