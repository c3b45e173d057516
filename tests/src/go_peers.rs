//! The Go test peers, built at pinned versions from the Go module proxy by
//! `tests/peers/build-go-peers`: cosign (the reference client), crane (pushes test images)
//! and a registry with the OCI referrers API. A failed build fails the test; it is never a
//! skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::peers::{cache_dir, missing_tool};

fn built_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/build-go-peers");
        // The script holds a lock while it builds: when scripts/test started it in the
        // background, this waits for that build instead of starting another.
        let out = Command::new(&script).output().unwrap_or_else(|e| {
            missing_tool("bash", &format!("running {}: {e}", script.display()))
        });
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("go is not on PATH") {
                missing_tool(
                    "go",
                    "the Go test peers (cosign, crane) are built from the Go module proxy",
                );
            }
            panic!("building the Go test peers failed:\n{stderr}");
        }
        cache_dir().join("go")
    })
}

/// cosign v3, the reference client for images.
pub fn cosign() -> PathBuf {
    built_dir().join("cosign")
}

/// crane, to build and push test images.
pub fn crane() -> PathBuf {
    built_dir().join("crane")
}

/// go-containerregistry's registry with the referrers API.
pub fn referrers_registry() -> PathBuf {
    built_dir().join("referrers-registry")
}
