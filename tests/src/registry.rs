//! Real OCI registries for tests, on loopback:
//! - Debian's `docker-registry` (CNCF distribution 2.8): no referrers API, so the referrers
//!   tag schema; optionally with htpasswd Basic auth and TLS from a test CA;
//! - go-containerregistry's registry with the referrers API (`tests/peers/referrers-registry`).
//!
//! `docker-registry` (and `apache2-utils` for `htpasswd`) are installed from Debian's packages
//! when missing; failing that, the test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::peers::{TestTls, free_port, missing_tool, test_tls};

static INSTALL: Mutex<()> = Mutex::new(());

const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

fn ensure_installed() {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if Path::new(DOCKER_REGISTRY).exists() && which("htpasswd") {
        return;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap_or_else(|e| {
                missing_tool("apt-get", &format!("installing docker-registry: {e}"))
            })
    };
    let update = apt(&["update", "-qq"]);
    let install = apt(&["install", "-y", "-qq", "docker-registry", "apache2-utils"]);
    if !install.status.success() {
        missing_tool(
            "docker-registry",
            &format!(
                "apt-get install docker-registry apache2-utils failed:\n{}{}",
                String::from_utf8_lossy(&update.stderr),
                String::from_utf8_lossy(&install.stderr)
            ),
        );
    }
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Options for [`DockerRegistry::start_with`].
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// htpasswd Basic auth with this username and password.
    pub basic_auth: Option<(String, String)>,
    /// Bearer-token auth (distribution's `auth: token`) against this token server.
    pub token_auth: Option<TokenAuth>,
    /// Serve https with a certificate from a fresh test CA.
    pub tls: bool,
}

/// What the registry needs to accept a [`TokenServer`]'s tokens.
#[derive(Clone, Debug)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub root_cert: PathBuf,
}

/// A running `docker-registry`, killed on drop.
pub struct DockerRegistry {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    tls: Option<TestTls>,
    config: PathBuf,
}

impl DockerRegistry {
    /// Plain http, anonymous.
    pub fn start() -> DockerRegistry {
        DockerRegistry::start_with(RegistryOptions::default())
    }

    pub fn start_with(options: RegistryOptions) -> DockerRegistry {
        ensure_installed();
        let dir = tempfile::tempdir().expect("registry dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        let tls = options.tls.then(test_tls);
        if let Some(tls) = &tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                tls.cert_path().display(),
                tls.key_path().display()
            ));
        }
        if let Some((user, password)) = &options.basic_auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .unwrap_or_else(|e| missing_tool("htpasswd", &e.to_string()));
            assert!(out.status.success(), "htpasswd failed");
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: sigil-test\n    path: {}\n",
                path.display()
            ));
        }
        if let Some(t) = &options.token_auth {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                t.realm,
                t.service,
                t.issuer,
                t.root_cert.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut registry = DockerRegistry {
            child: None,
            port,
            dir,
            tls,
            config: config_path,
        };
        registry.restart();
        registry
    }

    /// `127.0.0.1:<port>`, as image references name it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// PEM of the test CA when serving TLS.
    pub fn ca_path(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(TestTls::ca_path)
    }

    /// Where the registry keeps its blobs (`.../blobs/sha256/<2 hex>/<hex>/data`), so a test
    /// can make it serve content that does not match its digest.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Stops the registry (it stays stopped until [`Self::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the registry on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| missing_tool("docker-registry", &e.to_string()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(self.dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("docker-registry exited during start-up ({status}):\n{log}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("docker-registry did not listen within 20 s");
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// go-containerregistry's in-memory registry with the referrers API, killed on drop (and
/// exiting by itself when this process dies: its stdin closes).
pub struct ReferrersRegistry {
    child: Child,
    _stdin: ChildStdin,
    host: String,
}

impl ReferrersRegistry {
    pub fn start() -> ReferrersRegistry {
        let mut child = Command::new(crate::go_peers::referrers_registry())
            .args(["-listen", "127.0.0.1:0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start referrers-registry");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the registry's address");
        let host = line.trim().to_string();
        assert!(
            host.starts_with("127.0.0.1:"),
            "unexpected address {host:?}"
        );
        // Keep draining stdout so the registry never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink);
        });
        ReferrersRegistry {
            child,
            _stdin: stdin,
            host,
        }
    }

    pub fn host(&self) -> String {
        self.host.clone()
    }
}

impl Drop for ReferrersRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds and pushes test images with crane.
pub struct Images {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Default for Images {
    fn default() -> Self {
        Images::new()
    }
}

impl Images {
    pub fn new() -> Images {
        Images::with_env(&[])
    }

    /// crane with extra environment: `SSL_CERT_FILE` for a test CA, `DOCKER_CONFIG` for
    /// credentials.
    pub fn with_env(env: &[(&str, &str)]) -> Images {
        Images {
            dir: tempfile::tempdir().expect("image dir"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn crane(&self, args: &[&str]) -> String {
        let out = Command::new(crate::go_peers::crane())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path())
            .output()
            .expect("run crane");
        assert!(
            out.status.success(),
            "crane {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A tar layer holding one file.
    fn layer(&self, name: &str, content: &[u8]) -> PathBuf {
        let file_dir = self.dir.path().join(format!("{name}.d"));
        std::fs::create_dir_all(&file_dir).unwrap();
        std::fs::write(file_dir.join(name), content).unwrap();
        let tar = self.dir.path().join(format!("{name}.tar"));
        let status = Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&file_dir)
            .arg(name)
            .status()
            .unwrap_or_else(|e| missing_tool("tar", &e.to_string()));
        assert!(status.success());
        tar
    }

    /// Pushes an image of one layer per `(file name, content)` to `reference`
    /// (`host/repo:tag`) and returns its digest (`sha256:<hex>`).
    pub fn push(&self, reference: &str, layers: &[(&str, &[u8])]) -> String {
        let mut args: Vec<String> = vec!["append".into(), "--oci-empty-base".into()];
        for (name, content) in layers {
            args.push("-f".into());
            args.push(self.layer(name, content).display().to_string());
        }
        args.extend(["-t".into(), reference.into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        digest_of(&self.crane(&args))
    }

    /// Pushes a two-platform index (linux/amd64 and linux/arm64 images of `layers`, each with
    /// its own extra layer) to `reference` and returns (index digest, platform digests).
    pub fn push_index(&self, reference: &str, layers: &[(&str, &[u8])]) -> (String, Vec<String>) {
        let (base, _) = reference.rsplit_once(':').expect("reference with a tag");
        let mut platforms = Vec::new();
        for arch in ["amd64", "arm64"] {
            let mut with_arch: Vec<(&str, &[u8])> = layers.to_vec();
            with_arch.push(("arch", arch.as_bytes()));
            let tag = format!("{base}:{arch}-base");
            self.push(&tag, &with_arch);
            let out = self.crane(&[
                "mutate",
                "--set-platform",
                &format!("linux/{arch}"),
                &tag,
                "-t",
                &format!("{base}:{arch}"),
            ]);
            platforms.push(digest_of(&out));
        }
        let amd = format!("{base}:amd64");
        let arm = format!("{base}:arm64");
        let out = self.crane(&["index", "append", "-m", &amd, "-m", &arm, "-t", reference]);
        (digest_of(&out), platforms)
    }

    /// `crane digest`.
    pub fn digest(&self, reference: &str) -> String {
        self.crane(&["digest", reference])
    }

    /// Writes `content` to a file in this helper's directory and returns its path.
    pub fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(content).unwrap();
        path
    }
}

/// The digest in crane's `host/repo@sha256:<hex>` output.
fn digest_of(output: &str) -> String {
    let line = output.lines().last().unwrap_or_default();
    line.rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| panic!("no digest in crane output {output:?}"))
}

/// Raw distribution API calls on an anonymous http registry, for tests that play an attacker
/// with write access to a repository (forged referrers, moved signatures).
pub mod raw {
    use sha2::Digest as _;

    fn digest(content: &[u8]) -> String {
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(content)))
    }

    /// Uploads a blob (monolithic) and returns its digest.
    pub async fn put_blob(host: &str, repo: &str, content: &[u8]) -> String {
        let http = reqwest::Client::new();
        let d = digest(content);
        let start = http
            .post(format!("http://{host}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 202, "starting an upload");
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let url = if location.starts_with('/') {
            format!("http://{host}{location}")
        } else {
            location
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let done = http
            .put(format!("{url}{sep}digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(content.to_vec())
            .send()
            .await
            .unwrap();
        assert!(
            done.status().is_success(),
            "finishing an upload: {}",
            done.status()
        );
        d
    }

    /// Puts a manifest under `reference` (a tag or its digest) and returns its digest.
    pub async fn put_manifest(
        host: &str,
        repo: &str,
        reference: &str,
        media_type: &str,
        content: &[u8],
    ) -> String {
        let response = reqwest::Client::new()
            .put(format!("http://{host}/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(content.to_vec())
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "putting manifest {reference}: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        digest(content)
    }

    /// A manifest by tag or digest, as JSON.
    pub async fn get_manifest(
        host: &str,
        repo: &str,
        reference: &str,
    ) -> Option<serde_json::Value> {
        let response = reqwest::Client::new()
            .get(format!("http://{host}/v2/{repo}/manifests/{reference}"))
            .header(
                "accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            )
            .send()
            .await
            .unwrap();
        if response.status() == 404 {
            return None;
        }
        assert!(response.status().is_success());
        Some(response.json().await.unwrap())
    }
}

/// A registry token server (the Docker token protocol): `GET /token?service=S&scope=...` with
/// Basic credentials answers `{"token": JWT}` granting the requested actions, signed ES256 with
/// the certificate in `x5c` that the registry trusts. Anonymous requests get a token with no
/// access. It records how many tokens it issued.
pub struct TokenServer {
    pub auth: TokenAuth,
    issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    pub fn start(username: &str, password: &str) -> TokenServer {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.pem",
                "-days",
                "2",
                "-subj",
                "/CN=sigil test token signer",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| missing_tool("openssl", &e.to_string()));
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pem_body = |text: &str| -> Vec<u8> {
            let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
            STANDARD.decode(b64).unwrap()
        };
        let cert_der = pem_body(&std::fs::read_to_string(dir.path().join("token.pem")).unwrap());
        let key_der = pem_body(&std::fs::read_to_string(dir.path().join("token.key")).unwrap());
        let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key_der,
        )
        .expect("openssl wrote a PKCS#8 P-256 key");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let auth = TokenAuth {
            realm: format!("http://{addr}/token"),
            service: "sigil-test-registry".into(),
            issuer: "sigil-test-token-issuer".into(),
            root_cert: dir.path().join("token.pem"),
        };
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{username}:{password}"))
        );
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (issuer, service, counter) =
            (auth.issuer.clone(), auth.service.clone(), issued.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let authorized = head.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("authorization:")
                        && l[14..].trim() == expected
                });
                let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
                let access: Vec<serde_json::Value> = url::form_urlencoded::parse(query.as_bytes())
                    .filter(|(k, _)| k == "scope")
                    .filter_map(|(_, scope)| {
                        let mut parts = scope.splitn(3, ':');
                        let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                        Some(serde_json::json!({
                            "type": kind, "name": name,
                            "actions": if authorized { actions.split(',').collect::<Vec<_>>() } else { vec![] },
                        }))
                    })
                    .collect();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "x5c": [STANDARD.encode(&cert_der)]});
                let claims = serde_json::json!({
                    "iss": issuer, "sub": if authorized { "ci" } else { "" }, "aud": service,
                    "exp": now + 300, "nbf": now - 10, "iat": now,
                    "jti": format!("{now}-{}", counter.load(std::sync::atomic::Ordering::SeqCst)),
                    "access": access,
                });
                let signing_input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                );
                let sig = key
                    .sign(
                        &aws_lc_rs::rand::SystemRandom::new(),
                        signing_input.as_bytes(),
                    )
                    .unwrap();
                let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body =
                    serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                        .to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            auth,
            issued,
            _dir: dir,
        }
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.issued.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What [`FaultyProxy`] does to a blob upload's final `PUT …/blobs/uploads/…?digest=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitFault {
    /// Answers 500 without passing the request on: the blob is not stored.
    FailBeforeStoring,
    /// Passes the request on, then answers 500 although the registry stored the blob, as
    /// distribution does to some of several clients committing one blob at the same moment.
    FailAfterStoring,
    /// Answers a manifest upload with 400 `MANIFEST_BLOB_UNKNOWN` without passing it on, as
    /// distribution's filesystem storage does to a manifest checked while another client's
    /// commit of a blob it names rewrites that blob's link.
    ManifestBlobUnknown,
}

/// A loopback HTTP proxy in front of a real registry that fails the first few blob upload
/// commits (or manifest uploads, for `ManifestBlobUnknown`). It stands in for a fault the
/// real registry shows only under a race it cannot be made to lose on demand; everything
/// else is the registry's own answer.
pub struct FaultyProxy {
    addr: std::net::SocketAddr,
    injected: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// Proxies to the registry at `upstream` (`host:port`, plain HTTP) and fails its first
    /// `times` blob upload commits with `fault`. Needs a running tokio runtime.
    pub async fn start(upstream: &str, fault: CommitFault, times: usize) -> FaultyProxy {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let injected = Arc::new(AtomicUsize::new(0));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let upstream = upstream.to_string();
        let counter = injected.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (http, upstream, counter) = (http.clone(), upstream.clone(), counter.clone());
                tokio::spawn(async move {
                    let _ = proxy_one(
                        stream,
                        &http,
                        &upstream,
                        &addr.to_string(),
                        |commit| {
                            commit
                                && counter
                                    .fetch_update(
                                        std::sync::atomic::Ordering::SeqCst,
                                        std::sync::atomic::Ordering::SeqCst,
                                        |n| (n < times).then_some(n + 1),
                                    )
                                    .is_ok()
                        },
                        fault,
                    )
                    .await;
                });
            }
        });
        FaultyProxy {
            addr,
            injected,
            task,
        }
    }

    /// `host:port` to use in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// How many commits have been failed so far.
    pub fn faults_injected(&self) -> usize {
        self.injected.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one request on `stream` (answering with `Connection: close`), passing it on to
/// `upstream` unless `fail` says this one is to be failed.
async fn proxy_one(
    stream: tokio::net::TcpStream,
    http: &reqwest::Client,
    upstream: &str,
    own: &str,
    fail: impl FnOnce(bool) -> bool,
    fault: CommitFault,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut reader = tokio::io::BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            let value = value.trim().to_string();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            }
            headers.push((name.to_string(), value));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    let commit = match fault {
        CommitFault::ManifestBlobUnknown => method == "PUT" && target.contains("/manifests/"),
        _ => method == "PUT" && target.contains("/blobs/uploads/") && target.contains("digest="),
    };
    const FAILED: &[u8] =
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let injected = fail(commit);
    if injected && fault == CommitFault::ManifestBlobUnknown {
        let body = r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}]}"#;
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return write_all(reader.into_inner(), answer.as_bytes()).await;
    }
    if injected && fault == CommitFault::FailBeforeStoring {
        return write_all(reader.into_inner(), FAILED).await;
    }
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut forwarded = http.request(method.clone(), format!("http://{upstream}{target}"));
    for (name, value) in &headers {
        let skip = ["host", "connection", "content-length"];
        if !skip.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            forwarded = forwarded.header(name.as_str(), value.as_str());
        }
    }
    let Ok(response) = forwarded.body(body).send().await else {
        return Ok(());
    };
    if injected {
        return write_all(reader.into_inner(), FAILED).await;
    }
    let status = response.status();
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut declared = None;
    for (name, value) in response.headers() {
        // The registry writes its own address into Location; the client must come back here.
        let value = value.to_str().unwrap_or_default().replace(upstream, own);
        match name.as_str() {
            "connection" | "transfer-encoding" => {}
            "content-length" => declared = Some(value),
            _ => answer.push_str(&format!("{name}: {value}\r\n")),
        }
    }
    let head = method == reqwest::Method::HEAD;
    let content = response.bytes().await.unwrap_or_default();
    // A HEAD answer declares the length of what a GET would send.
    let length = match (head, declared) {
        (true, Some(d)) => d,
        (true, None) => "0".into(),
        (false, _) => content.len().to_string(),
    };
    answer.push_str(&format!(
        "Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ));
    let mut bytes = answer.into_bytes();
    if !head {
        bytes.extend_from_slice(&content);
    }
    write_all(reader.into_inner(), &bytes).await
}

async fn write_all(mut stream: tokio::net::TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    stream.write_all(bytes).await?;
    stream.shutdown().await
}
