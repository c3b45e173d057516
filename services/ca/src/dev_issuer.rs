//! A development-only OIDC token issuer for the quick start: discovery, JWKS and a token
//! endpoint that signs an ES256 ID token for any email asked for. It binds loopback only,
//! is started only by `sigild serve --dev`, and the CA trusts it only as a development
//! issuer, which production start-up refuses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

/// ID tokens it mints live this long.
const TOKEN_LIFETIME_SECS: u64 = 600;

pub struct DevIssuer {
    pub url: String,
}

struct IssuerState {
    url: String,
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

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
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", get(token).post(token))
        .with_state(state);
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
        "token_endpoint": format!("{}/token", s.url),
        "response_types_supported": ["id_token"],
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
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": s.kid});
    let claims = json!({
        "iss": s.url, "sub": email, "email": email, "email_verified": true,
        "aud": "sigstore", "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME_SECS,
    });
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
    Json(json!({"id_token": jwt, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_SECS}))
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
}
