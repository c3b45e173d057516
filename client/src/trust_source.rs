//! Where the verifier gets its trusted root: a file, a ClientTrustConfig, a sigil server,
//! or the user's configured default.

use std::path::{Path, PathBuf};

use sigil_proto::trust::{ClientTrustConfig, TrustedRoot};

#[derive(Debug, thiserror::Error)]
pub enum TrustSourceError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(String, sigil_proto::trust::TrustParseError),
    #[error("fetching the trusted root from {0}: {1}")]
    Fetch(String, String),
    #[error(
        "no trusted root given and no default found; pass --trusted-root FILE, --trust-config FILE or --server URL, \
         or install one at {0} (or set SIGIL_TRUSTED_ROOT)"
    )]
    NoDefault(String),
}

/// The URL of a sigil server that trust is fetched from. Trust fetched over plain http can be
/// swapped by anyone on the path, so http is taken only for a loopback host, or when the user
/// says so with `--insecure-trust`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl(String);

impl ServerUrl {
    pub fn new(url: &str, insecure_trust: bool) -> Result<ServerUrl, String> {
        let trimmed = url.trim_end_matches('/');
        let parsed = url::Url::parse(trimmed).map_err(|e| format!("--server {url:?}: {e}"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if insecure_trust || is_loopback(&parsed) => {}
            "http" => {
                return Err(format!(
                    "--server {url}: trust is fetched over plain http only from a loopback \
                     address (127.0.0.1, ::1, localhost); anyone between here and {} could \
                     replace it. Use https, or pass --insecure-trust if you accept that",
                    parsed.host_str().unwrap_or("the server")
                ));
            }
            other => return Err(format!("--server {url}: unsupported scheme {other:?}")),
        }
        Ok(ServerUrl(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[derive(Clone, Debug)]
pub enum TrustSource {
    TrustedRoot(PathBuf),
    TrustConfig(PathBuf),
    /// A sigil server; the root comes from `GET <url>/api/v1/trusted-root`.
    Server(ServerUrl),
    /// `$SIGIL_TRUSTED_ROOT`, else `~/.config/sigil/trusted_root.json`
    /// (`staging_trusted_root.json` for staging).
    Default {
        staging: bool,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TrustSourceError> {
    std::fs::read(path).map_err(|e| TrustSourceError::Read(path.to_path_buf(), e))
}

fn default_path(staging: bool) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SIGIL_TRUSTED_ROOT").filter(|_| !staging) {
        return Some(PathBuf::from(p));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let file = if staging {
        "staging_trusted_root.json"
    } else {
        "trusted_root.json"
    };
    Some(config.join("sigil").join(file))
}

pub fn load_trusted_root(source: &TrustSource) -> Result<TrustedRoot, TrustSourceError> {
    match source {
        TrustSource::TrustedRoot(path) => TrustedRoot::from_json(&read(path)?)
            .map_err(|e| TrustSourceError::Parse(path.display().to_string(), e)),
        TrustSource::TrustConfig(path) => ClientTrustConfig::from_json(&read(path)?)
            .map(|c| c.trusted_root)
            .map_err(|e| TrustSourceError::Parse(path.display().to_string(), e)),
        TrustSource::Server(url) => {
            let endpoint = format!("{url}/api/v1/trusted-root");
            let bytes =
                fetch(&endpoint).map_err(|e| TrustSourceError::Fetch(endpoint.clone(), e))?;
            TrustedRoot::from_json(&bytes).map_err(|e| TrustSourceError::Parse(endpoint, e))
        }
        TrustSource::Default { staging } => {
            let path = default_path(*staging).ok_or_else(|| {
                TrustSourceError::NoDefault("~/.config/sigil/trusted_root.json".into())
            })?;
            if !path.exists() {
                return Err(TrustSourceError::NoDefault(path.display().to_string()));
            }
            load_trusted_root(&TrustSource::TrustedRoot(path))
        }
    }
}

pub(crate) fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(url)
            .timeout(std::time::Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_trust_only_from_loopback_or_when_asked() {
        for ok in [
            "https://sigil.example.com",
            "https://sigil.example.com/",
            "http://127.0.0.1:3000",
            "http://127.9.9.9",
            "http://[::1]:3000",
            "http://localhost:3000/",
        ] {
            assert!(ServerUrl::new(ok, false).is_ok(), "{ok}");
        }
        let err = ServerUrl::new("http://sigil.example.com", false).unwrap_err();
        assert!(err.contains("--insecure-trust"), "{err}");
        assert!(ServerUrl::new("http://sigil.example.com", true).is_ok());
        assert!(ServerUrl::new("http://localhost.evil.example", false).is_err());
        assert!(ServerUrl::new("ftp://sigil.example.com", true).is_err());
        assert_eq!(
            ServerUrl::new("https://s.example/", false)
                .unwrap()
                .as_str(),
            "https://s.example"
        );
    }
}
