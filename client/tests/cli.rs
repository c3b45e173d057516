//! `sigil verify-blob` as a user runs it: exit codes, output formats and trust sources.

use std::path::PathBuf;
use std::process::{Command, Output};

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

fn sigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env_remove("SIGIL_TRUSTED_ROOT")
        .env("HOME", env!("CARGO_MANIFEST_DIR"))
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap()
}

struct Paths {
    artifact: String,
    bundle: String,
    root: String,
}

fn happy() -> Option<Paths> {
    let a = assets()?;
    let s = |p: PathBuf| p.to_string_lossy().to_string();
    Some(Paths {
        artifact: s(a.join("bundle-verify/a.txt")),
        bundle: s(a.join("bundle-verify/happy-path-v0.3/bundle.sigstore.json")),
        root: s(a.join("production_trusted_root.json")),
    })
}

/// A file named like a digest is still a file: its content is what gets checked.
#[test]
fn verify_blob_reads_a_file_named_like_a_digest() {
    let Some(p) = happy() else { return };
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&p.artifact).unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let name = format!("sha256:{digest}");
    std::fs::write(dir.path().join(&name), b"not the signed artifact").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args([
            "verify-blob",
            &name,
            "--bundle",
            &p.bundle,
            "--trusted-root",
            &p.root,
            "--certificate-identity",
            IDENTITY,
            "--certificate-oidc-issuer",
            ISSUER,
        ])
        .current_dir(dir.path())
        .env_remove("SIGIL_TRUSTED_ROOT")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("artifact"));
}

#[test]
fn verify_blob_succeeds_with_json_output() {
    let Some(p) = happy() else { return };
    let out = sigil(&[
        "verify-blob",
        &p.artifact,
        "--bundle",
        &p.bundle,
        "--trusted-root",
        &p.root,
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["signer"]["identities"][0], IDENTITY);
    assert_eq!(
        json["verified_times"][0]["source"],
        "signed_entry_timestamp"
    );
}

#[test]
fn verify_blob_fails_with_exit_1_on_the_wrong_identity() {
    let Some(p) = happy() else { return };
    let out = sigil(&[
        "verify-blob",
        &p.artifact,
        "--bundle",
        &p.bundle,
        "--trusted-root",
        &p.root,
        "--certificate-identity-regexp",
        "^mailto:",
        "--certificate-oidc-issuer",
        ISSUER,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate identity does not match"));

    let out = sigil(&[
        "verify-blob",
        &p.artifact,
        "--bundle",
        &p.bundle,
        "--trusted-root",
        &p.root,
        "--certificate-identity",
        "alice@example.com",
        "--certificate-oidc-issuer",
        ISSUER,
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verified"], false);
    assert_eq!(json["check"], "identity");

    let out = sigil(&[
        "verify-blob",
        &p.artifact,
        "--bundle",
        &p.bundle,
        "--trusted-root",
        &p.root,
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn usage_errors_exit_2() {
    let Some(p) = happy() else { return };
    // Keyless without an issuer.
    let out = sigil(&[
        "verify-blob",
        &p.artifact,
        "--bundle",
        &p.bundle,
        "--trusted-root",
        &p.root,
        "--certificate-identity",
        IDENTITY,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--certificate-oidc-issuer"));
    // No trust source and no default installed.
    let out = sigil(&[
        "verify-blob",
        &p.artifact,
        "--bundle",
        &p.bundle,
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--trusted-root"));
    // A digest that is not one.
    let out = sigil(&[
        "verify-bundle",
        "--bundle",
        &p.bundle,
        "--trusted-root",
        &p.root,
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
        "sha256:zz",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // Two trust sources at once.
    let out = sigil(&[
        "verify-blob",
        &p.artifact,
        "--trusted-root",
        &p.root,
        "--server",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // Trust over plain http from a non-loopback server, for verifying and for signing.
    let verify = [
        "verify-blob",
        &p.artifact,
        "--bundle",
        &p.bundle,
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
        "--server",
        "http://sigil.example.com",
    ];
    let sign = [
        "sign-blob",
        &p.artifact,
        "--identity-token",
        "x.y.z",
        "--server",
        "http://sigil.example.com",
    ];
    for args in [&verify[..], &sign[..]] {
        let out = sigil(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("plain http only from a loopback")
                && stderr.contains("--insecure-trust"),
            "{stderr}"
        );
    }
}

#[test]
fn trust_config_is_a_trust_source() {
    let Some(p) = happy() else { return };
    let root: serde_json::Value = serde_json::from_slice(&std::fs::read(&p.root).unwrap()).unwrap();
    let config = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": root,
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [], "oidcUrls": [], "rekorTlogUrls": [], "tsaUrls": []
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust_config.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let out = sigil(&[
        "verify-blob",
        &p.artifact,
        "--bundle",
        &p.bundle,
        "--trust-config",
        &path.to_string_lossy(),
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Verified OK"));
}

#[test]
fn help_teaches_with_examples() {
    let out = sigil(&["verify-blob", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:"));
    assert!(help.contains("--certificate-github-workflow-repository"));
    let out = sigil(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Exit codes"));
}

/// `--server URL` fetches `URL/api/v1/trusted-root` over HTTP. The server here is Python's
/// stock static file server publishing the trusted root at that path.
#[test]
fn server_is_a_trust_source() {
    let Some(p) = happy() else { return };
    let site = tempfile::tempdir().unwrap();
    let api = site.path().join("api/v1");
    std::fs::create_dir_all(&api).unwrap();
    std::fs::copy(&p.root, api.join("trusted-root")).unwrap();

    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let server = Command::new(&python)
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(site.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut server) = server else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{python} is required for this test"
        );
        return;
    };
    // Wait (bounded) for the server to listen.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "http.server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("http://127.0.0.1:{port}");
    let ok = sigil(&[
        "verify-blob",
        &p.artifact,
        "--bundle",
        &p.bundle,
        "--server",
        &url,
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
    ]);
    let missing = sigil(&[
        "verify-blob",
        &p.artifact,
        "--bundle",
        &p.bundle,
        "--server",
        &format!("{url}/nowhere"),
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
    ]);
    server.kill().ok();
    server.wait().ok();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("HTTP 404"));
}
