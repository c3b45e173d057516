//! Fulcio v2 REST bodies (interop §1.2, §1.3): `POST /api/v2/signingCert`,
//! `GET /api/v2/trustBundle`, `GET /api/v2/configuration`, and the grpc-gateway error body.
//!
//! Requests are parsed leniently (unknown fields ignored, every part optional) because the
//! server decides what is missing; responses are emitted exactly in the protobuf JSON shape
//! clients expect.

use serde::{Deserialize, Serialize};

/// Body of `POST /api/v2/signingCert`. Exactly one of `public_key_request` and
/// `certificate_signing_request` is expected; the server enforces that.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSigningCertificateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_request: Option<PublicKeyRequest>,
    /// PKCS#10 request, PEM or DER (protobuf `bytes`, so base64 on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_b64")]
    pub certificate_signing_request: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    #[serde(default)]
    pub oidc_identity_token: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyRequest {
    #[serde(default)]
    pub public_key: PublicKey,
    /// Signature over the challenge (protobuf `bytes`, base64 on the wire).
    #[serde(default, with = "b64")]
    pub proof_of_possession: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKey {
    /// `PUBLIC_KEY_ALGORITHM_UNSPECIFIED|RSA_PSS|ECDSA|ED25519`; informational only, the
    /// server infers the algorithm from the key itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub algorithm: String,
    /// PEM `PUBLIC KEY` or raw DER SPKI carried in a string.
    #[serde(default)]
    pub content: String,
}

/// Response of `POST /api/v2/signingCert`; sigil always fills the embedded-SCT variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningCertificate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_certificate_embedded_sct: Option<SignedCertificateEmbeddedSct>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_certificate_detached_sct: Option<SignedCertificateDetachedSct>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedCertificateEmbeddedSct {
    pub chain: CertificateChain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedCertificateDetachedSct {
    pub chain: CertificateChain,
    /// base64 of the JSON AddChainResponse.
    #[serde(with = "b64")]
    pub signed_certificate_timestamp: Vec<u8>,
}

/// PEM certificates, leaf (or issuing CA) first, root last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateChain {
    pub certificates: Vec<String>,
}

/// Response of `GET /api/v2/trustBundle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustBundle {
    pub chains: Vec<CertificateChain>,
}

/// Response of `GET /api/v2/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    pub issuers: Vec<OidcIssuer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcIssuer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wildcard_issuer_url: Option<String>,
    pub audience: String,
    pub challenge_claim: String,
    #[serde(default)]
    pub spiffe_trust_domain: String,
    pub issuer_type: String,
    #[serde(default)]
    pub subject_domain: String,
    #[serde(default)]
    pub skip_email_verification: bool,
}

/// grpc-gateway status body used for every error (`details` is always empty here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: i32,
    pub message: String,
    #[serde(default)]
    pub details: Vec<serde_json::Value>,
}

/// gRPC status codes sigil's CA uses in [`ErrorBody::code`].
pub mod grpc_code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const UNAUTHENTICATED: i32 = 16;
    pub const INTERNAL: i32 = 13;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        decode(&text).map_err(serde::de::Error::custom)
    }

    /// protobuf JSON accepts standard or URL-safe alphabets, padded or not.
    pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        let trimmed = text.trim_end_matches('=');
        if trimmed.contains(['-', '_']) {
            URL_SAFE_NO_PAD.decode(trimmed)
        } else {
            STANDARD_NO_PAD.decode(trimmed)
        }
    }
}

mod opt_b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        match text {
            None => Ok(None),
            Some(t) if t.is_empty() => Ok(None),
            Some(t) => super::b64::decode(&t)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sigstore_python_csr_request() {
        let body = r#"{"certificateSigningRequest":"LS0tLS1CRUdJTg=="}"#;
        let req: CreateSigningCertificateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.certificate_signing_request.unwrap(), b"-----BEGIN");
        assert!(req.public_key_request.is_none());
        assert!(req.credentials.is_none());
    }

    #[test]
    fn parses_public_key_request_with_credentials() {
        let body = r#"{"credentials":{"oidcIdentityToken":"jwt"},
            "publicKeyRequest":{"publicKey":{"algorithm":"ECDSA","content":"PEM"},
            "proofOfPossession":"AQID"}}"#;
        let req: CreateSigningCertificateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.credentials.unwrap().oidc_identity_token, "jwt");
        let pkr = req.public_key_request.unwrap();
        assert_eq!(pkr.public_key.content, "PEM");
        assert_eq!(pkr.proof_of_possession, vec![1, 2, 3]);
    }

    #[test]
    fn accepts_unpadded_and_url_safe_base64() {
        let body =
            r#"{"publicKeyRequest":{"publicKey":{"content":"x"},"proofOfPossession":"-_8"}}"#;
        let req: CreateSigningCertificateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(
            req.public_key_request.unwrap().proof_of_possession,
            vec![0xfb, 0xff]
        );
    }

    #[test]
    fn response_uses_protobuf_json_names() {
        let resp = SigningCertificate {
            signed_certificate_embedded_sct: Some(SignedCertificateEmbeddedSct {
                chain: CertificateChain {
                    certificates: vec!["leaf".into(), "root".into()],
                },
            }),
            signed_certificate_detached_sct: None,
        };
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"signedCertificateEmbeddedSct":{"chain":{"certificates":["leaf","root"]}}}"#
        );
    }
}
