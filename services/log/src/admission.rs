//! Admission control for write requests: how many may be in flight at once, and how fast one
//! client or one identity may send them.
//!
//! Refusing early is what keeps the latency of accepted writes bounded under overload: a
//! request that waits behind a full queue costs the same CPU and answers later, so beyond the
//! in-flight limit a write is answered 503 with `Retry-After` before its body is even read.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::http::HttpError;

/// Default number of writes in flight at once (all write endpoints together). Measured here
/// (docs/benchmarks.md): 128 sustains the same throughput as 256 (group commit already fills
/// batches) and keeps the p99 of accepted writes at three times the sustainable rate at about
/// 55 ms, where 256 gave 128 ms.
pub const DEFAULT_MAX_PENDING_WRITES: usize = 128;

/// A rate: `per_second` sustained, with bursts of up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `N` or `N/s` (N per second, burst N), `N/m` (per minute, burst N), with an optional
    /// `,burst=B`.
    fn from_str(s: &str) -> Result<Rate, String> {
        let (rate, burst) = match s.split_once(",burst=") {
            Some((r, b)) => (r, Some(b)),
            None => (s, None),
        };
        let (count, per) = match rate.split_once('/') {
            Some((c, "s")) => (c, 1.0),
            Some((c, "m")) => (c, 60.0),
            Some((_, unit)) => return Err(format!("unknown rate unit {unit:?}: use /s or /m")),
            None => (rate, 1.0),
        };
        let count: f64 = count
            .trim()
            .parse()
            .ok()
            .filter(|c: &f64| c.is_finite() && *c > 0.0)
            .ok_or_else(|| format!("{s:?} is not a rate like 10/s or 600/m"))?;
        let burst = match burst {
            Some(b) => b
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|b| b.is_finite() && *b >= 1.0)
                .ok_or_else(|| format!("burst in {s:?} must be a number of at least 1"))?,
            None => count.max(1.0),
        };
        Ok(Rate {
            per_second: count / per,
            burst,
        })
    }
}

/// Token buckets per key. The table is bounded: buckets that have refilled are forgotten
/// (a full bucket is the same as none), and when the table is still full a new key is refused,
/// so a flood of distinct keys cannot grow memory.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: Rate,
    max_keys: usize,
    buckets: Mutex<Buckets<K>>,
}

#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Bucket>,
    last_prune: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Why a request was not let through, and when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

pub const DEFAULT_MAX_KEYS: usize = 100_000;

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(rate: Rate, max_keys: usize) -> RateLimiter<K> {
        RateLimiter {
            rate,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                last_prune: Instant::now(),
            }),
        }
    }

    pub fn check(&self, key: &K) -> Result<(), Limited> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), Limited> {
        let rate = self.rate;
        let refill = |b: &Bucket| {
            let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
            (b.tokens + elapsed * rate.per_second).min(rate.burst)
        };
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if !buckets.map.contains_key(key) && buckets.map.len() >= self.max_keys {
            // Pruning walks the table, so at most once a second.
            if now.saturating_duration_since(buckets.last_prune) >= Duration::from_secs(1) {
                buckets.map.retain(|_, b| refill(b) < rate.burst);
                buckets.last_prune = now;
            }
            if buckets.map.len() >= self.max_keys {
                metrics::counter!("sigil_rate_limiter_full_total").increment(1);
                return Err(Limited {
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        let bucket = buckets.map.entry(key.clone()).or_insert(Bucket {
            tokens: rate.burst,
            updated: now,
        });
        bucket.tokens = refill(bucket);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / rate.per_second;
            Err(Limited {
                retry_after: Duration::from_secs_f64(wait.max(0.001)),
            })
        }
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.buckets.lock().expect("rate limiter lock").map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the write middleware enforces.
#[derive(Clone, Debug)]
pub struct WriteAdmission {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    per_client: Option<Arc<RateLimiter<IpAddr>>>,
}

impl WriteAdmission {
    pub fn new(max_in_flight: usize, per_client: Option<Rate>) -> WriteAdmission {
        let max_in_flight = max_in_flight.max(1);
        WriteAdmission {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            per_client: per_client.map(|r| Arc::new(RateLimiter::new(r, DEFAULT_MAX_KEYS))),
        }
    }
}

/// 429 (this caller is over its rate) or 503 (the server is full), both with `Retry-After`.
pub fn refusal(status: StatusCode, message: impl Into<String>, retry_after: Duration) -> Response {
    let mut err = HttpError::new(status, message);
    err.retry_after = Some(retry_after);
    err.into_response()
}

/// Middleware for every write endpoint (anything but GET and HEAD): the per-client rate
/// first, then a slot among the in-flight writes, held until the response is built.
pub async fn admit_writes(
    State(admission): State<WriteAdmission>,
    request: Request,
    next: Next,
) -> Response {
    if !is_write(&request) {
        return next.run(request).await;
    }
    if let Some(limiter) = &admission.per_client {
        // Without connection info (a router driven in-process) every caller is one client.
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if let Err(limited) = limiter.check(&client) {
            metrics::counter!("sigil_requests_refused_total", "reason" => "client_rate")
                .increment(1);
            let response = refusal(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many write requests from {client}; slow down"),
                limited.retry_after,
            );
            return drained(request, response).await;
        }
    }
    in_flight(&admission, request, next).await
}

/// Middleware for writes other nodes forward to this one (the leader): they count against
/// its in-flight limit like its own clients' writes, so a leader takes no more than
/// `--max-pending-writes` whichever node a write arrived at. The per-client rate was applied
/// by the node the client reached; here every forwarded write would look like that node's.
pub async fn admit_forwarded(
    State(admission): State<WriteAdmission>,
    request: Request,
    next: Next,
) -> Response {
    in_flight(&admission, request, next).await
}

/// Runs `request` holding a slot among the in-flight writes, or refuses it with 503.
async fn in_flight(admission: &WriteAdmission, request: Request, next: Next) -> Response {
    let Ok(_slot) = admission.in_flight.clone().try_acquire_owned() else {
        metrics::counter!("sigil_requests_refused_total", "reason" => "overloaded").increment(1);
        let response = refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "server is at capacity ({} writes in flight); retry shortly",
                admission.max_in_flight
            ),
            Duration::from_secs(1),
        );
        return drained(request, response).await;
    };
    next.run(request).await
}

/// Rekor's searches and batch fetches are POSTs that read: they neither queue behind the
/// sequencer nor count against the writes' limits.
const READS_BY_POST: [&str; 3] = [
    "/api/v1/index/retrieve",
    "/api/v1/log/entries/retrieve",
    "/api/v1/log/entries/retrieve/",
];

fn is_write(request: &Request) -> bool {
    !matches!(*request.method(), Method::GET | Method::HEAD)
        && !READS_BY_POST.contains(&request.uri().path())
}

/// Reads and drops a refused request's body before answering. Answering with the body
/// unread makes the server close the connection, and a keep-alive client that already
/// reuses it sees a broken request instead of the 503. Draining is network I/O only; a body
/// too large or too slow to drain gets `Connection: close` instead.
async fn drained(request: Request, mut response: Response) -> Response {
    const MAX_DRAIN: usize = 256 * 1024;
    let body = request.into_body();
    let drained = tokio::time::timeout(
        Duration::from_millis(500),
        axum::body::to_bytes(body, MAX_DRAIN),
    )
    .await;
    if !matches!(drained, Ok(Ok(_))) {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A router whose handlers wait for `release`, behind `layer`, and its in-flight limit of 1.
    fn held_router(
        admission: WriteAdmission,
        release: Arc<tokio::sync::Notify>,
        forwarded: bool,
    ) -> axum::Router {
        use axum::routing::post;
        let handler = move || {
            let release = release.clone();
            async move {
                release.notified().await;
                "done"
            }
        };
        let router = axum::Router::new()
            .route("/api/v1/log/entries", post(handler.clone()))
            .route("/api/v1/index/retrieve", post(handler.clone()))
            .route("/internal/append", post(handler));
        if forwarded {
            router.layer(axum::middleware::from_fn_with_state(
                admission,
                admit_forwarded,
            ))
        } else {
            router.layer(axum::middleware::from_fn_with_state(
                admission,
                admit_writes,
            ))
        }
    }

    async fn status_of(router: &axum::Router, path: &str) -> StatusCode {
        use tower::ServiceExt;
        let request = axum::http::Request::post(path)
            .body(axum::body::Body::empty())
            .unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn searches_by_post_do_not_take_write_slots_and_forwarded_writes_do() {
        for forwarded in [false, true] {
            let admission = WriteAdmission::new(1, None);
            let release = Arc::new(tokio::sync::Notify::new());
            let router = held_router(admission, release.clone(), forwarded);
            let path = if forwarded {
                "/internal/append"
            } else {
                "/api/v1/log/entries"
            };
            // One write holds the only slot...
            let r = router.clone();
            let holder = tokio::spawn(async move { status_of(&r, path).await });
            tokio::time::sleep(Duration::from_millis(50)).await;
            // ...so a second is refused, while a search still runs (unless forwarded, where
            // every request is a write).
            assert_eq!(
                status_of(&router, path).await,
                StatusCode::SERVICE_UNAVAILABLE
            );
            if !forwarded {
                let r = router.clone();
                let search =
                    tokio::spawn(async move { status_of(&r, "/api/v1/index/retrieve").await });
                tokio::time::sleep(Duration::from_millis(50)).await;
                release.notify_waiters();
                assert_eq!(search.await.unwrap(), StatusCode::OK);
            } else {
                release.notify_waiters();
            }
            assert_eq!(holder.await.unwrap(), StatusCode::OK);
        }
    }

    fn rate(s: &str) -> Rate {
        s.parse().unwrap()
    }

    #[test]
    fn rates_parse_with_units_and_bursts() {
        assert_eq!(
            rate("10/s"),
            Rate {
                per_second: 10.0,
                burst: 10.0
            }
        );
        assert_eq!(
            rate("60/m"),
            Rate {
                per_second: 1.0,
                burst: 60.0
            }
        );
        assert_eq!(
            rate("5,burst=20"),
            Rate {
                per_second: 5.0,
                burst: 20.0
            }
        );
        for bad in ["", "0/s", "-1", "10/h", "x/s", "5,burst=0", "NaN"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(rate("2/s"), 10);
        let t0 = Instant::now();
        assert!(limiter.check_at(&"a", t0).is_ok());
        assert!(limiter.check_at(&"a", t0).is_ok());
        let limited = limiter.check_at(&"a", t0).unwrap_err();
        assert_eq!(limited.retry_after, Duration::from_millis(500));
        // Another key has its own bucket.
        assert!(limiter.check_at(&"b", t0).is_ok());
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.check_at(&"a", t1).is_ok());
        assert!(limiter.check_at(&"a", t1).is_err());
    }

    #[test]
    fn the_table_is_bounded_and_forgets_refilled_buckets() {
        let limiter = RateLimiter::new(rate("1/s"), 2);
        let t0 = Instant::now();
        assert!(limiter.check_at(&1, t0).is_ok());
        assert!(limiter.check_at(&2, t0).is_ok());
        // Full, and nothing has refilled: a third key is refused rather than grow the table.
        assert!(limiter.check_at(&3, t0).is_err());
        assert_eq!(limiter.len(), 2);
        // Two seconds on, both buckets are full again and can be forgotten.
        let t2 = t0 + Duration::from_secs(2);
        assert!(limiter.check_at(&3, t2).is_ok());
        assert_eq!(limiter.len(), 1);
    }
}
