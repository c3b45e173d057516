//! Token verification against a real OpenID Provider (npm oidc-provider, started per test).
//!
//! Tokens the provider cannot produce (alg none, HS256, forged kid, tampered bytes) are made by
//! hand from a real token: those faults only exist as hand-made inputs.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sigil_ca::config::{IssuerConfig, IssuerType, IssuersConfig};
use sigil_ca::identity::{ExtEncoding, IdentityError, SubjectAltName, fulcio_oid};
use sigil_ca::oidc::{TokenError, TokenVerifier};
use sigil_tests::oidc_provider::{OTHER_CLIENT_ID, OidcProvider};

fn email_verifier(idp: &OidcProvider) -> TokenVerifier {
    let mut config = IssuersConfig::default();
    config.add_email_issuer(idp.issuer_url()).unwrap();
    TokenVerifier::new(config).unwrap()
}

fn b64json(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

fn enc(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn parts(token: &str) -> (Value, Value, String) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3);
    (b64json(p[0]), b64json(p[1]), p[2].to_string())
}

/// The real token's claims and signature under a different header.
fn with_header(token: &str, header: Value) -> String {
    let (_, claims, sig) = parts(token);
    format!("{}.{}.{sig}", enc(&header), enc(&claims))
}

async fn jwk_of(idp: &OidcProvider, kty: &str) -> Value {
    idp.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kty"] == kty)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn rs256_email_token_verifies_into_principal() {
    let idp = OidcProvider::start();
    let verifier = email_verifier(&idp);
    let token = idp.token("alice@example.com").await;
    assert_eq!(parts(&token).0["alg"], "RS256");
    let principal = verifier.verify(&token).await.unwrap();
    assert_eq!(
        principal.san,
        SubjectAltName::Email("alice@example.com".into())
    );
    assert_eq!(principal.issuer, idp.issuer_url());
    assert_eq!(principal.challenge, "alice@example.com");
    assert!(principal.extensions.is_empty());
    // A second token is served from the key cache.
    verifier
        .verify(&idp.token("bob@example.com").await)
        .await
        .unwrap();
    assert_eq!(verifier.jwks_fetch_count(), 1);
}

#[tokio::test]
async fn es256_email_token_verifies_into_principal() {
    let idp = OidcProvider::start_with_alg("ES256");
    let token = idp.token("carol@example.com").await;
    assert_eq!(parts(&token).0["alg"], "ES256");
    let principal = email_verifier(&idp).verify(&token).await.unwrap();
    assert_eq!(
        principal.san,
        SubjectAltName::Email("carol@example.com".into())
    );
    assert_eq!(principal.issuer, idp.issuer_url());
}

#[tokio::test]
async fn ps256_token_verifies() {
    let idp = OidcProvider::start_with_alg("PS256");
    let token = idp.token("dave@example.com").await;
    assert_eq!(parts(&token).0["alg"], "PS256");
    let principal = email_verifier(&idp).verify(&token).await.unwrap();
    assert_eq!(principal.challenge, "dave@example.com");
}

#[tokio::test]
async fn github_workflow_token_maps_to_ci_identity() {
    let idp = OidcProvider::start();
    let mut issuer = IssuerConfig::email(idp.issuer_url());
    issuer.issuer_type = IssuerType::GithubWorkflow;
    let mut config = IssuersConfig::default();
    config.add_issuer(idp.issuer_url(), issuer).unwrap();
    let verifier = TokenVerifier::new(config).unwrap();
    let sub = "repo:octo-org/octo-repo:ref:refs/heads/main";
    let token = idp
        .token_with_claims(
            sub,
            json!({
                "ref": "refs/heads/main", "sha": "0123456789abcdef0123456789abcdef01234567",
                "repository": "octo-org/octo-repo", "repository_id": "42",
                "repository_owner": "octo-org", "repository_owner_id": "7",
                "repository_visibility": "private", "run_id": "99", "run_attempt": "1",
                "runner_environment": "self-hosted", "workflow": "CI", "event_name": "push",
                "workflow_ref": "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
                "workflow_sha": "0123456789abcdef0123456789abcdef01234567",
                "job_workflow_ref": "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
                "job_workflow_sha": "0123456789abcdef0123456789abcdef01234567"
            }),
        )
        .await;
    let principal = verifier.verify(&token).await.unwrap();
    assert_eq!(
        principal.san,
        SubjectAltName::Uri(
            "https://github.com/octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main".into()
        )
    );
    assert_eq!(principal.challenge, sub);
    let find = |n| {
        principal
            .extensions
            .iter()
            .find(|e| e.oid == fulcio_oid(n))
            .unwrap_or_else(|| panic!("no extension 1.{n}"))
    };
    assert_eq!(find(2).value, "push");
    assert_eq!(find(2).encoding, ExtEncoding::Raw);
    assert_eq!(
        find(21).value,
        "https://github.com/octo-org/octo-repo/actions/runs/99/attempts/1"
    );
    assert_eq!(find(21).encoding, ExtEncoding::Utf8String);
    assert_eq!(find(11).value, "self-hosted");
}

#[tokio::test]
async fn github_workflow_issuer_refuses_a_plain_email_token() {
    let idp = OidcProvider::start();
    let mut issuer = IssuerConfig::email(idp.issuer_url());
    issuer.issuer_type = IssuerType::GithubWorkflow;
    let mut config = IssuersConfig::default();
    config.add_issuer(idp.issuer_url(), issuer).unwrap();
    let err = TokenVerifier::new(config)
        .unwrap()
        .verify(&idp.token("alice@example.com").await)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TokenError::Identity(IdentityError::MissingClaim { claim, issuer_type: "github-workflow" }) if claim == "job_workflow_ref"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the identity token lacks the \"job_workflow_ref\" claim that github-workflow issuers need"
    );
}

#[tokio::test]
async fn unverified_email_is_refused() {
    let idp = OidcProvider::start();
    let token = idp
        .token_with_claims(
            "mallory",
            json!({"email": "mallory@example.com", "email_verified": false}),
        )
        .await;
    let err = email_verifier(&idp).verify(&token).await.unwrap_err();
    assert!(
        matches!(err, TokenError::Identity(IdentityError::EmailNotVerified)),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let idp = OidcProvider::start();
    let token = idp
        .token_for_client(OTHER_CLIENT_ID, "alice@example.com")
        .await;
    assert_eq!(parts(&token).1["aud"], OTHER_CLIENT_ID);
    let err = email_verifier(&idp).verify(&token).await.unwrap_err();
    assert!(
        matches!(&err, TokenError::WrongAudience { expected } if expected == "sigstore"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the identity token's audience does not include \"sigstore\""
    );
}

#[tokio::test]
async fn expired_token_is_refused() {
    let idp = OidcProvider::start();
    let token = idp.token("alice@example.com").await;
    let exp = parts(&token).1["exp"].as_u64().unwrap();
    // Just inside the 30 s skew: still fine.
    let at = |t: u64| move || SystemTime::UNIX_EPOCH + Duration::from_secs(t);
    email_verifier(&idp)
        .with_clock(at(exp + 29))
        .verify(&token)
        .await
        .unwrap();
    let err = email_verifier(&idp)
        .with_clock(at(exp + 31))
        .verify(&token)
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::Expired), "{err:?}");
    assert_eq!(err.to_string(), "the identity token has expired");
}

#[tokio::test]
async fn token_from_the_future_is_refused() {
    let idp = OidcProvider::start();
    let token = idp.token("alice@example.com").await;
    let iat = parts(&token).1["iat"].as_u64().unwrap();
    let err = email_verifier(&idp)
        .with_clock(move || SystemTime::UNIX_EPOCH + Duration::from_secs(iat - 120))
        .verify(&token)
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::NotYetValid), "{err:?}");
}

#[tokio::test]
async fn unknown_issuer_is_refused_without_fetching_anything() {
    let idp = OidcProvider::start();
    let mut config = IssuersConfig::default();
    config
        .add_email_issuer("https://accounts.example.com")
        .unwrap();
    let verifier = TokenVerifier::new(config).unwrap();
    let err = verifier
        .verify(&idp.token("alice@example.com").await)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TokenError::UnknownIssuer(iss) if iss == idp.issuer_url()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the identity token's issuer {:?} is not trusted by this CA",
            idp.issuer_url()
        )
    );
    assert_eq!(verifier.jwks_fetch_count(), 0);
}

#[tokio::test]
async fn unknown_kid_is_refused_and_refresh_is_rate_limited() {
    let idp = OidcProvider::start();
    let verifier = email_verifier(&idp);
    let token = idp.token("alice@example.com").await;
    let forged = with_header(&token, json!({"alg": "RS256", "kid": "forged-kid"}));
    let err = verifier.verify(&forged).await.unwrap_err();
    assert!(
        matches!(&err, TokenError::UnknownKey { kid, .. } if kid == "forged-kid"),
        "{err:?}"
    );
    assert_eq!(verifier.jwks_fetch_count(), 1);
    // The keys were fetched just now: more unknown kids do not make the CA hit the issuer.
    for _ in 0..5 {
        assert!(matches!(
            verifier.verify(&forged).await,
            Err(TokenError::UnknownKey { .. })
        ));
    }
    assert_eq!(verifier.jwks_fetch_count(), 1);
    // And the real kid still verifies from the cache.
    verifier.verify(&token).await.unwrap();
    assert_eq!(verifier.jwks_fetch_count(), 1);
}

#[tokio::test]
async fn tampered_signature_and_claims_are_refused() {
    let idp = OidcProvider::start();
    let verifier = email_verifier(&idp);
    let token = idp.token("alice@example.com").await;
    let (header, mut claims, sig) = parts(&token);

    let mut sig_bytes = URL_SAFE_NO_PAD.decode(&sig).unwrap();
    sig_bytes[10] ^= 0x01;
    let bad_sig = format!(
        "{}.{}.{}",
        enc(&header),
        enc(&claims),
        URL_SAFE_NO_PAD.encode(&sig_bytes)
    );
    let err = verifier.verify(&bad_sig).await.unwrap_err();
    assert!(matches!(err, TokenError::BadSignature), "{err:?}");
    assert_eq!(err.to_string(), "the identity token's signature is invalid");

    claims["email"] = json!("admin@example.com");
    let bad_claims = format!("{}.{}.{sig}", enc(&header), enc(&claims));
    let err = verifier.verify(&bad_claims).await.unwrap_err();
    assert!(matches!(err, TokenError::BadSignature), "{err:?}");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let idp = OidcProvider::start();
    let verifier = email_verifier(&idp);
    let token = idp.token("alice@example.com").await;
    let (_, claims, _) = parts(&token);
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!("{}.{}.", enc(&json!({"alg": alg})), enc(&claims));
        let err = verifier.verify(&unsigned).await.unwrap_err();
        assert!(matches!(err, TokenError::AlgNone), "{alg}: {err:?}");
    }
    assert_eq!(
        TokenError::AlgNone.to_string(),
        "unsigned identity tokens (alg \"none\") are not accepted"
    );
    assert_eq!(verifier.jwks_fetch_count(), 0);
}

/// The issuer's RSA public key as the SPKI PEM an attacker would download.
fn rsa_public_pem(jwk: &Value) -> String {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }
    fn uint(b64: &str) -> Vec<u8> {
        let mut bytes = URL_SAFE_NO_PAD.decode(b64).unwrap();
        if bytes[0] & 0x80 != 0 {
            bytes.insert(0, 0);
        }
        tlv(0x02, &bytes)
    }
    let rsa_key = tlv(
        0x30,
        &[
            uint(jwk["n"].as_str().unwrap()),
            uint(jwk["e"].as_str().unwrap()),
        ]
        .concat(),
    );
    let rsa_encryption = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let spki = tlv(
        0x30,
        &[
            tlv(0x30, &rsa_encryption),
            tlv(0x03, &[&[0u8][..], &rsa_key].concat()),
        ]
        .concat(),
    );
    sigil_tests::pem::pem("PUBLIC KEY", &spki)
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let idp = OidcProvider::start();
    let verifier = email_verifier(&idp);
    let token = idp.token("alice@example.com").await;
    let (_, claims, _) = parts(&token);
    let rsa = jwk_of(&idp, "RSA").await;
    let pem = rsa_public_pem(&rsa);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = rsa["kid"].as_str().map(str::to_string);
    let confused = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    let err = verifier.verify(&confused).await.unwrap_err();
    assert!(
        matches!(&err, TokenError::SymmetricAlgorithm(alg) if alg == "HS256"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "identity tokens signed with a shared secret (HS256) are not accepted"
    );
}

#[tokio::test]
async fn alg_that_does_not_match_the_key_is_refused() {
    let idp = OidcProvider::start();
    let verifier = email_verifier(&idp);
    let token = idp.token("alice@example.com").await;
    let rsa_kid = jwk_of(&idp, "RSA").await["kid"].clone();
    let ec_kid = jwk_of(&idp, "EC").await["kid"].clone();

    // RS256 header pointing at the EC key.
    let err = verifier
        .verify(&with_header(&token, json!({"alg": "RS256", "kid": ec_kid})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TokenError::AlgorithmKeyMismatch { alg, key_type: "EC P-256" } if alg == "RS256"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the identity token's algorithm RS256 does not match its EC P-256 signing key"
    );

    // ES256 header pointing at the RSA key.
    let err = verifier
        .verify(&with_header(
            &token,
            json!({"alg": "ES256", "kid": rsa_kid}),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            TokenError::AlgorithmKeyMismatch {
                key_type: "RSA",
                ..
            }
        ),
        "{err:?}"
    );

    // PS256 on the RSA key whose JWK pins RS256.
    let err = verifier
        .verify(&with_header(
            &token,
            json!({"alg": "PS256", "kid": rsa_kid}),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TokenError::AlgorithmKeyMismatch { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let verifier = TokenVerifier::new(IssuersConfig::default()).unwrap();
    for bad in ["", "a.b", "a.b.c.d", "!!!.e30.", "e30.e30.sig"] {
        let err = verifier.verify(bad).await.unwrap_err();
        assert!(matches!(err, TokenError::Malformed(_)), "{bad:?}: {err:?}");
    }
}

#[tokio::test]
async fn eddsa_token_verifies() {
    let idp = OidcProvider::start_with_alg("EdDSA");
    let token = idp.token("erin@example.com").await;
    assert_eq!(parts(&token).0["alg"], "EdDSA");
    let principal = email_verifier(&idp).verify(&token).await.unwrap();
    assert_eq!(
        principal.san,
        SubjectAltName::Email("erin@example.com".into())
    );
}

#[tokio::test]
async fn rotated_issuer_keys_are_fetched_on_unknown_kid() {
    let mut idp = OidcProvider::start();
    let verifier = email_verifier(&idp).with_min_refresh_interval(Duration::ZERO);
    verifier
        .verify(&idp.token("alice@example.com").await)
        .await
        .unwrap();
    assert_eq!(verifier.jwks_fetch_count(), 1);
    idp.rotate_keys();
    let rotated = idp.token("alice@example.com").await;
    let principal = verifier.verify(&rotated).await.unwrap();
    assert_eq!(principal.issuer, idp.issuer_url());
    assert_eq!(verifier.jwks_fetch_count(), 2);
}

#[tokio::test]
async fn rotated_keys_within_the_refresh_interval_are_not_refetched() {
    let mut idp = OidcProvider::start();
    let verifier = email_verifier(&idp);
    verifier
        .verify(&idp.token("alice@example.com").await)
        .await
        .unwrap();
    idp.rotate_keys();
    let err = verifier
        .verify(&idp.token("alice@example.com").await)
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::UnknownKey { .. }), "{err:?}");
    assert_eq!(verifier.jwks_fetch_count(), 1);
}

#[tokio::test]
async fn meta_issuer_pattern_admits_a_matching_issuer() {
    let idp = OidcProvider::start();
    let config = IssuersConfig::from_json(
        r#"{"MetaIssuers": {"http://127.0.0.1:*": {"Type": "email", "ClientID": "sigstore"}}}"#,
    )
    .unwrap();
    config.check_development(false).unwrap();
    let principal = TokenVerifier::new(config)
        .unwrap()
        .verify(&idp.token("frank@example.com").await)
        .await
        .unwrap();
    assert_eq!(principal.issuer, idp.issuer_url());
    assert_eq!(
        principal.san,
        SubjectAltName::Email("frank@example.com".into())
    );
}

#[tokio::test]
async fn unreachable_issuer_is_a_server_side_error() {
    let idp = OidcProvider::start();
    let verifier = email_verifier(&idp);
    let token = idp.token("alice@example.com").await;
    let issuer = idp.issuer_url().to_string();
    drop(idp);
    let err = verifier.verify(&token).await.unwrap_err();
    assert!(
        matches!(&err, TokenError::IssuerUnavailable { issuer: i, .. } if *i == issuer),
        "{err:?}"
    );
    assert!(err.is_server_side());
    assert!(!TokenError::Expired.is_server_side());
}

#[tokio::test]
async fn token_from_a_second_independent_provider_with_array_audience() {
    let idp = sigil_tests::oidc_mock::MockOidcProvider::start();
    let token = idp.token("grace@example.com").await;
    let (header, claims, _) = parts(&token);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(claims["aud"], json!(["sigstore"]));
    let mut config = IssuersConfig::default();
    config.add_email_issuer(idp.issuer_url()).unwrap();
    let principal = TokenVerifier::new(config)
        .unwrap()
        .verify(&token)
        .await
        .unwrap();
    assert_eq!(
        principal.san,
        SubjectAltName::Email("grace@example.com".into())
    );
    assert_eq!(principal.issuer, idp.issuer_url());
}

#[tokio::test]
async fn issuer_behind_a_private_ca_needs_its_cacert() {
    let idp = OidcProvider::start_tls();
    assert!(idp.issuer_url().starts_with("https://127.0.0.1:"));
    let token = idp.token("heidi@example.com").await;

    // Without CACert the issuer's certificate is not trusted: the keys cannot be fetched.
    let err = email_verifier(&idp).verify(&token).await.unwrap_err();
    assert!(
        matches!(err, TokenError::IssuerUnavailable { .. }),
        "{err:?}"
    );

    let mut issuer = IssuerConfig::email(idp.issuer_url());
    issuer.ca_cert = idp.ca_pem().map(str::to_string);
    let mut config = IssuersConfig::default();
    config.add_issuer(idp.issuer_url(), issuer).unwrap();
    let principal = TokenVerifier::new(config)
        .unwrap()
        .verify(&token)
        .await
        .unwrap();
    assert_eq!(
        principal.san,
        SubjectAltName::Email("heidi@example.com".into())
    );
}

/// A token naming `iss`, with a signature that never gets checked: these tests are about
/// what happens before a key is found.
fn token_for_issuer(iss: &str) -> String {
    let header = json!({"alg": "RS256", "kid": "k1", "typ": "JWT"});
    let claims = json!({"iss": iss, "sub": "x", "aud": "sigstore", "email": "x@example.com"});
    format!("{}.{}.c2ln", enc(&header), enc(&claims))
}

#[tokio::test]
async fn a_slow_failing_issuer_is_not_fetched_again_within_the_back_off() {
    // An issuer that takes 2.5 s to fail: longer than the first back-off (2 s). A real
    // provider cannot be made to do this, so a socket plays the broken issuer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2500)).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let mut config = IssuersConfig::default();
    config.add_email_issuer(&url).unwrap();
    let verifier = TokenVerifier::new(config).unwrap();
    let token = token_for_issuer(&url);
    let err = verifier.verify(&token).await.unwrap_err();
    assert!(err.is_server_side(), "{err:?}");
    assert_eq!(verifier.jwks_fetch_count(), 1);
    // Straight after the slow failure: refused from the back-off, no second fetch.
    let started = std::time::Instant::now();
    let err = verifier.verify(&token).await.unwrap_err();
    assert!(err.is_server_side(), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(verifier.jwks_fetch_count(), 1);
}

#[tokio::test]
async fn tokens_cannot_make_the_ca_discover_unboundedly_many_pattern_issuers() {
    let config = IssuersConfig::from_json(
        r#"{"MetaIssuers": {"http://127.0.0.1:*": {"Type": "email", "ClientID": "sigstore"}}}"#,
    )
    .unwrap();
    let verifier = TokenVerifier::new(config).unwrap();
    // Ports nothing listens on: each discovery fails fast with connection refused.
    let mut refused_for_rate = 0;
    for port in 1..=40 {
        let err = verifier
            .verify(&token_for_issuer(&format!("http://127.0.0.1:{port}")))
            .await
            .unwrap_err();
        assert!(err.is_server_side(), "{err:?}");
        if err.to_string().contains("too many new issuers") {
            refused_for_rate += 1;
        }
    }
    assert_eq!(
        verifier.jwks_fetch_count(),
        30,
        "a burst of 30 new issuers, then the rate"
    );
    assert_eq!(refused_for_rate, 10);
}
