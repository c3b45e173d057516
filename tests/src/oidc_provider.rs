//! A real OpenID Provider for tests: npm `oidc-provider` 9.13.3 (`tests/oidc-provider/`).
//!
//! ```no_run
//! # async fn demo() {
//! use sigil_tests::oidc_provider::OidcProvider;
//! let idp = OidcProvider::start();                  // RS256 ID tokens
//! let token = idp.token("alice@example.com").await; // sub = email = alice@example.com, aud = sigstore
//! // trust it: IssuersConfig::add_email_issuer(idp.issuer_url())
//! let es = OidcProvider::start_with_alg("ES256");   // a second provider signing with P-256
//! let gh = idp.token_with_claims("repo:o/r:ref:refs/heads/main",
//!     serde_json::json!({"repository": "o/r"})).await; // CI-shaped claims
//! # }
//! ```
//!
//! The provider listens on `127.0.0.1:<free port>` (issuer `http://127.0.0.1:<port>`), serves
//! discovery and `/jwks` (RSA-2048, P-256 and Ed25519 keys, fresh per start; [`OidcProvider::rotate_keys`]
//! replaces them), and mints tokens through CIBA poll mode, so no browser is involved. It is killed on drop, exits by itself if
//! the test process dies (its stdin closes), and lives at most [`LIFETIME`] anyway.
//!
//! `npm ci` runs once into `<target>/sigil-test-peers/` (cached across runs). Missing
//! node/npm is a test failure with a clear message, never a silent skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::peers::{TestTls, cache_dir, missing_tool, test_tls};

/// The client whose tokens sigil accepts by default (`aud = "sigstore"`).
pub const CLIENT_ID: &str = "sigstore";
/// A second registered client: its tokens carry `aud = "not-sigstore"`.
pub const OTHER_CLIENT_ID: &str = "not-sigstore";
/// Secret of both clients (a test peer, not a secret).
pub const CLIENT_SECRET: &str = "sigil-test-secret";
/// Upper bound on a provider process's life, whatever happens to the test.
pub const LIFETIME: Duration = Duration::from_secs(900);

const PACKAGE_JSON: &str = include_str!("../oidc-provider/package.json");
const PACKAGE_LOCK: &str = include_str!("../oidc-provider/package-lock.json");
const PROVIDER_SCRIPT: &str = include_str!("../oidc-provider/provider.mjs");
const PACKAGE_DIR: &str = "oidc-provider-9.13.3";

/// A running `oidc-provider` process.
pub struct OidcProvider {
    child: Child,
    // Held so the provider sees EOF (and exits) if this process dies without dropping us.
    _stdin: ChildStdin,
    issuer: String,
    alg: String,
    log_path: PathBuf,
    tls: Option<TestTls>,
}

impl OidcProvider {
    /// Starts a provider whose ID tokens are RS256.
    pub fn start() -> OidcProvider {
        OidcProvider::start_with_alg("RS256")
    }

    /// Starts a provider whose ID tokens use `alg`: `RS256`, `PS256`, `ES256` or `EdDSA`.
    pub fn start_with_alg(alg: &str) -> OidcProvider {
        let (child, stdin, issuer, log_path) = spawn(alg, 0, None);
        OidcProvider {
            child,
            _stdin: stdin,
            issuer,
            alg: alg.to_string(),
            log_path,
            tls: None,
        }
    }

    /// Starts an RS256 provider serving `https://127.0.0.1:<port>` with a certificate from a
    /// fresh private CA ([`Self::ca_pem`]): a company IdP on its own PKI. Needs `openssl`.
    pub fn start_tls() -> OidcProvider {
        let tls = test_tls();
        let (child, stdin, issuer, log_path) = spawn("RS256", 0, Some(&tls));
        OidcProvider {
            child,
            _stdin: stdin,
            issuer,
            alg: "RS256".to_string(),
            log_path,
            tls: Some(tls),
        }
    }

    /// PEM of the private CA behind [`Self::start_tls`]'s certificate (`None` over plain http).
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// Restarts the provider on the same port (same issuer URL) with freshly generated keys,
    /// as an issuer rotating its keys would look to the CA. Earlier tokens stay parseable but
    /// their `kid`s are gone from the new JWKS.
    pub fn rotate_keys(&mut self) {
        let port: u16 = self
            .issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("issuer URL ends in the port");
        self.stop();
        let (child, stdin, issuer, log_path) = spawn(&self.alg, port, self.tls.as_ref());
        assert_eq!(
            issuer, self.issuer,
            "restarted provider must keep its issuer URL"
        );
        self.child = child;
        self._stdin = stdin;
        self.log_path = log_path;
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }

    /// `http://127.0.0.1:<port>`: the `iss` of its tokens.
    pub fn issuer_url(&self) -> &str {
        &self.issuer
    }

    /// The algorithm its ID tokens are signed with.
    pub fn alg(&self) -> &str {
        &self.alg
    }

    /// An ID token for client `sigstore`: `sub` = `email` = the argument, `email_verified: true`.
    pub async fn token(&self, email: &str) -> String {
        self.token_for_client(CLIENT_ID, email).await
    }

    /// Like [`Self::token`], for another registered client (`aud` = that client id).
    pub async fn token_for_client(&self, client_id: &str, email: &str) -> String {
        self.mint(client_id, email).await
    }

    /// An ID token for client `sigstore` with `sub` and exactly these extra claims (no default
    /// email). Claim names must be ones `provider.mjs` lists (`email`, `email_verified`, the
    /// GitHub/GitLab/Buildkite claims, `kubernetes.io`, `federated_claims`). Claims are kept per
    /// `sub` inside the provider: the last call for a `sub` wins.
    pub async fn token_with_claims(&self, sub: &str, claims: Value) -> String {
        let hint = serde_json::json!({ "sub": sub, "claims": claims }).to_string();
        self.mint(CLIENT_ID, &hint).await
    }

    /// The provider's JWKS document (public keys).
    pub async fn jwks(&self) -> Value {
        self.http()
            .get(format!("{}/jwks", self.issuer))
            .send()
            .await
            .expect("GET /jwks")
            .json()
            .await
            .expect("JWKS is JSON")
    }

    async fn mint(&self, client_id: &str, login_hint: &str) -> String {
        let started = self
            .post_form(
                "backchannel",
                &[
                    ("client_id", client_id),
                    ("client_secret", CLIENT_SECRET),
                    ("scope", "openid email"),
                    ("login_hint", login_hint),
                ],
            )
            .await;
        let auth_req_id = started["auth_req_id"]
            .as_str()
            .unwrap_or_else(|| panic!("backchannel request refused: {started}"))
            .to_string();
        for _ in 0..50 {
            let answer = self
                .post_form(
                    "token",
                    &[
                        ("client_id", client_id),
                        ("client_secret", CLIENT_SECRET),
                        ("grant_type", "urn:openid:params:grant-type:ciba"),
                        ("auth_req_id", &auth_req_id),
                    ],
                )
                .await;
            if let Some(token) = answer["id_token"].as_str() {
                return token.to_string();
            }
            if answer["error"] != "authorization_pending" {
                panic!("token request refused: {answer}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("oidc-provider kept the CIBA request pending for 5 s");
    }

    async fn post_form(&self, endpoint: &str, fields: &[(&str, &str)]) -> Value {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.http()
            .post(format!("{}/{endpoint}", self.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /{endpoint}: {e:?}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("POST /{endpoint} did not answer JSON: {e}"))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `provider.mjs` (port 0 = any free port) and waits for its ready line. A start that
/// prints nothing within ATTEMPT_TIMEOUT is killed and tried again: in CI about one start in
/// a few hundred hung with only the runtime warning on stderr (seen with 30 s and with 120 s
/// to wait, on a loaded and on a quiet machine), while a second start comes up at once.
fn spawn(alg: &str, port: u16, tls: Option<&TestTls>) -> (Child, ChildStdin, String, PathBuf) {
    const ATTEMPTS: u32 = 3;
    let mut logs = String::new();
    for attempt in 1..=ATTEMPTS {
        match spawn_once(alg, port, tls) {
            Ok(started) => return started,
            Err(log) => {
                eprintln!(
                    "oidc-provider start {attempt}/{ATTEMPTS} printed no ready line in {ATTEMPT_TIMEOUT:?}; stderr:\n{log}"
                );
                logs.push_str(&log);
            }
        }
    }
    panic!(
        "oidc-provider did not report its port in {ATTEMPTS} starts of {ATTEMPT_TIMEOUT:?}; their stderr:\n{logs}"
    );
}

/// Generous: in CI a provider starts while cargo and the Go peers' build share two cores.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(40);

fn spawn_once(
    alg: &str,
    port: u16,
    tls: Option<&TestTls>,
) -> Result<(Child, ChildStdin, String, PathBuf), String> {
    assert!(
        matches!(alg, "RS256" | "PS256" | "ES256" | "EdDSA"),
        "the test provider signs RS256, PS256, ES256 or EdDSA, not {alg}"
    );
    let dir = installed_package();
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let log_path = dir.join(format!("provider-{}-{n}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("create provider log file");
    let mut command = Command::new("node");
    command.arg(dir.join(script_file_name()));
    if let Some(tls) = tls {
        command
            .arg("--tls-cert")
            .arg(tls.dir.path().join("leaf.pem"))
            .arg("--tls-key")
            .arg(tls.dir.path().join("leaf.key"));
    }
    let mut child = command
        .args(["--alg", alg, "--port", &port.to_string()])
        .args(["--lifetime", &LIFETIME.as_secs().to_string()])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| missing_tool("node (Node.js 20+)", &e.to_string()));
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining: the provider logs notices to stdout and dies of EPIPE otherwise.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = match rx.recv_timeout(ATTEMPT_TIMEOUT) {
        Ok(line) if !line.trim().is_empty() => line,
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
        }
    };
    let ready: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("oidc-provider printed {line:?}, not its JSON ready line: {e}"));
    let issuer = ready["issuer"]
        .as_str()
        .expect("ready line has the issuer")
        .to_string();
    Ok((child, stdin, issuer, log_path))
}

impl OidcProvider {
    /// A client per request: a pooled connection would be tied to the runtime that opened it,
    /// and callers may use one provider from several runtimes (or across a key rotation).
    fn http(&self) -> reqwest::Client {
        let builder = reqwest::Client::builder();
        let builder = match self.ca_pem() {
            Some(pem) => builder.tls_certs_only(
                reqwest::Certificate::from_pem_bundle(pem.as_bytes()).expect("CA PEM"),
            ),
            None => builder,
        };
        builder.build().expect("http client")
    }
}

fn script_file_name() -> String {
    // Named by content so an edited script never races with a running older copy.
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    PROVIDER_SCRIPT.hash(&mut hasher);
    format!("provider-{:016x}.mjs", hasher.finish())
}

/// The package directory with `node_modules` installed and the current script in place.
fn installed_package() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = cache_dir();
        let dir = root.join(PACKAGE_DIR);
        if !dir.join("node_modules/oidc-provider/package.json").exists() {
            install_into(&root, &dir);
        }
        let script = dir.join(script_file_name());
        if !script.exists() {
            write_atomically(&script, PROVIDER_SCRIPT);
        }
        dir
    })
    .clone()
}

fn install_into(root: &Path, dir: &Path) {
    // Install in a private staging directory, then rename: concurrent test processes never
    // see a half-installed tree.
    let staging = root.join(format!("{PACKAGE_DIR}.staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).expect("create npm staging directory");
    std::fs::write(staging.join("package.json"), PACKAGE_JSON).expect("write package.json");
    std::fs::write(staging.join("package-lock.json"), PACKAGE_LOCK).expect("write lock file");
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(&staging)
        .output()
        .unwrap_or_else(|e| missing_tool("npm (Node.js 20+)", &e.to_string()));
    if !output.status.success() {
        panic!(
            "`npm ci` for oidc-provider failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if dir.exists() && !dir.join("node_modules/oidc-provider/package.json").exists() {
        // A broken leftover (e.g. an interrupted manual copy); replace it.
        let _ = std::fs::remove_dir_all(dir);
    }
    if std::fs::rename(&staging, dir).is_err() {
        // Another process installed it first; theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&staging);
        assert!(
            dir.join("node_modules/oidc-provider/package.json").exists(),
            "could not move the oidc-provider install into {}",
            dir.display()
        );
    }
}

fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, contents).expect("write provider script");
    std::fs::rename(&tmp, path).expect("move provider script into place");
}
