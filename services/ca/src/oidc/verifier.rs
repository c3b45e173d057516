//! The whole check of one ID token: issuer, key, signature, claims, then identity.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::error::clip;
use super::jwks::KeyCache;
use super::keys::{asymmetric_alg, select};
use super::{TokenError, jwt};
use crate::config::{IssuerConfig, IssuersConfig};
use crate::identity::{Principal, principal_from_claims};

/// Tolerated clock difference between the CA and issuers, for `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW_SECS: i64 = 30;

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Verifies ID tokens from the configured issuers and maps them to a [`Principal`].
/// Cheap to share behind an `Arc`; keys are cached inside.
pub struct TokenVerifier {
    issuers: IssuersConfig,
    keys: KeyCache,
    clock: Clock,
}

impl TokenVerifier {
    pub fn new(issuers: IssuersConfig) -> Result<TokenVerifier, reqwest::Error> {
        install_jwt_crypto();
        Ok(TokenVerifier {
            issuers,
            keys: KeyCache::new()?,
            clock: Arc::new(SystemTime::now),
        })
    }

    /// Replaces the wall clock used for `exp`/`nbf`/`iat` (tests, replay tooling).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How soon after a fetch an unknown `kid` may trigger another fetch of an issuer's keys
    /// (default [`super::MIN_REFRESH_INTERVAL`]). It bounds what forged kids can make us do.
    pub fn with_min_refresh_interval(mut self, interval: std::time::Duration) -> Self {
        self.keys.set_min_refresh_interval(interval);
        self
    }

    pub fn issuers(&self) -> &IssuersConfig {
        &self.issuers
    }

    /// How many discovery+JWKS fetches happened so far (all issuers).
    pub fn jwks_fetch_count(&self) -> u64 {
        self.keys.fetch_count()
    }

    /// The whole check, here and now. The CA splits it ([`TokenVerifier::prepare`]) so that the
    /// signature is checked on its work pool.
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        self.prepare(token).await?.finish()
    }

    /// The part of the check that may wait on the network: the token's shape, its algorithm,
    /// its issuer and that issuer's key. What is left is CPU work only ([`PendingCheck`]).
    pub async fn prepare(&self, token: &str) -> Result<PendingCheck, TokenError> {
        let jwt = jwt::parse(token)?;
        // The algorithm is judged before the issuer so that "none"/HS* never reach a key.
        let alg = asymmetric_alg(&jwt.alg)?;
        let iss = jwt
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| TokenError::Malformed("the token has no iss claim".into()))?;
        let config = self
            .issuers
            .find(iss)
            .ok_or_else(|| TokenError::UnknownIssuer(clip(iss)))?;

        let kid = jwt.kid.as_deref();
        let keys = self
            .keys
            .keys(
                iss,
                config.ca_cert.as_deref(),
                !self.issuers.is_exact(iss),
                |keys| select(keys, kid, alg).is_some(),
            )
            .await?;
        let key = select(&keys, kid, alg).ok_or_else(|| TokenError::UnknownKey {
            issuer: iss.to_string(),
            kid: clip(kid.unwrap_or("(none)")),
        })?;
        key.check_alg(&jwt.alg, alg)?;
        let key = key.key.clone();
        Ok(PendingCheck {
            signing_input: jwt.signing_input.to_string(),
            signature: jwt.signature.to_string(),
            claims: jwt.claims,
            alg,
            key,
            config: config.clone(),
            now: unix_now(&self.clock),
        })
    }
}

/// A token whose issuer and key are known: its signature and claims are still unchecked, and
/// checking them needs no I/O. It owns what it needs, so it can move to another thread.
pub struct PendingCheck {
    signing_input: String,
    signature: String,
    claims: serde_json::Map<String, Value>,
    alg: jsonwebtoken::Algorithm,
    key: jsonwebtoken::DecodingKey,
    config: IssuerConfig,
    /// Taken when the check was prepared: time spent waiting for a thread does not count
    /// against the token.
    now: i64,
}

impl PendingCheck {
    pub fn finish(self) -> Result<Principal, TokenError> {
        let valid = jsonwebtoken::crypto::verify(
            &self.signature,
            self.signing_input.as_bytes(),
            &self.key,
            self.alg,
        )
        .map_err(|_| TokenError::BadSignature)?;
        if !valid {
            return Err(TokenError::BadSignature);
        }
        check_audience(&self.claims, &self.config.client_id)?;
        check_times(&self.claims, self.now)?;
        Ok(principal_from_claims(&self.config, &self.claims)?)
    }
}

/// jsonwebtoken panics at verify time unless exactly one crypto backend is active; feature
/// unification elsewhere in the graph could enable a second one, so pin aws-lc-rs explicitly.
fn install_jwt_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed, which is just as good.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    });
}

fn unix_now(clock: &Clock) -> i64 {
    match clock().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

fn check_audience(
    claims: &serde_json::Map<String, Value>,
    client_id: &str,
) -> Result<(), TokenError> {
    let ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(TokenError::WrongAudience {
            expected: client_id.to_string(),
        })
    }
}

fn numeric_date(
    claims: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| TokenError::Malformed(format!("the {name} claim is not a number"))),
    }
}

fn check_times(claims: &serde_json::Map<String, Value>, now: i64) -> Result<(), TokenError> {
    let exp = numeric_date(claims, "exp")?
        .ok_or_else(|| TokenError::Malformed("the token has no exp claim".into()))?;
    if now > exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(TokenError::Expired);
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = numeric_date(claims, name)?
            && t > now.saturating_add(CLOCK_SKEW_SECS)
        {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn verify_future_is_send_for_axum_handlers() {
        fn assert_send<T: Send>(_: T) {}
        let verifier = TokenVerifier::new(IssuersConfig::default()).unwrap();
        assert_send(verifier.verify("x.y.z"));
    }

    #[test]
    fn audience_string_or_array() {
        assert!(check_audience(&map(json!({"aud": "sigstore"})), "sigstore").is_ok());
        assert!(check_audience(&map(json!({"aud": ["x", "sigstore"]})), "sigstore").is_ok());
        for bad in [json!({"aud": "other"}), json!({"aud": ["x"]}), json!({})] {
            assert!(matches!(
                check_audience(&map(bad), "sigstore"),
                Err(TokenError::WrongAudience { .. })
            ));
        }
    }

    #[test]
    fn time_claims_with_skew() {
        let now = 1_000_000;
        assert!(check_times(&map(json!({"exp": now + 10, "iat": now})), now).is_ok());
        assert!(
            check_times(&map(json!({"exp": now - 20})), now).is_ok(),
            "within skew"
        );
        assert!(matches!(
            check_times(&map(json!({"exp": now - 31})), now),
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            check_times(&map(json!({"exp": now + 600, "nbf": now + 31})), now),
            Err(TokenError::NotYetValid)
        ));
        assert!(matches!(
            check_times(&map(json!({"exp": now + 600, "iat": now + 120})), now),
            Err(TokenError::NotYetValid)
        ));
        assert!(matches!(
            check_times(&map(json!({})), now),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            check_times(&map(json!({"exp": "soon"})), now),
            Err(TokenError::Malformed(_))
        ));
    }
}
