//! Registry credentials: which username/password or token goes to which registry.
//!
//! Order, as docker, crane and cosign use it: explicit flags (or their environment
//! variables) for every registry; else the Docker config file (`$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`): a credential helper named for the host, an `auths` entry,
//! the default credential store; else anonymous. Credentials are only ever handed out for
//! the registry host they were found under.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A registry token sent as `Authorization: Bearer` (`--registry-token`, `registrytoken`).
    Bearer(String),
}

// Secrets never reach logs or error messages.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Anonymous => write!(f, "Anonymous"),
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::Bearer(_) => write!(f, "Bearer(<redacted>)"),
        }
    }
}

impl Credential {
    pub fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        use oci_client::secrets::RegistryAuth;
        match self {
            Credential::Anonymous => RegistryAuth::Anonymous,
            Credential::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credential::Bearer(t) => RegistryAuth::Bearer(t.clone()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the Docker config {0}: {1}")]
    ConfigRead(PathBuf, std::io::Error),
    #[error("the Docker config {0} is not valid: {1}")]
    ConfigParse(PathBuf, String),
    #[error(
        "the Docker config entry for {0} has an auth field that is not base64 of user:password"
    )]
    BadAuthField(String),
    #[error(
        "the Docker config entry for {0} holds an OAuth identity token, which sigil cannot exchange; \
         log in with a username and password or pass --registry-token"
    )]
    IdentityToken(String),
    #[error("credential helper docker-credential-{helper} failed for {host}: {detail}")]
    Helper {
        helper: String,
        host: String,
        detail: String,
    },
}

/// Where credentials come from; resolved per registry host.
#[derive(Clone, Debug, Default)]
pub struct CredentialSource {
    /// From `--registry-username`/`--registry-password` or `--registry-token`: used for
    /// every registry the command touches.
    pub explicit: Option<Credential>,
    /// The Docker config file; `None` when there is none.
    pub docker_config: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// The Docker config file this user would use: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// `https://index.docker.io/v1/`, `http://host:5000`, `host:5000/` all name their host.
fn normalize_key(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or_default();
    host.to_ascii_lowercase()
}

/// Docker Hub goes by several names; everything else by exactly one.
fn host_aliases(host: &str) -> Vec<String> {
    let host = host.to_ascii_lowercase();
    if matches!(
        host.as_str(),
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        vec![
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![host]
    }
}

impl CredentialSource {
    /// Flags first; the Docker config at its usual place otherwise.
    pub fn new(explicit: Option<Credential>) -> CredentialSource {
        CredentialSource {
            explicit,
            docker_config: default_docker_config(),
        }
    }

    pub fn for_registry(&self, host: &str) -> Result<Credential, AuthError> {
        if let Some(c) = &self.explicit {
            return Ok(c.clone());
        }
        let Some(path) = &self.docker_config else {
            return Ok(Credential::Anonymous);
        };
        let config = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<DockerConfig>(&bytes)
                .map_err(|e| AuthError::ConfigParse(path.clone(), e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credential::Anonymous),
            Err(e) => return Err(AuthError::ConfigRead(path.clone(), e)),
        };
        from_config(&config, host, &|name| {
            PathBuf::from(format!("docker-credential-{name}"))
        })
    }
}

/// `helper_program` names the executable of a credential helper (found on PATH in use).
fn from_config(
    config: &DockerConfig,
    host: &str,
    helper_program: &dyn Fn(&str) -> PathBuf,
) -> Result<Credential, AuthError> {
    let aliases = host_aliases(host);
    if let Some(helper) = config
        .cred_helpers
        .iter()
        .find(|(k, _)| aliases.contains(&normalize_key(k)))
        .map(|(_, v)| v)
    {
        return from_helper(helper, &helper_program(helper), host);
    }
    if let Some(entry) = config
        .auths
        .iter()
        .find(|(k, _)| aliases.contains(&normalize_key(k)))
        .map(|(_, v)| v)
        && let Some(c) = from_entry(entry, host)?
    {
        return Ok(c);
    }
    match &config.creds_store {
        Some(store) if !store.is_empty() => from_helper(store, &helper_program(store), host),
        _ => Ok(Credential::Anonymous),
    }
}

fn from_entry(entry: &AuthEntry, host: &str) -> Result<Option<Credential>, AuthError> {
    if let Some(token) = entry.registrytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::Bearer(token.clone())));
    }
    if entry.identitytoken.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(AuthError::IdentityToken(host.to_string()));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let decoded = STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| AuthError::BadAuthField(host.to_string()))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| AuthError::BadAuthField(host.to_string()))?;
        return Ok(Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential::Basic {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

/// `docker-credential-<helper> get`, host on stdin, `{"Username","Secret"}` on stdout.
fn from_helper(helper: &str, program: &Path, host: &str) -> Result<Credential, AuthError> {
    let fail = |detail: String| AuthError::Helper {
        helper: helper.to_string(),
        host: host.to_string(),
        detail,
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(host.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        // Helpers answer "credentials not found" for hosts they know nothing about.
        if said.to_ascii_lowercase().contains("not found") {
            return Ok(Credential::Anonymous);
        }
        return Err(fail(format!("exit status {}", out.status)));
    }
    #[derive(Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&out.stdout).map_err(|_| fail("unreadable answer".into()))?;
    if answer.username == "<token>" {
        return Err(AuthError::IdentityToken(host.to_string()));
    }
    Ok(Credential::Basic {
        username: answer.username,
        password: answer.secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(config: &str) -> (tempfile::TempDir, CredentialSource) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, config).unwrap();
        (
            dir,
            CredentialSource {
                explicit: None,
                docker_config: Some(path),
            },
        )
    }

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn auths_entries_match_by_host_only() {
        let auth = STANDARD.encode("alice:s3cret:with:colons");
        let (_d, s) = source(&format!(
            r#"{{"auths":{{"https://reg.example:5000/v1/":{{"auth":"{auth}"}},
                "other.example":{{"username":"bob","password":"pw"}},
                "https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
            STANDARD.encode("hub:pw")
        ));
        assert_eq!(
            s.for_registry("reg.example:5000").unwrap(),
            basic("alice", "s3cret:with:colons")
        );
        assert_eq!(s.for_registry("other.example").unwrap(), basic("bob", "pw"));
        assert_eq!(s.for_registry("docker.io").unwrap(), basic("hub", "pw"));
        assert_eq!(
            s.for_registry("reg.example").unwrap(),
            Credential::Anonymous,
            "another port is another registry"
        );
        assert_eq!(
            s.for_registry("evil.example").unwrap(),
            Credential::Anonymous
        );
    }

    #[test]
    fn explicit_flags_win_and_bad_entries_are_named() {
        let (_d, mut s) = source(r#"{"auths":{"r.example":{"auth":"!!!"}}}"#);
        assert!(matches!(
            s.for_registry("r.example"),
            Err(AuthError::BadAuthField(_))
        ));
        s.explicit = Some(basic("u", "p"));
        assert_eq!(s.for_registry("r.example").unwrap(), basic("u", "p"));
        let (_d, s) = source(r#"{"auths":{"r.example":{"identitytoken":"x"}}}"#);
        assert!(matches!(
            s.for_registry("r.example"),
            Err(AuthError::IdentityToken(_))
        ));
        let (_d, s) = source(r#"{"auths":{"r.example":{"registrytoken":"tok"}}}"#);
        assert_eq!(
            s.for_registry("r.example").unwrap(),
            Credential::Bearer("tok".into())
        );
        let (_d, s) = source("not json");
        assert!(matches!(
            s.for_registry("r.example"),
            Err(AuthError::ConfigParse(..))
        ));
        let missing = CredentialSource {
            explicit: None,
            docker_config: Some("/nonexistent/config.json".into()),
        };
        assert_eq!(
            missing.for_registry("r.example").unwrap(),
            Credential::Anonymous
        );
    }

    #[test]
    fn credential_helpers_are_asked_for_their_host() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-sigiltest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread host\nif [ \"$host\" = helped.example ]; then\n  echo '{\"Username\":\"helper-user\",\"Secret\":\"helper-secret\"}'\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = DockerConfig {
            cred_helpers: BTreeMap::from([("helped.example".into(), "sigiltest".into())]),
            creds_store: Some("sigiltest".into()),
            ..DockerConfig::default()
        };
        let program = |name: &str| dir.path().join(format!("docker-credential-{name}"));
        assert_eq!(
            from_config(&config, "helped.example", &program).unwrap(),
            basic("helper-user", "helper-secret")
        );
        // Not in credHelpers: the default store is asked, and knows nothing of it.
        assert_eq!(
            from_config(&config, "unknown.example", &program).unwrap(),
            Credential::Anonymous
        );
        let broken = |_: &str| dir.path().join("no-such-helper");
        assert!(matches!(
            from_config(&config, "helped.example", &broken),
            Err(AuthError::Helper { .. })
        ));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let shown = format!(
            "{:?} {:?}",
            basic("alice", "hunter2"),
            Credential::Bearer("tok123".into())
        );
        assert!(shown.contains("alice"));
        assert!(!shown.contains("hunter2") && !shown.contains("tok123"));
    }
}
