//! Ambient CI credentials whose only interface is the vendor's command-line tool: Buildkite's
//! agent and CircleCI's CLI mint an OIDC token for a given audience and print it on stdout.
//!
//! Detection reads the environment through a lookup function (not `std::env` directly), so a
//! caller — and a test — decides which variables and which `PATH` are seen.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::SIGSTORE_AUDIENCE;

/// Set by the Buildkite agent in every job; its presence means `buildkite-agent` can mint tokens.
pub const BUILDKITE_ENV: &str = "BUILDKITE_AGENT_ACCESS_TOKEN";
/// Set to `true` in every CircleCI job.
pub const CIRCLECI_ENV: &str = "CIRCLECI";
const BUILDKITE_AGENT: &str = "buildkite-agent";
const CIRCLECI_CLI: &str = "circleci";
/// How long a vendor CLI may take to answer before the client gives up.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// A CI provider whose token comes from a local command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CiProvider {
    Buildkite,
    CircleCi,
}

impl CiProvider {
    pub fn name(self) -> &'static str {
        match self {
            CiProvider::Buildkite => "Buildkite",
            CiProvider::CircleCi => "CircleCI",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AmbientError {
    #[error("running {program}: {error}")]
    Spawn {
        program: &'static str,
        error: std::io::Error,
    },
    #[error("{program} did not answer within {CLI_TIMEOUT:?}")]
    Timeout { program: &'static str },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{program} printed no token")]
    Empty { program: &'static str },
}

/// The first CI provider whose credentials are present, in the documented order: Buildkite
/// (`BUILDKITE_AGENT_ACCESS_TOKEN` set), then CircleCI (`CIRCLECI` set and `circleci` on
/// `PATH`). Returns the provider and the absolute path of its tool.
pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> Option<(CiProvider, PathBuf)> {
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    let path = env("PATH").unwrap_or_default();
    if set(BUILDKITE_ENV)
        && let Some(tool) = find_on_path(&path, BUILDKITE_AGENT)
    {
        return Some((CiProvider::Buildkite, tool));
    }
    if set(CIRCLECI_ENV)
        && let Some(tool) = find_on_path(&path, CIRCLECI_CLI)
    {
        return Some((CiProvider::CircleCi, tool));
    }
    None
}

/// Asks the provider's tool for a token with audience `sigstore`.
pub async fn request_token(provider: CiProvider, tool: &Path) -> Result<String, AmbientError> {
    let claims = format!(r#"{{"aud":"{SIGSTORE_AUDIENCE}"}}"#);
    let (program, args): (&'static str, Vec<&str>) = match provider {
        CiProvider::Buildkite => (
            BUILDKITE_AGENT,
            vec!["oidc", "request-token", "--audience", SIGSTORE_AUDIENCE],
        ),
        CiProvider::CircleCi => (
            CIRCLECI_CLI,
            vec!["run", "oidc", "get", "--claims", &claims],
        ),
    };
    let run = tokio::process::Command::new(tool)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CLI_TIMEOUT, run)
        .await
        .map_err(|_| AmbientError::Timeout { program })?
        .map_err(|error| AmbientError::Spawn { program, error })?;
    if !output.status.success() {
        return Err(AmbientError::Failed {
            program,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if token.is_empty() {
        return Err(AmbientError::Empty { program });
    }
    Ok(token)
}

fn find_on_path(path: &str, program: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(all(test, unix))]
mod tests {
    //! The vendors' CLIs cannot be installed here (they only work inside their CI), so each
    //! test puts a tiny stand-in script first on the `PATH` it hands to detection; the script
    //! records its arguments and prints a token the way the real tool does.

    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn fake_tool(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn env_of(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn path_with(dir: &Path) -> String {
        format!("{}:/usr/bin:/bin", dir.display())
    }

    #[tokio::test]
    async fn buildkite_agent_is_asked_for_a_sigstore_token() {
        let dir = tempfile::tempdir().unwrap();
        let args_file = dir.path().join("args");
        fake_tool(
            dir.path(),
            BUILDKITE_AGENT,
            &format!(
                "echo \"$@\" > '{}'\necho ' bk.jwt.sig '",
                args_file.display()
            ),
        );
        let env = env_of(&[
            (BUILDKITE_ENV, "agent-secret".into()),
            ("PATH", path_with(dir.path())),
        ]);
        let (provider, tool) = detect(&env).unwrap();
        assert_eq!(provider, CiProvider::Buildkite);
        assert_eq!(tool, dir.path().join(BUILDKITE_AGENT));
        let token = request_token(provider, &tool).await.unwrap();
        assert_eq!(token, "bk.jwt.sig");
        let args = std::fs::read_to_string(&args_file).unwrap();
        assert_eq!(args.trim(), "oidc request-token --audience sigstore");
    }

    #[tokio::test]
    async fn circleci_cli_is_asked_for_a_sigstore_audience_claim() {
        let dir = tempfile::tempdir().unwrap();
        let args_file = dir.path().join("args");
        fake_tool(
            dir.path(),
            CIRCLECI_CLI,
            &format!(
                "for a in \"$@\"; do echo \"$a\"; done > '{}'\necho cc.jwt.sig",
                args_file.display()
            ),
        );
        let env = env_of(&[
            (CIRCLECI_ENV, "true".into()),
            ("PATH", path_with(dir.path())),
        ]);
        let (provider, tool) = detect(&env).unwrap();
        assert_eq!(provider, CiProvider::CircleCi);
        assert_eq!(request_token(provider, &tool).await.unwrap(), "cc.jwt.sig");
        let args: Vec<String> = std::fs::read_to_string(&args_file)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(
            args,
            ["run", "oidc", "get", "--claims", r#"{"aud":"sigstore"}"#]
        );
    }

    #[tokio::test]
    async fn buildkite_comes_before_circleci_and_needs_its_tool() {
        let dir = tempfile::tempdir().unwrap();
        fake_tool(dir.path(), CIRCLECI_CLI, "echo cc");
        // Both variables set, but only CircleCI's tool exists: CircleCI.
        let env = env_of(&[
            (BUILDKITE_ENV, "x".into()),
            (CIRCLECI_ENV, "true".into()),
            ("PATH", path_with(dir.path())),
        ]);
        assert_eq!(detect(&env).unwrap().0, CiProvider::CircleCi);
        fake_tool(dir.path(), BUILDKITE_AGENT, "echo bk");
        assert_eq!(detect(&env).unwrap().0, CiProvider::Buildkite);
        // Tools present but no CI variables: nothing ambient.
        let env = env_of(&[("PATH", path_with(dir.path()))]);
        assert!(detect(&env).is_none());
    }

    #[tokio::test]
    async fn a_failing_tool_is_an_error_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        fake_tool(
            dir.path(),
            BUILDKITE_AGENT,
            "echo 'no job token' >&2\nexit 3",
        );
        let tool = dir.path().join(BUILDKITE_AGENT);
        match request_token(CiProvider::Buildkite, &tool).await {
            Err(AmbientError::Failed { stderr, .. }) => assert_eq!(stderr, "no job token"),
            other => panic!("expected a failure, got {other:?}"),
        }
        fake_tool(dir.path(), BUILDKITE_AGENT, "true");
        assert!(matches!(
            request_token(CiProvider::Buildkite, &tool).await,
            Err(AmbientError::Empty { .. })
        ));
    }
}
