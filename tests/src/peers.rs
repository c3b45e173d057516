//! What the test-peer harnesses share: where installs are cached and how absence is reported.

use std::path::{Path, PathBuf};

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
