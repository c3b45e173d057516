//! OIDC ID-token verification against the configured issuers.

mod error;
mod jwks;
mod jwt;
mod keys;
mod verifier;

pub use error::TokenError;
pub use jwks::{DEFAULT_KEYS_TTL, MIN_REFRESH_INTERVAL};
pub use verifier::{CLOCK_SKEW_SECS, TokenVerifier};
