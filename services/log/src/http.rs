//! What every HTTP personality shares: JSON errors and request-body handling that never
//! lets a bad request through as a 5xx or a plain-text reply.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sigil_proto::rekor_v1::ApiError;

/// Default request-body limit for write endpoints.
pub const DEFAULT_BODY_LIMIT: usize = 128 * 1024;

#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
    pub location: Option<String>,
    /// For 429 and 503: when the client may try again.
    pub retry_after: Option<std::time::Duration>,
}

impl HttpError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
            location: None,
            retry_after: None,
        }
    }
    /// The server cannot take this now (overload, a store that is down); try again later.
    pub fn unavailable(message: impl Into<String>) -> HttpError {
        let mut err = HttpError::new(StatusCode::SERVICE_UNAVAILABLE, message);
        err.retry_after = Some(std::time::Duration::from_secs(1));
        err
    }
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, message)
    }
    /// Our own fault: the detail goes to the log, the client gets a generic message.
    pub fn internal(err: impl std::fmt::Display) -> HttpError {
        tracing::error!(error = %err, "internal error");
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see server logs",
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = ApiError {
            code: self.status.as_u16(),
            message: self.message,
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: a client must not retry before the limit allows.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp
    }
}

/// Turns axum's body rejection (e.g. over the size limit) into our JSON error.
pub fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, HttpError> {
    body.map_err(|r| {
        let status = r.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body is larger than the server's limit".to_string()
        } else {
            format!("cannot read request body: {}", r.body_text())
        };
        HttpError::new(status, message)
    })
}

pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
    serde_json::from_slice(body)
        .map_err(|e| HttpError::bad_request(format!("malformed JSON request: {e}")))
}

/// JSON error for unknown routes, so clients never get an empty 404.
pub async fn not_found_fallback() -> HttpError {
    HttpError::not_found("no such endpoint")
}
