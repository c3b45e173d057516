use time::OffsetDateTime;

use super::body::BodyError;
use super::certs::{CertError, ChainError};
use super::sct::SctError;
use super::timestamp::TimestampError;
use super::tlog::TlogError;

/// Why a bundle did not verify. Each check has its own variant.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("bundle is not valid: {0}")]
    BundleFormat(String),
    #[error("witnesses: {0}")]
    Witnesses(String),
    #[error("unsupported bundle media type {0:?} (supported: Sigstore bundle v0.1, v0.2, v0.3)")]
    UnsupportedVersion(String),
    #[error("bundle is malformed: {0}")]
    BundleShape(String),
    #[error("bundle is signed with a managed key; pass that public key (--key) to verify it")]
    KeyRequired,
    #[error(
        "bundle is signed with a certificate, not a key; verify it with --certificate-identity and --certificate-oidc-issuer"
    )]
    CertificateNotKey,
    #[error("trusted root: {0}")]
    TrustedRoot(String),
    #[error("signing certificate: {0}")]
    Certificate(#[from] CertError),
    #[error("signing certificate is not trusted: {0}")]
    Chain(#[from] ChainError),
    #[error("signing certificate profile: {0}")]
    CertificateProfile(&'static str),
    #[error("embedded SCT: {0}")]
    Sct(#[from] SctError),
    #[error("certificate identity does not match: expected {expected}, certificate has {found:?}")]
    Identity {
        expected: String,
        found: Vec<String>,
    },
    #[error(
        "certificate OIDC issuer does not match: expected {expected}, certificate has {found:?}"
    )]
    Issuer {
        expected: String,
        found: Option<String>,
    },
    #[error(
        "certificate GitHub workflow {claim} does not match: expected {expected:?}, certificate has {found:?}"
    )]
    GithubClaim {
        claim: &'static str,
        expected: String,
        found: Option<String>,
    },
    #[error("artifact signature does not verify with the signer's key")]
    Signature,
    #[error("artifact does not match the bundle: {0}")]
    ArtifactMismatch(String),
    #[error("transparency log: {0}")]
    Tlog(#[from] TlogError),
    #[error("transparency log entry does not match the bundle: {0}")]
    LogEntryMismatch(#[from] BodyError),
    #[error("RFC 3161 timestamp: {0}")]
    Timestamp(#[from] TimestampError),
    #[error("no verified time: the bundle needs a signed entry timestamp or an RFC 3161 timestamp")]
    NoVerifiedTime,
    #[error(
        "verified time {time} is outside the signing certificate's validity ({not_before} to {not_after})"
    )]
    TimeOutsideCertificate {
        time: OffsetDateTime,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    },
}

impl VerifyError {
    /// A stable, machine-readable name for the check that failed (for `--output json`).
    pub fn check(&self) -> &'static str {
        match self {
            VerifyError::BundleFormat(_)
            | VerifyError::UnsupportedVersion(_)
            | VerifyError::BundleShape(_) => "bundle",
            VerifyError::KeyRequired | VerifyError::CertificateNotKey => "signer_material",
            VerifyError::TrustedRoot(_) => "trusted_root",
            VerifyError::Certificate(_)
            | VerifyError::Chain(_)
            | VerifyError::CertificateProfile(_) => "certificate",
            VerifyError::Sct(_) => "sct",
            VerifyError::Identity { .. }
            | VerifyError::Issuer { .. }
            | VerifyError::GithubClaim { .. } => "identity",
            VerifyError::Signature => "signature",
            VerifyError::ArtifactMismatch(_) => "artifact",
            VerifyError::Tlog(_) => "transparency_log",
            VerifyError::LogEntryMismatch(_) => "log_entry",
            VerifyError::Timestamp(_) => "timestamp",
            VerifyError::NoVerifiedTime | VerifyError::TimeOutsideCertificate { .. } => "time",
            VerifyError::Witnesses(_) => "witnesses",
        }
    }
}
