use super::TokenError;
use crate::identity::Principal;

/// Verifies ID tokens from the configured issuers and maps them to a [`Principal`].
pub struct TokenVerifier {}

impl TokenVerifier {
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let _ = token;
        Err(TokenError::Malformed("not implemented yet".into()))
    }
}
