//! Getting a signing certificate: `POST <ca>/api/v2/signingCert` with a public key and a
//! proof of possession over the token's challenge string.

use sigil_proto::fulcio::{
    Configuration, CreateSigningCertificateRequest, Credentials, ErrorBody, PublicKey,
    PublicKeyRequest, SigningCertificate,
};

use crate::keys::SigningKey;
use crate::verify::keys::decode_pem;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot reach the certificate authority at {0}: {1}")]
    Transport(String, String),
    #[error("certificate authority {url} refused (HTTP {status}): {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("certificate authority response is malformed: {0}")]
    BadResponse(String),
}

/// The issued chain, leaf first, as DER.
#[derive(Clone, Debug)]
pub struct IssuedChain {
    pub leaf_pem: String,
    pub chain_der: Vec<Vec<u8>>,
}

impl IssuedChain {
    pub fn leaf_der(&self) -> &[u8] {
        &self.chain_der[0]
    }
}

pub fn request(
    key: &SigningKey,
    token: &str,
    challenge: &str,
) -> Result<CreateSigningCertificateRequest, crate::keys::KeyFileError> {
    Ok(CreateSigningCertificateRequest {
        credentials: Some(Credentials {
            oidc_identity_token: token.to_string(),
        }),
        public_key_request: Some(PublicKeyRequest {
            public_key: PublicKey {
                algorithm: "ECDSA".into(),
                content: key.public_key_pem(),
            },
            proof_of_possession: key.sign(challenge.as_bytes())?,
        }),
        certificate_signing_request: None,
    })
}

/// Reads the chain from either response variant; the embedded-SCT one is what sigil issues,
/// and a detached SCT would not be checked by verifiers of v0.3 bundles.
pub fn parse_response(body: &[u8]) -> Result<IssuedChain, CaError> {
    let response: SigningCertificate =
        serde_json::from_slice(body).map_err(|e| CaError::BadResponse(e.to_string()))?;
    let chain = match (
        response.signed_certificate_embedded_sct,
        response.signed_certificate_detached_sct,
    ) {
        (Some(e), _) => e.chain,
        (None, Some(_)) => {
            return Err(CaError::BadResponse(
                "the CA returned a detached SCT; only certificates with an embedded SCT are supported"
                    .into(),
            ));
        }
        (None, None) => return Err(CaError::BadResponse("no certificate chain".into())),
    };
    let leaf_pem = chain
        .certificates
        .first()
        .cloned()
        .ok_or_else(|| CaError::BadResponse("empty certificate chain".into()))?;
    let chain_der = chain
        .certificates
        .iter()
        .map(|pem| match decode_pem(pem) {
            Some((label, der)) if label == "CERTIFICATE" => Ok(der),
            _ => Err(CaError::BadResponse(
                "chain entry is not a PEM CERTIFICATE".into(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(IssuedChain {
        leaf_pem,
        chain_der,
    })
}

/// The claim the CA checks the proof of possession against for tokens from `issuer`, from
/// its `/api/v2/configuration`. Wildcard issuers match as in Fulcio: each `*` stands for one
/// or more of `[-_a-zA-Z0-9]`, and the whole URL must match.
pub fn challenge_claim_for<'c>(config: &'c Configuration, issuer: &str) -> Option<&'c str> {
    let exact = config
        .issuers
        .iter()
        .find(|i| i.issuer_url.as_deref() == Some(issuer));
    let wildcard = || {
        config.issuers.iter().find(|i| {
            i.wildcard_issuer_url
                .as_deref()
                .is_some_and(|pattern| wildcard_matches(pattern, issuer))
        })
    };
    exact
        .or_else(wildcard)
        .map(|i| i.challenge_claim.as_str())
        .filter(|c| !c.is_empty())
}

fn wildcard_matches(pattern: &str, value: &str) -> bool {
    let escaped: Vec<String> = pattern.split('*').map(regex::escape).collect();
    let anchored = format!("^{}$", escaped.join("[-_a-zA-Z0-9]+"));
    regex::Regex::new(&anchored).is_ok_and(|r| r.is_match(value))
}

/// `GET <ca>/api/v2/configuration`.
pub async fn configuration(http: &reqwest::Client, ca_url: &str) -> Result<Configuration, CaError> {
    let url = format!("{}/api/v2/configuration", ca_url.trim_end_matches('/'));
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| CaError::Transport(url.clone(), e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(CaError::Refused {
            url,
            status: status.as_u16(),
            message: "configuration unavailable".into(),
        });
    }
    response
        .json()
        .await
        .map_err(|e| CaError::BadResponse(e.to_string()))
}

pub async fn signing_cert(
    http: &reqwest::Client,
    ca_url: &str,
    request: &CreateSigningCertificateRequest,
) -> Result<IssuedChain, CaError> {
    let url = format!("{}/api/v2/signingCert", ca_url.trim_end_matches('/'));
    let response = http
        .post(&url)
        .json(request)
        .send()
        .await
        .map_err(|e| CaError::Transport(url.clone(), e.to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| CaError::Transport(url.clone(), e.to_string()))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|e| e.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(300).collect());
        return Err(CaError::Refused {
            url,
            status: status.as_u16(),
            message,
        });
    }
    parse_response(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{HashAlg, PublicKey as VerifyKey};

    #[test]
    fn proof_of_possession_signs_the_challenge_with_the_request_key() {
        let key = SigningKey::generate().unwrap();
        let req = request(&key, "tok", "alice@example.com").unwrap();
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["credentials"]["oidcIdentityToken"], "tok");
        assert_eq!(json["publicKeyRequest"]["publicKey"]["algorithm"], "ECDSA");
        assert!(json.get("certificateSigningRequest").is_none());
        let pk = req.public_key_request.unwrap();
        let verify = VerifyKey::from_pem(&pk.public_key.content).unwrap();
        verify
            .verify(
                HashAlg::Sha256,
                b"alice@example.com",
                &pk.proof_of_possession,
            )
            .unwrap();
    }

    #[test]
    fn challenge_claim_comes_from_the_matching_issuer() {
        let config: Configuration = serde_json::from_value(serde_json::json!({"issuers": [
            {"issuerUrl": "https://accounts.example.com", "audience": "sigstore", "challengeClaim": "email", "issuerType": "email"},
            {"issuerUrl": "https://token.actions.githubusercontent.com", "audience": "sigstore", "challengeClaim": "sub", "issuerType": "github-workflow"},
            {"wildcardIssuerUrl": "https://oidc.eks.*.amazonaws.com/id/*", "audience": "sigstore", "challengeClaim": "sub", "issuerType": "kubernetes"}
        ]}))
        .unwrap();
        assert_eq!(
            challenge_claim_for(&config, "https://accounts.example.com"),
            Some("email")
        );
        assert_eq!(
            challenge_claim_for(&config, "https://token.actions.githubusercontent.com"),
            Some("sub")
        );
        assert_eq!(
            challenge_claim_for(
                &config,
                "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC123"
            ),
            Some("sub")
        );
        // A wildcard spans one label, not a path, and the match is anchored.
        assert_eq!(
            challenge_claim_for(&config, "https://oidc.eks.a/b.amazonaws.com/id/X"),
            None
        );
        assert_eq!(
            challenge_claim_for(&config, "https://oidc.eks.x.amazonaws.com/id/X/extra"),
            None
        );
        assert_eq!(challenge_claim_for(&config, "https://unknown"), None);
    }

    #[test]
    fn reads_embedded_chains_and_refuses_detached_or_empty() {
        let cert = "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n";
        let body = serde_json::json!({"signedCertificateEmbeddedSct":{"chain":{"certificates":[cert, cert]}}});
        let chain = parse_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(chain.leaf_der(), &[1, 2, 3]);
        assert_eq!(chain.chain_der.len(), 2);
        let detached = serde_json::json!({"signedCertificateDetachedSct":{"chain":{"certificates":[cert]},"signedCertificateTimestamp":""}});
        assert!(parse_response(detached.to_string().as_bytes()).is_err());
        let empty =
            serde_json::json!({"signedCertificateEmbeddedSct":{"chain":{"certificates":[]}}});
        assert!(parse_response(empty.to_string().as_bytes()).is_err());
    }
}
