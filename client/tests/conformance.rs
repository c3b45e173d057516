//! Runs the built `sigil` binary over every sigstore-conformance bundle-verify case, once
//! with the artifact file and once with `sha256:<hex>`, exactly as the conformance suite
//! invokes a client.

use std::path::{Path, PathBuf};
use std::process::Command;

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Cases whose outcome differs from the suite's expectation, each with the reason. Keep
/// this list visible and short.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

fn assets() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance-assets");
    if dir.join("bundle-verify").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "conformance assets missing at {} (required when CI=true)",
        dir.display()
    );
    eprintln!(
        "skipping: conformance assets not found at {}",
        dir.display()
    );
    None
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

struct Run {
    case: String,
    by_digest: bool,
    expect_ok: bool,
    ok: bool,
    exit: Option<i32>,
    stderr: String,
}

fn run_case(root: &Path, case_dir: &Path, by_digest: bool) -> Run {
    let case = case_dir.file_name().unwrap().to_string_lossy().to_string();
    let artifact = if case_dir.join("artifact").exists() {
        case_dir.join("artifact")
    } else {
        root.join("bundle-verify/a.txt")
    };
    let trusted_root = if case_dir.join("trusted_root.json").exists() {
        case_dir.join("trusted_root.json")
    } else {
        root.join("production_trusted_root.json")
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
    cmd.arg("verify-bundle")
        .arg("--bundle")
        .arg(case_dir.join("bundle.sigstore.json"))
        .arg("--trusted-root")
        .arg(&trusted_root);
    if case_dir.join("key.pub").exists() {
        cmd.arg("--key").arg(case_dir.join("key.pub"));
    } else {
        let identity =
            read_trimmed(&case_dir.join("identity")).unwrap_or_else(|| DEFAULT_IDENTITY.into());
        let issuer =
            read_trimmed(&case_dir.join("issuer")).unwrap_or_else(|| DEFAULT_ISSUER.into());
        cmd.arg("--certificate-identity")
            .arg(identity)
            .arg("--certificate-oidc-issuer")
            .arg(issuer);
    }
    if by_digest {
        let bytes = std::fs::read(&artifact).unwrap();
        cmd.arg(format!("sha256:{}", sha256_hex(&bytes)));
    } else {
        cmd.arg(&artifact);
    }
    let out = cmd.output().expect("run sigil");
    Run {
        expect_ok: !case.ends_with("_fail"),
        ok: out.status.success(),
        exit: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        case,
        by_digest,
    }
}

#[test]
fn sigstore_conformance_bundle_verify() {
    let Some(root) = assets() else { return };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root.join("bundle-verify"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("bundle.sigstore.json").exists())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 70,
        "expected at least 70 cases, found {}",
        cases.len()
    );

    let mut mismatches = Vec::new();
    let mut passed = 0;
    let mut total = 0;
    for case_dir in &cases {
        for by_digest in [false, true] {
            let run = run_case(&root, case_dir, by_digest);
            total += 1;
            // A failure must be a clean rejection (exit 1, or 2 for unusable input such as
            // a malformed key or trusted root), never a crash.
            let correct = if run.expect_ok {
                run.ok
            } else {
                matches!(run.exit, Some(1 | 2))
            };
            let known = KNOWN_FAILURES.iter().any(|(name, _)| *name == run.case);
            if correct {
                passed += 1;
                assert!(
                    !known,
                    "{} passes now; remove it from KNOWN_FAILURES",
                    run.case
                );
            } else if !known {
                mismatches.push(format!(
                    "{}{}: expected {}, got exit {:?}: {}",
                    run.case,
                    if run.by_digest {
                        " (sha256 digest)"
                    } else {
                        ""
                    },
                    if run.expect_ok { "success" } else { "failure" },
                    run.exit,
                    run.stderr
                ));
            }
        }
    }
    eprintln!("conformance: {passed}/{total} runs as expected");
    assert!(
        mismatches.is_empty(),
        "{} mismatching runs:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
