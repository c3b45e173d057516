//! OIDC ID-token verification against the configured issuers.

mod error;
mod jwks;
// Public only so that fuzz/ can reach the pre-signature parsing; not API.
#[doc(hidden)]
pub mod jwt;
#[doc(hidden)]
pub mod keys;
mod verifier;

pub use error::TokenError;
pub use jwks::{DEFAULT_KEYS_TTL, MIN_REFRESH_INTERVAL};
pub use verifier::{CLOCK_SKEW_SECS, PendingCheck, TokenVerifier};
