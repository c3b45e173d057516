//! The identity a verified OIDC token proves, in the shape the certificate needs (interop §1.5, §1.6).

use const_oid::ObjectIdentifier;

/// The single subject alternative name of a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltName {
    /// rfc822Name.
    Email(String),
    /// uniformResourceIdentifier.
    Uri(String),
    /// otherName with type-id 1.3.6.1.4.1.57264.1.7 and a UTF8String value `"<sub>!<domain>"`.
    Username(String),
}

/// How a Fulcio extension value is put into `extnValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtEncoding {
    /// OIDs 1.1–1.6: the raw UTF-8 bytes, no DER wrapper.
    Raw,
    /// OIDs 1.8–1.24: a DER UTF8String.
    Utf8String,
}

/// One non-critical Fulcio extension (arc 1.3.6.1.4.1.57264.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulcioExtension {
    pub oid: ObjectIdentifier,
    pub value: String,
    pub encoding: ExtEncoding,
}

/// Who a verified token says the signer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Goes into 1.1 and 1.8: the token's `iss`, or the issuer's IssuerClaim value.
    pub issuer: String,
    pub san: SubjectAltName,
    /// What a proof of possession signs (Fulcio `Name()`): the email for email issuers, else `sub`.
    pub challenge: String,
    /// CI claims (1.2–1.6 raw, 1.9–1.24 UTF8String) in OID order; never 1.1/1.8.
    pub extensions: Vec<FulcioExtension>,
}

mod ci;
pub mod template;

use serde_json::{Map, Value};

use crate::config::{IssuerConfig, IssuerType};

/// A verified token's claims set.
pub type Claims = Map<String, Value>;

/// Why verified claims do not make an identity for the issuer's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the identity token lacks the {claim:?} claim that {issuer_type} issuers need")]
    MissingClaim {
        claim: String,
        issuer_type: &'static str,
    },
    #[error("the identity token's email address is not verified (email_verified is not true)")]
    EmailNotVerified,
    #[error("the identity token's {claim:?} claim is not acceptable: {reason}")]
    InvalidClaim { claim: String, reason: String },
}

/// The Fulcio OID `1.3.6.1.4.1.57264.1.<n>`.
pub fn fulcio_oid(n: u32) -> ObjectIdentifier {
    ObjectIdentifier::new(&format!("1.3.6.1.4.1.57264.1.{n}"))
        .expect("the Fulcio arc with a small suffix is a valid OID")
}

/// Maps a verified token's claims to the certificate identity, per the issuer's type (§1.5).
pub fn principal_from_claims(
    config: &IssuerConfig,
    claims: &Claims,
) -> Result<Principal, IdentityError> {
    let ty = config.issuer_type;
    let get = ClaimReader {
        claims,
        issuer_type: ty.as_str(),
    };
    let iss = get.required("iss")?;
    let sub = get.required("sub")?;
    let mut issuer = iss.clone();
    let mut extensions = Vec::new();
    let san = match ty {
        IssuerType::Email => {
            let email = get.required("email")?;
            if !config.skip_email_verification && !is_true(claims.get("email_verified")) {
                return Err(IdentityError::EmailNotVerified);
            }
            if !email.contains('@') {
                return Err(get.invalid("email", "not an email address"));
            }
            if let Some(path) = &config.issuer_claim {
                issuer =
                    claim_at_path(claims, path).ok_or_else(|| IdentityError::MissingClaim {
                        claim: path.clone(),
                        issuer_type: ty.as_str(),
                    })?;
            }
            SubjectAltName::Email(email)
        }
        IssuerType::Spiffe => {
            let domain = config.spiffe_trust_domain.as_deref().unwrap_or_default();
            check_spiffe_id(&sub, domain).map_err(|r| get.invalid("sub", &r))?;
            SubjectAltName::Uri(sub.clone())
        }
        IssuerType::Uri => {
            let domain = config.subject_domain.as_deref().unwrap_or_default();
            check_uri_subject(&sub, domain).map_err(|r| get.invalid("sub", &r))?;
            SubjectAltName::Uri(sub.clone())
        }
        IssuerType::Username => {
            if sub.contains('!') {
                return Err(get.invalid("sub", "a username must not contain '!'"));
            }
            if sub.contains('@') {
                return Err(get.invalid("sub", "a username must not be an email address"));
            }
            let domain = config.subject_domain.as_deref().unwrap_or_default();
            SubjectAltName::Username(format!("{sub}!{domain}"))
        }
        IssuerType::Kubernetes => {
            let k8s = claims
                .get("kubernetes.io")
                .and_then(Value::as_object)
                .ok_or_else(|| get.missing("kubernetes.io"))?;
            let ns = k8s
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| get.missing("kubernetes.io.namespace"))?;
            let sa = k8s
                .get("serviceaccount")
                .and_then(|v| v.get("name"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| get.missing("kubernetes.io.serviceaccount.name"))?;
            SubjectAltName::Uri(format!(
                "https://kubernetes.io/namespaces/{ns}/serviceaccounts/{sa}"
            ))
        }
        IssuerType::BuildkiteJob => {
            let org = get.required("organization_slug")?;
            let pipeline = get.required("pipeline_slug")?;
            SubjectAltName::Uri(format!("https://buildkite.com/{org}/{pipeline}"))
        }
        IssuerType::CodefreshWorkflow => {
            let (san, exts) = ci::codefresh_workflow(&get)?;
            extensions = exts;
            san
        }
        IssuerType::ChainguardIdentity => SubjectAltName::Uri(format!(
            "{}/{}",
            iss.trim_end_matches('/'),
            sub.trim_start_matches('/')
        )),
        IssuerType::GithubWorkflow => {
            let base = config.base_url.as_deref().unwrap_or("https://github.com");
            let (san, exts) = ci::github_workflow(&get, base)?;
            extensions = exts;
            san
        }
        IssuerType::CiProvider => {
            let templates =
                config
                    .ci_templates
                    .as_ref()
                    .ok_or_else(|| IdentityError::InvalidClaim {
                        claim: "iss".into(),
                        reason: "the issuer's CIProvider templates are not configured".into(),
                    })?;
            let (san, exts) = templates.apply(|name| get.optional(name), ty.as_str())?;
            extensions = exts;
            san
        }
        IssuerType::GitlabPipeline => {
            let base = config.base_url.clone().unwrap_or_else(|| origin_of(&iss));
            let (san, exts) = ci::gitlab_pipeline(&get, &base)?;
            extensions = exts;
            san
        }
    };
    // rfc822Name and URI SANs are IA5String in X.509: refuse what cannot be encoded here, with
    // a message naming the claim, rather than failing later while building the certificate.
    if let SubjectAltName::Email(value) | SubjectAltName::Uri(value) = &san
        && (!value.is_ascii() || value.chars().any(|c| c.is_ascii_control()))
    {
        return Err(IdentityError::InvalidClaim {
            claim: "subject alternative name".into(),
            reason: "it is not printable ASCII (an IA5String)".into(),
        });
    }
    // A configured ChallengeClaim is what /api/v2/configuration tells clients to sign, so the
    // proof of possession must be checked against that same claim.
    let challenge = match (config.challenge_claim.as_deref(), &san) {
        (Some(claim), _) => get.required(claim)?,
        (None, SubjectAltName::Email(email)) => email.clone(),
        // Chainguard follows cosign's client rule: the email when the token has one.
        (None, _) if ty == IssuerType::ChainguardIdentity => match get.optional("email") {
            Some(email) if is_true(claims.get("email_verified")) => email,
            Some(_) => return Err(IdentityError::EmailNotVerified),
            None => sub,
        },
        (None, _) => sub,
    };
    Ok(Principal {
        issuer,
        san,
        challenge,
        extensions,
    })
}

/// Reads claims as the strings certificates carry, with errors naming the claim.
pub(crate) struct ClaimReader<'a> {
    claims: &'a Claims,
    issuer_type: &'static str,
}

impl ClaimReader<'_> {
    /// A non-empty string claim; numbers (some IdPs send ids as numbers) are written in decimal.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        match self.claims.get(name)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    pub(crate) fn required(&self, name: &str) -> Result<String, IdentityError> {
        self.optional(name).ok_or_else(|| self.missing(name))
    }

    pub(crate) fn missing(&self, name: &str) -> IdentityError {
        IdentityError::MissingClaim {
            claim: name.to_string(),
            issuer_type: self.issuer_type,
        }
    }

    pub(crate) fn invalid(&self, name: &str, reason: &str) -> IdentityError {
        IdentityError::InvalidClaim {
            claim: name.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// `email_verified` is a JSON bool, but some IdPs (e.g. AWS Cognito) send the string "true".
fn is_true(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true)))
        || matches!(value, Some(Value::String(s)) if s == "true")
}

fn origin_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => url.trim_end_matches('/').to_string(),
    }
}

/// Parses the `$.a.b` subset of JSONPath that IssuerClaim uses.
pub fn parse_claim_path(path: &str) -> Result<Vec<String>, String> {
    let rest = path
        .strip_prefix("$.")
        .ok_or_else(|| format!("IssuerClaim {path:?} must look like $.claim or $.a.b"))?;
    let parts: Vec<String> = rest.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!("IssuerClaim {path:?} has an empty segment"));
    }
    Ok(parts)
}

fn claim_at_path(claims: &Claims, path: &str) -> Option<String> {
    let parts = parse_claim_path(path).ok()?;
    let (first, rest) = parts.split_first()?;
    let mut value = claims.get(first)?;
    for part in rest {
        value = value.get(part)?;
    }
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn check_spiffe_id(sub: &str, trust_domain: &str) -> Result<(), String> {
    let rest = sub
        .strip_prefix("spiffe://")
        .ok_or("a SPIFFE ID starts with spiffe://")?;
    let domain = rest.split('/').next().unwrap_or_default();
    if domain.is_empty() || rest.len() == domain.len() || rest.ends_with('/') {
        return Err("a SPIFFE ID is spiffe://<trust domain>/<path>".into());
    }
    if domain != trust_domain {
        return Err(format!(
            "SPIFFE trust domain {domain:?} is not the issuer's {trust_domain:?}"
        ));
    }
    Ok(())
}

fn check_uri_subject(sub: &str, subject_domain: &str) -> Result<(), String> {
    let subject = url::Url::parse(sub).map_err(|_| "the subject is not a URI".to_string())?;
    let domain = url::Url::parse(subject_domain)
        .map_err(|_| "the issuer's SubjectDomain is not a URI".to_string())?;
    if subject.scheme() != domain.scheme() || subject.host_str() != domain.host_str() {
        return Err(format!(
            "the subject must have the scheme and host of {subject_domain:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
