//! Which OIDC issuers the CA trusts and how each one's tokens become an identity (interop §1.4).
//!
//! The file is JSON with Fulcio's key names, so a Fulcio `config.json` carries over:
//!
//! ```json
//! {
//!   "OIDCIssuers": {
//!     "https://accounts.example.com": { "IssuerURL": "https://accounts.example.com", "ClientID": "sigstore", "Type": "email" },
//!     "https://token.actions.githubusercontent.com": { "IssuerURL": "https://token.actions.githubusercontent.com", "ClientID": "sigstore", "Type": "github-workflow" }
//!   },
//!   "MetaIssuers": {
//!     "https://oidc.eks.*.amazonaws.com/id/*": { "ClientID": "sigstore", "Type": "kubernetes" }
//!   },
//!   "CIIssuerMetadata": {
//!     "acme-ci": {
//!       "DefaultTemplateValues": { "url": "https://ci.acme.example" },
//!       "ExtensionTemplates": { "SourceRepositoryDigest": "commit_sha" },
//!       "SubjectAlternativeNameTemplate": "{{ .url }}/{{ .pipeline }}"
//!     }
//!   }
//! }
//! ```
//!
//! sigil adds `DevelopmentOnly` (bool) per issuer, and `BaseURL` for CI issuers hosted somewhere
//! other than github.com / the GitLab issuer's own host. Unknown keys are refused so typos surface.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use crate::identity::template::CiTemplates;

/// The client id an issuer's tokens must carry in `aud` unless configured otherwise.
pub const DEFAULT_CLIENT_ID: &str = "sigstore";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read issuer config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("issuer config {path} is not valid JSON for sigil: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("issuer {url:?}: {reason}")]
    InvalidIssuer { url: String, reason: String },
    #[error(
        "issuer {0:?} is marked development-only and production refuses it (pass the development flag to allow it)"
    )]
    DevelopmentIssuer(String),
}

/// How a token's claims turn into a certificate identity (Fulcio `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssuerType {
    Email,
    Uri,
    Spiffe,
    Kubernetes,
    GithubWorkflow,
    GitlabPipeline,
    BuildkiteJob,
    CodefreshWorkflow,
    ChainguardIdentity,
    Username,
    /// SAN and extensions from the `CIIssuerMetadata` entry named by `CIProvider`.
    CiProvider,
}

impl IssuerType {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerType::Email => "email",
            IssuerType::Uri => "uri",
            IssuerType::Spiffe => "spiffe",
            IssuerType::Kubernetes => "kubernetes",
            IssuerType::GithubWorkflow => "github-workflow",
            IssuerType::GitlabPipeline => "gitlab-pipeline",
            IssuerType::BuildkiteJob => "buildkite-job",
            IssuerType::CodefreshWorkflow => "codefresh-workflow",
            IssuerType::ChainguardIdentity => "chainguard-identity",
            IssuerType::Username => "username",
            IssuerType::CiProvider => "ci-provider",
        }
    }
}

/// One trusted issuer (or meta-issuer pattern) as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Informational for meta-issuers; for plain issuers it defaults to the map key.
    #[serde(rename = "IssuerURL", default)]
    pub issuer_url: String,
    #[serde(rename = "ClientID", default = "default_client_id")]
    pub client_id: String,
    #[serde(rename = "Type")]
    pub issuer_type: IssuerType,
    /// Email type only: a `$.a.b` path whose value replaces `iss` in the issuer extensions.
    #[serde(rename = "IssuerClaim", default)]
    pub issuer_claim: Option<String>,
    /// uri type: scheme+host every subject must have; username type: the `!domain` suffix.
    #[serde(rename = "SubjectDomain", default)]
    pub subject_domain: Option<String>,
    #[serde(rename = "SPIFFETrustDomain", default)]
    pub spiffe_trust_domain: Option<String>,
    /// Overrides the claim a proof of possession signs, as advertised by `/api/v2/configuration`.
    #[serde(rename = "ChallengeClaim", default)]
    pub challenge_claim: Option<String>,
    #[serde(rename = "SkipEmailVerification", default)]
    pub skip_email_verification: bool,
    #[serde(rename = "Description", default)]
    pub description: Option<String>,
    #[serde(rename = "Contact", default)]
    pub contact: Option<String>,
    /// Informational (Fulcio: which deployment environment the issuer belongs to).
    #[serde(rename = "Environment", default)]
    pub environment: Option<String>,
    /// PEM of the only CA trusted for this issuer's TLS (a company IdP on a private PKI).
    #[serde(rename = "CACert", default)]
    pub ca_cert: Option<String>,
    /// ci-provider type: which `CIIssuerMetadata` entry describes the identity.
    #[serde(rename = "CIProvider", default)]
    pub ci_provider: Option<String>,
    /// sigil: the web base URL CI identities point at (default `https://github.com` for
    /// github-workflow, the issuer's own origin for gitlab-pipeline).
    #[serde(rename = "BaseURL", default)]
    pub base_url: Option<String>,
    /// sigil: a convenience issuer (e.g. a loopback dev IdP) that production must not trust.
    #[serde(rename = "DevelopmentOnly", default)]
    pub development_only: bool,
    /// The compiled `CIIssuerMetadata` of a ci-provider issuer, resolved when it is added.
    #[serde(skip)]
    pub(crate) ci_templates: Option<Arc<CiTemplates>>,
}

fn default_client_id() -> String {
    DEFAULT_CLIENT_ID.to_string()
}

impl IssuerConfig {
    /// An email-type issuer with client id `sigstore` (what `--oidc-issuer URL` means).
    pub fn email(url: &str) -> IssuerConfig {
        IssuerConfig {
            issuer_url: url.to_string(),
            client_id: default_client_id(),
            issuer_type: IssuerType::Email,
            issuer_claim: None,
            subject_domain: None,
            spiffe_trust_domain: None,
            challenge_claim: None,
            skip_email_verification: false,
            description: None,
            contact: None,
            environment: None,
            ca_cert: None,
            ci_provider: None,
            base_url: None,
            development_only: false,
            ci_templates: None,
        }
    }

    /// The claim a client must sign for proof of possession (Fulcio `Name()`).
    pub fn challenge_claim(&self) -> &str {
        match &self.challenge_claim {
            Some(claim) => claim,
            None if self.issuer_type == IssuerType::Email => "email",
            None => "sub",
        }
    }

    fn validate(&self, url: &str) -> Result<(), ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidIssuer {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if self.client_id.is_empty() {
            return Err(invalid("ClientID must not be empty"));
        }
        match self.issuer_type {
            IssuerType::Spiffe if self.spiffe_trust_domain.as_deref().unwrap_or("").is_empty() => {
                return Err(invalid("type spiffe needs SPIFFETrustDomain"));
            }
            IssuerType::CiProvider if self.ci_provider.as_deref().unwrap_or("").is_empty() => {
                return Err(invalid("type ci-provider needs CIProvider"));
            }
            IssuerType::Uri | IssuerType::Username
                if self.subject_domain.as_deref().unwrap_or("").is_empty() =>
            {
                return Err(invalid("types uri and username need SubjectDomain"));
            }
            IssuerType::Uri => {
                let domain = self.subject_domain.as_deref().unwrap_or_default();
                let parsed = url::Url::parse(domain)
                    .map_err(|_| invalid("SubjectDomain of a uri issuer must be a URL"))?;
                if parsed.host_str().is_none() {
                    return Err(invalid("SubjectDomain of a uri issuer needs a host"));
                }
            }
            _ => {}
        }
        if let Some(pem) = &self.ca_cert {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| invalid(&format!("CACert is not PEM: {e}")))?;
            if certs.is_empty() || !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(invalid("CACert holds no PEM certificate"));
            }
        }
        if self.issuer_claim.is_some() && self.issuer_type != IssuerType::Email {
            return Err(invalid("IssuerClaim is only meaningful for email issuers"));
        }
        if let Some(path) = &self.issuer_claim {
            crate::identity::parse_claim_path(path).map_err(|reason| invalid(&reason))?;
        }
        Ok(())
    }
}

/// Issuer URLs must be https, except loopback (a local test or development IdP).
fn check_issuer_url(url: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidIssuer {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    // Meta-issuer patterns carry `*`; check them with a stand-in valid in hosts and ports alike.
    let concrete = url.replace('*', "0");
    let parsed = url::Url::parse(&concrete).map_err(|_| invalid("not a URL"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        _ => Err(invalid("issuer URLs must be https (http only on loopback)")),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A meta-issuer: a URL pattern whose `*` stands for one `[-_a-zA-Z0-9]+` label.
#[derive(Debug, Clone)]
pub struct MetaIssuer {
    pub pattern: String,
    regex: Regex,
    pub config: IssuerConfig,
}

impl MetaIssuer {
    fn new(pattern: &str, config: IssuerConfig) -> Result<MetaIssuer, ConfigError> {
        Ok(MetaIssuer {
            pattern: pattern.to_string(),
            regex: wildcard_regex(pattern).map_err(|e| ConfigError::InvalidIssuer {
                url: pattern.to_string(),
                reason: e.to_string(),
            })?,
            config,
        })
    }

    pub fn matches(&self, issuer: &str) -> bool {
        self.regex.is_match(issuer)
    }
}

fn wildcard_regex(pattern: &str) -> Result<Regex, regex::Error> {
    let body = pattern
        .split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join("[-_a-zA-Z0-9]+");
    Regex::new(&format!("^{body}$"))
}

/// How a CI vendor's tokens become an identity (Fulcio `CIIssuerMetadata`), so adding a vendor
/// is configuration: templates are a claim name or text with `{{ .claim }}` placeholders.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiIssuerMetadata {
    /// Values for template names the token does not carry (e.g. `url`).
    #[serde(rename = "DefaultTemplateValues", default)]
    pub default_template_values: BTreeMap<String, String>,
    /// Extension key (Fulcio's, e.g. `BuildSignerURI` or `build-signer-uri`) to template.
    #[serde(rename = "ExtensionTemplates", default)]
    pub extension_templates: BTreeMap<String, String>,
    #[serde(rename = "SubjectAlternativeNameTemplate")]
    pub subject_alternative_name_template: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(rename = "OIDCIssuers", default)]
    oidc_issuers: BTreeMap<String, IssuerConfig>,
    #[serde(rename = "MetaIssuers", default)]
    meta_issuers: BTreeMap<String, IssuerConfig>,
    #[serde(rename = "CIIssuerMetadata", default)]
    ci_issuer_metadata: BTreeMap<String, CiIssuerMetadata>,
}

/// Every issuer the CA trusts. Exact URLs win over meta-issuer patterns.
#[derive(Debug, Clone, Default)]
pub struct IssuersConfig {
    issuers: BTreeMap<String, IssuerConfig>,
    meta: Vec<MetaIssuer>,
    ci_providers: BTreeMap<String, Arc<CiTemplates>>,
}

impl IssuersConfig {
    pub fn from_file(path: impl AsRef<Path>) -> Result<IssuersConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        IssuersConfig::from_json(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    pub fn from_json(text: &str) -> Result<IssuersConfig, ConfigError> {
        let file: FileFormat = serde_json::from_str(text).map_err(|source| ConfigError::Parse {
            path: "<inline>".to_string(),
            source,
        })?;
        let mut config = IssuersConfig::default();
        for (name, metadata) in &file.ci_issuer_metadata {
            config.add_ci_provider(name, metadata)?;
        }
        for (url, issuer) in file.oidc_issuers {
            config.add_issuer(&url, issuer)?;
        }
        for (pattern, issuer) in file.meta_issuers {
            config.add_meta_issuer(&pattern, issuer)?;
        }
        Ok(config)
    }

    /// `--oidc-issuer URL`: trust an email issuer with client id `sigstore`.
    pub fn add_email_issuer(&mut self, url: &str) -> Result<(), ConfigError> {
        self.add_issuer(url, IssuerConfig::email(url))
    }

    /// Registers a CI vendor's templates under `name`, for issuers with `CIProvider: name`.
    pub fn add_ci_provider(
        &mut self,
        name: &str,
        metadata: &CiIssuerMetadata,
    ) -> Result<(), ConfigError> {
        let templates = CiTemplates::compile(
            &metadata.default_template_values,
            &metadata.extension_templates,
            &metadata.subject_alternative_name_template,
        )
        .map_err(|reason| ConfigError::InvalidIssuer {
            url: format!("CIIssuerMetadata {name:?}"),
            reason,
        })?;
        self.ci_providers
            .insert(name.to_string(), Arc::new(templates));
        Ok(())
    }

    fn resolve_ci(&self, url: &str, issuer: &mut IssuerConfig) -> Result<(), ConfigError> {
        if issuer.issuer_type != IssuerType::CiProvider {
            return Ok(());
        }
        let name = issuer.ci_provider.as_deref().unwrap_or_default();
        let templates = self
            .ci_providers
            .get(name)
            .ok_or_else(|| ConfigError::InvalidIssuer {
                url: url.to_string(),
                reason: format!("CIProvider {name:?} has no CIIssuerMetadata entry"),
            })?;
        issuer.ci_templates = Some(templates.clone());
        Ok(())
    }

    pub fn add_issuer(&mut self, url: &str, mut issuer: IssuerConfig) -> Result<(), ConfigError> {
        check_issuer_url(url)?;
        if issuer.issuer_url.is_empty() {
            issuer.issuer_url = url.to_string();
        }
        if issuer.issuer_url != url {
            return Err(ConfigError::InvalidIssuer {
                url: url.to_string(),
                reason: format!("IssuerURL {:?} differs from its key", issuer.issuer_url),
            });
        }
        issuer.validate(url)?;
        self.resolve_ci(url, &mut issuer)?;
        self.issuers.insert(url.to_string(), issuer);
        Ok(())
    }

    pub fn add_meta_issuer(
        &mut self,
        pattern: &str,
        mut issuer: IssuerConfig,
    ) -> Result<(), ConfigError> {
        check_issuer_url(pattern)?;
        issuer.validate(pattern)?;
        self.resolve_ci(pattern, &mut issuer)?;
        self.meta.retain(|m| m.pattern != pattern);
        self.meta.push(MetaIssuer::new(pattern, issuer)?);
        Ok(())
    }

    /// The configuration for a token's (still unverified) `iss`, if trusted at all.
    pub fn find(&self, issuer: &str) -> Option<&IssuerConfig> {
        self.issuers.get(issuer).or_else(|| {
            self.meta
                .iter()
                .find(|m| m.matches(issuer))
                .map(|m| &m.config)
        })
    }

    /// Trusted by its exact URL (rather than through a meta-issuer pattern).
    pub fn is_exact(&self, issuer: &str) -> bool {
        self.issuers.contains_key(issuer)
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty() && self.meta.is_empty()
    }

    /// Production start-up calls this with `allow_development = false` so a development-only
    /// issuer never becomes trusted by accident.
    pub fn check_development(&self, allow_development: bool) -> Result<(), ConfigError> {
        if allow_development {
            return Ok(());
        }
        let exact = self
            .issuers
            .iter()
            .map(|(url, c)| (url.as_str(), c.development_only));
        let meta = self
            .meta
            .iter()
            .map(|m| (m.pattern.as_str(), m.config.development_only));
        match exact.chain(meta).find(|(_, dev)| *dev) {
            Some((url, _)) => Err(ConfigError::DevelopmentIssuer(url.to_string())),
            None => Ok(()),
        }
    }

    /// The body of `GET /api/v2/configuration` (interop §1.3).
    pub fn configuration_json(&self) -> serde_json::Value {
        let entry = |key: &str, url: &str, c: &IssuerConfig| {
            serde_json::json!({
                key: url,
                "audience": c.client_id,
                "challengeClaim": c.challenge_claim(),
                "spiffeTrustDomain": c.spiffe_trust_domain.clone().unwrap_or_default(),
                "issuerType": c.issuer_type.as_str(),
                "subjectDomain": c.subject_domain.clone().unwrap_or_default(),
                "skipEmailVerification": c.skip_email_verification,
            })
        };
        let exact = self
            .issuers
            .iter()
            .map(|(url, c)| entry("issuerUrl", url, c));
        let meta = self
            .meta
            .iter()
            .map(|m| entry("wildcardIssuerUrl", &m.pattern, &m.config));
        serde_json::json!({ "issuers": exact.chain(meta).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "OIDCIssuers": {
        "https://accounts.example.com": {"IssuerURL": "https://accounts.example.com", "ClientID": "sigstore", "Type": "email"},
        "https://token.actions.githubusercontent.com": {"Type": "github-workflow"},
        "https://spiffe.example.com": {"Type": "spiffe", "SPIFFETrustDomain": "example.com", "ClientID": "other"},
        "http://127.0.0.1:5556/dex": {"Type": "email", "DevelopmentOnly": true}
      },
      "MetaIssuers": {
        "https://oidc.eks.*.amazonaws.com/id/*": {"ClientID": "sigstore", "Type": "kubernetes"}
      }
    }"#;

    #[test]
    fn parses_fulcio_keys_with_defaults() {
        let config = IssuersConfig::from_json(SAMPLE).unwrap();
        let gh = config
            .find("https://token.actions.githubusercontent.com")
            .unwrap();
        assert_eq!(gh.issuer_type, IssuerType::GithubWorkflow);
        assert_eq!(gh.client_id, "sigstore");
        assert_eq!(gh.issuer_url, "https://token.actions.githubusercontent.com");
        assert_eq!(gh.challenge_claim(), "sub");
        let spiffe = config.find("https://spiffe.example.com").unwrap();
        assert_eq!(spiffe.client_id, "other");
        assert_eq!(
            config
                .find("https://accounts.example.com")
                .unwrap()
                .challenge_claim(),
            "email"
        );
    }

    #[test]
    fn meta_issuer_wildcards_match_one_label_anchored() {
        let config = IssuersConfig::from_json(SAMPLE).unwrap();
        let hit = config.find("https://oidc.eks.us-west-2.amazonaws.com/id/B02C93B6A2D3");
        assert_eq!(hit.unwrap().issuer_type, IssuerType::Kubernetes);
        for miss in [
            // `*` does not cross dots or slashes
            "https://oidc.eks.a.b.amazonaws.com/id/X",
            "https://oidc.eks.us-west-2.amazonaws.com/id/X/extra",
            // anchored at both ends
            "https://oidc.eks.us-west-2.amazonaws.com/id/X/",
            "xhttps://oidc.eks.us-west-2.amazonaws.com/id/X",
            // the dot is literal, not "any character"
            "https://oidc.eksXus-west-2.amazonaws.com/id/X",
            // a wildcard needs at least one character
            "https://oidc.eks..amazonaws.com/id/X",
        ] {
            assert!(config.find(miss).is_none(), "{miss} must not match");
        }
    }

    #[test]
    fn exact_issuer_wins_over_meta_issuer() {
        let mut config = IssuersConfig::default();
        let mut meta = IssuerConfig::email("");
        meta.issuer_type = IssuerType::Kubernetes;
        config
            .add_meta_issuer("https://*.example.com", meta)
            .unwrap();
        config
            .add_email_issuer("https://login.example.com")
            .unwrap();
        assert_eq!(
            config
                .find("https://login.example.com")
                .unwrap()
                .issuer_type,
            IssuerType::Email
        );
        assert_eq!(
            config.find("https://k8s.example.com").unwrap().issuer_type,
            IssuerType::Kubernetes
        );
    }

    #[test]
    fn development_issuers_are_refused_unless_allowed() {
        let config = IssuersConfig::from_json(SAMPLE).unwrap();
        let err = config.check_development(false).unwrap_err();
        assert!(
            matches!(err, ConfigError::DevelopmentIssuer(ref u) if u == "http://127.0.0.1:5556/dex")
        );
        config.check_development(true).unwrap();
        let mut prod = IssuersConfig::default();
        prod.add_email_issuer("https://accounts.example.com")
            .unwrap();
        prod.check_development(false).unwrap();
    }

    #[test]
    fn rejects_bad_configs() {
        let bad = [
            // unknown key (a typo must not silently drop a setting)
            r#"{"OIDCIssuers": {"https://a.example": {"Type": "email", "ClientId": "x"}}}"#,
            // plain http to a non-loopback host
            r#"{"OIDCIssuers": {"http://a.example": {"Type": "email"}}}"#,
            // spiffe without trust domain
            r#"{"OIDCIssuers": {"https://a.example": {"Type": "spiffe"}}}"#,
            // username without domain
            r#"{"OIDCIssuers": {"https://a.example": {"Type": "username"}}}"#,
            // IssuerURL disagreeing with the key
            r#"{"OIDCIssuers": {"https://a.example": {"Type": "email", "IssuerURL": "https://b.example"}}}"#,
            // unknown type
            r#"{"OIDCIssuers": {"https://a.example": {"Type": "carrier-pigeon"}}}"#,
            // CACert that holds no certificate
            r#"{"OIDCIssuers": {"https://a.example": {"Type": "email", "CACert": "not a PEM"}}}"#,
            // IssuerClaim on a non-email issuer
            r#"{"OIDCIssuers": {"https://a.example": {"Type": "uri", "SubjectDomain": "https://a.example", "IssuerClaim": "$.x"}}}"#,
        ];
        for text in bad {
            assert!(IssuersConfig::from_json(text).is_err(), "accepted: {text}");
        }
    }

    #[test]
    fn from_file_reads_json_and_names_the_path_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuers.json");
        std::fs::write(&path, SAMPLE).unwrap();
        let config = IssuersConfig::from_file(&path).unwrap();
        assert!(config.find("https://accounts.example.com").is_some());
        std::fs::write(&path, "{not json").unwrap();
        let err = IssuersConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("issuers.json"), "{err}");
    }

    #[test]
    fn configuration_endpoint_lists_issuers() {
        let config = IssuersConfig::from_json(SAMPLE).unwrap();
        let json = config.configuration_json();
        let issuers = json["issuers"].as_array().unwrap();
        assert_eq!(issuers.len(), 5);
        let meta = issuers
            .iter()
            .find(|i| i.get("wildcardIssuerUrl").is_some())
            .unwrap();
        assert_eq!(
            meta["wildcardIssuerUrl"],
            "https://oidc.eks.*.amazonaws.com/id/*"
        );
        assert_eq!(meta["issuerType"], "kubernetes");
        assert_eq!(meta["challengeClaim"], "sub");
        let email = issuers
            .iter()
            .find(|i| i["issuerUrl"] == "https://accounts.example.com")
            .unwrap();
        assert_eq!(email["challengeClaim"], "email");
        assert_eq!(email["audience"], "sigstore");
    }
}
