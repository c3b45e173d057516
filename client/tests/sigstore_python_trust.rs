//! The trust documents and bundles sigil writes are read by sigstore-python 4.5.1 (the strict
//! reference client): a ClientTrustConfig and a bundle serialised from our types let it verify
//! real bundles offline.

use std::path::{Path, PathBuf};
use std::process::Command;

use sigil_proto::bundle::Bundle;
use sigil_proto::trust::{
    CLIENT_TRUST_CONFIG_MEDIA_TYPE_V0_1, ClientTrustConfig, SIGNING_CONFIG_MEDIA_TYPE_V0_2,
    Service, ServiceConfiguration, SigningConfig, TimeRange, TrustedRoot,
};

const VERSION: &str = "4.5.1";
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

fn target_dir() -> PathBuf {
    match std::env::var("CARGO_TARGET_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// The `sigstore` CLI from a venv under target/ (shared with the e2e harness), installed on
/// first use. A failed install fails the test.
fn sigstore_cli() -> PathBuf {
    let venv = target_dir()
        .join("sigil-test-peers")
        .join(format!("sigstore-python-{VERSION}"));
    let cli = venv.join("bin/sigstore");
    if venv.join(".installed").exists() && cli.exists() {
        return cli;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "creating a venv with {python} failed"
    );
    let out = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("sigstore=={VERSION}"),
        ])
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip install sigstore=={VERSION} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(venv.join(".installed"), VERSION).unwrap();
    cli
}

fn service(url: &str, version: u32) -> Service {
    Service {
        url: url.into(),
        major_api_version: version,
        valid_for: TimeRange {
            start: time::macros::datetime!(2021-01-01 0:00 UTC),
            end: None,
        },
        operator: "sigil-test".into(),
    }
}

fn trust_config(root: TrustedRoot) -> ClientTrustConfig {
    ClientTrustConfig {
        media_type: CLIENT_TRUST_CONFIG_MEDIA_TYPE_V0_1.into(),
        trusted_root: root,
        signing_config: SigningConfig {
            media_type: SIGNING_CONFIG_MEDIA_TYPE_V0_2.into(),
            ca_urls: vec![service("http://127.0.0.1:9", 1)],
            oidc_urls: vec![],
            rekor_tlog_urls: vec![service("http://127.0.0.1:9", 1)],
            tsa_urls: vec![],
            rekor_tlog_config: Some(ServiceConfiguration {
                selector: "ANY".into(),
                count: None,
            }),
            tsa_config: Some(ServiceConfiguration {
                selector: "ANY".into(),
                count: None,
            }),
        },
    }
}

/// Runs `sigstore verify identity` on a conformance case with a trust config built from our
/// types (after `edit`), returning whether it verified and its output.
fn sigstore_python_verifies(
    case: &str,
    edit: impl FnOnce(&mut TrustedRoot),
) -> Option<(bool, String)> {
    let assets = assets()?;
    let dir = assets.join("bundle-verify").join(case);
    let root_path = if dir.join("trusted_root.json").exists() {
        dir.join("trusted_root.json")
    } else {
        assets.join("production_trusted_root.json")
    };
    let mut root = TrustedRoot::from_json(&std::fs::read(root_path).unwrap()).unwrap();
    edit(&mut root);
    let tmp = tempfile::tempdir().unwrap();
    let config_path = tmp.path().join("trust_config.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(&trust_config(root)).unwrap(),
    )
    .unwrap();
    // The bundle goes through our types too.
    let bundle =
        Bundle::from_json(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
    let bundle_path = tmp.path().join("bundle.sigstore.json");
    std::fs::write(&bundle_path, bundle.to_json()).unwrap();

    let out = Command::new(sigstore_cli())
        .arg("--trust-config")
        .arg(&config_path)
        .args([
            "verify",
            "identity",
            "--cert-identity",
            IDENTITY,
            "--cert-oidc-issuer",
            ISSUER,
            "--bundle",
        ])
        .arg(&bundle_path)
        .arg(if dir.join("artifact").exists() {
            dir.join("artifact")
        } else {
            assets.join("bundle-verify/a.txt")
        })
        .output()
        .expect("run sigstore");
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), output))
}

fn assert_verifies(case: &str) {
    if let Some((ok, output)) = sigstore_python_verifies(case, |_| {}) {
        assert!(
            ok,
            "sigstore-python rejected our trust config for {case}:\n{output}"
        );
    }
}

#[test]
fn sigstore_python_accepts_our_trust_config_for_a_rekor_v1_bundle() {
    assert_verifies("happy-path-v0.3");
}

/// The check above can fail: without the log's key the same bundle is rejected.
#[test]
fn sigstore_python_rejects_the_bundle_when_our_config_lacks_the_log() {
    if let Some((ok, _)) = sigstore_python_verifies("happy-path-v0.3", |root| root.tlogs.clear()) {
        assert!(
            !ok,
            "sigstore-python verified without any transparency log key"
        );
    }
}

#[test]
fn sigstore_python_accepts_our_trust_config_for_a_rekor_v2_bundle_with_tsa() {
    assert_verifies("rekor2-happy-path");
}

#[test]
fn sigstore_python_accepts_our_v0_1_chain_bundle() {
    assert_verifies("happy-path-v0.1");
}

#[test]
fn sigstore_python_accepts_our_dsse_bundles() {
    assert_verifies("happy-path-intoto-in-dsse-v3");
    assert_verifies("rekor2-dsse-happy-path");
}
