use thiserror::Error;

use crate::identity::IdentityError;

/// Why a token was refused. `Display` is the client-facing message (HTTP 400 unless
/// [`TokenError::is_server_side`]); it never contains the token.
#[derive(Debug, Error)]
pub enum TokenError {
    #[error("the identity token is malformed: {0}")]
    Malformed(String),
    #[error("unsigned identity tokens (alg \"none\") are not accepted")]
    AlgNone,
    #[error("identity tokens signed with a shared secret ({0}) are not accepted")]
    SymmetricAlgorithm(String),
    #[error("the identity token's signing algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
    #[error("the identity token's issuer {0:?} is not trusted by this CA")]
    UnknownIssuer(String),
    #[error("cannot fetch the signing keys of issuer {issuer:?}: {reason}")]
    IssuerUnavailable { issuer: String, reason: String },
    #[error("the identity token's signing key {kid:?} is not published by issuer {issuer:?}")]
    UnknownKey { issuer: String, kid: String },
    #[error("the identity token's algorithm {alg} does not match its {key_type} signing key")]
    AlgorithmKeyMismatch { alg: String, key_type: &'static str },
    #[error("the identity token's signature is invalid")]
    BadSignature,
    #[error("the identity token's audience does not include {expected:?}")]
    WrongAudience { expected: String },
    #[error("the identity token has expired")]
    Expired,
    #[error("the identity token is not valid yet")]
    NotYetValid,
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Token-supplied text (iss, alg, kid) echoed in a message is cut to this many characters, so a
/// hostile token cannot make error responses or logs arbitrarily large.
const MAX_ECHO_CHARS: usize = 128;

/// Shortens token-supplied text for inclusion in an error message.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

impl TokenError {
    /// True when the fault is ours or the issuer's (JWKS unreachable), not the client's token;
    /// the handler should answer 5xx rather than 400 then.
    pub fn is_server_side(&self) -> bool {
        matches!(self, TokenError::IssuerUnavailable { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_token_text_is_clipped() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(500);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_ECHO_CHARS + 3);
        assert!(TokenError::UnknownIssuer(clip(&long)).to_string().len() < 400);
    }
}
