//! OIDC discovery + JWKS per issuer, cached; refreshed on expiry and (rate-limited) on an
//! unknown `kid`, so key rotation works without letting forged kids hammer the issuer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use sigil_log::admission::{Rate, RateLimiter};

use super::TokenError;
use super::keys::VerifyKey;

/// At most one refresh per issuer in this window when a token names an unknown key.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Key-set lifetime when the JWKS response has no `Cache-Control: max-age`.
pub const DEFAULT_KEYS_TTL: Duration = Duration::from_secs(300);
const MAX_KEYS_TTL: Duration = Duration::from_secs(24 * 3600);
/// While an issuer cannot be reached, its last keys keep serving for this long past their
/// expiry; after that a rotated-away (possibly compromised) key must not stay trusted.
const MAX_STALENESS: Duration = Duration::from_secs(3600);
/// After a failed first fetch, callers get the error without a new attempt for this long,
/// doubling with each further failure up to MAX_FAILURE_BACKOFF. The clock starts when the
/// failed fetch ends: a fetch can itself take FETCH_TIMEOUT.
const FAILURE_BACKOFF: Duration = Duration::from_secs(2);
const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(60);
/// Issuers matched only by a meta-issuer pattern are named by the (unverified) token, so a
/// caller picks the URL we fetch. New ones are discovered at this rate at most.
const NEW_PATTERN_ISSUERS_PER_MINUTE: f64 = 60.0;
const NEW_PATTERN_ISSUERS_BURST: f64 = 30.0;
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Above this many issuers in the cache, entries without keys are dropped.
const MAX_CACHED_ISSUERS: usize = 1024;

pub(crate) type KeySet = Arc<Vec<VerifyKey>>;

struct Cached {
    keys: KeySet,
    fetched: Instant,
    expires: Instant,
}

#[derive(Default)]
struct IssuerState {
    cached: Option<Cached>,
    /// When the last failed fetch ended, and why it failed.
    last_failure: Option<(Instant, String)>,
    consecutive_failures: u32,
    last_used: Option<Instant>,
    /// A client trusting only the issuer's configured CA (`CACert`), built on first use.
    private_ca_client: Option<reqwest::Client>,
}

pub(crate) struct KeyCache {
    http: reqwest::Client,
    issuers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<IssuerState>>>>,
    fetches: AtomicU64,
    min_refresh: Duration,
    new_pattern_issuers: RateLimiter<()>,
}

fn unavailable(issuer: &str, reason: impl Into<String>) -> TokenError {
    TokenError::IssuerUnavailable {
        issuer: issuer.to_string(),
        reason: reason.into(),
    }
}

impl KeyCache {
    pub fn new() -> Result<KeyCache, reqwest::Error> {
        let http = client_builder().build()?;
        Ok(KeyCache {
            http,
            issuers: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
            min_refresh: MIN_REFRESH_INTERVAL,
            new_pattern_issuers: RateLimiter::new(
                Rate {
                    per_second: NEW_PATTERN_ISSUERS_PER_MINUTE / 60.0,
                    burst: NEW_PATTERN_ISSUERS_BURST,
                },
                1,
            ),
        })
    }

    pub fn set_min_refresh_interval(&mut self, interval: Duration) {
        self.min_refresh = interval;
    }

    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The issuer's keys; refetched first if expired, or if `satisfied` says the cached set
    /// lacks the wanted key and the last fetch is older than the minimum refresh interval.
    /// `ca_cert`: PEM of the only CA to trust for this issuer's TLS, if it is not public.
    /// `from_pattern`: the issuer is trusted through a meta-issuer pattern, not by name.
    pub async fn keys(
        &self,
        issuer: &str,
        ca_cert: Option<&str>,
        from_pattern: bool,
        satisfied: impl Fn(&[VerifyKey]) -> bool,
    ) -> Result<KeySet, TokenError> {
        let entry = {
            let mut map = self.issuers.lock().expect("key cache lock poisoned");
            if !map.contains_key(issuer) {
                if from_pattern && let Err(limited) = self.new_pattern_issuers.check(&()) {
                    metrics::counter!("sigil_ca_new_issuers_refused_total").increment(1);
                    return Err(unavailable(
                        issuer,
                        format!(
                            "too many new issuers matched meta-issuer patterns recently; try again in {} s",
                            limited.retry_after.as_secs().max(1)
                        ),
                    ));
                }
                if map.len() >= MAX_CACHED_ISSUERS {
                    evict(&mut map);
                }
            }
            map.entry(issuer.to_string()).or_default().clone()
        };
        // One fetch per issuer at a time; concurrent callers wait and then reuse its result.
        let mut state = entry.lock().await;
        let now = Instant::now();
        state.last_used = Some(now);
        let must_fetch = match &state.cached {
            None => true,
            Some(c) if now >= c.expires => now >= c.fetched + self.min_refresh,
            Some(c) => !satisfied(&c.keys) && now >= c.fetched + self.min_refresh,
        };
        if must_fetch {
            if let (None, Some((at, reason))) = (&state.cached, &state.last_failure)
                && now < *at + backoff(state.consecutive_failures)
            {
                return Err(unavailable(issuer, reason.clone()));
            }
            let http = match ca_cert {
                None => self.http.clone(),
                Some(pem) => match &state.private_ca_client {
                    Some(client) => client.clone(),
                    None => {
                        let client = private_ca_client(pem).map_err(|e| unavailable(issuer, e))?;
                        state.private_ca_client = Some(client.clone());
                        client
                    }
                },
            };
            let result = self.fetch(&http, issuer).await;
            let ended = Instant::now();
            match result {
                Ok((keys, ttl)) => {
                    state.cached = Some(Cached {
                        keys: Arc::new(keys),
                        fetched: now,
                        expires: now + ttl,
                    });
                    state.last_failure = None;
                    state.consecutive_failures = 0;
                }
                Err(reason) => {
                    tracing::warn!(issuer, %reason, "refreshing issuer keys failed");
                    state.last_failure = Some((ended, reason.clone()));
                    state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                    match &mut state.cached {
                        // Keep serving the last good keys rather than failing every token.
                        Some(c) if now < c.expires + MAX_STALENESS => c.fetched = ended,
                        _ => {
                            state.cached = None;
                            return Err(unavailable(issuer, reason));
                        }
                    }
                }
            }
        }
        Ok(state
            .cached
            .as_ref()
            .expect("keys are cached after a successful fetch")
            .keys
            .clone())
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        issuer: &str,
    ) -> Result<(Vec<VerifyKey>, Duration), String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("sigil_ca_jwks_fetches_total").increment(1);
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let (discovery, _) = get_json(http, &discovery_url).await?;
        // OIDC Discovery §4.3: the document must name the issuer we asked about.
        if discovery.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err("its discovery document names a different issuer".into());
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("its discovery document has no jwks_uri")?;
        if issuer.starts_with("https://") && !jwks_uri.starts_with("https://") {
            return Err("its jwks_uri is not https".into());
        }
        let (jwks, max_age) = get_json(http, jwks_uri).await?;
        let keys: Vec<VerifyKey> = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("its JWKS has no keys array")?
            .iter()
            .filter_map(VerifyKey::from_jwk_json)
            .collect();
        if keys.is_empty() {
            return Err("its JWKS has no usable signing keys".into());
        }
        let ttl = max_age
            .unwrap_or(DEFAULT_KEYS_TTL)
            .clamp(MIN_REFRESH_INTERVAL, MAX_KEYS_TTL);
        Ok((keys, ttl))
    }
}

/// How long after the `failures`-th consecutive failure no new fetch is tried.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FAILURE_BACKOFF * 2u32.pow(doublings)).min(MAX_FAILURE_BACKOFF)
}

/// Makes room in a full cache: first every issuer that never yielded keys, then (if the cache
/// is still full, as when many pattern-matched issuers all serve keys) the least recently
/// used one. An entry that is busy (being fetched right now) is never dropped.
fn evict(map: &mut HashMap<String, Arc<tokio::sync::Mutex<IssuerState>>>) {
    map.retain(|_, e| e.try_lock().map_or(true, |s| s.cached.is_some()));
    if map.len() < MAX_CACHED_ISSUERS {
        return;
    }
    let oldest = map
        .iter()
        .filter_map(|(k, e)| Some((e.try_lock().ok()?.last_used, k.clone())))
        .min();
    if let Some((_, issuer)) = oldest {
        map.remove(&issuer);
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<(Value, Option<Duration>), String> {
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", describe(e)))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", response.status()));
    }
    let max_age = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_max_age);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: {}", describe(e)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("GET {url}: response too large"));
        }
        body.extend_from_slice(&chunk);
    }
    let value = serde_json::from_slice(&body).map_err(|_| format!("GET {url}: not JSON"))?;
    Ok((value, max_age))
}

/// The error and its causes ("error sending request: ... : invalid peer certificate ..."),
/// without the URL (the caller names it).
fn describe(error: reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let mut text = error.without_url().to_string();
    for cause in causes {
        text.push_str(": ");
        text.push_str(&cause);
    }
    text
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
}

/// A client for an issuer behind a private CA: that CA only, like Fulcio's `CACert`.
fn private_ca_client(pem: &str) -> Result<reqwest::Client, String> {
    let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| format!("its CACert is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("its CACert holds no certificate".into());
    }
    client_builder()
        .tls_certs_only(certs)
        .build()
        .map_err(|e| format!("cannot build a TLS client for its CACert: {e}"))
}

fn parse_max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            value
                .trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(6), MAX_FAILURE_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_FAILURE_BACKOFF);
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_issuer() {
        let t0 = Instant::now();
        let mut map = HashMap::new();
        for i in 0..MAX_CACHED_ISSUERS {
            let state = IssuerState {
                cached: Some(Cached {
                    keys: Arc::new(Vec::new()),
                    fetched: t0,
                    expires: t0,
                }),
                last_used: Some(t0 + Duration::from_secs(if i == 7 { 0 } else { 1 })),
                ..IssuerState::default()
            };
            map.insert(
                format!("https://issuer-{i}"),
                Arc::new(tokio::sync::Mutex::new(state)),
            );
        }
        evict(&mut map);
        assert_eq!(map.len(), MAX_CACHED_ISSUERS - 1);
        assert!(!map.contains_key("https://issuer-7"));
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            parse_max_age("public, max-age=600, must-revalidate"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(parse_max_age("no-cache"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }
}
