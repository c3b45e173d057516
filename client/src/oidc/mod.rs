//! OIDC identity tokens on the signing side: where a token comes from (flag, environment, CI
//! provider) and what the CA's proof of possession must sign.
//!
//! Tokens from these sources are not verified here (the CA does that); the client only reads
//! the claims it needs. An interactive login ([`interactive`]) verifies the token it receives.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

pub mod ambient;
pub mod interactive;

/// GitLab CI (and anything else) hands the token over in this variable.
pub const SIGSTORE_ID_TOKEN_ENV: &str = "SIGSTORE_ID_TOKEN";
pub const GITHUB_REQUEST_URL_ENV: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub const GITHUB_REQUEST_TOKEN_ENV: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
pub const SIGSTORE_AUDIENCE: &str = "sigstore";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("identity token is not a JWT (header.payload.signature)")]
    NotJwt,
    #[error("identity token payload is not valid base64url JSON with iss and sub: {0}")]
    BadClaims(String),
    #[error("identity token has no usable subject (sub)")]
    NoSubject,
    #[error(
        "the CA identifies this issuer's users by email, but the identity token has no email claim"
    )]
    NoEmail,
    #[error("requesting a GitHub Actions identity token: {0}")]
    GithubActions(String),
    #[error("requesting a {0} identity token: {1}")]
    Ambient(&'static str, ambient::AmbientError),
    #[error(
        "no identity token: pass --identity-token, set SIGSTORE_ID_TOKEN, run in GitHub Actions with `permissions: id-token: write`, Buildkite or CircleCI, or log in interactively from a terminal"
    )]
    Missing,
}

/// The claims the client looks at.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct TokenClaims {
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub email_verified: Option<bool>,
}

/// Some providers send `email_verified` as the string "true".
fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Some(b),
        serde_json::Value::String(s) => Some(s.eq_ignore_ascii_case("true")),
        _ => None,
    })
}

impl TokenClaims {
    /// Reads the payload of a compact JWS without checking its signature.
    pub fn from_unverified_jwt(token: &str) -> Result<TokenClaims, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::NotJwt);
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| TokenError::BadClaims(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| TokenError::BadClaims(e.to_string()))
    }

    /// The string the proof of possession signs, as cosign and sigstore-js choose it: the
    /// email if present and verified, else the subject.
    pub fn challenge(&self) -> Result<&str, TokenError> {
        match (&self.email, self.email_verified) {
            (Some(email), Some(true)) if !email.is_empty() => Ok(email),
            _ if !self.sub.is_empty() => Ok(&self.sub),
            _ => Err(TokenError::NoSubject),
        }
    }
}

impl TokenClaims {
    /// The proof-of-possession string when the CA names the claim it checks (`email` or
    /// `sub`, from its configuration); other or unknown claims fall back to [`Self::challenge`].
    pub fn challenge_for_claim(&self, claim: Option<&str>) -> Result<&str, TokenError> {
        match claim {
            Some("sub") if !self.sub.is_empty() => Ok(&self.sub),
            Some("email") => match &self.email {
                Some(email) if !email.is_empty() => Ok(email),
                _ => Err(TokenError::NoEmail),
            },
            _ => self.challenge(),
        }
    }
}

/// Where the identity token came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    Flag,
    Environment,
    GithubActions,
    Buildkite,
    CircleCi,
}

/// The first token source that applies, in this fixed order: an explicit token, then
/// `$SIGSTORE_ID_TOKEN`, then GitHub Actions' token service, then Buildkite's agent, then
/// CircleCI's CLI. [`TokenError::Missing`] when none applies (the caller may then log in
/// interactively).
pub async fn resolve_token(
    http: &reqwest::Client,
    explicit: Option<&str>,
) -> Result<(String, TokenSource), TokenError> {
    if let Some(t) = explicit.filter(|t| !t.trim().is_empty()) {
        return Ok((t.trim().to_string(), TokenSource::Flag));
    }
    if let Ok(t) = std::env::var(SIGSTORE_ID_TOKEN_ENV)
        && !t.trim().is_empty()
    {
        return Ok((t.trim().to_string(), TokenSource::Environment));
    }
    if let (Ok(url), Ok(bearer)) = (
        std::env::var(GITHUB_REQUEST_URL_ENV),
        std::env::var(GITHUB_REQUEST_TOKEN_ENV),
    ) {
        let token = github_actions_token(http, &url, &bearer).await?;
        return Ok((token, TokenSource::GithubActions));
    }
    if let Some((provider, tool)) = ambient::detect(&|name| std::env::var(name).ok()) {
        let token = ambient::request_token(provider, &tool)
            .await
            .map_err(|e| TokenError::Ambient(provider.name(), e))?;
        let source = match provider {
            ambient::CiProvider::Buildkite => TokenSource::Buildkite,
            ambient::CiProvider::CircleCi => TokenSource::CircleCi,
        };
        return Ok((token, source));
    }
    Err(TokenError::Missing)
}

/// `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=sigstore` with the request token as bearer;
/// the answer is `{"value": "<JWT>"}`.
pub async fn github_actions_token(
    http: &reqwest::Client,
    request_url: &str,
    request_token: &str,
) -> Result<String, TokenError> {
    let separator = if request_url.contains('?') { '&' } else { '?' };
    let url = format!("{request_url}{separator}audience={SIGSTORE_AUDIENCE}");
    #[derive(Deserialize)]
    struct Answer {
        value: String,
    }
    let response = http
        .get(&url)
        .bearer_auth(request_token)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| TokenError::GithubActions(e.to_string()))?;
    if !response.status().is_success() {
        return Err(TokenError::GithubActions(format!(
            "HTTP {}",
            response.status()
        )));
    }
    let answer: Answer = response
        .json()
        .await
        .map_err(|e| TokenError::GithubActions(e.to_string()))?;
    Ok(answer.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn challenge_is_verified_email_else_subject() {
        let c = TokenClaims::from_unverified_jwt(&jwt(serde_json::json!({
            "iss": "https://issuer", "sub": "123", "email": "a@example.com", "email_verified": true
        })))
        .unwrap();
        assert_eq!(c.challenge().unwrap(), "a@example.com");
        let c = TokenClaims::from_unverified_jwt(&jwt(serde_json::json!({
            "iss": "https://issuer", "sub": "123", "email": "a@example.com", "email_verified": "false"
        })))
        .unwrap();
        assert_eq!(c.challenge().unwrap(), "123");
        let c = TokenClaims::from_unverified_jwt(&jwt(serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com", "sub": "repo:o/r:ref:refs/heads/main"
        })))
        .unwrap();
        assert_eq!(c.challenge().unwrap(), "repo:o/r:ref:refs/heads/main");
        let c = TokenClaims::from_unverified_jwt(&jwt(serde_json::json!({"iss": "x"}))).unwrap();
        assert!(matches!(c.challenge(), Err(TokenError::NoSubject)));
    }

    #[test]
    fn the_ca_configured_claim_overrides_the_default_rule() {
        // A CI token that also carries a verified email: the CA checks `sub` for CI issuers.
        let ci = TokenClaims::from_unverified_jwt(&jwt(serde_json::json!({
            "iss": "https://ci", "sub": "repo:o/r", "email": "bot@example.com", "email_verified": true
        })))
        .unwrap();
        assert_eq!(ci.challenge_for_claim(Some("sub")).unwrap(), "repo:o/r");
        assert_eq!(ci.challenge_for_claim(None).unwrap(), "bot@example.com");
        assert_eq!(
            ci.challenge_for_claim(Some("email")).unwrap(),
            "bot@example.com"
        );
        let no_email = TokenClaims::from_unverified_jwt(&jwt(serde_json::json!({
            "iss": "https://i", "sub": "123"
        })))
        .unwrap();
        assert!(matches!(
            no_email.challenge_for_claim(Some("email")),
            Err(TokenError::NoEmail)
        ));
        assert_eq!(no_email.challenge_for_claim(Some("other")).unwrap(), "123");
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        assert!(matches!(
            TokenClaims::from_unverified_jwt("abc"),
            Err(TokenError::NotJwt)
        ));
        assert!(matches!(
            TokenClaims::from_unverified_jwt("a.!!!.c"),
            Err(TokenError::BadClaims(_))
        ));
        assert!(matches!(
            TokenClaims::from_unverified_jwt(&format!("a.{}.c", URL_SAFE_NO_PAD.encode("{}"))),
            Err(TokenError::BadClaims(_))
        ));
    }

    /// GitHub's token service is not reachable from tests; a one-shot local server answers
    /// in its shape so the request (audience, bearer) and the answer's parsing are checked.
    #[tokio::test]
    async fn github_actions_token_is_requested_for_the_sigstore_audience() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"count":1,"value":"header.payload.sig"}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8(request).unwrap()
        });
        let http = reqwest::Client::new();
        let url = format!("http://{addr}/token?api-version=2.0");
        let token = github_actions_token(&http, &url, "request-secret")
            .await
            .unwrap();
        assert_eq!(token, "header.payload.sig");
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /token?api-version=2.0&audience=sigstore "));
        assert!(request.contains("authorization: bearer request-secret"));
    }

    #[tokio::test]
    async fn explicit_token_wins() {
        let http = reqwest::Client::new();
        let (t, source) = resolve_token(&http, Some(" tok ")).await.unwrap();
        assert_eq!((t.as_str(), source), ("tok", TokenSource::Flag));
    }
}
