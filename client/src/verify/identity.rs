//! The signing certificate as a Fulcio leaf: its profile, and whether the identity it
//! certifies is the one the policy expects.

use super::certs::{self, ParsedCert, fulcio_extension};
use super::{IdentityPolicy, VerifiedSigner, VerifyError};

pub(super) fn check_leaf_profile(leaf: &ParsedCert) -> Result<(), VerifyError> {
    if leaf.is_ca() {
        return Err(VerifyError::CertificateProfile(
            "the signing certificate is a CA certificate",
        ));
    }
    if !leaf.has_digital_signature_usage() {
        return Err(VerifyError::CertificateProfile(
            "key usage lacks digitalSignature",
        ));
    }
    let code_signing = leaf
        .extended_key_usage()
        .is_some_and(|(_, ekus)| ekus.contains(&certs::CODE_SIGNING));
    if !code_signing {
        return Err(VerifyError::CertificateProfile(
            "extended key usage lacks codeSigning",
        ));
    }
    if leaf.extension(&certs::PRECERT_POISON).is_some() {
        return Err(VerifyError::CertificateProfile(
            "the signing certificate is a precertificate",
        ));
    }
    if leaf.has_unknown_critical_extension() {
        return Err(VerifyError::CertificateProfile(
            "the signing certificate has an unknown critical extension",
        ));
    }
    Ok(())
}

/// (claim name, expected value, legacy raw OID arc, current OID arc, prefix the current one adds)
type ClaimSpec<'a> = (
    &'static str,
    &'a Option<String>,
    u32,
    Option<u32>,
    &'static str,
);

pub(super) fn check_identity(
    leaf: &ParsedCert,
    policy: &IdentityPolicy,
) -> Result<VerifiedSigner, VerifyError> {
    let identities = leaf.san_identities();
    if !identities.iter().any(|id| policy.identity.matches(id)) {
        return Err(VerifyError::Identity {
            expected: policy.identity.to_string(),
            found: identities,
        });
    }
    let issuer = fulcio_extension(leaf, 8).or_else(|| fulcio_extension(leaf, 1));
    if !issuer.as_deref().is_some_and(|i| policy.issuer.matches(i)) {
        return Err(VerifyError::Issuer {
            expected: policy.issuer.to_string(),
            found: issuer,
        });
    }
    let github = &policy.github;
    // (claim, expected, legacy raw OID arc, current OID arc, prefix the current one adds)
    let claims: [ClaimSpec<'_>; 5] = [
        ("trigger", &github.trigger, 2, Some(20), ""),
        ("sha", &github.sha, 3, Some(13), ""),
        ("name", &github.name, 4, None, ""),
        (
            "repository",
            &github.repository,
            5,
            Some(12),
            "https://github.com/",
        ),
        ("ref", &github.git_ref, 6, Some(14), ""),
    ];
    for (claim, expected, legacy, current, prefix) in claims {
        let Some(expected) = expected else { continue };
        let found = fulcio_extension(leaf, legacy).or_else(|| {
            current
                .and_then(|arc| fulcio_extension(leaf, arc))
                .map(|v| v.strip_prefix(prefix).map(str::to_string).unwrap_or(v))
        });
        if found.as_deref() != Some(expected.as_str()) {
            return Err(VerifyError::GithubClaim {
                claim,
                expected: expected.clone(),
                found,
            });
        }
    }
    Ok(VerifiedSigner::Certificate { identities, issuer })
}
