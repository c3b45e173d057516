//! OIDC ID-token verification against the configured issuers.

mod error;
mod verifier;

pub use error::TokenError;
pub use verifier::TokenVerifier;
