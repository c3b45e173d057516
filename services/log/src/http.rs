//! What every HTTP personality shares: JSON errors and request-body handling that never
//! lets a bad request through as a 5xx or a plain-text reply.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
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

/// A storage outage is the client's to retry (503 with `Retry-After`), reads as well as
/// writes; anything else is our own fault.
fn from_engine(e: &crate::engine::EngineError) -> HttpError {
    if e.is_unavailable() {
        HttpError::unavailable(e.to_string())
    } else {
        HttpError::internal(e)
    }
}

impl From<crate::engine::EngineError> for HttpError {
    fn from(e: crate::engine::EngineError) -> HttpError {
        from_engine(&e)
    }
}

impl From<Arc<crate::engine::EngineError>> for HttpError {
    fn from(e: Arc<crate::engine::EngineError>) -> HttpError {
        from_engine(&e)
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
            set_retry_after(&mut resp, wait);
        }
        resp
    }
}

/// `Retry-After` in whole seconds, rounded up (a client must not retry before the limit
/// allows) and at least 1. Every service's refusals use this one spelling.
pub fn set_retry_after(resp: &mut Response, wait: std::time::Duration) {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
}

const TOO_LARGE: &str = "request body is larger than the server's limit";

/// Bounds the request bodies of `router`'s routes at `limit` bytes. A body that declares a
/// larger length is refused without being parsed: a client that waits for `100 Continue`
/// (curl does past 1 MiB) is told at once instead of never; one that is sending it anyway
/// has it read and dropped first (up to 1 MiB), so that the answer reaches it. A body that
/// grows past the limit while being read (chunked) is refused when it does. `too_large` is
/// the answer to a declared length over the limit, in the service's own error format.
pub fn limit_bodies<S>(
    router: axum::Router<S>,
    limit: usize,
    too_large: fn() -> Response,
) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            (limit, too_large),
            refuse_declared_over_limit,
        ))
}

/// The log's answer to a body over the limit.
pub fn too_large() -> Response {
    HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE).into_response()
}

async fn refuse_declared_over_limit(
    axum::extract::State((limit, too_large)): axum::extract::State<(usize, fn() -> Response)>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(declared) = declared.filter(|n| *n > limit as u64) else {
        return next.run(req).await;
    };
    let waits_for_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !waits_for_continue && declared <= DRAIN_MAX {
        // The client is sending the body anyway. Closing the connection with its bytes
        // unread makes the kernel reset it, and a client still sending may see the reset
        // instead of this answer; read and drop it (bounded in size and time) first, and
        // the connection even stays usable.
        let _ = tokio::time::timeout(DRAIN_TIME, drain(req.into_body())).await;
    }
    too_large()
}

/// Largest refused body read to its end before answering, and how long that may take.
const DRAIN_MAX: u64 = 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads a body to its end, keeping nothing.
async fn drain(mut body: Body) {
    while let Some(Ok(_)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {}
}

/// Turns axum's body rejection (e.g. over the size limit) into our JSON error.
pub fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, HttpError> {
    body.map_err(|r| {
        let status = r.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            TOO_LARGE.to_string()
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

/// For a catch-panic layer: a handler panicked. The client gets the same JSON as any internal
/// error, and the panic is counted so that monitoring sees it though the process stays up.
pub fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    metrics::counter!("sigil_panics_total", "where" => "handler").increment(1);
    HttpError::internal(format_args!("handler panicked: {detail}")).into_response()
}

/// JSON error for unknown routes, so clients never get an empty 404.
pub async fn not_found_fallback() -> HttpError {
    HttpError::not_found("no such endpoint")
}

/// Middleware (on a router's routes): each request's time in the server, as
/// `sigil_http_request_seconds{route, method, status}`. The route is the pattern that matched
/// (`/api/v1/log/entries/{uuid}`, or `unmatched`), so the labels stay few whatever clients send.
pub async fn record_request(
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    // Methods are client-chosen tokens too: only the standard ones become labels.
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        "sigil_http_request_seconds",
        "route" => route,
        "method" => method,
        "status" => response.status().as_str().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// Middleware (outermost): a response sent before the request's body was read to its end
/// says `Connection: close`. Such responses are the ones that refuse a request early: a body
/// over the limit, a write refused under load, an unknown route. The server cannot reuse the
/// connection (the unread rest of the body is still on it) and closes it after the response;
/// without the header a client may already have sent its next request on that connection
/// from its pool, and sees it fail with a closed connection instead of an answer.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    // Most requests (every read) have no body: nothing to watch.
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let read = Arc::new(AtomicBool::new(false));
    let body = Body::new(ReadToEnd {
        inner: body,
        read: read.clone(),
    });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if !read.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that notes when it has been read to its end.
struct ReadToEnd {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for ReadToEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    #[test]
    fn a_storage_outage_is_503_with_retry_after_and_a_diverged_log_is_500() {
        use crate::engine::EngineError;
        let outage = HttpError::from(EngineError::WriterUnavailable("database gone".into()));
        assert_eq!(outage.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(outage.message.contains("database gone"));
        assert!(outage.retry_after.is_some());
        let fork = HttpError::from(EngineError::Diverged {
            log: "rekor".into(),
            reason: "secret detail".into(),
        });
        assert_eq!(fork.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!fork.message.contains("secret detail"));
        assert!(fork.retry_after.is_none());
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_json_and_the_router_keeps_serving() {
        async fn boom() -> String {
            // Out of bounds: the kind of bug a request's numbers can reach.
            let index: usize = "7".parse().unwrap();
            [1, 2, 3][index].to_string()
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "ok" }))
            .layer(CatchPanicLayer::custom(panic_response));
        let get = |path: &str| {
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let resp = app.clone().oneshot(get("/boom")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], 500);
        assert_eq!(json["message"], "internal error; see server logs");
        let resp = app.oneshot(get("/ok")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    /// A body that arrives in `count` chunks of 400 bytes, as a socket delivers it.
    fn chunked(count: usize) -> Body {
        let chunks = (0..count).map(|_| Ok::<_, std::io::Error>(vec![b' '; 400]));
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    async fn connection_header(method: &str, path: &str, body: Body) -> (StatusCode, bool) {
        let app = Router::new()
            .route(
                "/echo",
                axum::routing::post(|body: Bytes| async move { body.len().to_string() }),
            )
            .route("/ok", get(|| async { "ok" }))
            .fallback(not_found_fallback)
            .layer(axum::extract::DefaultBodyLimit::max(1000))
            .layer(axum::middleware::from_fn(close_if_body_unread));
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(body)
            .unwrap();
        let resp = app.oneshot(request).await.unwrap();
        let close = resp.headers().get(header::CONNECTION);
        assert!(close.is_none_or(|v| v == "close"), "{close:?}");
        (resp.status(), close.is_some())
    }

    #[tokio::test]
    async fn a_response_before_the_body_was_read_closes_the_connection() {
        // Over the limit: the extractor stops after the third chunk, two are left unread.
        assert_eq!(
            connection_header("POST", "/echo", chunked(5)).await,
            (StatusCode::PAYLOAD_TOO_LARGE, true)
        );
        // An unknown route never reads the body.
        assert_eq!(
            connection_header("POST", "/nope", chunked(1)).await,
            (StatusCode::NOT_FOUND, true)
        );
        // A body read to its end, and a request without one, keep the connection.
        assert_eq!(
            connection_header("POST", "/echo", chunked(2)).await,
            (StatusCode::OK, false)
        );
        assert_eq!(
            connection_header("GET", "/ok", Body::empty()).await,
            (StatusCode::OK, false)
        );
        assert_eq!(
            connection_header("GET", "/nope", Body::empty()).await,
            (StatusCode::NOT_FOUND, false)
        );
    }
}
