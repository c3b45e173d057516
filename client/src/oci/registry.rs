//! Talking to OCI registries.
//!
//! Blob uploads, cross-repository copies, token challenges and reference parsing go through
//! the `oci-client` crate. What it lacks is added here: every manifest and blob read is
//! bounded in size and checked against its digest (and against the registry's own digest
//! header); reads are plain GETs because `oci-client` 0.18 re-pings `/v2/` before every
//! anonymous request, which doubled the requests of a verification; the
//! registry's Content-Type is kept (a subject descriptor needs it), the referrers API is
//! told apart from the referrers tag schema, and the scheme is chosen by trying https first
//! and falling back to plain http only where that is allowed (loopback, or when asked).
//! Manifests are pushed here too: `oci-client` 0.18's `push_manifest_raw` panics when a
//! registry answers a push by digest without a `Location` header (go-containerregistry's
//! registry does), and a registry's answer must never crash the client.
//!
//! Credentials only go to the registry host they were found for: `oci-client` refuses to
//! authenticate requests to other hosts, and reqwest drops `Authorization` on a redirect to
//! another host (blob storage), which `tests/registry_auth.rs` checks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE,
};
use sigil_proto::oci::{self, Descriptor, Digest, Index};

use super::auth::{AuthError, Credential, CredentialSource};
use super::reference::ImageRef;

/// Manifests larger than this are refused (the distribution spec asks registries to accept
/// at least 4 MiB, so nothing legitimate is larger).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Attached blobs (bundles, signature payloads, attestations) larger than this are refused;
/// cosign's default limit for attachments.
pub const MAX_ATTACHMENT_BYTES: u64 = 128 * 1024 * 1024;
/// Pages of a referrers listing followed at most.
const MAX_REFERRER_PAGES: usize = 64;

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {registry}: {detail}")]
    Unreachable { registry: String, detail: String },
    #[error(
        "registry {registry} refused access to {repository} (HTTP {status}); give credentials with \
         --registry-username/--registry-password, --registry-token or `docker login`"
    )]
    Unauthorized {
        registry: String,
        repository: String,
        status: u16,
    },
    #[error(transparent)]
    Credentials(#[from] AuthError),
    #[error("{what} not found in the registry")]
    NotFound { what: String },
    #[error(
        "registry returned content for {what} that does not match its digest (expected {expected}, got {actual})"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge { what: String, limit: u64 },
    #[error("{what} is not valid: {detail}")]
    Malformed { what: String, detail: String },
    #[error("registry answered HTTP {status} for {what}: {message}")]
    Http {
        what: String,
        status: u16,
        message: String,
    },
    #[error("registry request for {what} failed: {detail}")]
    Request { what: String, detail: String },
    #[error("--registry-cacert: {0}")]
    CaCert(String),
}

/// How far plain http and unverified TLS are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Insecure {
    /// https only (loopback registries may still use http).
    #[default]
    No,
    /// Plain http allowed for any registry that does not speak https.
    AllowHttp,
    /// Plain http allowed, and TLS certificates not verified.
    AllowHttpAndUnverifiedTls,
}

#[derive(Clone, Debug)]
pub struct RegistryOptions {
    pub credentials: CredentialSource,
    /// Extra CA certificates (PEM) trusted for registry TLS.
    pub ca_certs_pem: Vec<Vec<u8>>,
    pub insecure: Insecure,
    pub timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            credentials: CredentialSource::default(),
            ca_certs_pem: Vec::new(),
            insecure: Insecure::No,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A manifest as fetched: its bytes, checked against `digest`, and the registry's media type.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
}

impl Fetched {
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(&self.media_type, &self.bytes);
        d.digest = self.digest.clone();
        d
    }
}

/// Where a referrers listing came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrersSource {
    /// `GET /v2/<name>/referrers/<digest>` (OCI distribution 1.1).
    Api,
    /// The index under tag `sha256-<hex>` (the referrers tag schema).
    TagSchema,
}

#[derive(Clone, Debug)]
pub struct Referrers {
    /// The API's answer, when the registry has the API.
    pub api: Option<Index>,
    /// The tag schema index, when the tag exists.
    pub tag_schema: Option<Index>,
}

impl Referrers {
    /// Every referrer once, with where it was listed (the API first).
    pub fn all(&self) -> Vec<(ReferrersSource, &Descriptor)> {
        let mut out: Vec<(ReferrersSource, &Descriptor)> = Vec::new();
        let lists = [
            (ReferrersSource::Api, self.api.as_ref()),
            (ReferrersSource::TagSchema, self.tag_schema.as_ref()),
        ];
        for (source, index) in lists {
            for d in index.map(|i| i.manifests.as_slice()).unwrap_or_default() {
                if !out.iter().any(|(_, seen)| seen.digest == d.digest) {
                    out.push((source, d));
                }
            }
        }
        out
    }
}

pub struct Registry {
    options: RegistryOptions,
    hosts: tokio::sync::Mutex<HashMap<String, Arc<Host>>>,
    /// One HTTP client for every host (its TLS roots are loaded once).
    http: std::sync::OnceLock<reqwest::Client>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Challenge {
    None,
    Basic,
    Bearer,
}

/// One registry host: the scheme that works, its challenge, the clients and tokens.
struct Host {
    name: String,
    base: String,
    scheme: &'static str,
    /// Built on first use: only writes, copies and token exchanges need it, and building
    /// one loads the system's TLS roots (twice, in oci-client 0.18).
    oci: tokio::sync::OnceCell<oci_client::Client>,
    options: RegistryOptions,
    http: reqwest::Client,
    credential: Credential,
    challenge: Challenge,
    tokens: tokio::sync::Mutex<HashMap<(String, bool), Option<HeaderValue>>>,
}

/// The system's CA roots from its one bundle file (`$SSL_CERT_FILE`, else the distribution's),
/// unless only a certificate directory was asked for (`$SSL_CERT_DIR` without
/// `$SSL_CERT_FILE`). Reading the bundle is one file; the platform default walks every file
/// of `/etc/ssl/certs`, which costs 5 ms of CPU and 10 ms of wall time per command.
fn system_roots() -> Option<Vec<reqwest::Certificate>> {
    if std::env::var_os("SSL_CERT_DIR").is_some() && std::env::var_os("SSL_CERT_FILE").is_none() {
        return None;
    }
    let candidates = [
        std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from),
        Some("/etc/ssl/certs/ca-certificates.crt".into()),
        Some("/etc/pki/tls/certs/ca-bundle.crt".into()),
        Some("/etc/ssl/ca-bundle.pem".into()),
        Some("/etc/ssl/cert.pem".into()),
    ];
    let pem = candidates
        .into_iter()
        .flatten()
        .find_map(|path| std::fs::read(path).ok())?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).ok()?;
    (!roots.is_empty()).then_some(roots)
}

/// Credentials go to the token server a registry names in its bearer challenge, so that
/// server is held to go-containerregistry's rules (its #2258): https unless the registry
/// itself is plain http, and no private, loopback or link-local address unless the registry
/// is on such an address too (a public registry must not aim credentials into the local
/// network or at a cloud metadata service).
#[doc(hidden)] // pub for fuzz/ only
pub fn check_realm(challenge: &str, registry: &str, scheme: &str) -> Result<(), RegistryError> {
    let refuse = |why: String| RegistryError::Unreachable {
        registry: registry.to_string(),
        detail: format!("refusing its token server: {why}"),
    };
    let realm = challenge
        .split_once("realm=\"")
        .and_then(|(_, rest)| rest.split('"').next())
        .ok_or_else(|| refuse("the bearer challenge names no realm".into()))?;
    let url = reqwest::Url::parse(realm).map_err(|e| refuse(format!("realm {realm:?}: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if scheme == "http" => {}
        other => {
            return Err(refuse(format!(
                "realm {realm} uses {other}, not https, for a registry reached over {scheme}"
            )));
        }
    }
    let realm_host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    if realm_host == registry || is_private_address(registry) {
        return Ok(());
    }
    if is_private_address(url.host_str().unwrap_or_default()) {
        return Err(refuse(format!(
            "realm {realm} is a private or link-local address and the registry is not"
        )));
    }
    Ok(())
}

/// A loopback, private (RFC 1918, unique local) or link-local IP literal, or `localhost`.
fn is_private_address(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(h, port)| !h.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}

fn is_loopback(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn request_error(what: &str, e: &reqwest::Error) -> RegistryError {
    RegistryError::Request {
        what: what.to_string(),
        detail: error_chain(e),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Reads a body up to `limit` bytes; more is an error, not a truncation.
async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        what: what.to_string(),
        limit: limit as u64,
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| request_error(what, &e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error for an answer that is not the one expected, with the start of its body.
async fn unexpected(response: reqwest::Response, what: String) -> RegistryError {
    let status = response.status().as_u16();
    let body = error_body(response, &what).await;
    http_error(what, status, &body)
}

/// The start of an error answer's body (what a registry says about the error fits).
async fn error_body(response: reqwest::Response, what: &str) -> Vec<u8> {
    read_bounded(response, 64 * 1024, what)
        .await
        .unwrap_or_default()
}

fn http_error(what: String, status: u16, body: &[u8]) -> RegistryError {
    RegistryError::Http {
        what,
        status,
        message: excerpt(body),
    }
}

/// A short, printable excerpt of an error body.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text.to_string()
    }
}

fn media_type_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)?
        .to_str()
        .ok()
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .filter(|v| !v.is_empty())
}

fn oci_error(
    what: &str,
    host: &Host,
    repository: &str,
    e: oci_client::errors::OciDistributionError,
) -> RegistryError {
    use oci_client::errors::{DigestError, OciDistributionError as E};
    match e {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => RegistryError::Unauthorized {
            registry: host.name.clone(),
            repository: repository.to_string(),
            status: 401,
        },
        E::DigestError(DigestError::VerificationError { expected, actual }) => {
            RegistryError::DigestMismatch {
                what: what.to_string(),
                expected,
                actual,
            }
        }
        E::ServerError { code, message, .. } => RegistryError::Http {
            what: what.to_string(),
            status: code,
            message: excerpt(message.as_bytes()),
        },
        E::RegistryError { envelope, .. } => RegistryError::Http {
            what: what.to_string(),
            status: 400,
            message: envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        },
        E::RequestError(e) => request_error(what, &e),
        other => RegistryError::Request {
            what: what.to_string(),
            detail: error_chain(&other),
        },
    }
}

impl Registry {
    pub fn new(options: RegistryOptions) -> Registry {
        Registry {
            options,
            hosts: tokio::sync::Mutex::new(HashMap::new()),
            http: std::sync::OnceLock::new(),
        }
    }

    fn http_client(&self) -> Result<reqwest::Client, RegistryError> {
        if let Some(c) = self.http.get() {
            return Ok(c.clone());
        }
        let client = self.build_http_client()?;
        Ok(self.http.get_or_init(|| client).clone())
    }

    fn build_http_client(&self) -> Result<reqwest::Client, RegistryError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("sigil/", env!("CARGO_PKG_VERSION")))
            .timeout(self.options.timeout)
            .connect_timeout(Duration::from_secs(10));
        let mut extra = Vec::new();
        for pem in &self.options.ca_certs_pem {
            extra.extend(
                reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| RegistryError::CaCert(e.to_string()))?,
            );
        }
        builder = match system_roots() {
            Some(mut roots) => {
                roots.extend(extra);
                builder.tls_certs_only(roots)
            }
            None => extra
                .into_iter()
                .fold(builder, |b, cert| b.add_root_certificate(cert)),
        };
        if self.options.insecure == Insecure::AllowHttpAndUnverifiedTls {
            builder = builder.danger_accept_invalid_certs(true);
        }
        builder
            .build()
            .map_err(|e| RegistryError::CaCert(error_chain(&e)))
    }

    /// The host, connected once: scheme chosen, challenge known, credentials resolved.
    async fn host(&self, name: &str) -> Result<Arc<Host>, RegistryError> {
        let mut hosts = self.hosts.lock().await;
        if let Some(h) = hosts.get(name) {
            return Ok(h.clone());
        }
        let http = self.http_client()?;
        let loopback = is_loopback(name);
        let http_allowed = self.options.insecure != Insecure::No || loopback;
        // Loopback traffic never leaves the machine, and a loopback registry is most often
        // plain http: asking that first spares a TLS handshake that would fail.
        let schemes: &[&'static str] = if loopback {
            &["http", "https"]
        } else if http_allowed {
            &["https", "http"]
        } else {
            &["https"]
        };
        // A scheme counts only when `/v2/` answers as a registry does (200, or 401/403 with a
        // challenge): a plain-http request to an https server gets a 400 page, which must not
        // pass for a registry.
        let mut failures = Vec::new();
        let mut found = None;
        for scheme in schemes {
            match http.get(format!("{scheme}://{name}/v2/")).send().await {
                Ok(response)
                    if matches!(
                        response.status(),
                        StatusCode::OK | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                    ) =>
                {
                    found = Some((*scheme, response));
                    break;
                }
                Ok(response) => failures.push(format!(
                    "{scheme}: /v2/ answered HTTP {}",
                    response.status().as_u16()
                )),
                Err(e) => failures.push(format!("{scheme}: {}", error_chain(&e))),
            }
        }
        let Some((scheme, response)) = found else {
            let mut detail = failures.join("; ");
            if !http_allowed {
                detail.push_str(
                    " (plain http is only tried for loopback registries or with \
                     --allow-http-registry / --allow-insecure-registry)",
                );
            }
            return Err(RegistryError::Unreachable {
                registry: name.to_string(),
                detail,
            });
        };
        let challenge = match response.status() {
            StatusCode::UNAUTHORIZED => {
                let header = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let scheme_word = header
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if scheme_word == "bearer" {
                    check_realm(&header, name, scheme)?;
                    Challenge::Bearer
                } else {
                    Challenge::Basic
                }
            }
            _ => Challenge::None,
        };
        let credential = self.options.credentials.for_registry(name)?;
        let host = Arc::new(Host {
            name: name.to_string(),
            base: format!("{scheme}://{name}"),
            scheme,
            oci: tokio::sync::OnceCell::new(),
            options: self.options.clone(),
            http,
            credential,
            challenge,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
        });
        hosts.insert(name.to_string(), host.clone());
        Ok(host)
    }

    /// The scheme a registry answered on (`https` or `http`).
    pub async fn scheme(&self, registry: &str) -> Result<String, RegistryError> {
        Ok(self.host(registry).await?.scheme.to_string())
    }

    /// Fetches a manifest by tag or digest. `Ok(None)` when the registry does not have it.
    pub async fn manifest(&self, image: &ImageRef) -> Result<Option<Fetched>, RegistryError> {
        let host = self.host(image.registry()).await?;
        host.manifest(image).await
    }

    /// Fetches a manifest that must exist.
    pub async fn require_manifest(&self, image: &ImageRef) -> Result<Fetched, RegistryError> {
        self.manifest(image)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                what: format!("manifest {image}"),
            })
    }

    /// Fetches a blob of `repository` named by `descriptor`, bounded by `limit` and checked
    /// against the descriptor's digest and size.
    pub async fn blob(
        &self,
        repository: &ImageRef,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let host = self.host(repository.registry()).await?;
        host.blob(repository, descriptor, limit).await
    }

    /// Uploads `content` as a blob unless the repository already has it.
    pub async fn push_blob(
        &self,
        repository: &ImageRef,
        content: &[u8],
    ) -> Result<Digest, RegistryError> {
        let host = self.host(repository.registry()).await?;
        let digest = Digest::sha256_of(content);
        let reference = repository.at_digest(&digest).to_oci();
        let what = format!("blob {digest}");
        let exists = host
            .oci()
            .await
            .blob_exists(&reference, &digest.to_string())
            .await
            .map_err(|e| oci_error(&what, &host, repository.repository(), e))?;
        if exists {
            return Ok(digest);
        }
        let mut attempt = 0;
        loop {
            let pushed = host
                .oci()
                .await
                .push_blob(&reference, content.to_vec(), &digest.to_string())
                .await;
            match settle_upload(&host, &reference, &digest, pushed).await {
                Ok(()) => return Ok(digest),
                Err(e) if attempt < PUSH_RETRIES && is_transient(&e) => {
                    attempt += 1;
                    tokio::time::sleep(push_retry_delay(attempt)).await;
                }
                Err(e) => return Err(oci_error(&what, &host, repository.repository(), e)),
            }
        }
    }

    /// Uploads a manifest under `target`'s tag (or its digest when it has no tag) and
    /// returns the manifest's digest.
    pub async fn push_manifest(
        &self,
        target: &ImageRef,
        content: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let host = self.host(target.registry()).await?;
        let digest = Digest::sha256_of(content);
        let reference = match target.tag() {
            Some(t) => target.at_tag(t),
            None => target.at_digest(&digest),
        };
        let what = format!("manifest {reference}");
        let url = format!(
            "{}/v2/{}/manifests/{}",
            host.base,
            target.repository(),
            reference.manifest_reference()
        );
        let mut attempt = 0;
        let response = loop {
            let mut request = host
                .http
                .put(&url)
                .header(CONTENT_TYPE, media_type)
                .body(content.to_vec());
            if let Some(auth) = host.authorization(target.repository(), true).await? {
                request = request.header(AUTHORIZATION, auth);
            }
            let response = request.send().await.map_err(|e| request_error(&what, &e))?;
            let status = response.status();
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                return Err(RegistryError::Unauthorized {
                    registry: host.name.clone(),
                    repository: target.repository().to_string(),
                    status: status.as_u16(),
                });
            }
            if status.is_success() {
                break response;
            }
            let body = error_body(response, &what).await;
            if attempt < PUSH_RETRIES && names_a_blob_being_rewritten(&body) {
                attempt += 1;
                tokio::time::sleep(push_retry_delay(attempt)).await;
                continue;
            }
            return Err(http_error(what, status.as_u16(), &body));
        };
        if let Some(stored) = response
            .headers()
            .get(DOCKER_CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok())
            && stored.algorithm() == digest.algorithm()
            && stored != digest
        {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: digest.to_string(),
                actual: stored.to_string(),
            });
        }
        Ok(digest)
    }

    /// Copies a blob between repositories (mounting it when both are on one registry),
    /// streamed so that large layers never sit in memory.
    pub async fn copy_blob(
        &self,
        from: &ImageRef,
        to: &ImageRef,
        descriptor: &Descriptor,
    ) -> Result<(), RegistryError> {
        let dst = self.host(to.registry()).await?;
        let digest = descriptor.digest.to_string();
        let what = format!("blob {digest}");
        let target = to.at_digest(&descriptor.digest).to_oci();
        if dst
            .oci()
            .await
            .blob_exists(&target, &digest)
            .await
            .map_err(|e| oci_error(&what, &dst, to.repository(), e))?
        {
            return Ok(());
        }
        if from.registry() == to.registry()
            && dst
                .oci()
                .await
                .mount_blob(&target, &from.to_oci(), &digest)
                .await
                .is_ok()
            && dst
                .oci()
                .await
                .blob_exists(&target, &digest)
                .await
                .unwrap_or(false)
        {
            return Ok(());
        }
        let src = self.host(from.registry()).await?;
        let stream = src
            .oci()
            .await
            .pull_blob_stream(
                &from.at_digest(&descriptor.digest).to_oci(),
                &oci_descriptor(descriptor),
            )
            .await
            .map_err(|e| oci_error(&what, &src, from.repository(), e))?;
        let stream =
            stream.map(|chunk| chunk.map_err(oci_client::errors::OciDistributionError::IoError));
        let pushed = dst
            .oci()
            .await
            .push_blob_stream(&target, stream, &digest, Some(descriptor.size))
            .await;
        settle_upload(&dst, &target, &descriptor.digest, pushed)
            .await
            .map_err(|e| oci_error(&what, &dst, to.repository(), e))?;
        Ok(())
    }

    /// What refers to `subject` (which must carry a digest): the referrers API's answer when
    /// the registry has the API, and the referrers tag schema's index when that tag exists.
    pub async fn referrers(&self, subject: &ImageRef) -> Result<Referrers, RegistryError> {
        let host = self.host(subject.registry()).await?;
        let digest = subject.digest().ok_or_else(|| RegistryError::Malformed {
            what: subject.to_string(),
            detail: "referrers are listed for a digest, not a tag".into(),
        })?;
        let tag = subject.at_tag(&digest.tag_stem());
        let (api, tagged) =
            futures_util::join!(host.referrers_api(subject, digest), host.manifest(&tag));
        let api = api?;
        let tag_schema = match tagged? {
            None => None,
            Some(f) => Some(
                Index::from_json(&f.bytes).map_err(|e| RegistryError::Malformed {
                    what: format!("referrers tag {tag}"),
                    detail: e.to_string(),
                })?,
            ),
        };
        Ok(Referrers { api, tag_schema })
    }

    /// Whether the registry serves the referrers API for `subject`'s repository.
    pub async fn has_referrers_api(&self, subject: &ImageRef) -> Result<bool, RegistryError> {
        let host = self.host(subject.registry()).await?;
        let digest = subject.digest().ok_or_else(|| RegistryError::Malformed {
            what: subject.to_string(),
            detail: "referrers are listed for a digest, not a tag".into(),
        })?;
        Ok(host.referrers_api(subject, digest).await?.is_some())
    }
}

/// How often an upload that failed on the registry's side is tried again. Blobs and manifests
/// are content-addressed, so sending one twice cannot store anything wrong.
const PUSH_RETRIES: u32 = 3;

/// The wait before retry `attempt` (from 1) of a blob or manifest upload: 0.2, 0.4, 0.8 s.
fn push_retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(100 << attempt.min(PUSH_RETRIES))
}

/// Whether an upload that did not land might land when sent again: the registry failed
/// (5xx) or the connection did, as opposed to a refusal that would be repeated.
fn is_transient(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::RequestError(e) => {
            e.is_connect() || e.is_timeout() || e.status().is_some_and(|s| s.is_server_error())
        }
        E::ServerError { code, .. } => *code >= 500,
        _ => false,
    }
}

/// Whether a manifest was refused because a blob it names looked absent. The distribution
/// registry's filesystem storage rewrites a repository's link to a blob (truncate, then write)
/// each time a client commits that blob; a manifest checked in between names a blob that is
/// there a moment later. Signers attaching to one image at once all commit the same empty
/// config blob, so this happens in practice; seen in this project's racing-writers test.
fn names_a_blob_being_rewritten(body: &[u8]) -> bool {
    body.windows(21).any(|w| w == b"MANIFEST_BLOB_UNKNOWN")
}

/// Whether a blob upload landed, whatever the upload call said. Two cases make the call
/// fail although the blob is there: some registries (go-containerregistry's among them)
/// finish with 201 but no `Location`, which the distribution spec requires and
/// `oci-client` insists on; and the distribution registry answers 500 to some of several
/// clients committing the same blob at once (signers sharing one config blob), after
/// another of them stored it.
async fn settle_upload(
    host: &Host,
    reference: &oci_client::Reference,
    digest: &Digest,
    pushed: Result<String, oci_client::errors::OciDistributionError>,
) -> Result<(), oci_client::errors::OciDistributionError> {
    match pushed {
        Ok(_) => Ok(()),
        Err(e) => {
            let landed = host
                .oci()
                .await
                .blob_exists(reference, &digest.to_string())
                .await
                .unwrap_or(false);
            if landed { Ok(()) } else { Err(e) }
        }
    }
}

fn build_oci_client(options: &RegistryOptions, scheme: &str) -> oci_client::Client {
    use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
    oci_client::Client::new(ClientConfig {
        protocol: if scheme == "http" {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        extra_root_certificates: options
            .ca_certs_pem
            .iter()
            .map(|pem| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.clone(),
            })
            .collect(),
        accept_invalid_certificates: options.insecure == Insecure::AllowHttpAndUnverifiedTls,
        // Attachments are small; two requests beat a chunked session.
        use_monolithic_push: true,
        read_timeout: Some(options.timeout),
        connect_timeout: Some(Duration::from_secs(10)),
        user_agent: concat!("sigil/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    })
}

fn oci_descriptor(d: &Descriptor) -> oci_client::manifest::OciDescriptor {
    oci_client::manifest::OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.to_string(),
        size: i64::try_from(d.size).unwrap_or(i64::MAX),
        ..Default::default()
    }
}

impl Host {
    /// The oci-client for this host, built on first use with the host's credentials.
    async fn oci(&self) -> &oci_client::Client {
        self.oci
            .get_or_init(|| async {
                let client = build_oci_client(&self.options, self.scheme);
                client
                    .store_auth_if_needed(&self.name, &self.credential.to_oci())
                    .await;
                client
            })
            .await
    }

    /// The Authorization header for direct requests to `repository`.
    async fn authorization(
        &self,
        repository: &str,
        push: bool,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let header = |value: String| {
            let mut v = HeaderValue::from_str(&value).map_err(|_| RegistryError::Malformed {
                what: "registry credentials".into(),
                detail: "not a valid header value".into(),
            })?;
            v.set_sensitive(true);
            Ok::<_, RegistryError>(Some(v))
        };
        match (self.challenge, &self.credential) {
            (Challenge::None, _) | (Challenge::Basic, Credential::Anonymous) => Ok(None),
            (Challenge::Basic, Credential::Basic { username, password }) => header(format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}"))
            )),
            (Challenge::Basic, Credential::Bearer(token)) => header(format!("Bearer {token}")),
            (Challenge::Bearer, _) => {
                let key = (repository.to_string(), push);
                let mut tokens = self.tokens.lock().await;
                if let Some(t) = tokens.get(&key) {
                    return Ok(t.clone());
                }
                let reference = oci_client::Reference::with_tag(
                    self.name.clone(),
                    repository.to_string(),
                    "latest".into(),
                );
                let op = if push {
                    oci_client::RegistryOperation::Push
                } else {
                    oci_client::RegistryOperation::Pull
                };
                let token = self
                    .oci()
                    .await
                    .auth(&reference, &self.credential.to_oci(), op)
                    .await
                    .map_err(|e| oci_error("a registry token", self, repository, e))?;
                let value = match token {
                    Some(t) => header(format!("Bearer {t}"))?,
                    None => None,
                };
                tokens.insert(key, value.clone());
                Ok(value)
            }
        }
    }

    async fn get(
        &self,
        url: &str,
        repository: &str,
        accept: &str,
        what: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut request = self.http.get(url).header(ACCEPT, accept);
        if let Some(auth) = self.authorization(repository, false).await? {
            request = request.header(AUTHORIZATION, auth);
        }
        let response = request.send().await.map_err(|e| request_error(what, &e))?;
        if matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(RegistryError::Unauthorized {
                registry: self.name.clone(),
                repository: repository.to_string(),
                status: response.status().as_u16(),
            });
        }
        Ok(response)
    }

    async fn manifest(&self, image: &ImageRef) -> Result<Option<Fetched>, RegistryError> {
        let what = format!("manifest {image}");
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base,
            image.repository(),
            image.manifest_reference()
        );
        let accept = oci::MANIFEST_MEDIA_TYPES.join(", ");
        let response = self.get(&url, image.repository(), &accept, &what).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(unexpected(response, what).await);
        }
        let headers = response.headers().clone();
        let bytes = read_bounded(response, MAX_MANIFEST_BYTES, &what).await?;
        let computed = Digest::sha256_of(&bytes);
        let mismatch = |expected: &Digest| RegistryError::DigestMismatch {
            what: what.clone(),
            expected: expected.to_string(),
            actual: computed.to_string(),
        };
        let digest = match image.digest() {
            Some(expected) if !expected.matches(&bytes) => return Err(mismatch(expected)),
            Some(expected) => expected.clone(),
            None => computed.clone(),
        };
        if let Some(header) = headers
            .get(DOCKER_CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok())
            && !header.matches(&bytes)
        {
            return Err(mismatch(&header));
        }
        let media_type = media_type_of(&headers)
            .filter(|t| t != "application/json" && t != "text/plain")
            .or_else(|| oci::declared_media_type(&bytes))
            .ok_or_else(|| RegistryError::Malformed {
                what: what.clone(),
                detail: "neither the registry nor the manifest names its media type".into(),
            })?;
        Ok(Some(Fetched {
            bytes,
            digest,
            media_type,
        }))
    }

    async fn blob(
        &self,
        repository: &ImageRef,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("blob {}", descriptor.digest);
        if descriptor.size > limit {
            return Err(RegistryError::TooLarge { what, limit });
        }
        let url = format!(
            "{}/v2/{}/blobs/{}",
            self.base,
            repository.repository(),
            descriptor.digest
        );
        // A redirect to blob storage on another host is followed without the Authorization
        // header (reqwest drops it across hosts).
        let response = self
            .get(&url, repository.repository(), "*/*", &what)
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound { what });
        }
        if status != StatusCode::OK {
            return Err(unexpected(response, what).await);
        }
        // The descriptor's size bounds the read: more bytes than it names is content that
        // cannot match the digest.
        let limit_bytes = usize::try_from(descriptor.size).unwrap_or(usize::MAX);
        let body = read_bounded(response, limit_bytes, &what)
            .await
            .map_err(|e| match e {
                RegistryError::TooLarge { what, .. } => RegistryError::DigestMismatch {
                    what,
                    expected: format!("{} ({} bytes)", descriptor.digest, descriptor.size),
                    actual: "more bytes than the descriptor's size".into(),
                },
                other => other,
            })?;
        if !descriptor.digest.matches(&body) {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: descriptor.digest.to_string(),
                actual: Digest::sha256_of(&body).to_string(),
            });
        }
        Ok(body)
    }

    /// The referrers API's index for `digest`; `None` when the registry has no such API.
    async fn referrers_api(
        &self,
        subject: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<Index>, RegistryError> {
        let what = format!("referrers of {subject}");
        let mut url = format!(
            "{}/v2/{}/referrers/{}",
            self.base,
            subject.repository(),
            digest
        );
        let mut merged: Option<Index> = None;
        for _ in 0..MAX_REFERRER_PAGES {
            let response = self
                .get(&url, subject.repository(), oci::INDEX_V1, &what)
                .await?;
            let status = response.status();
            let is_index = media_type_of(response.headers()).as_deref() == Some(oci::INDEX_V1);
            if status != StatusCode::OK || !is_index {
                // 404/400/405: no API (distribution 2.x, ghcr). Anything else that is not an
                // index is treated the same way, as cosign does.
                if merged.is_none()
                    && (status.is_client_error() || (status == StatusCode::OK && !is_index))
                {
                    return Ok(None);
                }
                if merged.is_none() {
                    return Err(unexpected(response, what).await);
                }
                break;
            }
            let next = next_link(response.headers(), &self.base);
            let bytes = read_bounded(response, MAX_MANIFEST_BYTES, &what).await?;
            let page = Index::from_json(&bytes).map_err(|e| RegistryError::Malformed {
                what: what.clone(),
                detail: e.to_string(),
            })?;
            match &mut merged {
                None => merged = Some(page),
                Some(m) => m.manifests.extend(page.manifests),
            }
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(merged)
    }
}

/// `Link: </v2/...?last=x>; rel="next"` as the distribution spec pages listings; only
/// same-registry links are followed.
#[doc(hidden)] // pub for fuzz/ only
pub fn next_link(headers: &HeaderMap, base: &str) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    let (target, params) = link.split_once(';')?;
    if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
        return None;
    }
    let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
    if target.starts_with('/') {
        Some(format!("{base}{target}"))
    } else if target.starts_with(&format!("{base}/")) {
        Some(target.to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for yes in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "reg.localhost:1",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["registry.example", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn token_servers_are_held_to_https_and_public_addresses() {
        let challenge = |realm: &str| format!("Bearer realm=\"{realm}\",service=\"r\"");
        // The usual case: a public registry and its public https token server.
        check_realm(
            &challenge("https://auth.example.com/token"),
            "registry.example.com",
            "https",
        )
        .unwrap();
        // A public registry aiming at the local network or a metadata service.
        for realm in [
            "https://169.254.169.254/latest",
            "https://10.0.0.5/token",
            "https://127.0.0.1:8080/token",
            "https://[fd00:ec2::254]/token",
            "https://localhost/token",
        ] {
            assert!(
                check_realm(&challenge(realm), "registry.example.com", "https").is_err(),
                "{realm}"
            );
        }
        assert!(
            check_realm(
                &challenge("http://auth.example.com/token"),
                "registry.example.com",
                "https"
            )
            .is_err()
        );
        assert!(check_realm("Bearer service=\"r\"", "registry.example.com", "https").is_err());
        // A registry on a private address may have its token server there too.
        check_realm(
            &challenge("http://127.0.0.1:9000/token"),
            "127.0.0.1:5000",
            "http",
        )
        .unwrap();
        check_realm(
            &challenge("https://10.0.0.6/token"),
            "10.0.0.5:443",
            "https",
        )
        .unwrap();
        // The registry itself is always an acceptable realm.
        check_realm(
            &challenge("https://registry.example.com/token"),
            "registry.example.com",
            "https",
        )
        .unwrap();
    }

    #[test]
    fn only_same_registry_next_links_are_followed() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static("</v2/r/referrers/x?n=1&last=a>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&h, "http://reg:5000").as_deref(),
            Some("http://reg:5000/v2/r/referrers/x?n=1&last=a")
        );
        h.insert(
            "link",
            HeaderValue::from_static("<https://elsewhere/v2/x>; rel=\"next\""),
        );
        assert_eq!(next_link(&h, "http://reg:5000"), None);
        h.insert("link", HeaderValue::from_static("</v2/x>; rel=\"prev\""));
        assert_eq!(next_link(&h, "http://reg:5000"), None);
    }

    #[test]
    fn referrers_are_deduplicated_across_sources() {
        let a = Descriptor::new(oci::MANIFEST_V1, b"a");
        let b = Descriptor::new(oci::MANIFEST_V1, b"b");
        let mut api = Index::empty();
        api.manifests = vec![a.clone()];
        let mut tag = Index::empty();
        tag.manifests = vec![a.clone(), b.clone()];
        let r = Referrers {
            api: Some(api),
            tag_schema: Some(tag),
        };
        let all = r.all();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], (ReferrersSource::Api, &a));
        assert_eq!(all[1], (ReferrersSource::TagSchema, &b));
    }
}
