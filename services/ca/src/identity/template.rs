//! Fulcio `ci-provider` templates: a CI vendor's SAN and extensions described in config.
//!
//! A template is either a bare claim name (`"sha"`) or text with `{{ .name }}` placeholders
//! (`"{{ .url }}/{{ .repository }}"`). Names resolve against the token's claims first, then
//! the provider's `DefaultTemplateValues`. A missing name refuses the token, as in Fulcio.

use std::collections::BTreeMap;

use super::{ExtEncoding, FulcioExtension, IdentityError, SubjectAltName, fulcio_oid};

/// Fulcio's extension template keys (Go field names of `certificate.Extensions`) and the OID
/// suffix each one fills. Keys match case-insensitively and ignoring `-`, so the YAML spelling
/// (`build-signer-uri`) works too.
const EXTENSION_KEYS: &[(&str, u32)] = &[
    ("GithubWorkflowTrigger", 2),
    ("GithubWorkflowSHA", 3),
    ("GithubWorkflowName", 4),
    ("GithubWorkflowRepository", 5),
    ("GithubWorkflowRef", 6),
    ("BuildSignerURI", 9),
    ("BuildSignerDigest", 10),
    ("RunnerEnvironment", 11),
    ("SourceRepositoryURI", 12),
    ("SourceRepositoryDigest", 13),
    ("SourceRepositoryRef", 14),
    ("SourceRepositoryIdentifier", 15),
    ("SourceRepositoryOwnerURI", 16),
    ("SourceRepositoryOwnerIdentifier", 17),
    ("BuildConfigURI", 18),
    ("BuildConfigDigest", 19),
    ("BuildTrigger", 20),
    ("RunInvocationURI", 21),
    ("SourceRepositoryVisibilityAtSigning", 22),
    ("DeploymentEnvironment", 23),
];

fn normalise(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn extension_oid(key: &str) -> Option<u32> {
    let key = normalise(key);
    EXTENSION_KEYS
        .iter()
        .find(|(name, _)| normalise(name) == key)
        .map(|(_, n)| *n)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Name(String),
}

/// One compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        if !source.contains("{{") {
            let name = source.trim();
            if name.is_empty() {
                return Err("an empty template".into());
            }
            return Ok(Template(vec![Part::Name(name.to_string())]));
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ in {source:?}"))?;
            let name = after[..end]
                .trim()
                .strip_prefix('.')
                .filter(|n| {
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .ok_or_else(|| {
                    format!("{source:?}: only {{{{ .claim_name }}}} placeholders are supported")
                })?;
            parts.push(Part::Name(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// Renders with `lookup`; a name it cannot resolve is returned as the error.
    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Name(n) => out.push_str(&lookup(n).ok_or_else(|| n.clone())?),
            }
        }
        Ok(out)
    }
}

/// A `CIIssuerMetadata` entry, compiled at config load so a bad template fails start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiTemplates {
    defaults: BTreeMap<String, String>,
    san: Template,
    /// Sorted by OID suffix.
    extensions: Vec<(u32, Template)>,
}

impl CiTemplates {
    pub fn compile(
        defaults: &BTreeMap<String, String>,
        extension_templates: &BTreeMap<String, String>,
        san_template: &str,
    ) -> Result<CiTemplates, String> {
        if san_template.trim().is_empty() {
            return Err("SubjectAlternativeNameTemplate must not be empty".into());
        }
        let mut extensions = Vec::new();
        for (key, source) in extension_templates {
            // Fulcio always takes the issuer extension from `iss`; its template is ignored.
            if normalise(key) == "issuer" || source.trim().is_empty() {
                continue;
            }
            let n = extension_oid(key)
                .ok_or_else(|| format!("unknown extension template key {key:?}"))?;
            extensions.push((n, Template::parse(source)?));
        }
        extensions.sort_by_key(|(n, _)| *n);
        if extensions.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("two extension templates name the same extension".into());
        }
        Ok(CiTemplates {
            defaults: defaults.clone(),
            san: Template::parse(san_template)?,
            extensions,
        })
    }

    /// The URI SAN and extensions for a token, given a claim reader (claims win over defaults).
    pub(super) fn apply(
        &self,
        claim: impl Fn(&str) -> Option<String>,
        issuer_type: &'static str,
    ) -> Result<(SubjectAltName, Vec<FulcioExtension>), IdentityError> {
        let lookup = |name: &str| claim(name).or_else(|| self.defaults.get(name).cloned());
        let missing = |claim: String| IdentityError::MissingClaim { claim, issuer_type };
        let san = self.san.render(lookup).map_err(missing)?;
        if url::Url::parse(&san).is_err() {
            return Err(IdentityError::InvalidClaim {
                claim: "subject alternative name".into(),
                reason: format!("the template produced {san:?}, not a URI"),
            });
        }
        let mut extensions = Vec::new();
        for (n, template) in &self.extensions {
            let value = template.render(lookup).map_err(missing)?;
            if value.is_empty() {
                continue;
            }
            extensions.push(FulcioExtension {
                oid: fulcio_oid(*n),
                value,
                encoding: if *n <= 6 {
                    ExtEncoding::Raw
                } else {
                    ExtEncoding::Utf8String
                },
            });
        }
        Ok((SubjectAltName::Uri(san), extensions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_render() {
        let t = Template::parse("{{ .url }}/{{.repository}}/actions/runs/{{ .run_id }}").unwrap();
        let data = |n: &str| match n {
            "url" => Some("https://ci.example".to_string()),
            "repository" => Some("o/r".to_string()),
            "run_id" => Some("7".to_string()),
            _ => None,
        };
        assert_eq!(
            t.render(data).unwrap(),
            "https://ci.example/o/r/actions/runs/7"
        );
        assert_eq!(
            Template::parse("sha")
                .unwrap()
                .render(|_| Some("abc".into()))
                .unwrap(),
            "abc"
        );
        assert_eq!(
            Template::parse("{{ .nope }}")
                .unwrap()
                .render(data)
                .unwrap_err(),
            "nope"
        );
        for bad in ["{{ .url ", "{{ url }}", "{{ .a | upper }}", "{{ }}", "  "] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn extension_keys_accept_go_and_yaml_spellings() {
        assert_eq!(extension_oid("BuildSignerURI"), Some(9));
        assert_eq!(extension_oid("build-signer-uri"), Some(9));
        assert_eq!(extension_oid("GithubWorkflowSHA"), Some(3));
        assert_eq!(
            extension_oid("source-repository-visibility-at-signing"),
            Some(22)
        );
        assert_eq!(extension_oid("BuildSignerUri2"), None);
    }
}
