//! Interactive OpenID Connect login for a person at a terminal: the authorization code flow
//! with PKCE (S256) and a loopback redirect (RFC 8252), or the device authorization flow
//! (RFC 8628) where no browser can be opened.
//!
//! The protocol is the `openidconnect` crate's: discovery (with the issuer's JWKS), the
//! authorization URL with PKCE, `state` and `nonce`, the code and device-code exchanges with
//! RFC 8628 polling, and the ID-token checks. It talks HTTP through `OidcHttp`, over the
//! workspace's reqwest client. What a command-line client adds stays here: the loopback
//! listener, the browser, the prompts and the errors a user reads.
//!
//! The ID token is verified before it is returned: its signature against the issuer's JWKS,
//! `iss`, `aud`, `exp` and, in the code flow, the `nonce` this login sent. The CA verifies it
//! again; checking here turns a token the CA would refuse into an error about the login, and
//! refuses a token replayed into the callback.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClientAuthMethod, CoreDeviceAuthorizationResponse, CoreErrorResponseType, CoreGenderClaim,
    CoreGrantType, CoreIdToken, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreSubjectIdentifierType,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AdditionalProviderMetadata, AsyncHttpClient, AuthType, AuthorizationCode,
    ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, DeviceAuthorizationUrl,
    DeviceCodeErrorResponse, DeviceCodeErrorResponseType, DiscoveryError, EmptyAdditionalClaims,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, EndpointState, ErrorResponseType, HttpRequest,
    HttpResponse, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    ProviderMetadata, RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardErrorResponse,
    TokenResponse, TokenUrl,
};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Sigstore's public issuer, used when no `--oidc-issuer` is given (as cosign does).
pub const DEFAULT_ISSUER: &str = "https://oauth2.sigstore.dev/auth";
/// The client id Sigstore issuers register for signing clients.
pub const DEFAULT_CLIENT_ID: &str = "sigstore";
/// The loopback path the authorization server redirects to.
pub const CALLBACK_PATH: &str = "/auth/callback";
/// Asked for next to `openid` (which openidconnect adds): the CA names people by email.
const EMAIL_SCOPE: &str = "email";
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// An issuer announcing an interval of 0 must not turn polling into a busy loop.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("OIDC discovery at {url}: {reason}")]
    Discovery { url: String, reason: String },
    #[error("the issuer offers no device authorization endpoint")]
    NoDeviceFlow,
    #[error("opening the loopback listener for the login redirect: {0}")]
    Listener(std::io::Error),
    #[error("no login within {0:?}")]
    Timeout(Duration),
    #[error("the login was refused: {0}")]
    Denied(String),
    #[error("the login redirect carried a different state (not this login)")]
    StateMismatch,
    #[error("the login redirect carried no authorization code")]
    NoCode,
    #[error("{endpoint} endpoint: {reason}")]
    Endpoint {
        endpoint: &'static str,
        reason: String,
    },
    #[error("the device code expired before the login finished")]
    DeviceCodeExpired,
    #[error("the ID token {0}")]
    BadIdToken(String),
}

/// Who the client is to the issuer.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Option<String>,
}

/// openidconnect's HTTP seam over the caller's reqwest 0.13 client. The crate's built-in
/// reqwest backend is off: it would bring reqwest 0.12 and, through it, rustls with ring.
/// Every request gets [`HTTP_TIMEOUT`], as the login's requests always had; redirects follow
/// the caller's client policy.
struct OidcHttp<'a>(&'a reqwest::Client);

impl<'c> AsyncHttpClient<'c> for OidcHttp<'_> {
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, reqwest::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let mut request = reqwest::Request::try_from(request)?;
            *request.timeout_mut() = Some(HTTP_TIMEOUT);
            let response = self.0.execute(request).await?;
            let status = response.status();
            let version = response.version();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            let mut answer = HttpResponse::new(body.to_vec());
            *answer.status_mut() = status;
            *answer.version_mut() = version;
            *answer.headers_mut() = headers;
            Ok(answer)
        })
    }
}

/// The discovery field of RFC 8628 §4, which the core metadata type leaves out. Optional:
/// sigild's dev issuer, for one, has no device flow.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct DeviceFlowMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
}

impl AdditionalProviderMetadata for DeviceFlowMetadata {}

type IssuerMetadata = ProviderMetadata<
    DeviceFlowMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// An openidconnect client for one issuer: authorization and token endpoints known, the
/// device endpoint only where `D` says so.
type OidcClient<D = EndpointNotSet> = openidconnect::Client<
    EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    IdTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    D,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
>;

/// An issuer as its discovery document (`<issuer>/.well-known/openid-configuration`) and
/// signing keys (its `jwks_uri`) describe it.
#[derive(Clone, Debug)]
pub struct Discovery {
    metadata: IssuerMetadata,
    token_endpoint: TokenUrl,
}

impl Discovery {
    /// The issuer identifier, as the document spells it (and as ID tokens' `iss` must).
    pub fn issuer(&self) -> &str {
        self.metadata.issuer().as_str()
    }

    pub fn authorization_endpoint(&self) -> &str {
        self.metadata.authorization_endpoint().as_str()
    }

    pub fn token_endpoint(&self) -> &str {
        self.token_endpoint.as_str()
    }

    pub fn device_authorization_endpoint(&self) -> Option<&str> {
        self.metadata
            .additional_metadata()
            .device_authorization_endpoint
            .as_ref()
            .map(|url| url.as_str())
    }

    fn client(&self, credentials: &ClientCredentials) -> OidcClient {
        openidconnect::Client::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(credentials.client_id.clone()),
            credentials.client_secret.clone().map(ClientSecret::new),
        )
        .set_token_uri(self.token_endpoint.clone())
        // client_secret_post, as before: a public client still names itself in the body, and
        // the issuers sigil is tested against register their confidential clients this way.
        .set_auth_type(AuthType::RequestBody)
    }

    fn device_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<OidcClient<EndpointSet>, LoginError> {
        let endpoint = self
            .metadata
            .additional_metadata()
            .device_authorization_endpoint
            .clone()
            .ok_or(LoginError::NoDeviceFlow)?;
        Ok(self
            .client(credentials)
            .set_device_authorization_url(endpoint))
    }
}

/// Fetches the issuer's discovery document and its JWKS.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovery, LoginError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let fail = |reason: String| LoginError::Discovery {
        url: url.clone(),
        reason,
    };
    let http = OidcHttp(http);
    let issuer_url = |spelling: String| IssuerUrl::new(spelling).map_err(|e| fail(e.to_string()));
    let mut found = IssuerMetadata::discover_async(issuer_url(issuer.to_string())?, &http).await;
    // `https://issuer` and `https://issuer/` fetch the same document, but OIDC wants the
    // issuer spelled exactly as the document does: a user may type either.
    if let Err(DiscoveryError::Validation(_)) = &found {
        let other = match issuer.strip_suffix('/') {
            Some(bare) => bare.to_string(),
            None => format!("{issuer}/"),
        };
        if let Ok(metadata) = IssuerMetadata::discover_async(issuer_url(other)?, &http).await {
            found = Ok(metadata);
        }
    }
    let metadata = found.map_err(|e| fail(describe(&e)))?;
    let token_endpoint = metadata
        .token_endpoint()
        .cloned()
        .ok_or_else(|| fail("the document names no token_endpoint".to_string()))?;
    Ok(Discovery {
        metadata,
        token_endpoint,
    })
}

/// The token endpoint's answer, of which a login keeps only the ID token. sigild's dev issuer
/// answers without an access token, which oauth2's standard response type requires, so it is
/// optional here; `refresh_token` and `scope` are not read at all.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct TokenAnswer {
    #[serde(default = "no_access_token")]
    access_token: AccessToken,
    #[serde(default = "bearer")]
    token_type: CoreTokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

fn no_access_token() -> AccessToken {
    AccessToken::new(String::new())
}

fn bearer() -> CoreTokenType {
    CoreTokenType::Bearer
}

/// [`TokenAnswer`] with its ID token parsed for the verifier, next to the exact text the
/// issuer sent (which is what the CA gets). An unparseable ID token is kept as its error, so
/// that it is reported as a bad ID token rather than as an unreadable answer.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(from = "TokenAnswer", into = "TokenAnswer")]
struct IdTokenResponse {
    answer: TokenAnswer,
    parsed: Option<Result<CoreIdToken, String>>,
}

impl From<TokenAnswer> for IdTokenResponse {
    fn from(answer: TokenAnswer) -> IdTokenResponse {
        let parsed = answer
            .id_token
            .as_deref()
            .map(|jwt| jwt.parse::<CoreIdToken>().map_err(|e| e.to_string()));
        IdTokenResponse { answer, parsed }
    }
}

impl From<IdTokenResponse> for TokenAnswer {
    fn from(response: IdTokenResponse) -> TokenAnswer {
        response.answer
    }
}

impl OAuth2TokenResponse for IdTokenResponse {
    type TokenType = CoreTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.answer.access_token
    }

    fn token_type(&self) -> &CoreTokenType {
        &self.answer.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.answer.expires_in.map(Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        None
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        None
    }
}

impl
    TokenResponse<
        EmptyAdditionalClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    > for IdTokenResponse
{
    fn id_token(&self) -> Option<&CoreIdToken> {
        self.parsed.as_ref()?.as_ref().ok()
    }
}

/// The ID token of a token-endpoint answer, as sent, once openidconnect's verifier accepted it
/// with the issuer's keys (and, given one, the nonce this login sent).
fn verified_id_token<D: EndpointState>(
    oidc: &OidcClient<D>,
    response: &IdTokenResponse,
    nonce: Option<&Nonce>,
) -> Result<String, LoginError> {
    let (Some(raw), Some(parsed)) = (&response.answer.id_token, &response.parsed) else {
        return Err(LoginError::Endpoint {
            endpoint: "token",
            reason: "the answer has no id_token".to_string(),
        });
    };
    let token = parsed
        .as_ref()
        .map_err(|e| LoginError::BadIdToken(format!("is unreadable: {e}")))?;
    // Further audiences next to this client are the CA's to judge, as they were before this
    // client verified signatures; the default would refuse them.
    let verifier = oidc
        .id_token_verifier()
        .set_other_audience_verifier_fn(|_| true);
    let checked = match nonce {
        Some(nonce) => token.claims(&verifier, nonce).map(drop),
        None => token
            .claims(&verifier, |_: Option<&Nonce>| Ok(()))
            .map(drop),
    };
    checked.map_err(|e| refused(e, oidc.client_id().as_str()))?;
    Ok(raw.clone())
}

fn refused(error: ClaimsVerificationError, client_id: &str) -> LoginError {
    LoginError::BadIdToken(match error {
        ClaimsVerificationError::InvalidAudience(detail) => {
            format!("is not for client {client_id} ({detail})")
        }
        ClaimsVerificationError::Expired(_) => "has expired".to_string(),
        ClaimsVerificationError::InvalidNonce(_) => {
            "answers another login (nonce differs)".to_string()
        }
        ClaimsVerificationError::InvalidIssuer(detail) => {
            format!("is from another issuer ({detail})")
        }
        ClaimsVerificationError::SignatureVerification(e) => {
            format!("is not signed by the issuer's keys ({e})")
        }
        other => format!("was refused: {other}"),
    })
}

/// An error and its causes on one line: openidconnect's errors name the step that failed
/// ("Request failed") and leave the reason to their sources.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `error description`, as an OAuth error response reads to a person.
fn oauth_error_text<T: ErrorResponseType + std::fmt::Display>(
    answer: &StandardErrorResponse<T>,
) -> String {
    let description = answer.error_description().map_or("", String::as_str);
    format!("{} {description}", answer.error())
        .trim_end()
        .to_string()
}

fn endpoint_error<T: ErrorResponseType + std::fmt::Display + 'static>(
    endpoint: &'static str,
    error: RequestTokenError<reqwest::Error, StandardErrorResponse<T>>,
) -> LoginError {
    let reason = match &error {
        RequestTokenError::ServerResponse(answer) => oauth_error_text(answer),
        other => describe(other),
    };
    LoginError::Endpoint { endpoint, reason }
}

/// A code-flow login in progress: the loopback listener is open and the URL to visit is known.
pub struct BrowserLogin {
    listener: TcpListener,
    authorization_url: String,
    redirect_uri: RedirectUrl,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

impl BrowserLogin {
    /// Opens `127.0.0.1:<free port>` and builds the authorization URL (PKCE S256, state, nonce).
    pub async fn start(
        discovery: &Discovery,
        client: &ClientCredentials,
    ) -> Result<BrowserLogin, LoginError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(LoginError::Listener)?;
        let port = listener.local_addr().map_err(LoginError::Listener)?.port();
        let redirect_uri = RedirectUrl::new(format!("http://127.0.0.1:{port}{CALLBACK_PATH}"))
            .expect("a loopback URL with a port and a constant path is valid");
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = discovery
            .client(client)
            .set_redirect_uri(redirect_uri.clone())
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new(EMAIL_SCOPE.to_string()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(BrowserLogin {
            listener,
            authorization_url: url.to_string(),
            redirect_uri,
            state,
            nonce,
            verifier,
        })
    }

    /// The URL the user's browser must visit.
    pub fn authorization_url(&self) -> &str {
        &self.authorization_url
    }

    /// Waits (at most `timeout`) for the redirect to the loopback listener, checks its state,
    /// exchanges the code for tokens and returns the verified ID token.
    pub async fn finish(
        self,
        http: &reqwest::Client,
        discovery: &Discovery,
        client: &ClientCredentials,
        timeout: Duration,
    ) -> Result<String, LoginError> {
        let params = tokio::time::timeout(timeout, wait_for_callback(&self.listener))
            .await
            .map_err(|_| LoginError::Timeout(timeout))??;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        // State first: an error report from a page this login did not start is no answer.
        if get("state").as_deref() != Some(self.state.secret().as_str()) {
            return Err(LoginError::StateMismatch);
        }
        if let Some(error) = get("error") {
            let description = get("error_description").unwrap_or_default();
            return Err(LoginError::Denied(
                format!("{error} {description}").trim_end().to_string(),
            ));
        }
        let code = get("code").ok_or(LoginError::NoCode)?;
        let oidc = discovery.client(client).set_redirect_uri(self.redirect_uri);
        let response = oidc
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(self.verifier)
            .request_async(&OidcHttp(http))
            .await
            .map_err(|e| endpoint_error("token", e))?;
        verified_id_token(&oidc, &response, Some(&self.nonce))
    }
}

/// Accepts connections until one is a `GET` of the callback path; answers it with a short page
/// and returns its query parameters. Other requests (a browser's favicon) get a 404.
async fn wait_for_callback(listener: &TcpListener) -> Result<Vec<(String, String)>, LoginError> {
    loop {
        let (mut socket, _) = listener.accept().await.map_err(LoginError::Listener)?;
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head);
        let target = head
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("GET "))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or("");
        let parsed = Url::parse(&format!("http://127.0.0.1{target}")).ok();
        match parsed.filter(|u| u.path() == CALLBACK_PATH) {
            Some(url) => {
                let body =
                    "<html><body>sigil: login finished, you can close this window.</body></html>";
                let _ = respond(&mut socket, "200 OK", body).await;
                return Ok(url.query_pairs().into_owned().collect());
            }
            None => {
                let _ = respond(&mut socket, "404 Not Found", "not found").await;
            }
        }
    }
}

async fn respond(
    socket: &mut tokio::net::TcpStream,
    status: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

/// What the device authorization endpoint hands out, to show the user.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

impl DeviceAuthorization {
    fn from_oauth2(answer: &CoreDeviceAuthorizationResponse) -> DeviceAuthorization {
        DeviceAuthorization {
            device_code: answer.device_code().secret().clone(),
            user_code: answer.user_code().secret().clone(),
            verification_uri: answer.verification_uri().to_string(),
            verification_uri_complete: answer
                .verification_uri_complete()
                .map(|uri| uri.secret().clone()),
            expires_in: answer.expires_in().as_secs(),
            interval: Some(answer.interval().as_secs()),
        }
    }

    /// Back into oauth2's type, whose fields are private: this struct has the wire format's
    /// field names, so serde rebuilds it.
    fn to_oauth2(&self) -> Result<CoreDeviceAuthorizationResponse, LoginError> {
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .map_err(|e| LoginError::Endpoint {
                endpoint: "device authorization",
                reason: format!("unusable answer: {e}"),
            })
    }
}

/// Starts a device authorization (RFC 8628 §3.1).
pub async fn start_device_login(
    http: &reqwest::Client,
    discovery: &Discovery,
    client: &ClientCredentials,
) -> Result<DeviceAuthorization, LoginError> {
    let oidc = discovery.device_client(client)?;
    let answer: CoreDeviceAuthorizationResponse = oidc
        .exchange_device_code()
        .add_scope(Scope::new(EMAIL_SCOPE.to_string()))
        .request_async(&OidcHttp(http))
        .await
        .map_err(|e| endpoint_error("device authorization", e))?;
    Ok(DeviceAuthorization::from_oauth2(&answer))
}

/// Polls the token endpoint until the user approved (or refused, or the code expired),
/// honouring `authorization_pending` and `slow_down` (RFC 8628 §3.5), and returns the
/// verified ID token.
pub async fn poll_device_login(
    http: &reqwest::Client,
    discovery: &Discovery,
    client: &ClientCredentials,
    device: &DeviceAuthorization,
) -> Result<String, LoginError> {
    let details = device.to_oauth2()?;
    let oidc = discovery.client(client);
    let response = oidc
        .exchange_device_access_token(&details)
        .request_async(
            &OidcHttp(http),
            |wait| tokio::time::sleep(wait.max(MIN_POLL_INTERVAL)),
            None,
        )
        .await
        .map_err(device_poll_error)?;
    verified_id_token(&oidc, &response, None)
}

fn device_poll_error(
    error: RequestTokenError<reqwest::Error, DeviceCodeErrorResponse>,
) -> LoginError {
    match error {
        RequestTokenError::ServerResponse(answer) => match answer.error() {
            DeviceCodeErrorResponseType::ExpiredToken => LoginError::DeviceCodeExpired,
            _ => LoginError::Denied(oauth_error_text(&answer)),
        },
        other => endpoint_error("token", other),
    }
}

/// `application/x-www-form-urlencoded`, serialised by the URL parser's query encoder.
pub fn form_body(pairs: &[(&str, String)]) -> String {
    let mut url = Url::parse("http://form.invalid/").expect("a valid constant URL");
    url.query_pairs_mut()
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    url.query().unwrap_or("").to_string()
}

/// Checks, without the signature, the claims a client is responsible for: the token names
/// this client as its audience, has not expired, and (code flow) carries the nonce this login
/// sent. [`login`] does more (openidconnect's verifier, with the issuer's keys); this is for
/// a caller that holds a token but no discovery document.
pub fn check_id_token(token: &str, client_id: &str, nonce: Option<&str>) -> Result<(), LoginError> {
    #[derive(Deserialize)]
    struct Claims {
        aud: serde_json::Value,
        exp: i64,
        #[serde(default)]
        nonce: Option<String>,
    }
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| LoginError::BadIdToken("is not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| LoginError::BadIdToken(format!("payload: {e}")))?;
    let claims: Claims = serde_json::from_slice(&bytes)
        .map_err(|e| LoginError::BadIdToken(format!("claims: {e}")))?;
    let for_us = match &claims.aud {
        serde_json::Value::String(aud) => aud == client_id,
        serde_json::Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !for_us {
        return Err(LoginError::BadIdToken(format!(
            "is not for client {client_id} (aud {})",
            claims.aud
        )));
    }
    if claims.exp <= time::OffsetDateTime::now_utc().unix_timestamp() {
        return Err(LoginError::BadIdToken("has expired".into()));
    }
    if let Some(expected) = nonce
        && claims.nonce.as_deref() != Some(expected)
    {
        return Err(LoginError::BadIdToken(
            "answers another login (nonce differs)".into(),
        ));
    }
    Ok(())
}

/// How a person at a terminal logs in.
#[derive(Clone, Debug)]
pub struct LoginOptions {
    pub issuer: String,
    pub client: ClientCredentials,
    /// Use the device flow even if a browser could be opened.
    pub device_flow: bool,
    /// How long to wait for the browser's redirect.
    pub timeout: Duration,
}

/// Logs in interactively: the code flow with a browser when one can be opened (the URL is
/// printed on stderr either way), else the device flow. Returns the verified ID token.
pub async fn login(http: &reqwest::Client, options: &LoginOptions) -> Result<String, LoginError> {
    let discovery = discover(http, &options.issuer).await?;
    // Without a display the device flow fits best; an issuer without it still gets the
    // browser flow, whose URL is printed for the user to open wherever they can.
    let device_possible = discovery.device_authorization_endpoint().is_some();
    if options.device_flow || (!browser_available() && device_possible) {
        let device = start_device_login(http, &discovery, &options.client).await?;
        let url = device
            .verification_uri_complete
            .as_deref()
            .unwrap_or(&device.verification_uri);
        eprintln!(
            "To sign in, visit {url} and enter the code {}",
            device.user_code
        );
        return poll_device_login(http, &discovery, &options.client, &device).await;
    }
    let login = BrowserLogin::start(&discovery, &options.client).await?;
    eprintln!(
        "Opening the browser to sign in; if it does not open, visit:\n  {}",
        login.authorization_url()
    );
    open_browser(login.authorization_url());
    login
        .finish(http, &discovery, &options.client, options.timeout)
        .await
}

/// A graphical session to open a browser in: always on macOS, else an X11 or Wayland display.
fn browser_available() -> bool {
    cfg!(target_os = "macos")
        || ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()))
}

/// Best effort: the URL is printed anyway, so a missing opener is not an error.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
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
    fn id_token_claims_are_checked() {
        let later = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
        let ok = jwt(serde_json::json!({"aud": "sigstore", "exp": later, "nonce": "n1"}));
        check_id_token(&ok, "sigstore", Some("n1")).unwrap();
        check_id_token(&ok, "sigstore", None).unwrap();
        assert!(check_id_token(&ok, "sigstore", Some("n2")).is_err());
        assert!(check_id_token(&ok, "other", Some("n1")).is_err());
        let listed = jwt(serde_json::json!({"aud": ["x", "sigstore"], "exp": later}));
        check_id_token(&listed, "sigstore", None).unwrap();
        assert!(check_id_token(&listed, "sigstore", Some("n1")).is_err());
        let expired = jwt(serde_json::json!({"aud": "sigstore", "exp": later - 1200}));
        assert!(check_id_token(&expired, "sigstore", None).is_err());
    }

    #[test]
    fn form_bodies_are_percent_encoded() {
        let body = form_body(&[
            ("a", "x y&z".into()),
            ("redirect_uri", "http://h/p?q".into()),
        ]);
        assert_eq!(body, "a=x+y%26z&redirect_uri=http%3A%2F%2Fh%2Fp%3Fq");
    }

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    const ISSUER: &str = "https://issuer.test";

    fn es256_key() -> EcdsaKeyPair {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap()
    }

    /// An issuer known without the network: its discovery document and a JWKS with `key`.
    fn issuer_with(key: &EcdsaKeyPair) -> Discovery {
        let point = key.public_key().as_ref();
        let metadata: IssuerMetadata = serde_json::from_value(serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": format!("{ISSUER}/authorize"),
            "token_endpoint": format!("{ISSUER}/token"),
            "jwks_uri": format!("{ISSUER}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }))
        .unwrap();
        let jwks = serde_json::from_value(serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]}))
        .unwrap();
        Discovery {
            token_endpoint: metadata.token_endpoint().unwrap().clone(),
            metadata: metadata.set_jwks(jwks),
        }
    }

    fn signed(key: &EcdsaKeyPair, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": "k1"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn claims(changes: serde_json::Value) -> serde_json::Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = serde_json::json!({
            "iss": ISSUER, "sub": "alice@example.com", "aud": "sigstore",
            "iat": now, "exp": now + 600, "nonce": "n1",
        });
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    }

    /// A token endpoint's answer as sigild's dev issuer sends it: no access token.
    fn answer(id_token: &str) -> IdTokenResponse {
        serde_json::from_value(serde_json::json!({
            "id_token": id_token, "token_type": "Bearer", "expires_in": 600
        }))
        .unwrap()
    }

    fn verify(
        discovery: &Discovery,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<String, LoginError> {
        let client = ClientCredentials {
            client_id: "sigstore".into(),
            client_secret: None,
        };
        let nonce = nonce.map(|n| Nonce::new(n.to_string()));
        verified_id_token(&discovery.client(&client), &answer(token), nonce.as_ref())
    }

    fn refusal(result: Result<String, LoginError>) -> String {
        match result {
            Err(LoginError::BadIdToken(why)) => why,
            other => panic!("expected a refused ID token, got {other:?}"),
        }
    }

    #[test]
    fn id_tokens_are_verified_with_the_issuers_keys() {
        let key = es256_key();
        let issuer = issuer_with(&key);
        let token = signed(&key, &claims(serde_json::json!({})));
        assert_eq!(verify(&issuer, &token, Some("n1")).unwrap(), token);
        assert_eq!(verify(&issuer, &token, None).unwrap(), token);
        let listed = signed(&key, &claims(serde_json::json!({"aud": ["sigstore", "x"]})));
        verify(&issuer, &listed, None).unwrap();

        // The payload of a genuine token swapped for another identity's.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = URL_SAFE_NO_PAD
            .encode(claims(serde_json::json!({"sub": "mallory@example.com"})).to_string());
        let tampered = parts.join(".");
        assert!(refusal(verify(&issuer, &tampered, None)).contains("not signed"));
        let forged = signed(&es256_key(), &claims(serde_json::json!({})));
        assert!(refusal(verify(&issuer, &forged, None)).contains("not signed"));

        assert!(refusal(verify(&issuer, &token, Some("n2"))).contains("nonce differs"));
        let other_client = signed(&key, &claims(serde_json::json!({"aud": "other"})));
        assert!(
            refusal(verify(&issuer, &other_client, None)).contains("is not for client sigstore")
        );
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expired = signed(&key, &claims(serde_json::json!({"exp": now - 60})));
        assert_eq!(refusal(verify(&issuer, &expired, None)), "has expired");
        let elsewhere = signed(
            &key,
            &claims(serde_json::json!({"iss": "https://elsewhere.test"})),
        );
        assert!(refusal(verify(&issuer, &elsewhere, None)).contains("another issuer"));
        assert!(refusal(verify(&issuer, "not.a-jwt", None)).contains("unreadable"));
    }

    #[test]
    fn a_token_answer_without_an_id_token_is_an_endpoint_error() {
        let issuer = issuer_with(&es256_key());
        let client = ClientCredentials {
            client_id: "sigstore".into(),
            client_secret: None,
        };
        let response: IdTokenResponse = serde_json::from_value(
            serde_json::json!({"access_token": "a", "token_type": "bearer"}),
        )
        .unwrap();
        assert!(matches!(
            verified_id_token(&issuer.client(&client), &response, None),
            Err(LoginError::Endpoint {
                endpoint: "token",
                ..
            })
        ));
    }

    /// openidconnect says "Request failed" or "Server returned invalid response"; the user
    /// reads which URL failed and why.
    #[tokio::test]
    async fn discovery_failures_name_the_document_and_the_cause() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = respond(&mut socket, "404 Not Found", "no such document").await;
            }
        });
        let http = reqwest::Client::new();
        match discover(&http, &issuer).await {
            Err(LoginError::Discovery { url, reason }) => {
                assert_eq!(url, format!("{issuer}/.well-known/openid-configuration"));
                assert!(reason.contains("404"), "{reason}");
            }
            other => panic!("expected a discovery error, got {other:?}"),
        }
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        match discover(&http, &closed).await {
            Err(LoginError::Discovery { reason, .. }) => {
                assert!(reason.len() > "Request failed".len(), "{reason}");
            }
            other => panic!("expected a discovery error, got {other:?}"),
        }
    }

    #[test]
    fn device_authorizations_survive_the_round_trip_through_oauth2() {
        let device = DeviceAuthorization {
            device_code: "dc".into(),
            user_code: "ABCD-EFGH".into(),
            verification_uri: "https://issuer.test/device".into(),
            verification_uri_complete: None,
            expires_in: 600,
            interval: None,
        };
        let back = DeviceAuthorization::from_oauth2(&device.to_oauth2().unwrap());
        assert_eq!(back.device_code, "dc");
        assert_eq!(back.user_code, "ABCD-EFGH");
        assert_eq!(back.verification_uri, "https://issuer.test/device");
        assert_eq!(back.verification_uri_complete, None);
        assert_eq!(back.expires_in, 600);
        assert_eq!(back.interval, Some(5), "RFC 8628's default interval");
    }
}
