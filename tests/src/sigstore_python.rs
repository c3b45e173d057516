//! sigstore-python 4.5.1 (PyPI `sigstore`), the independent client interop tests judge us by.
//! Installed once into a venv under `target/`; a failed install fails the test, never skips it.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

pub const VERSION: &str = "4.5.1";
static INSTALL: Mutex<()> = Mutex::new(());

/// Path of the `sigstore` CLI in the venv, installing it on first use.
pub fn sigstore_cli() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let venv = crate::stack::target_dir()
        .join("sigil-test-peers")
        .join(format!("sigstore-python-{VERSION}"));
    let cli = venv.join("bin/sigstore");
    let marker = venv.join(".installed");
    if marker.exists() && cli.exists() {
        return cli;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap_or_else(|e| panic!("sigstore-python interop needs {python} with venv: {e}"));
    assert!(ok.success(), "creating the sigstore-python venv failed");
    let pip = venv.join("bin/pip");
    let out = Command::new(&pip)
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
    std::fs::write(&marker, VERSION).unwrap();
    cli
}

/// Runs the CLI; returns its output (callers assert on status and stderr).
pub fn run(args: &[&str]) -> Output {
    Command::new(sigstore_cli())
        .args(args)
        .env("SIGSTORE_LOGLEVEL", "INFO")
        .output()
        .expect("run sigstore")
}
