//! A real sigil stack for end-to-end tests: the `sigild` binary on a free loopback port with
//! a temporary data dir, trusting the given OIDC issuers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static BUILD: Mutex<()> = Mutex::new(());

/// The workspace's `target/` directory.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Path of a workspace binary, built first. Tests of one package cannot name another
/// package's binaries through CARGO_BIN_EXE_*.
///
/// `scripts/test` sets `SIGIL_PREBUILT_BINARIES=1` after its `cargo test --workspace
/// --all-targets --no-run`, which has just built every binary of this source tree. Then the
/// build here is skipped: `cargo build -p <package>` resolves dependency features for that one
/// package without dev-dependencies, so it is not a no-op after the workspace's test build
/// but a second build of much of the dependency tree (about two minutes per package in CI).
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let path = target_dir().join("debug").join(bin);
    if std::env::var_os("SIGIL_PREBUILT_BINARIES").is_some_and(|v| v == "1") {
        assert!(
            path.exists(),
            "SIGIL_PREBUILT_BINARIES=1 but {} is missing: build the workspace's tests first",
            path.display()
        );
        return path;
    }
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building {bin} failed");
    path
}

pub struct Stack {
    child: Child,
    pub url: String,
    _data: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Stack {
    /// sigild with its CA trusting `issuer_url` as an email issuer (unencrypted dev CA keys).
    pub fn start(issuer_url: &str) -> Stack {
        Stack::spawn(&[
            "--oidc-issuer",
            issuer_url,
            "--insecure-unencrypted-ca-keys",
        ])
    }

    /// `sigild serve --dev`: the quick start's stack, with its loopback development issuer on
    /// a free port. Returns the stack and the issuer's URL.
    pub fn start_dev() -> (Stack, String) {
        let issuer = format!("127.0.0.1:{}", free_port());
        let stack = Stack::spawn(&["--dev", "--dev-issuer-listen", &issuer]);
        (stack, format!("http://{issuer}"))
    }

    /// `sigild serve` on a free port with a temporary data dir and `extra` flags.
    pub fn spawn(extra: &[&str]) -> Stack {
        let data = tempfile::tempdir().unwrap();
        let mut stack = Stack::spawn_in(data.path(), extra);
        stack._data = Some(data);
        stack
    }

    /// `sigild serve` on a free port over an existing data dir (which the caller keeps).
    pub fn spawn_in(data_dir: &Path, extra: &[&str]) -> Stack {
        let sigild = workspace_binary("sigild", "sigild");
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new(sigild)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sigild");
        let mut stack = Stack {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
            _data: None,
        };
        stack.wait_healthy();
        stack
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.url.trim_start_matches("http://").to_string();
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.contains("200 OK") {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("sigild exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "sigild did not become healthy in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's ClientTrustConfig, written to `dir/trust-config.json`.
    pub async fn trust_config_file(&self, dir: &Path) -> PathBuf {
        let body = reqwest::get(format!("{}/api/v1/trust-config", self.url))
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .text()
            .await
            .unwrap();
        let path = dir.join("trust-config.json");
        std::fs::write(&path, body).unwrap();
        path
    }
}

impl Stack {
    /// SIGTERM, and wait for the process to finish its last commit and exit.
    pub fn stop(mut self) {
        // SAFETY: kill(2) with a child's pid and a signal number has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sigild running only the witness service, configured to cosign one log.
pub struct Witness {
    pub stack: Stack,
    /// Its note verifier key (`name+hash+key`).
    pub vkey: String,
}

impl Witness {
    /// A witness named `name` for the log `log` serves: the log's origin and key are read from
    /// it and written to `dir/witness-logs.json`.
    pub async fn for_log(log: &Stack, name: &str, dir: &Path) -> Witness {
        let info: serde_json::Value =
            serde_json::from_str(&get_text(&format!("{}/api/v1/log", log.url)).await).unwrap();
        let origin = info["signedTreeHead"]
            .as_str()
            .and_then(|note| note.lines().next())
            .expect("signedTreeHead names the origin")
            .to_string();
        let public_key = get_text(&format!("{}/api/v1/log/publicKey", log.url)).await;
        let config = dir.join("witness-logs.json");
        let logs = serde_json::json!({"logs": [{"origin": origin, "publicKey": public_key}]});
        std::fs::write(&config, logs.to_string()).unwrap();
        let stack = Stack::spawn(&[
            "--services",
            "witness",
            "--witness-logs",
            config.to_str().unwrap(),
            "--witness-name",
            name,
        ]);
        let vkey = get_text(&format!("{}/witness/vkey", stack.url))
            .await
            .trim()
            .to_string();
        Witness { stack, vkey }
    }

    /// The value of sigild's `--witness` flag that sends checkpoints to this witness.
    pub fn endpoint(&self) -> String {
        format!("{}@{}/witness", self.vkey, self.stack.url)
    }
}

/// The body of a successful GET.
pub async fn get_text(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap().error_for_status().unwrap();
    response.text().await.unwrap()
}
