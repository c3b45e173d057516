//! What the test-peer harnesses share: where installs are cached and how absence is reported.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `<target>/sigil-test-peers`: installs of test peers (npm, pip), cached across runs.
pub fn cache_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    };
    target.join("sigil-test-peers")
}

/// Fails the test: a missing tool is never a silent skip (and with CI=true it is a CI bug).
pub fn missing_tool(tool: &str, detail: &str) -> ! {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    panic!(
        "this test peer needs `{tool}` on PATH: {detail}.{}",
        if ci {
            " CI=true: it must be installed in CI, not skipped."
        } else {
            " Install it to run these tests."
        }
    )
}

/// A port that was free a moment ago (for peers that cannot report the one they bound).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// TLS material for a loopback test peer: `ca.pem` signed `leaf.pem` (key `leaf.key`) for
/// `IP:127.0.0.1`.
pub struct TestTls {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
}

impl TestTls {
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("leaf.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("leaf.key")
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// A private CA and a `127.0.0.1` server certificate it issued (made with the `openssl` CLI),
/// for test peers that serve TLS.
pub fn test_tls() -> TestTls {
    let dir = tempfile::tempdir().expect("temp dir for TLS material");
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| missing_tool("openssl", &e.to_string()));
        assert!(
            output.status.success(),
            "openssl {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let p256 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &p256[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=sigil test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &p256[..],
            &[
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.path().join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write leaf extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "2",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.pem",
    ]);
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.pem")).expect("read CA PEM");
    TestTls { dir, ca_pem }
}
