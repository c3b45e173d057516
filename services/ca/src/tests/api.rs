//! The HTTP surface as clients see it: status codes, JSON shapes, error bodies.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use der::{Decode, Encode};
use serde_json::{Value, json};
use sigil_proto::trust::ClientTrustConfig;
use tower::ServiceExt as _;
use x509_cert::Certificate;

use super::support::*;
use crate::api::{BODY_LIMIT, router_with_trust};
use crate::trust_config::TrustConfigInputs;

fn inputs(rekor_spki: Vec<u8>) -> TrustConfigInputs {
    TrustConfigInputs {
        ca_url: "https://sigil.example.com".into(),
        rekor_url: "https://sigil.example.com".into(),
        ct_url: "https://sigil.example.com".into(),
        rekor_spki_der: rekor_spki,
        oidc_url: Some("https://issuer.example.com".into()),
        operator: "sigil.example.com".into(),
        valid_from: None,
    }
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("non-JSON body {body:?} ({status})"));
    (status, value)
}

fn post(body: impl Into<Body>, bearer: Option<&str>) -> Request<Body> {
    let mut req =
        Request::post("/api/v2/signingCert").header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    req.body(body.into()).unwrap()
}

async fn app() -> (TestCa, axum::Router) {
    let t = test_ca(email_principal()).await;
    let rekor = sigil_log::LogSigner::generate().spki_der().to_vec();
    let app = router_with_trust(t.ca.clone(), Some(inputs(rekor)));
    (t, app)
}

#[tokio::test]
async fn sigstore_python_request_gets_an_embedded_sct_chain() {
    let (t, app) = app().await;
    let key = p256();
    let body = json!({ "certificateSigningRequest": STANDARD.encode(key.csr_pem()) }).to_string();
    let (status, value) = call(&app, post(body, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let certs = value["signedCertificateEmbeddedSct"]["chain"]["certificates"]
        .as_array()
        .unwrap();
    assert_eq!(certs.len(), 3);
    let pem: String = certs.iter().map(|c| c.as_str().unwrap()).collect();
    let chain = Certificate::load_pem_chain(pem.as_bytes()).unwrap();
    assert_eq!(
        chain[0]
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap(),
        key.spki_der
    );
    assert_eq!(chain[1].to_der().unwrap(), t.ca.chain_der()[0]);
    assert_eq!(chain[2].to_der().unwrap(), t.ca.chain_der()[1]);
    assert!(value.get("signedCertificateDetachedSct").is_none());
}

#[tokio::test]
async fn sigstore_js_request_with_token_in_the_body() {
    let (_t, app) = app().await;
    let key = p256();
    let body = json!({
        "credentials": { "oidcIdentityToken": TOKEN },
        "publicKeyRequest": {
            "publicKey": { "algorithm": "ECDSA", "content": key.spki_pem() },
            "proofOfPossession": STANDARD.encode(key.sign(b"alice@example.com")),
        }
    })
    .to_string();
    let (status, value) = call(&app, post(body, None)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
}

#[tokio::test]
async fn errors_are_grpc_gateway_json_with_the_right_status() {
    let (t, app) = app().await;
    let key = p256();
    let csr_body =
        json!({ "certificateSigningRequest": STANDARD.encode(key.csr_der()) }).to_string();

    let (status, value) = call(&app, post("{not json", Some(TOKEN))).await;
    assert_eq!(
        (status, value["code"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(3))
    );
    assert!(value["message"].as_str().unwrap().contains("malformed"));

    let (status, value) = call(&app, post(csr_body.clone(), None)).await;
    assert_eq!(
        (status, value["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(16))
    );

    let (status, value) = call(&app, post(csr_body, Some("forged"))).await;
    assert_eq!(
        (status, value["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(16))
    );
    assert!(
        !value["message"].as_str().unwrap().contains("forged"),
        "tokens are never echoed"
    );

    let bad_pop = json!({
        "publicKeyRequest": {
            "publicKey": { "content": key.spki_pem() },
            "proofOfPossession": STANDARD.encode(key.sign(b"someone else")),
        }
    })
    .to_string();
    let (status, value) = call(&app, post(bad_pop, Some(TOKEN))).await;
    assert_eq!(
        (status, value["code"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(3))
    );
    assert_eq!(value["details"], json!([]));

    let huge =
        json!({ "certificateSigningRequest": STANDARD.encode(vec![0u8; BODY_LIMIT]) }).to_string();
    let (status, value) = call(&app, post(huge, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(value["message"].is_string());
    // Declared too large: refused before the body is read, in the same format.
    let mut declared = post(Body::empty(), Some(TOKEN));
    declared
        .headers_mut()
        .insert(header::CONTENT_LENGTH, (BODY_LIMIT + 1).into());
    let (status, declared_value) = call(&app, declared).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(declared_value, value);

    assert_eq!(
        t.ct.engine().tree_head().size,
        0,
        "no failed request reached the CT log"
    );
}

#[tokio::test]
async fn trust_bundle_and_configuration() {
    let (t, app) = app().await;
    let (status, value) = call(
        &app,
        Request::get("/api/v2/trustBundle")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let chain = value["chains"][0]["certificates"].as_array().unwrap();
    assert_eq!(chain.len(), 2);
    let pem: String = chain.iter().map(|c| c.as_str().unwrap()).collect();
    let certs = Certificate::load_pem_chain(pem.as_bytes()).unwrap();
    assert_eq!(certs[0].to_der().unwrap(), t.ca.chain_der()[0]);

    let (status, value) = call(
        &app,
        Request::get("/api/v2/configuration")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["issuers"][0]["issuerUrl"], ISSUER);
    assert_eq!(value["issuers"][0]["challengeClaim"], "email");
}

#[tokio::test]
async fn trust_config_describes_this_instance() {
    let (t, app) = app().await;
    let (status, value) = call(
        &app,
        Request::get("/api/v1/trust-config")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Strict parse: media types, no unknown fields, u64s as strings.
    let config = ClientTrustConfig::from_json(value.to_string().as_bytes()).unwrap();
    let root = &config.trusted_root;
    assert_eq!(
        root.media_type,
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    );

    let ca = &root.certificate_authorities[0];
    let chain: Vec<_> = ca
        .cert_chain
        .certificates
        .iter()
        .map(|c| c.raw_bytes.clone())
        .collect();
    assert_eq!(chain, t.ca.chain_der().to_vec(), "[intermediate, root]");
    assert_eq!(ca.subject.common_name, "sigil root");
    assert_eq!(ca.subject.organization, "sigil test");
    let root_cert = Certificate::from_der(&t.ca.chain_der()[1]).unwrap();
    let not_before = root_cert
        .tbs_certificate()
        .validity()
        .not_before
        .to_unix_duration()
        .as_secs() as i64;
    assert_eq!(ca.valid_for.start.unix_timestamp(), not_before);
    assert!(ca.valid_for.start <= time::OffsetDateTime::now_utc());

    let ctlog = &root.ctlogs[0];
    assert_eq!(
        ctlog.public_key.raw_bytes.as_deref(),
        Some(t.ct.public_key_spki_der())
    );
    assert_eq!(ctlog.public_key.key_details, "PKIX_ECDSA_P256_SHA_256");
    assert_eq!(ctlog.log_id.key_id, t.ct.log_id().to_vec());
    let tlog = &root.tlogs[0];
    assert_eq!(tlog.base_url, "https://sigil.example.com");
    assert_eq!(tlog.log_id.key_id.len(), 32);
    assert_eq!(tlog.operator.as_deref(), Some("sigil.example.com"));

    let signing = &config.signing_config;
    assert_eq!(signing.ca_urls[0].url, "https://sigil.example.com");
    assert_eq!(signing.ca_urls[0].major_api_version, 1);
    assert_eq!(signing.rekor_tlog_urls[0].major_api_version, 1);
    assert_eq!(signing.oidc_urls[0].url, "https://issuer.example.com");
    assert!(signing.tsa_urls.is_empty());

    let (status, value) = call(
        &app,
        Request::get("/api/v1/trusted-root")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sigil_proto::trust::TrustedRoot::from_json(value.to_string().as_bytes()).unwrap(),
        config.trusted_root
    );
}

#[test]
fn the_real_token_verifier_feeds_the_configuration_endpoint() {
    use crate::ca::IdentityVerifier;
    let issuers = crate::config::IssuersConfig::from_json(
        r#"{"OIDCIssuers": {
              "https://accounts.example.com": {"IssuerURL": "https://accounts.example.com", "ClientID": "sigstore", "Type": "email"},
              "https://spiffe.example.com": {"Type": "spiffe", "SPIFFETrustDomain": "example.com", "ClientID": "sigstore"}},
            "MetaIssuers": {"https://oidc.eks.*.amazonaws.com/id/*": {"ClientID": "sigstore", "Type": "kubernetes"}}}"#,
    )
    .unwrap();
    let verifier = crate::oidc::TokenVerifier::new(issuers).unwrap();
    let mut config = IdentityVerifier::configuration(&verifier).issuers;
    config.sort_by_key(|i| i.issuer_url.clone());
    assert_eq!(config.len(), 3);
    let wildcard = &config[0];
    assert_eq!(
        wildcard.wildcard_issuer_url.as_deref(),
        Some("https://oidc.eks.*.amazonaws.com/id/*")
    );
    assert_eq!(wildcard.issuer_type, "kubernetes");
    assert_eq!(
        config[1].issuer_url.as_deref(),
        Some("https://accounts.example.com")
    );
    assert_eq!(
        (
            config[1].challenge_claim.as_str(),
            config[1].audience.as_str()
        ),
        ("email", "sigstore")
    );
    assert_eq!(config[2].spiffe_trust_domain, "example.com");
    assert_eq!(config[2].challenge_claim, "sub");
}

#[tokio::test]
async fn an_identity_over_its_rate_gets_429_with_retry_after() {
    let t = test_ca_configured(email_principal(), crate::CaKeyAlgorithm::EcdsaP256, |ca| {
        ca.with_identity_rate_limit("2/m".parse().unwrap())
    })
    .await;
    let app = crate::api::router(t.ca.clone());
    let key = p256();
    let body =
        || json!({ "certificateSigningRequest": STANDARD.encode(key.csr_pem()) }).to_string();
    for _ in 0..2 {
        let (status, value) = call(&app, post(body(), Some(TOKEN))).await;
        assert_eq!(status, StatusCode::OK, "{value}");
    }
    let resp = app
        .clone()
        .oneshot(post(body(), Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((20..=30).contains(&retry), "Retry-After {retry}");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["code"], 8, "RESOURCE_EXHAUSTED");
    assert!(
        value["message"]
            .as_str()
            .unwrap()
            .contains("alice@example.com"),
        "{value}"
    );
}

#[tokio::test]
async fn key_checks_beyond_the_work_budget_get_503() {
    // A budget smaller than one request: every token and key check is refused, before any
    // signing.
    let t = test_ca_configured(email_principal(), crate::CaKeyAlgorithm::EcdsaP256, |ca| {
        ca.with_work_pool(sigil_log::work::WorkPool::new(1, 1))
    })
    .await;
    let app = crate::api::router(t.ca.clone());
    let key = p256();
    // Hold the only byte of budget with a job that waits, then ask.
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let pool_holder = {
        let t_ca = t.ca.clone();
        tokio::spawn(async move { t_ca.work_pool().run(1, move || wait.recv().ok()).await })
    };
    while t.ca.work_pool().available_bytes() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let body = json!({ "certificateSigningRequest": STANDARD.encode(key.csr_pem()) }).to_string();
    let (status, value) = call(&app, post(body, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{value}");
    assert_eq!(value["code"], 14);
    assert!(
        value["message"].as_str().unwrap().contains("busy"),
        "{value}"
    );
    release.send(()).unwrap();
    pool_holder.await.unwrap().unwrap();
    assert_eq!(t.ct.engine().tree_head().size, 0, "nothing was logged");
    // The token is checked in the same job as the key: refused before it too.
    assert!(
        t.checked_on.lock().unwrap().is_empty(),
        "no identity check ran"
    );
}

#[tokio::test]
async fn identity_checks_run_on_the_work_pool() {
    // A signature check is CPU work: it must not run on the async worker (this test's thread,
    // on a current-thread runtime), where it would hold up every other request.
    let t = test_ca(email_principal()).await;
    let app = crate::api::router(t.ca.clone());
    let key = p256();
    let body = json!({ "certificateSigningRequest": STANDARD.encode(key.csr_pem()) }).to_string();
    let (status, value) = call(&app, post(body, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let threads = t.checked_on.lock().unwrap().clone();
    assert_eq!(threads.len(), 1, "one check per request");
    assert_ne!(threads[0], std::thread::current().id());
}
