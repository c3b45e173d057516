//! Interactive OpenID Connect login for a person at a terminal: the authorization code flow
//! with PKCE (S256) and a loopback redirect (RFC 8252), or the device authorization flow
//! (RFC 8628) where no browser can be opened.
//!
//! The ID token's signature is not checked here (the CA does that); the client only checks
//! that the token is for it (`aud`), still valid (`exp`) and, in the code flow, answers this
//! login (`nonce`), so a token replayed into the callback is refused.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Sigstore's public issuer, used when no `--oidc-issuer` is given (as cosign does).
pub const DEFAULT_ISSUER: &str = "https://oauth2.sigstore.dev/auth";
/// The client id Sigstore issuers register for signing clients.
pub const DEFAULT_CLIENT_ID: &str = "sigstore";
/// The loopback path the authorization server redirects to.
pub const CALLBACK_PATH: &str = "/auth/callback";
const SCOPES: &str = "openid email";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

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

impl ClientCredentials {
    /// `client_id` always, and `client_secret` in the body (client_secret_post) if there is one.
    fn add_to(&self, form: &mut Vec<(&'static str, String)>) {
        form.push(("client_id", self.client_id.clone()));
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.clone()));
        }
    }
}

/// The endpoints of an issuer, from `<issuer>/.well-known/openid-configuration`.
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
}

pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovery, LoginError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let fail = |reason: String| LoginError::Discovery {
        url: url.clone(),
        reason,
    };
    let response = http
        .get(&url)
        .timeout(HTTP_TIMEOUT)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    response.json().await.map_err(|e| fail(e.to_string()))
}

/// A code-flow login in progress: the loopback listener is open and the URL to visit is known.
pub struct BrowserLogin {
    listener: TcpListener,
    authorization_url: String,
    redirect_uri: String,
    state: String,
    nonce: String,
    verifier: String,
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
        let redirect_uri = format!("http://127.0.0.1:{port}{CALLBACK_PATH}");
        let (state, nonce, verifier) = (random_token(), random_token(), random_token());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut url =
            Url::parse(&discovery.authorization_endpoint).map_err(|e| LoginError::Discovery {
                url: discovery.authorization_endpoint.clone(),
                reason: e.to_string(),
            })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
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
    /// exchanges the code for tokens and returns the checked ID token.
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
        if get("state").as_deref() != Some(self.state.as_str()) {
            return Err(LoginError::StateMismatch);
        }
        if let Some(error) = get("error") {
            let description = get("error_description").unwrap_or_default();
            return Err(LoginError::Denied(format!("{error} {description}")));
        }
        let code = get("code").ok_or(LoginError::NoCode)?;
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("redirect_uri", self.redirect_uri.clone()),
            ("code_verifier", self.verifier.clone()),
        ];
        client.add_to(&mut form);
        let id_token = match post_token(http, &discovery.token_endpoint, &form).await? {
            TokenAnswer::Tokens(t) => t,
            TokenAnswer::Error { error, description } => {
                return Err(LoginError::Endpoint {
                    endpoint: "token",
                    reason: format!("{error} {description}"),
                });
            }
        };
        check_id_token(&id_token, &client.client_id, Some(&self.nonce))?;
        Ok(id_token)
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
#[derive(Clone, Debug, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default)]
    pub interval: Option<u64>,
}

/// Starts a device authorization (RFC 8628 §3.1).
pub async fn start_device_login(
    http: &reqwest::Client,
    discovery: &Discovery,
    client: &ClientCredentials,
) -> Result<DeviceAuthorization, LoginError> {
    let endpoint = discovery
        .device_authorization_endpoint
        .as_deref()
        .ok_or(LoginError::NoDeviceFlow)?;
    let mut form = vec![("scope", SCOPES.to_string())];
    client.add_to(&mut form);
    let fail = |reason: String| LoginError::Endpoint {
        endpoint: "device authorization",
        reason,
    };
    let response = http
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&form))
        .timeout(HTTP_TIMEOUT)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}: {text}")));
    }
    serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
}

/// Polls the token endpoint until the user approved (or refused, or the code expired),
/// honouring `authorization_pending` and `slow_down` (RFC 8628 §3.5).
pub async fn poll_device_login(
    http: &reqwest::Client,
    discovery: &Discovery,
    client: &ClientCredentials,
    device: &DeviceAuthorization,
) -> Result<String, LoginError> {
    let mut interval = Duration::from_secs(device.interval.unwrap_or(5).max(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(device.expires_in);
    let mut form = vec![
        ("grant_type", DEVICE_CODE_GRANT.to_string()),
        ("device_code", device.device_code.clone()),
    ];
    client.add_to(&mut form);
    loop {
        tokio::time::sleep(interval).await;
        if tokio::time::Instant::now() >= deadline {
            return Err(LoginError::DeviceCodeExpired);
        }
        match post_token(http, &discovery.token_endpoint, &form).await? {
            TokenAnswer::Tokens(id_token) => {
                check_id_token(&id_token, &client.client_id, None)?;
                return Ok(id_token);
            }
            TokenAnswer::Error { error, .. } if error == "authorization_pending" => {}
            TokenAnswer::Error { error, .. } if error == "slow_down" => {
                interval += Duration::from_secs(5);
            }
            TokenAnswer::Error { error, .. } if error == "expired_token" => {
                return Err(LoginError::DeviceCodeExpired);
            }
            TokenAnswer::Error { error, description } => {
                return Err(LoginError::Denied(format!("{error} {description}")));
            }
        }
    }
}

enum TokenAnswer {
    Tokens(String),
    Error { error: String, description: String },
}

async fn post_token(
    http: &reqwest::Client,
    endpoint: &str,
    form: &[(&'static str, String)],
) -> Result<TokenAnswer, LoginError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        id_token: Option<String>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_description: Option<String>,
    }
    let fail = |reason: String| LoginError::Endpoint {
        endpoint: "token",
        reason,
    };
    let response = http
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(form_body(form))
        .timeout(HTTP_TIMEOUT)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let answer: Answer = response
        .json()
        .await
        .map_err(|e| fail(format!("HTTP {status}: {e}")))?;
    match (answer.id_token, answer.error) {
        (_, Some(error)) => Ok(TokenAnswer::Error {
            error,
            description: answer.error_description.unwrap_or_default(),
        }),
        (Some(id_token), None) if status.is_success() => Ok(TokenAnswer::Tokens(id_token)),
        _ => Err(fail(format!("HTTP {status} without an id_token"))),
    }
}

/// `application/x-www-form-urlencoded`, serialised by the URL parser's query encoder.
pub fn form_body(pairs: &[(&str, String)]) -> String {
    let mut url = Url::parse("http://form.invalid/").expect("a valid constant URL");
    url.query_pairs_mut()
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    url.query().unwrap_or("").to_string()
}

/// Checks the claims the client is responsible for: the token names this client as its
/// audience, has not expired, and (code flow) carries the nonce this login sent.
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

/// 256 random bits, base64url: state, nonce and PKCE verifier (43 characters, within RFC
/// 7636's 43..=128).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
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
/// printed on stderr either way), else the device flow. Returns the ID token.
pub async fn login(http: &reqwest::Client, options: &LoginOptions) -> Result<String, LoginError> {
    let discovery = discover(http, &options.issuer).await?;
    // Without a display the device flow fits best; an issuer without it still gets the
    // browser flow, whose URL is printed for the user to open wherever they can.
    let device_possible = discovery.device_authorization_endpoint.is_some();
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
}
