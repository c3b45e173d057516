//! Issuer public keys (from a JWKS) and which JWS algorithms each may verify.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::TokenError;
use super::error::clip;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::Ed25519 => "Ed25519",
        }
    }

    fn accepts(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyType::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyType::EcP256 => alg == ES256,
            KeyType::EcP384 => alg == ES384,
            KeyType::Ed25519 => alg == EdDSA,
        }
    }
}

/// One usable signing key of an issuer.
pub struct VerifyKey {
    pub kid: Option<String>,
    pub key_type: KeyType,
    /// The JWK's own `alg`, if it pins one.
    pub pinned_alg: Option<String>,
    pub key: DecodingKey,
}

impl VerifyKey {
    /// Reads one JWKS entry; `None` for entries we cannot or must not use (encryption keys,
    /// symmetric keys, unknown curves). An RSA key under 2048 bits is also skipped.
    pub fn from_jwk_json(value: &Value) -> Option<VerifyKey> {
        if value
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            return None;
        }
        let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
        let key_type = match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => {
                let modulus = base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    p.n.trim_end_matches('='),
                )
                .ok()?;
                let bits = modulus.iter().skip_while(|b| **b == 0).count() * 8;
                if bits < 2048 {
                    return None;
                }
                KeyType::Rsa
            }
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => KeyType::EcP256,
                EllipticCurve::P384 => KeyType::EcP384,
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                KeyType::Ed25519
            }
            _ => return None,
        };
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        Some(VerifyKey {
            kid: jwk.common.key_id.clone(),
            key_type,
            pinned_alg: value.get("alg").and_then(Value::as_str).map(str::to_string),
            key,
        })
    }

    /// Refuses a header algorithm this key cannot have produced (e.g. RS256 on an EC key).
    pub fn check_alg(&self, alg_name: &str, alg: Algorithm) -> Result<(), TokenError> {
        let pinned_ok = self.pinned_alg.as_deref().is_none_or(|p| p == alg_name);
        if self.key_type.accepts(alg) && pinned_ok {
            Ok(())
        } else {
            Err(TokenError::AlgorithmKeyMismatch {
                alg: alg_name.to_string(),
                key_type: self.key_type.name(),
            })
        }
    }
}

/// Maps a header `alg` to an asymmetric algorithm we verify, with a distinct error for each
/// class of refusal.
pub fn asymmetric_alg(alg: &str) -> Result<Algorithm, TokenError> {
    match alg {
        "RS256" => Ok(Algorithm::RS256),
        "RS384" => Ok(Algorithm::RS384),
        "RS512" => Ok(Algorithm::RS512),
        "PS256" => Ok(Algorithm::PS256),
        "PS384" => Ok(Algorithm::PS384),
        "PS512" => Ok(Algorithm::PS512),
        "ES256" => Ok(Algorithm::ES256),
        "ES384" => Ok(Algorithm::ES384),
        "EdDSA" | "Ed25519" => Ok(Algorithm::EdDSA),
        a if a.eq_ignore_ascii_case("none") => Err(TokenError::AlgNone),
        a if a.to_ascii_uppercase().starts_with("HS") => {
            Err(TokenError::SymmetricAlgorithm(clip(a)))
        }
        other => Err(TokenError::UnsupportedAlgorithm(clip(other))),
    }
}

/// Picks the key named by `kid`; without a `kid`, the only key that fits the algorithm.
pub(crate) fn select<'a>(
    keys: &'a [VerifyKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<&'a VerifyKey> {
    match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
        None => {
            let mut fitting = keys.iter().filter(|k| k.key_type.accepts(alg));
            match (fitting.next(), fitting.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    fn rsa(kid: &str, bytes: usize) -> Value {
        let mut n = vec![0xC5u8; bytes];
        n[bytes - 1] = 0x01;
        json!({"kty": "RSA", "kid": kid, "use": "sig", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode(n)})
    }

    fn ec(kid: &str, crv: &str, len: usize) -> Value {
        let coord = URL_SAFE_NO_PAD.encode(vec![7u8; len]);
        json!({"kty": "EC", "kid": kid, "crv": crv, "x": coord, "y": coord})
    }

    #[test]
    fn jwks_entries_we_must_not_use_are_skipped() {
        assert!(VerifyKey::from_jwk_json(&rsa("ok", 256)).is_some());
        assert!(
            VerifyKey::from_jwk_json(&rsa("weak", 128)).is_none(),
            "RSA-1024"
        );
        let mut enc = rsa("enc", 256);
        enc["use"] = json!("enc");
        assert!(VerifyKey::from_jwk_json(&enc).is_none());
        let oct = json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"});
        assert!(VerifyKey::from_jwk_json(&oct).is_none(), "symmetric keys");
        assert!(VerifyKey::from_jwk_json(&ec("p521", "P-521", 66)).is_none());
        assert_eq!(
            VerifyKey::from_jwk_json(&ec("p384", "P-384", 48))
                .unwrap()
                .key_type,
            KeyType::EcP384
        );
        assert!(VerifyKey::from_jwk_json(&json!({"kty": "RSA"})).is_none());
    }

    #[test]
    fn key_selection_by_kid_or_by_the_only_fitting_key() {
        let keys: Vec<VerifyKey> = [rsa("r1", 256), ec("e1", "P-256", 32)]
            .iter()
            .filter_map(VerifyKey::from_jwk_json)
            .collect();
        assert_eq!(
            select(&keys, Some("e1"), Algorithm::ES256)
                .unwrap()
                .key_type,
            KeyType::EcP256
        );
        assert!(select(&keys, Some("zz"), Algorithm::ES256).is_none());
        // No kid: unambiguous per algorithm family.
        assert_eq!(
            select(&keys, None, Algorithm::RS256).unwrap().key_type,
            KeyType::Rsa
        );
        let two_rsa: Vec<VerifyKey> = [rsa("r1", 256), rsa("r2", 256)]
            .iter()
            .filter_map(VerifyKey::from_jwk_json)
            .collect();
        assert!(select(&two_rsa, None, Algorithm::RS256).is_none());
    }

    #[test]
    fn header_algorithms_are_classified() {
        assert!(matches!(asymmetric_alg("none"), Err(TokenError::AlgNone)));
        assert!(matches!(
            asymmetric_alg("HS512"),
            Err(TokenError::SymmetricAlgorithm(_))
        ));
        assert!(matches!(
            asymmetric_alg("ES512"),
            Err(TokenError::UnsupportedAlgorithm(_))
        ));
        assert_eq!(asymmetric_alg("EdDSA").unwrap(), Algorithm::EdDSA);
        assert_eq!(asymmetric_alg("PS384").unwrap(), Algorithm::PS384);
    }

    #[test]
    fn pinned_jwk_alg_must_match_the_header() {
        let mut pinned = rsa("r", 256);
        pinned["alg"] = json!("RS256");
        let key = VerifyKey::from_jwk_json(&pinned).unwrap();
        assert!(key.check_alg("RS256", Algorithm::RS256).is_ok());
        assert!(matches!(
            key.check_alg("PS256", Algorithm::PS256),
            Err(TokenError::AlgorithmKeyMismatch { .. })
        ));
        let unpinned = VerifyKey::from_jwk_json(&rsa("r", 256)).unwrap();
        assert!(unpinned.check_alg("PS256", Algorithm::PS256).is_ok());
        assert!(unpinned.check_alg("ES256", Algorithm::ES256).is_err());
    }
}
