//! HTTP surface of the CA (interop §1.1): Fulcio v2 endpoints plus the trust documents.
//!
//! Errors are grpc-gateway JSON `{"code", "message", "details": []}`:
//! 400 / INVALID_ARGUMENT for a bad request, key, CSR or proof of possession;
//! 401 / UNAUTHENTICATED for a missing or rejected identity token (as Fulcio does);
//! 503 / UNAVAILABLE when the token's issuer cannot be reached; 413 for oversized bodies;
//! 500 / INTERNAL only for our own faults (signing, CT log).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sigil_proto::fulcio::{
    Configuration, CreateSigningCertificateRequest, ErrorBody, SigningCertificate, TrustBundle,
    grpc_code,
};

use crate::ca::{Ca, IssueError};
use crate::profile::ProfileError;
use crate::trust_config::TrustConfigInputs;
use sigil_log::ct::CtError;
use sigil_log::work::WorkError;

/// Largest accepted request body; a CSR plus token is a few KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

const UNAVAILABLE: i32 = 14;
const RESOURCE_EXHAUSTED: i32 = 8;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: i32,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: StatusCode, code: i32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn retry_after(mut self, wait: Duration) -> ApiError {
        self.retry_after = Some(wait);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: self.message,
            details: Vec::new(),
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            sigil_log::http::set_retry_after(&mut resp, wait);
        }
        resp
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        match &e {
            IssueError::BadRequest(_)
            | IssueError::Key(_)
            | IssueError::Profile(ProfileError::NonAsciiIdentity(_)) => ApiError::new(
                StatusCode::BAD_REQUEST,
                grpc_code::INVALID_ARGUMENT,
                e.to_string(),
            ),
            IssueError::MissingToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                grpc_code::UNAUTHENTICATED,
                e.to_string(),
            ),
            IssueError::Token(t) if t.is_server_side() => {
                tracing::warn!(error = %t, "identity token issuer unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, e.to_string())
            }
            IssueError::Token(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                grpc_code::UNAUTHENTICATED,
                e.to_string(),
            ),
            // The CT log's writer lost its database: the client may retry shortly.
            IssueError::Ct(CtError::Append(engine)) if engine.is_unavailable() => {
                tracing::warn!(error = %e, "CT log unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, e.to_string())
                    .retry_after(Duration::from_secs(1))
            }
            IssueError::Busy(WorkError::Busy(_)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, e.to_string())
                    .retry_after(Duration::from_secs(1))
            }
            IssueError::IdentityRateLimited { retry_after, .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                RESOURCE_EXHAUSTED,
                e.to_string(),
            )
            .retry_after(*retry_after),
            IssueError::Profile(_)
            | IssueError::Ct(_)
            | IssueError::IssuerExpiring
            | IssueError::Busy(WorkError::Panicked) => {
                tracing::error!(error = %e, "certificate issuance failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    grpc_code::INTERNAL,
                    "error issuing the certificate; see server logs",
                )
            }
        }
    }
}

/// State behind the router: the CA plus, when known, what the trust documents need.
#[derive(Clone)]
struct ApiState {
    ca: Arc<Ca>,
    trust: Option<Arc<TrustConfigInputs>>,
}

/// Fulcio v2 endpoints only.
pub fn router(ca: Arc<Ca>) -> Router {
    router_with_trust(ca, None)
}

/// Fulcio v2 endpoints plus `GET /api/v1/trust-config` and `GET /api/v1/trusted-root`
/// when `trust` is given.
pub fn router_with_trust(ca: Arc<Ca>, trust: Option<TrustConfigInputs>) -> Router {
    let mut router = Router::new()
        .route("/api/v2/signingCert", post(signing_cert))
        .route("/api/v2/trustBundle", get(trust_bundle))
        .route("/api/v2/configuration", get(configuration));
    if trust.is_some() {
        router = router
            .route("/api/v1/trust-config", get(trust_config))
            .route("/api/v1/trusted-root", get(trusted_root));
    }
    sigil_log::http::limit_bodies(router, BODY_LIMIT, too_large).with_state(ApiState {
        ca,
        trust: trust.map(Arc::new),
    })
}

fn too_large_error() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        grpc_code::INVALID_ARGUMENT,
        format!("request body is larger than {BODY_LIMIT} bytes"),
    )
}

fn too_large() -> Response {
    too_large_error().into_response()
}

async fn signing_cert(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SigningCertificate>, ApiError> {
    let body = body.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return too_large_error();
        }
        ApiError::new(
            status,
            grpc_code::INVALID_ARGUMENT,
            format!("cannot read request body: {}", r.body_text()),
        )
    })?;
    let request: CreateSigningCertificateRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            grpc_code::INVALID_ARGUMENT,
            format!("malformed request body: {e}"),
        )
    })?;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let response = state.ca.handle_signing_request(request, bearer).await?;
    Ok(Json(response))
}

async fn trust_bundle(State(state): State<ApiState>) -> Json<TrustBundle> {
    Json(state.ca.trust_bundle())
}

async fn configuration(State(state): State<ApiState>) -> Json<Configuration> {
    Json(state.ca.configuration())
}

async fn trust_config(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let inputs = state
        .trust
        .as_ref()
        .expect("route only exists with trust inputs");
    let config = state.ca.client_trust_config(inputs).map_err(internal)?;
    Ok(Json(config).into_response())
}

async fn trusted_root(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let inputs = state
        .trust
        .as_ref()
        .expect("route only exists with trust inputs");
    let config = state.ca.client_trust_config(inputs).map_err(internal)?;
    Ok(Json(config.trusted_root).into_response())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "building trust documents failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        grpc_code::INTERNAL,
        "internal error; see server logs",
    )
}
