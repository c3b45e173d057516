//! OIDC ID tokens before their signature is checked, on both sides: the CA's JWS parsing,
//! algorithm choice and issuer lookup (the meta-issuer patterns see the unverified `iss`),
//! then the claims-to-identity mapping for every issuer type, which reads CI claims such
//! as branch and repository names that the token's subject chooses; the client's claim
//! reading; and JWKS entries as fetched from an issuer.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sigil_ca::config::IssuersConfig;
use sigil_ca::identity::principal_from_claims;
use sigil_ca::oidc::jwt;
use sigil_ca::oidc::keys::{VerifyKey, asymmetric_alg};
use sigil_client::oidc::TokenClaims;
use sigil_client::oidc::interactive::check_id_token;

static ISSUERS: LazyLock<IssuersConfig> = LazyLock::new(|| {
    IssuersConfig::from_json(include_str!("../fixtures/issuers.json"))
        .expect("fixture issuers config parses")
});

/// A JWKS has a few keys; more only repeat the same parsing.
const MAX_JWKS_KEYS: usize = 8;

fn check_token(token: &str) {
    if let Ok(parsed) = jwt::parse(token) {
        // The signature covers exactly the first two segments as sent.
        assert!(token.starts_with(parsed.signing_input));
        assert_eq!(
            token.len(),
            parsed.signing_input.len() + 1 + parsed.signature.len(),
            "signing input and signature do not cover the token"
        );
        let _ = asymmetric_alg(&parsed.alg);
        if let Some(iss) = parsed.claims.get("iss").and_then(Value::as_str)
            && let Some(config) = ISSUERS.find(iss)
        {
            let _ = principal_from_claims(config, &parsed.claims);
        }
    }
    if let Ok(claims) = TokenClaims::from_unverified_jwt(token) {
        let _ = claims.challenge();
        let _ = claims.challenge_for_claim(Some("email"));
        let _ = claims.challenge_for_claim(Some("sub"));
    }
    let _ = check_id_token(token, "sigstore", Some("nonce"));
}

fn check_jwks(document: &Value) {
    let keys = match document.get("keys").and_then(Value::as_array) {
        Some(keys) => keys.iter().take(MAX_JWKS_KEYS).collect::<Vec<_>>(),
        None => vec![document],
    };
    for jwk in keys {
        if let Some(key) = VerifyKey::from_jwk_json(jwk) {
            for alg in ["RS256", "PS512", "ES256", "ES384", "EdDSA"] {
                if let Ok(a) = asymmetric_alg(alg) {
                    let _ = key.check_alg(alg, a);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_token(text);
    if let Ok(document) = serde_json::from_str::<Value>(text) {
        check_jwks(&document);
    }
});
