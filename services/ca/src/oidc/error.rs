use thiserror::Error;

/// Why a token was refused. `Display` is the client-facing message (HTTP 400); it never
/// contains the token.
#[derive(Debug, Error)]
pub enum TokenError {
    #[error("the identity token is malformed: {0}")]
    Malformed(String),
    #[error("the identity token's issuer {0:?} is not trusted by this CA")]
    UnknownIssuer(String),
}
