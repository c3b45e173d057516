//! A development-only OIDC token issuer for the quick start: discovery, JWKS and a token
//! endpoint that signs an ES256 ID token for any email asked for, plus a browser login page
//! (authorization code flow with PKCE, loopback redirects only) so that `sigil`'s interactive
//! login works against it. It binds loopback only, is started only by `sigild serve --dev`,
//! and the CA trusts it only as a development issuer, which production start-up refuses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

/// ID tokens it mints live this long.
const TOKEN_LIFETIME_SECS: u64 = 600;
/// An authorization code must be redeemed within this time.
const CODE_LIFETIME: Duration = Duration::from_secs(120);
/// Unredeemed codes kept at most (a login page left open does not grow memory).
const MAX_PENDING_CODES: usize = 1024;

pub struct DevIssuer {
    pub url: String,
}

struct IssuerState {
    url: String,
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
    codes: Mutex<HashMap<String, PendingCode>>,
}

/// A login approved on the page, waiting for the client to redeem its code.
struct PendingCode {
    email: String,
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: String,
    issued: Instant,
}

/// Largest request body: a login form or a token request is well under 1 KiB.
const BODY_LIMIT: usize = 16 * 1024;

/// Starts the issuer on `addr`, which must be a loopback address.
pub async fn start(addr: SocketAddr) -> anyhow::Result<DevIssuer> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the development token issuer only listens on loopback, not {addr}"
    );
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("generating the dev issuer key"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("loading the dev issuer key"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the dev token issuer on {addr}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let kid = hex::encode(
        &aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.public_key().as_ref()).as_ref()
            [..8],
    );
    let state = Arc::new(IssuerState {
        url: url.clone(),
        key,
        kid,
        rng,
        codes: Mutex::new(HashMap::new()),
    });
    let routes = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(login_page).post(approve))
        .route("/token", get(token).post(token_post));
    // The same body rules as sigild's own listener: its forms and token requests are small.
    let app = sigil_log::http::limit_bodies(routes, BODY_LIMIT, sigil_log::http::too_large)
        .with_state(state)
        .layer(axum::middleware::from_fn(
            sigil_log::http::close_if_body_unread,
        ));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "dev token issuer stopped");
        }
    });
    Ok(DevIssuer { url })
}

async fn discovery(State(s): State<Arc<IssuerState>>) -> Json<Value> {
    Json(json!({
        "issuer": s.url,
        "jwks_uri": format!("{}/jwks", s.url),
        "authorization_endpoint": format!("{}/authorize", s.url),
        "token_endpoint": format!("{}/token", s.url),
        "response_types_supported": ["code", "id_token"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn jwks(State(s): State<Arc<IssuerState>>) -> Json<Value> {
    let point = s.key.public_key().as_ref();
    Json(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": s.kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]}))
}

#[derive(Deserialize)]
struct TokenQuery {
    email: Option<String>,
}

/// `GET|POST /token?email=alice@example.com` → `{"id_token": …}`.
async fn token(State(s): State<Arc<IssuerState>>, Query(q): Query<TokenQuery>) -> Json<Value> {
    let email = q
        .email
        .unwrap_or_else(|| "developer@sigil.localhost".to_string());
    Json(token_response(&s, &email, "sigstore", None))
}

fn token_response(s: &IssuerState, email: &str, audience: &str, nonce: Option<&str>) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": s.kid});
    let mut claims = json!({
        "iss": s.url, "sub": email, "email": email, "email_verified": true,
        "aud": audience, "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME_SECS,
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = Value::String(nonce.to_string());
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = s
        .key
        .sign(&s.rng, signing_input.as_bytes())
        .expect("ECDSA signing does not fail with a valid key");
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    json!({"id_token": jwt, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_SECS})
}

/// The parameters of an authorization request, carried through the login form.
#[derive(Clone, Deserialize)]
struct AuthorizeRequest {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    code_challenge: Option<String>,
    #[serde(default)]
    code_challenge_method: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// What is wrong with an authorization request, if anything: only the code flow with S256
/// PKCE, and only to a loopback redirect (RFC 8252 §7.3), since this issuer has no clients
/// to register.
fn check_authorize(r: &AuthorizeRequest) -> Result<(), &'static str> {
    if r.response_type != "code" {
        return Err("only response_type=code is supported");
    }
    if r.client_id.is_empty() || r.client_id.len() > 200 {
        return Err("client_id is missing");
    }
    if r.code_challenge_method.as_deref() != Some("S256")
        || r.code_challenge
            .as_deref()
            .is_none_or(|c| c.len() < 43 || c.len() > 128)
    {
        return Err("PKCE with code_challenge_method=S256 is required");
    }
    let loopback = url::Url::parse(&r.redirect_uri).is_ok_and(|u| {
        u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
    });
    if !loopback {
        return Err("redirect_uri must be an http loopback address");
    }
    Ok(())
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `GET /authorize`: a page asking which email to sign in as.
async fn login_page(Query(r): Query<AuthorizeRequest>) -> Response {
    if let Err(e) = check_authorize(&r) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", e);
    }
    let hidden = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|v| {
                format!(
                    r#"<input type="hidden" name="{name}" value="{}">"#,
                    escape_html(v)
                )
            })
            .unwrap_or_default()
    };
    let page = format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>sigil development login</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">
<h1>sigil development login</h1>
<p>This issuer is for local development only (<code>sigild serve --dev</code>). Whatever email you
enter is the identity your signature will carry.</p>
<form method="post" action="/authorize">
<label>Email <input name="email" type="email" value="developer@sigil.localhost" required></label>
<input type="hidden" name="response_type" value="code">
<input type="hidden" name="client_id" value="{client_id}">
<input type="hidden" name="redirect_uri" value="{redirect_uri}">
{state}{nonce}{challenge}{method}
<button type="submit">Sign in</button>
</form></body></html>"#,
        client_id = escape_html(&r.client_id),
        redirect_uri = escape_html(&r.redirect_uri),
        state = hidden("state", &r.state),
        nonce = hidden("nonce", &r.nonce),
        challenge = hidden("code_challenge", &r.code_challenge),
        method = hidden("code_challenge_method", &r.code_challenge_method),
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

#[derive(Deserialize)]
struct Approval {
    email: String,
    #[serde(flatten)]
    request: AuthorizeRequest,
}

fn plausible_email(email: &str) -> bool {
    email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && (domain.contains('.') || domain == "localhost")
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `POST /authorize`: the form's answer; redirects back to the client with a code.
async fn approve(State(s): State<Arc<IssuerState>>, Form(a): Form<Approval>) -> Response {
    if let Err(e) = check_authorize(&a.request) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", e);
    }
    if !plausible_email(&a.email) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "not an email address",
        );
    }
    let mut code_bytes = [0u8; 32];
    if aws_lc_rs::rand::SecureRandom::fill(&s.rng, &mut code_bytes).is_err() {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "no randomness",
        );
    }
    let code = URL_SAFE_NO_PAD.encode(code_bytes);
    {
        let mut codes = s.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.retain(|_, c| c.issued.elapsed() < CODE_LIFETIME);
        if codes.len() >= MAX_PENDING_CODES {
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "too many logins in progress",
            );
        }
        codes.insert(
            code.clone(),
            PendingCode {
                email: a.email,
                client_id: a.request.client_id.clone(),
                redirect_uri: a.request.redirect_uri.clone(),
                nonce: a.request.nonce.clone(),
                code_challenge: a.request.code_challenge.clone().unwrap_or_default(),
                issued: Instant::now(),
            },
        );
    }
    let mut target = match url::Url::parse(&a.request.redirect_uri) {
        Ok(u) => u,
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "bad redirect_uri",
            );
        }
    };
    target.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = &a.request.state {
        target.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(target.as_str()).into_response()
}

/// `POST /token`: redeems an authorization code (form-encoded, with the PKCE verifier), or,
/// without `grant_type`, mints a token as `GET /token` does.
async fn token_post(
    State(s): State<Arc<IssuerState>>,
    Query(q): Query<TokenQuery>,
    body: axum::body::Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str);
    let Some(grant_type) = field("grant_type") else {
        let email = q
            .email
            .unwrap_or_else(|| "developer@sigil.localhost".to_string());
        return Json(token_response(&s, &email, "sigstore", None)).into_response();
    };
    if grant_type != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is supported",
        );
    }
    let pending =
        field("code").and_then(|c| s.codes.lock().unwrap_or_else(|p| p.into_inner()).remove(c));
    let Some(pending) = pending.filter(|p| p.issued.elapsed() < CODE_LIFETIME) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or expired code",
        );
    };
    if field("redirect_uri") != Some(pending.redirect_uri.as_str())
        || field("client_id") != Some(pending.client_id.as_str())
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri or client_id differs from the authorization request",
        );
    }
    let verified = field("code_verifier").is_some_and(|v| {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref()) == pending.code_challenge
    });
    if !verified {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed",
        );
    }
    Json(token_response(
        &s,
        &pending.email,
        &pending.client_id,
        pending.nonce.as_deref(),
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IssuerConfig, IssuersConfig};
    use crate::identity::SubjectAltName;
    use crate::oidc::TokenVerifier;

    #[tokio::test]
    async fn refuses_non_loopback_and_mints_tokens_the_ca_accepts_only_when_allowed() {
        assert!(start("0.0.0.0:0".parse().unwrap()).await.is_err());
        let dev = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut issuer = IssuerConfig::email(&dev.url);
        issuer.development_only = true;
        let mut issuers = IssuersConfig::default();
        issuers.add_issuer(&dev.url, issuer).unwrap();
        assert!(
            issuers.check_development(false).is_err(),
            "production refuses a dev issuer"
        );
        issuers.check_development(true).unwrap();
        let body: Value = reqwest::get(format!("{}/token?email=alice@example.com", dev.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = body["id_token"].as_str().unwrap();
        let principal = TokenVerifier::new(issuers)
            .unwrap()
            .verify(token)
            .await
            .unwrap();
        assert_eq!(
            principal.san,
            SubjectAltName::Email("alice@example.com".into())
        );
        assert_eq!(principal.issuer, dev.url);
    }

    fn form(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    async fn authorize(
        http: &reqwest::Client,
        url: &str,
        redirect_uri: &str,
        challenge: &str,
    ) -> reqwest::Response {
        http.post(format!("{url}/authorize"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("email", "erin@example.com"),
                ("response_type", "code"),
                ("client_id", "sigstore"),
                ("redirect_uri", redirect_uri),
                ("state", "s1"),
                ("nonce", "n1"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ]))
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn code_flow_checks_redirect_pkce_and_single_use() {
        let dev = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let verifier = "v".repeat(43);
        let challenge = URL_SAFE_NO_PAD.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
        );
        let redirect = "http://127.0.0.1:9/auth/callback";

        // Bodies are bounded; a refused one that was sent anyway is read and dropped, so the
        // connection stays usable.
        let big = http
            .post(format!("{}/token", dev.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("code", &"c".repeat(BODY_LIMIT))]))
            .send()
            .await
            .unwrap();
        assert_eq!(big.status(), 413);
        assert!(big.headers().get("connection").is_none());

        // Only loopback redirects, only S256.
        let page = http
            .get(format!(
                "{}/authorize?response_type=code&client_id=sigstore&redirect_uri=https://evil.example/cb&code_challenge={challenge}&code_challenge_method=S256",
                dev.url
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 400);
        assert_eq!(
            authorize(&http, &dev.url, redirect, "short").await.status(),
            400
        );
        let page = http
            .get(format!(
                "{}/authorize?response_type=code&client_id=sigstore&redirect_uri={redirect}&state=x%22%3E&code_challenge={challenge}&code_challenge_method=S256",
                dev.url
            ))
            .send()
            .await
            .unwrap();
        let html = page.text().await.unwrap();
        assert!(html.contains("x&quot;&gt;"), "form values are escaped");

        let approved = authorize(&http, &dev.url, redirect, &challenge).await;
        assert!(approved.status().is_redirection());
        let location = url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
        let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(query["state"], "s1");
        let code = query["code"].clone();
        let redeem = |verifier: &str| {
            http.post(format!("{}/token", dev.url))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect),
                    ("client_id", "sigstore"),
                    ("code_verifier", verifier),
                ]))
                .send()
        };
        // A wrong verifier spends the code without a token.
        let wrong = redeem(&"w".repeat(43)).await.unwrap();
        assert_eq!(wrong.status(), 400);
        assert_eq!(
            wrong.json::<Value>().await.unwrap()["error"],
            "invalid_grant"
        );
        let again = redeem(&verifier).await.unwrap();
        assert_eq!(again.status(), 400, "a code is redeemed once");

        let approved = authorize(&http, &dev.url, redirect, &challenge).await;
        let location = url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
        let code: String = location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let token: Value = http
            .post(format!("{}/token", dev.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect),
                ("client_id", "sigstore"),
                ("code_verifier", verifier.as_str()),
            ]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwt = token["id_token"].as_str().unwrap();
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["email"], "erin@example.com");
        assert_eq!(claims["nonce"], "n1");
        assert_eq!(claims["aud"], "sigstore");
    }
}
