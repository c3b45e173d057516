//! What the verifier expects of the signer: an OIDC identity (keyless) or a known key.

use regex::Regex;

use super::keys::PublicKey;

/// An exact string, or a regular expression that must match somewhere in the value (as
/// cosign's `--certificate-identity-regexp` does; anchor it with `^…$` to match the whole).
#[derive(Clone, Debug)]
pub enum Matcher {
    Exact(String),
    Regex(Regex),
}

impl Matcher {
    pub fn regex(pattern: &str) -> Result<Matcher, regex::Error> {
        Ok(Matcher::Regex(Regex::new(pattern)?))
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Regex(r) => r.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s:?}"),
            Matcher::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// GitHub Actions claims baked into Fulcio certificates; each set field must match exactly.
#[derive(Clone, Debug, Default)]
pub struct GithubClaims {
    pub trigger: Option<String>,
    pub sha: Option<String>,
    pub name: Option<String>,
    pub repository: Option<String>,
    pub git_ref: Option<String>,
}

#[derive(Clone, Debug)]
pub struct IdentityPolicy {
    /// Matched against every SAN value (email, URI, username).
    pub identity: Matcher,
    /// Matched against the OIDC issuer extension (1.3.6.1.4.1.57264.1.8, else .1.1).
    pub issuer: Matcher,
    pub github: GithubClaims,
}

#[derive(Clone, Debug)]
pub enum Policy {
    /// Keyless: a Fulcio-style certificate with this identity.
    Identity(IdentityPolicy),
    /// Keyed: a bundle signed by this public key.
    Key(PublicKey),
}
