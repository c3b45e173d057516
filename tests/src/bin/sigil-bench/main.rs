//! Drives a real `sigild` over HTTP with many concurrent clients and reports requests/s and
//! latency percentiles. Two targets:
//! - `rekor` (default): hashedrekord submissions to `POST /api/v1/log/entries`, all signed
//!   by one key;
//! - `keyless`: the same with a distinct certificate per entry, as keyless signing makes them
//!   (three random index keys per entry instead of two);
//! - `ca`: certificate requests to `POST /api/v2/signingCert` (publicKeyRequest + proof of
//!   possession, ES256 ID token from the `--dev` issuer), so token verification, both
//!   certificate signatures and the durable CT append are all inside the measurement.
//!
//!   cargo build --release -p sigild -p sigil-tests
//!   target/release/sigil-bench --backend sqlite --clients 64 --requests 20000
//!   target/release/sigil-bench --backend sqlite --rate 1000 --requests 10000
//!   target/release/sigil-bench --backend postgres --clients 64 --requests 20000
//!   target/release/sigil-bench --target ca --clients 64 --requests 10000
//!
//! Requests are built and signed before the clock starts so the figures are the server's,
//! not the load generator's signing. `--rate` switches to an open-loop fixed arrival rate.
//!
//! `--preload N` first fills the log with N keyless-shaped entries through the engine (see
//! `preload.rs`), then reports bytes per entry on disk, start-up time, read latencies
//! (inclusion proof by index, consistency proof, full tile, search by email) and RSS around
//! the write load:
//!
//!   target/release/sigil-bench --preload 1000000 --clients 64 --requests 20000
//!
//! `--clients 64,64 --pause 120` keeps one server for both runs with two idle minutes
//! between them: how writes fare after a quiet spell on a large log (`--data-dir`).

mod preload;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use sigil_tests::pem::pem;

#[derive(Clone)]
struct Args {
    target: String,
    backend: String,
    /// Closed-loop client counts: one write run each, one after the other.
    clients: Vec<usize>,
    /// Idle time between write runs, with the server kept: how writes fare after a quiet
    /// spell, when the host may have dropped the database's pages from its cache.
    pause: Duration,
    entries: usize,
    rate: Option<f64>,
    sigild: PathBuf,
    database_url: String,
    /// Passed to `sigild serve` as they are (e.g. `--max-pending-writes 128`).
    sigild_args: Vec<String>,
    preload: u64,
    /// Keep the data here (for inspection) instead of in a temporary directory.
    data_dir: Option<PathBuf>,
    /// PostgreSQL: run against this existing database (with the --data-dir of the run that
    /// made it) instead of a fresh one, e.g. to measure a preloaded log again.
    reuse_database: Option<String>,
    /// Requests per read measurement: with --preload 5,000 unless given; without it, only
    /// when given (on a log kept from an earlier run with --data-dir or --reuse-database).
    reads: Option<usize>,
    /// A `sigil` binary to run `sigil log monitor` with while the writes go on, reporting
    /// how far it trails the log.
    follow_with: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        target: "rekor".into(),
        backend: "sqlite".into(),
        clients: vec![64],
        pause: Duration::ZERO,
        entries: 20_000,
        rate: None,
        sigild: sigil_tests::stack::target_dir().join("release/sigild"),
        database_url: "postgres://postgres@127.0.0.1:5432/test".into(),
        sigild_args: Vec::new(),
        preload: 0,
        data_dir: None,
        reuse_database: None,
        reads: None,
        follow_with: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--target" => a.target = val(),
            "--backend" => a.backend = val(),
            "--clients" => {
                a.clients = val()
                    .split(',')
                    .map(|c| c.parse().expect("--clients N[,N...]"))
                    // --clients 0: no write load (reads only).
                    .filter(|&c| c > 0)
                    .collect()
            }
            "--pause" => a.pause = Duration::from_secs(val().parse().expect("--pause SECONDS")),
            "--requests" | "--entries" => a.entries = val().parse().expect("--entries N"),
            "--rate" => a.rate = Some(val().parse().expect("--rate PER_SECOND")),
            "--sigild" => a.sigild = val().into(),
            "--database-url" => a.database_url = val(),
            "--sigild-arg" => a.sigild_args.push(val()),
            "--preload" => a.preload = val().parse().expect("--preload N"),
            "--data-dir" => a.data_dir = Some(val().into()),
            "--reuse-database" => a.reuse_database = Some(val()),
            "--reads" => a.reads = Some(val().parse().expect("--reads N")),
            "--follow-with" => a.follow_with = Some(val().into()),
            "--help" | "-h" => {
                println!(
                    "sigil-bench [--target rekor|keyless|ca] [--backend sqlite|postgres] [--clients N[,N...]] [--pause SECONDS] [--entries N] [--rate PER_SECOND] [--sigild PATH] [--database-url URL] [--sigild-arg ARG]... [--preload N] [--reads N] [--data-dir DIR] [--reuse-database NAME] [--follow-with SIGIL]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn make_entries(n: usize) -> Vec<Vec<u8>> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    spki.extend_from_slice(key.public_key().as_ref());
    let pub_b64 = STANDARD.encode(pem("PUBLIC KEY", &spki));
    let run = rand_tag();
    (0..n)
        .map(|i| {
            let artifact = format!("bench {run} artifact {i}");
            let sig = key.sign(&rng, artifact.as_bytes()).unwrap();
            serde_json::json!({
                "apiVersion": "0.0.1", "kind": "hashedrekord",
                "spec": {"signature": {"content": STANDARD.encode(sig), "publicKey": {"content": pub_b64}},
                         "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(artifact.as_bytes()))}}}
            })
            .to_string()
            .into_bytes()
        })
        .collect()
}

fn rand_tag() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

struct Server {
    child: Child,
    /// From spawn to accepting connections (sigild binds after opening every log).
    startup: Duration,
}

impl Server {
    /// Resident set size, from /proc.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .unwrap_or(f64::NAN)
    }
}

/// CPU time a process has used so far (user plus system), from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = cpu_ticks(&stat)?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

impl Server {
    /// CPU time sigild has used so far.
    fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.child.id())
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields are counted after its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificate requests: a token from the dev issuer and, per request, a fresh P-256 key
/// with its proof of possession over the token's email.
async fn make_cert_requests(n: usize, dev_issuer: &str) -> Vec<Vec<u8>> {
    keyed_cert_requests(n, dev_issuer)
        .await
        .into_iter()
        .map(|(body, _)| body)
        .collect()
}

/// Certificate requests, each with the key pair it asks a certificate for.
async fn keyed_cert_requests(n: usize, dev_issuer: &str) -> Vec<(Vec<u8>, EcdsaKeyPair)> {
    let email = "bench@example.com";
    let body: serde_json::Value = reqwest::get(format!("{dev_issuer}/token?email={email}"))
        .await
        .expect("dev issuer")
        .json()
        .await
        .unwrap();
    let token = body["id_token"].as_str().unwrap().to_string();
    let rng = SystemRandom::new();
    (0..n)
        .map(|_| {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let key =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
            let mut spki =
                hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
            spki.extend_from_slice(key.public_key().as_ref());
            let pop = key.sign(&rng, email.as_bytes()).unwrap();
            let body = serde_json::json!({
                "credentials": {"oidcIdentityToken": token},
                "publicKeyRequest": {
                    "publicKey": {"algorithm": "ECDSA", "content": pem("PUBLIC KEY", &spki)},
                    "proofOfPossession": STANDARD.encode(pop)
                }
            })
            .to_string()
            .into_bytes();
            (body, key)
        })
        .collect()
}

/// Keyless-shaped submissions: each signed by one of a few keys certified by a real sigild CA,
/// with the certificate's serial rewritten per entry, so that every entry carries a distinct
/// certificate (hence certificate hash) as fresh keyless signings do. The log does not check
/// the certificate's chain (Rekor does not either), only that its key made the signature.
async fn make_keyless_entries(args: &Args, n: usize) -> Vec<Vec<u8>> {
    let templates = template_certs(args, 16).await;
    let rng = SystemRandom::new();
    let run = rand_tag();
    (0..n)
        .map(|i| {
            let (der, key) = &templates[i % templates.len()];
            let mut der = der.clone();
            preload::rewrite_serial(&mut der, run, i as u64);
            let artifact = format!("bench {run} keyless artifact {i}");
            let sig = key.sign(&rng, artifact.as_bytes()).unwrap();
            let cert_b64 = STANDARD.encode(pem("CERTIFICATE", &der));
            serde_json::json!({
                "apiVersion": "0.0.1", "kind": "hashedrekord",
                "spec": {"signature": {"content": STANDARD.encode(sig), "publicKey": {"content": cert_b64}},
                         "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(artifact.as_bytes()))}}}
            })
            .to_string()
            .into_bytes()
        })
        .collect()
}

/// A data dir and, on PostgreSQL, a database of its own: a log is bound to its key and its
/// data dir's head record, so each run (with its new data dir and key) needs a fresh one.
struct Data {
    dir: DataDir,
    database_url: Option<String>,
}

enum DataDir {
    Temporary(tempfile::TempDir),
    Kept(PathBuf),
}

impl DataDir {
    fn path(&self) -> &std::path::Path {
        match self {
            DataDir::Temporary(t) => t.path(),
            DataDir::Kept(p) => p,
        }
    }
}

fn fresh_data(args: &Args) -> Data {
    let dir = match &args.data_dir {
        Some(p) => DataDir::Kept(p.clone()),
        None => DataDir::Temporary(tempfile::tempdir().unwrap()),
    };
    let database_url = (args.backend == "postgres").then(|| {
        let (server, _) = args.database_url.rsplit_once('/').expect("a database URL");
        if let Some(name) = &args.reuse_database {
            return format!("{server}/{name}");
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("sigil_bench_{nanos}_{}", std::process::id());
        let created = Command::new("psql")
            .arg(&args.database_url)
            .args(["-qc", &format!("CREATE DATABASE {name}")])
            .status()
            .expect("run psql (PostgreSQL client) to create the bench database");
        assert!(created.success(), "CREATE DATABASE {name} failed");
        format!("{server}/{name}")
    });
    Data { dir, database_url }
}

fn start(args: &Args, data: &Data, port: u16, dev_issuer_port: u16, dev: bool) -> Server {
    let mut cmd = Command::new(&args.sigild);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data.dir.path())
        .env("RUST_LOG", "warn")
        .args(&args.sigild_args)
        .stdout(Stdio::null());
    if let Some(url) = &data.database_url {
        cmd.args(["--database-url", url]);
    }
    if dev {
        cmd.args([
            "--dev",
            "--dev-issuer-listen",
            &format!("127.0.0.1:{dev_issuer_port}"),
        ]);
    }
    let started = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "start {}: {e} (build it with cargo build --release -p sigild)",
            args.sigild.display()
        )
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sigild did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    Server {
        child,
        startup: started.elapsed(),
    }
}

/// Certificates from a real sigild CA (a throwaway one with its --dev issuer), whose shape and
/// size the preloaded entries copy.
async fn template_certs(args: &Args, n: usize) -> Vec<(Vec<u8>, EcdsaKeyPair)> {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, dev_port) = (free(), free());
    let sqlite = Args {
        backend: "sqlite".into(),
        sigild_args: Vec::new(),
        data_dir: None,
        ..args.clone()
    };
    let data = fresh_data(&sqlite);
    let _server = start(&sqlite, &data, port, dev_port, true);
    let requests = keyed_cert_requests(n, &format!("http://127.0.0.1:{dev_port}")).await;
    let http = reqwest::Client::new();
    let mut certs = Vec::new();
    for (body, key) in requests {
        let resp: serde_json::Value = http
            .post(format!("http://127.0.0.1:{port}/api/v2/signingCert"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("signingCert")
            .json()
            .await
            .expect("signingCert answer");
        let pem = resp["signedCertificateEmbeddedSct"]["chain"]["certificates"][0]
            .as_str()
            .expect("a certificate chain");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        certs.push((STANDARD.decode(b64).expect("PEM body"), key));
    }
    certs
}

/// A bare HTTP/1.1 client with kept-alive connections. At tens of thousands of requests a
/// second reqwest costs the load generator as much CPU as the server spends refusing them,
/// and both share this machine's two cores; this keeps the generator's share small.
struct RawHttp {
    addr: std::net::SocketAddr,
    idle: std::sync::Mutex<Vec<tokio::net::TcpStream>>,
}

impl RawHttp {
    async fn post(&self, path: &str, body: &[u8]) -> std::io::Result<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let idle = self.idle.lock().unwrap().pop();
        let mut conn = match idle {
            Some(c) => c,
            None => {
                let c = tokio::net::TcpStream::connect(self.addr).await?;
                c.set_nodelay(true)?;
                c
            }
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        conn.write_all(&[head.as_bytes(), body].concat()).await?;
        let mut buf = Vec::with_capacity(4096);
        let header_end = loop {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        while buf.len() < header_end + length {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        if !head.contains("connection: close") {
            self.idle.lock().unwrap().push(conn);
        }
        Ok(status)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, dev_port) = (free(), free());
    let data = fresh_data(&args);
    if args.preload > 0 {
        eprintln!("preload: fetching template certificates from a throwaway sigild CA…");
        let certs = template_certs(&args, 16).await;
        let template = preload::Template::new(certs.into_iter().map(|(der, _)| der).collect());
        preload::run(
            data.database_url.as_deref(),
            data.dir.path(),
            template,
            args.preload,
        );
        report_disk(&args, &data);
    }
    // A monitor needs the trusted root, which the server serves with its CA (--dev).
    let dev = args.target == "ca" || args.follow_with.is_some();
    let server = start(&args, &data, port, dev_port, dev);
    // A fresh log has no runs to filter; an existing or preloaded one does.
    if args.backend == "sqlite" && (args.data_dir.is_some() || args.preload > 0) {
        leaf_filters_ready(port, &server).await;
    }
    // Every run says its memory, so that a large log's RSS can be set beside an empty one's.
    println!(
        "preloaded={} startup={:.0}ms rss_before_writes={:.1}MiB",
        args.preload,
        server.startup.as_secs_f64() * 1e3,
        server.rss_mib()
    );
    if args.preload > 0 {
        read_latencies(port, args.preload, args.reads.unwrap_or(5000)).await;
    } else if let Some(reads) = args.reads {
        let size = log_size(&reqwest::Client::new(), port)
            .await
            .expect("GET /api/v1/log: treeSize");
        println!("reads on a log of {size} entries");
        read_latencies(port, size, reads).await;
    }
    let follower = args
        .follow_with
        .as_ref()
        .map(|sigil| Follower::start(sigil, port));
    for (run, &clients) in args.clients.iter().enumerate() {
        if run > 0 && !args.pause.is_zero() {
            eprintln!("idle for {} s before the next run", args.pause.as_secs());
            tokio::time::sleep(args.pause).await;
        }
        write_load(&args, clients, port, dev_port, &server).await;
    }
    if let Some(follower) = follower {
        follower.report(port).await;
    }
    println!("rss_after_writes={:.1}MiB", server.rss_mib());
    drop(server);
}

/// Waits until sigild has built the leaf-hash filters of an existing SQLite log (in the
/// background after start-up; until then each duplicate check probes every run), so that
/// write runs measure the steady state. Prints how long that took from sigild's start.
async fn leaf_filters_ready(port: u16, server: &Server) {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(600) {
        let text = match reqwest::get(&url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text
            .lines()
            .any(|l| l == "sigil_log_leaf_filters_current 1")
        {
            println!(
                "leaf_filters_ready={:.0}ms",
                (server.startup + waited.elapsed()).as_secs_f64() * 1e3
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("warning: sigild's leaf-hash filters were not built within 600 s; measuring anyway");
}

/// `sigil log monitor` following the log during the write runs, and a sampler of how far it
/// trails: every 100 ms the log's size and the monitor's verified size.
struct Follower {
    child: Child,
    _state: tempfile::TempDir,
    lags: Arc<std::sync::Mutex<Vec<u64>>>,
    metrics: String,
    sampler: tokio::task::JoinHandle<()>,
}

impl Follower {
    fn start(sigil: &std::path::Path, port: u16) -> Follower {
        let state = tempfile::tempdir().unwrap();
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(sigil)
            .args([
                "log",
                "monitor",
                "--server",
                &format!("http://127.0.0.1:{port}"),
            ])
            .arg("--state")
            .arg(state.path().join("monitor.json"))
            .args(["--interval", "1", "--metrics-listen"])
            .arg(format!("127.0.0.1:{metrics_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sigil log monitor");
        let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
        let lags = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (m, l) = (metrics.clone(), lags.clone());
        let sampler = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let (Some(log), Some(seen)) =
                    (log_size(&http, port).await, monitor_size(&http, &m).await)
                {
                    l.lock().unwrap().push(log.saturating_sub(seen));
                }
            }
        });
        Follower {
            child,
            _state: state,
            lags,
            metrics,
            sampler,
        }
    }

    /// Prints the lag during the writes, then how long the monitor takes to reach the final
    /// size once they stop.
    async fn report(mut self, port: u16) {
        self.sampler.abort();
        let http = reqwest::Client::new();
        let stopped = Instant::now();
        let size = log_size(&http, port).await.expect("log size");
        while monitor_size(&http, &self.metrics).await.unwrap_or(0) < size {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut text = String::new();
                if let Some(mut err) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut err, &mut text);
                }
                panic!("sigil log monitor exited ({status}): {text}");
            }
            assert!(
                stopped.elapsed() < Duration::from_secs(120),
                "the monitor never caught up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut lags = self.lags.lock().unwrap().clone();
        lags.sort_unstable();
        let at = |p: f64| lags[((lags.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "follow: samples={} lag_entries p50={} p99={} max={} caught_up_after_writes={:.0}ms",
            lags.len(),
            at(0.5),
            at(0.99),
            lags.last().copied().unwrap_or(0),
            stopped.elapsed().as_secs_f64() * 1e3
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn log_size(http: &reqwest::Client, port: u16) -> Option<u64> {
    let info: serde_json::Value = http
        .get(format!("http://127.0.0.1:{port}/api/v1/log"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    info["treeSize"].as_u64()
}

async fn monitor_size(http: &reqwest::Client, metrics: &str) -> Option<u64> {
    let text = http.get(metrics).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("sigil_monitor_tree_size "))
        .and_then(|v| v.trim().parse().ok())
}

/// One write run: `clients` closed-loop clients (or the open-loop `--rate`).
async fn write_load(args: &Args, clients: usize, port: u16, dev_port: u16, server: &Server) {
    eprintln!("preparing {} requests…", args.entries);
    let (url, expected, entries) = match args.target.as_str() {
        "rekor" => (
            format!("http://127.0.0.1:{port}/api/v1/log/entries"),
            201u16,
            make_entries(args.entries),
        ),
        "keyless" => (
            format!("http://127.0.0.1:{port}/api/v1/log/entries"),
            201u16,
            make_keyless_entries(args, args.entries).await,
        ),
        "ca" => (
            format!("http://127.0.0.1:{port}/api/v2/signingCert"),
            200u16,
            make_cert_requests(args.entries, &format!("http://127.0.0.1:{dev_port}")).await,
        ),
        other => panic!("--target must be rekor, keyless or ca, not {other}"),
    };
    let entries = Arc::new(entries);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    // Open-loop runs use the bare client: they are the ones that reach overload.
    let path = url[url.find("/api/").unwrap()..].to_string();
    let raw = args.rate.map(|_| {
        Arc::new(RawHttp {
            addr: ([127, 0, 0, 1], port).into(),
            idle: std::sync::Mutex::new(Vec::new()),
        })
    });
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu_before = server.cpu_time();
    let started = Instant::now();
    let mut tasks = Vec::new();
    let workers = if args.rate.is_some() {
        args.entries
    } else {
        clients
    };
    for w in 0..workers {
        let (http, url, entries, next) = (http.clone(), url.clone(), entries.clone(), next.clone());
        let (raw, path) = (raw.clone(), path.clone());
        let rate = args.rate;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut refused = Vec::new();
            loop {
                let i = match rate {
                    // Open loop: entry w is sent at w / rate seconds, whatever the server does.
                    Some(r) => {
                        if !latencies.is_empty() || !refused.is_empty() {
                            break;
                        }
                        tokio::time::sleep_until(
                            (started + Duration::from_secs_f64(w as f64 / r)).into(),
                        )
                        .await;
                        w
                    }
                    None => next.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                };
                if i >= entries.len() {
                    break;
                }
                let t = Instant::now();
                let status = match &raw {
                    Some(raw) => raw.post(&path, &entries[i]).await.expect("request"),
                    None => {
                        let resp = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(entries[i].clone())
                            .send()
                            .await
                            .expect("request");
                        let status = resp.status().as_u16();
                        let _ = resp.bytes().await;
                        status
                    }
                };
                // Overload answers (503, 429) are counted apart: the latency that matters is
                // that of the requests the server takes.
                match status {
                    s if s == expected => latencies.push(t.elapsed()),
                    429 | 503 => refused.push(t.elapsed()),
                    other => panic!("request {i} failed with {other}"),
                }
            }
            (latencies, refused)
        }));
    }
    let mut all = Vec::with_capacity(args.entries);
    let mut refused = Vec::new();
    for t in tasks {
        let (accepted, r) = t.await.unwrap();
        all.extend(accepted);
        refused.extend(r);
    }
    let elapsed = started.elapsed();
    // sigild's own CPU per accepted entry (not PostgreSQL's, not this load generator's): what
    // a write costs the server, less noisy than the rate on a shared machine.
    let server_cpu = match (cpu_before, server.cpu_time()) {
        (Some(before), Some(after)) if !all.is_empty() => format!(
            " sigild_cpu_per_entry={:.0}us",
            (after - before).as_secs_f64() * 1e6 / all.len() as f64
        ),
        _ => String::new(),
    };
    all.sort();
    let mode = match args.rate {
        Some(r) => format!("open loop at {r}/s"),
        None => format!("{} concurrent clients", clients),
    };
    refused.sort();
    let refused_p99 = if refused.is_empty() {
        String::new()
    } else {
        format!(
            " refused={} refused_p99={:.1}ms",
            refused.len(),
            percentile(&refused, 0.99).as_secs_f64() * 1e3
        )
    };
    println!(
        "target={} backend={} mode=\"{mode}\" accepted={} elapsed={:.2}s throughput={:.0}/s p50={:.1}ms p99={:.1}ms max={:.1}ms{refused_p99}{server_cpu}",
        args.target,
        args.backend,
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().unwrap().as_secs_f64() * 1e3,
    );
}

/// Bytes on disk per preloaded entry: the SQLite files, or PostgreSQL's relations.
fn report_disk(args: &Args, data: &Data) {
    let n = args.preload as f64;
    match &data.database_url {
        None => {
            let mut total = 0u64;
            for f in std::fs::read_dir(data.dir.path()).unwrap().flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                if name.starts_with("sigil.db") {
                    total += f.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
            println!(
                "disk backend=sqlite bytes={total} bytes_per_entry={:.0}",
                total as f64 / n
            );
        }
        Some(url) => {
            let query = "SELECT relname, pg_total_relation_size(oid) FROM pg_class \
                         WHERE relname IN ('entries','nodes','search_keys') \
                         UNION ALL SELECT 'database', pg_database_size(current_database())";
            let out = Command::new("psql")
                // As an operator would after a bulk load: fresh statistics, and no autovacuum
                // pass over the new rows in the middle of the measurement.
                .args([
                    url,
                    "-tAF",
                    " ",
                    "-c",
                    "VACUUM ANALYZE",
                    "-c",
                    "CHECKPOINT",
                    "-c",
                    query,
                ])
                .output()
                .expect("psql");
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((name, bytes)) = line.split_once(' ')
                    && let Ok(bytes) = bytes.trim().parse::<u64>()
                {
                    println!(
                        "disk backend=postgres relation={name} bytes={bytes} bytes_per_entry={:.0}",
                        bytes as f64 / n
                    );
                }
            }
        }
    }
}

/// Read latencies over HTTP at random points of a log of `size` entries: one client (the
/// latency of one request) and eight (what two cores serve).
async fn read_latencies(port: u16, size: u64, reads: usize) {
    for clients in [1, 8] {
        read_latencies_with(port, size, reads, clients).await;
        if clients == 1 {
            server_side_latencies(port).await;
        }
    }
}

/// The server's own view of the reads just made (its `sigil_http_request_seconds` summary,
/// a recent window per route): the time inside sigild, without the client and its socket.
async fn server_side_latencies(port: u16) {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    for route in [
        "/api/v1/log/entries",
        "/api/v1/log/proof",
        "/tile/{*path}",
        "/api/v1/index/retrieve",
    ] {
        let quantile = |q: &str| {
            let prefix = format!(
                "sigil_http_request_seconds{{route=\"{route}\",method=\"GET\",status=\"200\",quantile=\"{q}\"}} "
            );
            let post = prefix.replace("\"GET\"", "\"POST\"");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix).or_else(|| l.strip_prefix(&post)))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        if let (Some(p50), Some(p99)) = (quantile("0.5"), quantile("0.99")) {
            println!(
                "server_side route={route} clients=1 p50={:.2}ms p99={:.2}ms",
                p50 * 1e3,
                p99 * 1e3
            );
        }
    }
}

async fn read_latencies_with(port: u16, size: u64, reads: usize, clients: usize) {
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let kinds: [(&str, &str); 4] = [
        (
            "inclusion_proof_by_index",
            "GET /api/v1/log/entries?logIndex=R",
        ),
        (
            "consistency_proof",
            "GET /api/v1/log/proof?firstSize=R&lastSize=SIZE",
        ),
        ("full_tile", "GET /tile/0/<random full tile>"),
        ("search_by_email", "POST /api/v1/index/retrieve {email}"),
    ];
    for (kind, _) in kinds {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let started = Instant::now();
        for _ in 0..clients {
            let (http, base, next) = (http.clone(), base.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= reads {
                        break;
                    }
                    let r = u64::from_be_bytes(
                        Sha256::digest(i.to_be_bytes())[..8].try_into().unwrap(),
                    ) % size;
                    let request = match kind {
                        "inclusion_proof_by_index" => {
                            http.get(format!("{base}/api/v1/log/entries?logIndex={r}"))
                        }
                        "consistency_proof" => http.get(format!(
                            "{base}/api/v1/log/proof?firstSize={}&lastSize={size}",
                            r.max(1)
                        )),
                        "full_tile" => {
                            let tile = r % (size / 256).max(1);
                            http.get(format!("{base}/tile/0/{}", tile_index_path(tile)))
                        }
                        _ => http
                            .post(format!("{base}/api/v1/index/retrieve"))
                            .header("content-type", "application/json")
                            .body(
                                serde_json::json!({
                                    "email": format!("user{}@example.com", r % preload::IDENTITIES)
                                })
                                .to_string(),
                            ),
                    };
                    let t = Instant::now();
                    let resp = request.send().await.expect("read request");
                    let status = resp.status();
                    let _ = resp.bytes().await;
                    assert!(status.is_success(), "{kind} answered {status}");
                    latencies.push(t.elapsed());
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed();
        all.sort();
        println!(
            "read={kind} clients={clients} requests={} throughput={:.0}/s p50={:.2}ms p99={:.2}ms",
            all.len(),
            all.len() as f64 / elapsed.as_secs_f64(),
            percentile(&all, 0.50).as_secs_f64() * 1e3,
            percentile(&all, 0.99).as_secs_f64() * 1e3,
        );
    }
}

/// A tile index as C2SP path elements: `x001/x234/067`.
fn tile_index_path(n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        parts.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_count_fields_after_the_command_name() {
        // A command name with a space and a parenthesis of its own, as the kernel prints it.
        let line = "4242 (sigild (x) y) S 1 4242 4242 0 -1 4194304 1 0 0 0 37 5 0 0 20 0 9 0 1 1 1";
        assert_eq!(cpu_ticks(line), Some(42));
        assert_eq!(cpu_ticks("4242 (sigild) S 1 2"), None, "too short");
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn this_kernels_stat_line_parses() {
        assert!(cpu_time(std::process::id()).is_some());
    }
}
