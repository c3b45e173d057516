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

#[derive(Clone, Debug)]
pub enum TrustSource {
    TrustedRoot(PathBuf),
    TrustConfig(PathBuf),
    /// A sigil server; the root comes from `GET <url>/api/v1/trusted-root`.
    Server(String),
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
            let endpoint = format!("{}/api/v1/trusted-root", url.trim_end_matches('/'));
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
