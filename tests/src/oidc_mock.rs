//! A second, independent OpenID Provider: PyPI `oidc-provider-mock` 0.4.8 (Flask + Authlib).
//!
//! Its ID tokens differ from npm oidc-provider's in ways a CA must take in its stride: `aud`
//! is a JSON array, the header carries `typ: JWT`, and there are `auth_time`/`at_hash` claims.
//!
//! ```no_run
//! # async fn demo() {
//! use sigil_tests::oidc_mock::MockOidcProvider;
//! let idp = MockOidcProvider::start();
//! let token = idp.token("alice@example.com").await; // aud = ["sigstore"], email verified
//! # }
//! ```
//!
//! It runs in a venv under `<target>/sigil-test-peers/` (pinned by
//! `tests/oidc-provider-mock/requirements.txt`, installed once) with Python 3.12 or newer,
//! found as `$SIGIL_TEST_PYTHON`, `python3.13`, `python3.12`, `python3`, or under pyenv. It is
//! killed on drop and exits by itself when this process's stdin pipe to it closes.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::peers::{cache_dir, free_port, missing_tool};

const REQUIREMENTS: &str = include_str!("../oidc-provider-mock/requirements.txt");
const VENV_DIR: &str = "oidc-provider-mock-0.4.8";

/// A running `oidc-provider-mock`.
pub struct MockOidcProvider {
    /// A small Python watchdog whose child is the mock; closing its stdin stops both.
    child: Child,
    stdin: Option<ChildStdin>,
    issuer: String,
}

impl MockOidcProvider {
    pub fn start() -> MockOidcProvider {
        let venv = installed_venv();
        let port = free_port();
        // The mock has no lifetime option: a wrapper exits when our stdin pipe closes.
        let watchdog = "import os, subprocess, sys, threading\n\
            p = subprocess.Popen([sys.executable, '-m', 'oidc_provider_mock', '--port', sys.argv[1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
            threading.Timer(900, p.kill).start()\n\
            sys.stdin.read()\n\
            p.kill()\n\
            p.wait()\n\
            os._exit(0)\n";
        let mut child = Command::new(venv.join("bin/python"))
            .args(["-c", watchdog])
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start oidc-provider-mock");
        let stdin = child.stdin.take().expect("piped stdin");
        let issuer = format!("http://127.0.0.1:{port}");
        let provider = MockOidcProvider {
            child,
            stdin: Some(stdin),
            issuer,
        };
        provider.wait_ready();
        provider
    }

    fn wait_ready(&self) {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.issuer.trim_start_matches("http://")).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("oidc-provider-mock did not serve {url} within 30 s");
    }

    pub fn issuer_url(&self) -> &str {
        &self.issuer
    }

    /// An ID token for client `sigstore` with `sub` = `email` = the argument, email verified.
    pub async fn token(&self, email: &str) -> String {
        self.token_with_claims(
            email,
            serde_json::json!({"email": email, "email_verified": true}),
        )
        .await
    }

    /// An ID token for client `sigstore` whose user `sub` has exactly these claims.
    pub async fn token_with_claims(&self, sub: &str, claims: Value) -> String {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let user_url = format!(
            "{}/users/{}",
            self.issuer,
            url::form_urlencoded::byte_serialize(sub.as_bytes()).collect::<String>()
        );
        let set = http
            .put(user_url)
            .json(&claims)
            .send()
            .await
            .expect("PUT /users");
        assert!(
            set.status().is_success(),
            "setting claims: {}",
            set.status()
        );

        let redirect_uri = "http://127.0.0.1/callback";
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("client_id", "sigstore"),
                ("redirect_uri", redirect_uri),
                ("response_type", "code"),
                ("scope", "openid email"),
            ])
            .finish();
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sub", sub)
            .finish();
        let authorized = http
            .post(format!("{}/oauth2/authorize?{query}", self.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("POST /oauth2/authorize");
        let location = authorized
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("authorization refused: {}", authorized.status()))
            .to_string();
        let code = url::Url::parse(&location)
            .expect("redirect is a URL")
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {location}"));

        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect_uri),
                ("client_id", "sigstore"),
                ("client_secret", "unused"),
            ])
            .finish();
        let answer: Value = http
            .post(format!("{}/oauth2/token", self.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST /oauth2/token")
            .json()
            .await
            .expect("token response is JSON");
        answer["id_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no id_token in {answer}"))
            .to_string()
    }
}

impl Drop for MockOidcProvider {
    fn drop(&mut self) {
        // EOF tells the watchdog to stop the mock; killing the watchdog outright would orphan it.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_python_312_plus(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn find_python() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SIGIL_TEST_PYTHON") {
        candidates.push(p.into());
    }
    candidates.extend(["python3.13", "python3.12", "python3"].map(PathBuf::from));
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    if let Some(versions) = pyenv_root.map(|r| r.join("versions"))
        && let Ok(entries) = std::fs::read_dir(versions)
    {
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin/python3"))
            .collect();
        found.sort();
        candidates.extend(found.into_iter().rev());
    }
    candidates
        .into_iter()
        .find(|p| is_python_312_plus(p))
        .unwrap_or_else(|| {
            missing_tool(
                "python3.12 (or newer; or set SIGIL_TEST_PYTHON)",
                "no Python >= 3.12 found",
            )
        })
}

fn installed_venv() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = cache_dir();
        let venv = root.join(VENV_DIR);
        if venv.join("bin/oidc-provider-mock").exists() {
            return venv;
        }
        // Build in a private directory and rename, so concurrent test processes never use a
        // half-installed venv. After the move only `bin/python -m ...` is used (console-script
        // shebangs would still name the staging path).
        let staging = root.join(format!("{VENV_DIR}.staging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&root).expect("create test peer cache");
        let python = find_python();
        run(Command::new(&python).arg("-m").arg("venv").arg(&staging));
        let requirements = staging.join("requirements.txt");
        std::fs::write(&requirements, REQUIREMENTS).expect("write requirements");
        run(Command::new(staging.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements));
        if venv.exists() && !venv.join("bin/oidc-provider-mock").exists() {
            let _ = std::fs::remove_dir_all(&venv);
        }
        if std::fs::rename(&staging, &venv).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        venv
    })
    .clone()
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| missing_tool("python3.12", &e.to_string()));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
