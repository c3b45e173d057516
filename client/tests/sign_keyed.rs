//! Keyed signing against a real `sigild`: generate-key-pair → sign-blob --key → verify-blob.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

/// sigild, built first unless scripts/test already did (a client test cannot use another
/// package's CARGO_BIN_EXE).
fn sigild_binary() -> PathBuf {
    sigil_tests::stack::workspace_binary("sigild", "sigild")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running sigild, stopped when dropped.
struct Server {
    child: Child,
    url: String,
    trust_config: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sigild(dir: &Path) -> Server {
    start_sigild_with(dir, &[])
}

fn start_sigild_with(dir: &Path, serve_args: &[&str]) -> Server {
    let bin = sigild_binary();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data = dir.join("data");
    // Keys are created by whichever command runs first; trust-config writes the same
    // document the server would serve, so the test knows the log key up front.
    let out = Command::new(&bin)
        .args(["trust-config", "--public-url", &url, "--data-dir"])
        .arg(&data)
        .arg("--insecure-unencrypted-ca-keys")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigild trust-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trust_config = dir.join("trust_config.json");
    std::fs::write(&trust_config, &out.stdout).unwrap();
    let child = Command::new(&bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .arg("--insecure-unencrypted-ca-keys")
        .args(serve_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        url,
        trust_config,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sigild did not start listening");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn sigil(dir: &Path, args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("SIGIL_TRUSTED_ROOT")
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL");
    match password {
        Some(p) => cmd.env("COSIGN_PASSWORD", p),
        None => cmd.env_remove("COSIGN_PASSWORD"),
    };
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn keyed_sign_then_verify_and_tampering_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start_sigild(d);
    let tc = server.trust_config.to_string_lossy().to_string();

    let out = sigil(d, &["generate-key-pair"], Some(PASSWORD));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = std::fs::read_to_string(d.join("cosign.key")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    assert!(
        std::fs::read_to_string(d.join("cosign.pub"))
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    // A second run must not overwrite the key silently.
    let again = sigil(d, &["generate-key-pair"], Some(PASSWORD));
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));

    let artifact: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(d.join("release.tar.gz"), &artifact).unwrap();
    let out = sigil(
        d,
        &[
            "sign-blob",
            "release.tar.gz",
            "--key",
            "cosign.key",
            "--trust-config",
            &tc,
            "--output",
            "json",
        ],
        Some(PASSWORD),
    );
    assert!(out.status.success(), "sign-blob: {}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["signed"], true);
    assert_eq!(summary["bundle"], "release.tar.gz.sigstore.json");
    assert_eq!(summary["logUrl"], server.url.as_str());
    assert_eq!(summary["verifiedBeforeWriting"], true);
    assert_eq!(summary["entryUuid"].as_str().unwrap().len(), 64);
    assert!(summary["logIndex"].is_u64());

    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("release.tar.gz.sigstore.json")).unwrap())
            .unwrap();
    assert_eq!(
        bundle["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert!(bundle["verificationMaterial"]["publicKey"]["hint"].is_string());
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(entry["kindVersion"]["kind"], "hashedrekord");
    assert!(entry["inclusionPromise"]["signedEntryTimestamp"].is_string());
    assert!(entry["inclusionProof"]["checkpoint"]["envelope"].is_string());

    let verify = |file: &str, public: &str| {
        sigil(
            d,
            &[
                "verify-blob",
                file,
                "--bundle",
                "release.tar.gz.sigstore.json",
                "--key",
                public,
                "--trust-config",
                &tc,
            ],
            None,
        )
    };
    let out = verify("release.tar.gz", "cosign.pub");
    assert!(out.status.success(), "verify-blob: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Verified OK"));

    let mut tampered = artifact.clone();
    tampered[1234] ^= 1;
    std::fs::write(d.join("tampered.tar.gz"), &tampered).unwrap();
    let out = verify("tampered.tar.gz", "cosign.pub");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the bundle's message digest is not the artifact's digest"),
        "{}",
        text(&out.stderr)
    );

    // Another key does not verify this bundle.
    let out = sigil(
        d,
        &["generate-key-pair", "--output-key-prefix", "other"],
        Some(""),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = verify("release.tar.gz", "other.pub");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn keyed_signing_reports_usage_errors_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start_sigild(d);
    let out = sigil(d, &["generate-key-pair"], Some(PASSWORD));
    assert!(out.status.success());
    std::fs::write(d.join("a.txt"), b"hello").unwrap();

    let out = sigil(
        d,
        &[
            "sign-blob",
            "a.txt",
            "--key",
            "cosign.key",
            "--server",
            &server.url,
        ],
        Some("not the password"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("wrong password"),
        "{}",
        text(&out.stderr)
    );

    let out = sigil(
        d,
        &["sign-blob", "a.txt", "--key", "cosign.key"],
        Some(PASSWORD),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--server"),
        "{}",
        text(&out.stderr)
    );

    // Keyless without any token source is a usage error that says where tokens come from.
    let tc = server.trust_config.to_string_lossy().to_string();
    let out = sigil(d, &["sign-blob", "a.txt", "--trust-config", &tc], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("SIGSTORE_ID_TOKEN"),
        "{}",
        text(&out.stderr)
    );

    // A log that is not there is a signing failure, not a usage error.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = sigil(
        d,
        &[
            "sign-blob",
            "a.txt",
            "--key",
            "cosign.key",
            "--rekor-url",
            &dead,
        ],
        Some(PASSWORD),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot reach the transparency log"),
        "{}",
        text(&out.stderr)
    );

    // --rekor-url alone writes an unchecked bundle that still verifies with the trust config.
    let out = sigil(
        d,
        &[
            "sign-blob",
            "a.txt",
            "--key",
            "cosign.key",
            "--rekor-url",
            &server.url,
            "--bundle",
            "a.bundle",
        ],
        Some(PASSWORD),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary =
        |out: &Output| -> serde_json::Value { serde_json::from_slice(&out.stdout).unwrap() };

    // With --trusted-root the bundle is checked before it is written.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&server.trust_config).unwrap()).unwrap();
    std::fs::write(d.join("root.json"), config["trustedRoot"].to_string()).unwrap();
    let sign_checked = |root: &str| {
        sigil(
            d,
            &[
                "sign-blob",
                "a.txt",
                "--key",
                "cosign.key",
                "--rekor-url",
                &server.url,
                "--trusted-root",
                root,
                "--bundle",
                "checked.bundle",
                "--output",
                "json",
            ],
            Some(PASSWORD),
        )
    };
    let out = sign_checked("root.json");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(summary(&out)["verifiedBeforeWriting"], true);
    // A root without this log's key fails the self-check: exit 1, no bundle.
    let mut foreign = config["trustedRoot"].clone();
    foreign["tlogs"] = serde_json::json!([]);
    std::fs::write(d.join("foreign.json"), foreign.to_string()).unwrap();
    std::fs::remove_file(d.join("checked.bundle")).unwrap();
    let out = sign_checked("foreign.json");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        summary(&out)["error"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{}",
        text(&out.stdout)
    );
    assert!(!d.join("checked.bundle").exists());

    let out = sigil(
        d,
        &[
            "verify-blob",
            "a.txt",
            "--bundle",
            "a.bundle",
            "--key",
            "cosign.pub",
            "--trust-config",
            &tc,
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A JWT-shaped token no issuer signed: the CA must refuse it.
fn unsigned_token(iss: &str) -> String {
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(serde_json::json!({"alg": "RS256", "kid": "k"})),
        b64(
            serde_json::json!({"iss": iss, "sub": "alice@example.com", "aud": "sigstore",
            "email": "alice@example.com", "email_verified": true, "exp": 4_000_000_000u64})
        )
    )
}

#[test]
fn sign_bundle_uses_the_default_signing_config_and_reports_a_ca_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The CA trusts an issuer that is not running, so no token can pass.
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let server = start_sigild_with(d, &["--oidc-issuer", &issuer]);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&server.trust_config).unwrap()).unwrap();
    let home = d.join("home");
    std::fs::create_dir_all(home.join(".config/sigil")).unwrap();
    std::fs::write(
        home.join(".config/sigil/signing_config.json"),
        config["signingConfig"].to_string(),
    )
    .unwrap();
    std::fs::write(
        home.join(".config/sigil/trusted_root.json"),
        config["trustedRoot"].to_string(),
    )
    .unwrap();
    std::fs::write(d.join("a.txt"), b"hello").unwrap();
    let token = unsigned_token(&issuer);
    let sign_bundle = |home: &Path| {
        Command::new(env!("CARGO_BIN_EXE_sigil"))
            .args([
                "sign-bundle",
                "--identity-token",
                &token,
                "--bundle",
                "a.json",
                "a.txt",
            ])
            .current_dir(d)
            .env("HOME", home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SIGIL_SIGNING_CONFIG")
            .env_remove("SIGIL_TRUSTED_ROOT")
            .output()
            .unwrap()
    };

    let out = sign_bundle(&home);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "certificate authority {}/api/v2/signingCert refused",
            server.url
        )),
        "{stderr}"
    );
    assert!(
        !d.join("a.json").exists(),
        "no bundle may be written on failure"
    );

    // Without any signing config it is a usage error naming the flag.
    let out = sign_bundle(&d.join("nowhere"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--signing-config"));
}

/// Submitting the same entry twice gives the same log entry back (409 → fetch), so a retried
/// submission still produces a bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_submission_returns_the_existing_entry() {
    use sigil_client::keys::SigningKey;
    use sigil_client::sign::rekor::{hashedrekord_entry, submit};
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| start_sigild(dir.path()));
    let key = SigningKey::generate().unwrap();
    let digest = [9u8; 32];
    let signature = key.sign_sha256_digest(&digest).unwrap();
    let entry = hashedrekord_entry(&digest, &signature, &key.public_key_pem());
    let http = sigil_client::sign::http_client();
    let first = submit(&http, &server.url, &entry).await.unwrap();
    let second = submit(&http, &server.url, &entry).await.unwrap();
    assert_eq!(first.uuid(), second.uuid());
    assert_eq!(first.entry.log_index, second.entry.log_index);
    assert_eq!(first.entry.body, second.entry.body);
    assert!(!second.entry.verification.signed_entry_timestamp.is_empty());
}
