//! A signing world for image tests: a real OIDC provider, sigild, the trusted root and
//! signing config it serves, crane-built images, and runners for the `sigil` and `cosign`
//! binaries with an isolated home (no Docker config, no TUF cache, no ambient tokens).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::go_peers;
use crate::oidc_provider::OidcProvider;
use crate::registry::Images;
use crate::stack::{Stack, workspace_binary};

pub struct World {
    pub idp: OidcProvider,
    pub stack: Stack,
    pub dir: tempfile::TempDir,
    pub trusted_root: PathBuf,
    pub signing_config: PathBuf,
    pub images: Images,
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
pub fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed: {}", text(&out));
    out
}

#[track_caller]
pub fn fails(out: Output, what: &str, needle: &str) -> Output {
    assert!(
        !out.status.success(),
        "{what} unexpectedly succeeded: {}",
        text(&out)
    );
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        all.contains(needle),
        "{what}: expected {needle:?} in: {}",
        text(&out)
    );
    out
}

impl World {
    pub async fn start() -> World {
        let idp = OidcProvider::start();
        let stack = Stack::start(idp.issuer_url());
        World::around(idp, stack).await
    }

    /// A world around a sigild the caller started (trusting `idp`'s issuer).
    pub async fn around(idp: OidcProvider, stack: Stack) -> World {
        let dir = tempfile::tempdir().unwrap();
        let tc_path = stack.trust_config_file(dir.path()).await;
        let tc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&tc_path).unwrap()).unwrap();
        let trusted_root = dir.path().join("trusted_root.json");
        std::fs::write(&trusted_root, tc["trustedRoot"].to_string()).unwrap();
        let signing_config = dir.path().join("signing_config.json");
        std::fs::write(&signing_config, tc["signingConfig"].to_string()).unwrap();
        World {
            idp,
            stack,
            dir,
            trusted_root,
            signing_config,
            images: Images::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn sigil(&self, args: &[&str]) -> Output {
        self.sigil_env(args, &[])
    }

    pub fn sigil_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(workspace_binary("sigil-client", "sigil"));
        cmd.args(args)
            .env_remove("SIGSTORE_ID_TOKEN")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join("no-docker-config"))
            .env("COSIGN_PASSWORD", "test-password");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run sigil")
    }

    pub fn cosign(&self, args: &[&str]) -> Output {
        self.cosign_env(args, &[])
    }

    pub fn cosign_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(go_peers::cosign());
        cmd.args(args)
            .env("HOME", self.dir.path())
            .env("TUF_ROOT", self.dir.path().join("tuf"))
            .env("DOCKER_CONFIG", self.dir.path().join("no-docker-config"))
            .env("COSIGN_PASSWORD", "test-password")
            .env_remove("SIGSTORE_ID_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run cosign")
    }

    pub async fn token(&self, email: &str) -> String {
        self.idp.token(email).await
    }

    /// cosign reads `--identity-token` from a file when it names one.
    pub async fn token_file(&self, email: &str) -> PathBuf {
        let path = self.path(&format!("token-{email}"));
        std::fs::write(&path, self.token(email).await).unwrap();
        path
    }

    pub fn tr(&self) -> &str {
        self.trusted_root.to_str().unwrap()
    }

    pub fn issuer(&self) -> &str {
        self.idp.issuer_url()
    }

    /// sigil's keyless policy flags for `email`.
    pub fn sigil_policy<'a>(&'a self, email: &'a str) -> Vec<&'a str> {
        vec![
            "--trusted-root",
            self.tr(),
            "--certificate-identity",
            email,
            "--certificate-oidc-issuer",
            self.issuer(),
        ]
    }

    pub async fn sigil_sign(&self, image: &str, email: &str, extra: &[&str]) -> Output {
        let token = self.token(email).await;
        let mut args = vec![
            "sign",
            image,
            "--server",
            &self.stack.url,
            "--identity-token",
            &token,
            "--yes",
        ];
        args.extend_from_slice(extra);
        self.sigil(&args)
    }

    pub async fn sigil_attest(
        &self,
        image: &str,
        email: &str,
        predicate: &Path,
        kind: &str,
        extra: &[&str],
    ) -> Output {
        let token = self.token(email).await;
        let mut args = vec![
            "attest",
            image,
            "--predicate",
            predicate.to_str().unwrap(),
            "--type",
            kind,
            "--server",
            &self.stack.url,
            "--identity-token",
            &token,
            "--yes",
        ];
        args.extend_from_slice(extra);
        self.sigil(&args)
    }

    pub fn cosign_verify(&self, image: &str, email: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "verify",
            "--trusted-root",
            self.tr(),
            "--certificate-identity",
            email,
            "--certificate-oidc-issuer",
            self.issuer(),
        ];
        args.extend_from_slice(extra);
        args.push(image);
        self.cosign(&args)
    }

    /// cosign's new-bundle signing against sigild through its signing config.
    pub async fn cosign_sign(&self, image: &str, email: &str, extra: &[&str]) -> Output {
        let token = self.token_file(email).await;
        let mut args = vec![
            "sign",
            "--signing-config",
            self.signing_config.to_str().unwrap(),
            "--trusted-root",
            self.tr(),
            "--identity-token",
            token.to_str().unwrap(),
            "--yes",
        ];
        args.extend_from_slice(extra);
        args.push(image);
        self.cosign(&args)
    }

    /// cosign's legacy layout needs its URL flags instead of a signing config.
    pub async fn cosign_sign_legacy(
        &self,
        command: &str,
        image: &str,
        email: &str,
        extra: &[&str],
    ) -> Output {
        let token = self.token_file(email).await;
        let mut args = vec![
            command,
            "--new-bundle-format=false",
            "--use-signing-config=false",
            "--fulcio-url",
            &self.stack.url,
            "--rekor-url",
            &self.stack.url,
            "--trusted-root",
            self.tr(),
            "--identity-token",
            token.to_str().unwrap(),
            "--yes",
        ];
        args.extend_from_slice(extra);
        args.push(image);
        self.cosign(&args)
    }
}

/// The JSON array cosign and sigil print on stdout for verified signatures.
pub fn payloads(out: &Output) -> Vec<serde_json::Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not a JSON array ({e}): {stdout}"))
}
