//! Splitting a compact JWS and reading its parts before anything is trusted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::TokenError;

/// Larger tokens are refused before any decoding work.
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// A compact JWS whose header and claims parsed, nothing verified yet.
pub struct UnverifiedJwt<'a> {
    pub alg: String,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// `base64url(header) "." base64url(claims)`: the signed bytes.
    pub signing_input: &'a str,
    /// The third segment, still base64url.
    pub signature: &'a str,
}

fn malformed(reason: &str) -> TokenError {
    TokenError::Malformed(reason.to_string())
}

fn decode_json_object(segment: &str, what: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| malformed(&format!("the {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(malformed(&format!("the {what} is not a JSON object"))),
    }
}

pub fn parse(token: &str) -> Result<UnverifiedJwt<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("it is too large"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a JWT has three dot-separated parts"));
    };
    let header_json = decode_json_object(header, "header")?;
    if header_json.contains_key("crit") {
        return Err(malformed("critical header parameters are not supported"));
    }
    let alg = header_json
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("the header has no alg"))?
        .to_string();
    let kid = match header_json.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(malformed("the header's kid is not a string")),
    };
    let claims_json = decode_json_object(claims, "claims set")?;
    Ok(UnverifiedJwt {
        alg,
        kid,
        claims: claims_json,
        signing_input: &token[..header.len() + 1 + claims.len()],
        signature,
    })
}
