//! `sigild`: sigil's server. Configuration and wiring only; the services live in their crates.

mod migrate;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sigild",
    version,
    about = "sigil's signing services: transparency log, CT log and certificate authority in one process",
    long_about = "sigild runs sigil's services in one process: a Rekor-compatible transparency log \
(with the C2SP tiles read API), a certificate-transparency log, and a Fulcio-compatible CA.\n\n\
Quick start (embedded SQLite under ./sigil-data):\n  sigild serve --listen 127.0.0.1:3000\n\n\
Scale-out storage:\n  sigild serve --database-url postgres://user@db/sigil --public-url https://sigil.example.com"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the log (and the CA, when issuers are configured) over HTTP.
    Serve(Box<ServeArgs>),
    /// Print the ClientTrustConfig (trusted root + signing config) for this data dir, without serving.
    TrustConfig(Box<TrustConfigArgs>),
    /// Copy every log from the SQLite database in --data-dir into an empty PostgreSQL
    /// database, byte for byte, then check each copied tree. Stop sigild first; afterwards
    /// start it with --database-url and the same --data-dir (keys, head records).
    MigrateSqliteToPostgres(MigrateArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct MigrateArgs {
    /// The data dir whose sigil.db is copied.
    #[arg(long, default_value = "./sigil-data", env = "SIGIL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The empty PostgreSQL database to copy into (postgres://…).
    #[arg(long, env = "SIGIL_DATABASE_URL")]
    pub database_url: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Rekor,
    Tiles,
    Ca,
    /// A C2SP tlog-witness for the logs in --witness-logs.
    Witness,
}

#[derive(clap::Args, Clone, Debug)]
pub struct TrustConfigArgs {
    /// The URL clients will use to reach the server.
    #[arg(long, env = "SIGIL_PUBLIC_URL")]
    pub public_url: String,
    #[command(flatten)]
    pub ca: CaArgs,
    /// Where keys live (the same directory `serve` uses).
    #[arg(long, default_value = "./sigil-data", env = "SIGIL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Transparency log key, as given to `serve` (default <data-dir>/keys/rekor.pem).
    #[arg(long, env = "SIGIL_REKOR_KEY")]
    pub rekor_key: Option<PathBuf>,
    /// CT log key, as given to `serve` (default <data-dir>/keys/ctlog.pem).
    #[arg(long, env = "SIGIL_CT_KEY")]
    pub ct_key: Option<PathBuf>,
}

/// Certificate authority options.
#[derive(clap::Args, Clone, Debug)]
pub struct CaArgs {
    /// Issuers configuration file (JSON, Fulcio key names: OIDCIssuers, MetaIssuers). See docs/ca-oidc-issuers.md.
    #[arg(long = "config", env = "SIGIL_CONFIG")]
    pub issuers_config: Option<PathBuf>,
    /// Trust an email-identity OIDC issuer (client id `sigstore`). Repeatable.
    #[arg(long = "oidc-issuer", value_name = "URL")]
    pub oidc_issuers: Vec<String>,
    /// Development quick start: run a loopback-only token issuer on --dev-issuer-listen, trust
    /// it, and keep CA keys unencrypted. Never use in production.
    #[arg(long)]
    pub dev: bool,
    /// Where the --dev token issuer listens (loopback only).
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub dev_issuer_listen: std::net::SocketAddr,
    /// Allow issuers marked DevelopmentOnly. Never set this in production.
    #[arg(long)]
    pub allow_development_issuers: bool,
    /// Store generated CA keys unencrypted (development only). Production sets SIGIL_CA_PASSPHRASE.
    #[arg(long)]
    pub insecure_unencrypted_ca_keys: bool,
    /// Curve for generated CA keys: p256 or p384.
    #[arg(long, default_value = "p256")]
    pub ca_key_algorithm: String,
    /// Existing intermediate private key (PEM) to issue with, instead of generated keys.
    #[arg(long, requires = "ca_chain")]
    pub ca_key: Option<PathBuf>,
    /// The chain of --ca-key: intermediate first, root last (PEM).
    #[arg(long, requires = "ca_key")]
    pub ca_chain: Option<PathBuf>,
    /// Lifetime of issued certificates, in seconds.
    #[arg(long, default_value_t = 600)]
    pub leaf_validity_secs: u64,
    /// `operator` named in the trust config.
    #[arg(long)]
    pub operator: Option<String>,
    /// The OIDC issuer people log in with interactively, advertised to clients in the signing
    /// config (`oidcUrls`): `sigil` uses it when no --oidc-issuer is given. With --dev, the
    /// development issuer.
    #[arg(long, value_name = "URL", env = "SIGIL_OIDC_LOGIN_URL")]
    pub oidc_login_url: Option<String>,
    /// Per-identity (issuer and subject) limit on certificates, e.g. `10/m`. Over it: 429.
    #[arg(long, value_name = "RATE", env = "SIGIL_RATE_LIMIT_IDENTITY")]
    pub rate_limit_identity: Option<sigil_log::admission::Rate>,
}

/// `--services witness`: this node as a witness of other logs.
#[derive(clap::Args, Clone, Debug)]
pub struct WitnessArgs {
    /// The logs this witness cosigns (JSON): {"logs": [{"origin": "<checkpoint origin>",
    /// "publicKey": "<PEM of the log's checkpoint key>"}]}.
    #[arg(long, value_name = "FILE", env = "SIGIL_WITNESS_LOGS")]
    pub witness_logs: Option<PathBuf>,
    /// The witness's name in its cosignatures; default <public host>/witness.
    #[arg(long, env = "SIGIL_WITNESS_NAME")]
    pub witness_name: Option<String>,
    /// The witness's Ed25519 key (PKCS#8 PEM); created there on first start.
    /// Default: <data-dir>/keys/witness.pem.
    #[arg(long, env = "SIGIL_WITNESS_KEY")]
    pub witness_key: Option<PathBuf>,
}

#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "SIGIL_LISTEN")]
    pub listen: SocketAddr,
    /// Where keys and the embedded SQLite database live.
    #[arg(long, default_value = "./sigil-data", env = "SIGIL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (postgres://…); without it the log uses SQLite in the data dir.
    #[arg(long, env = "SIGIL_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The URL clients use to reach this server; names the log in checkpoints.
    /// Defaults to http://<listen address>.
    #[arg(long, env = "SIGIL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Which services to mount: any of rekor, tiles, ca (the CA brings its CT log), witness.
    /// Each can run alone, e.g. `--services rekor,tiles` for a log-only node or
    /// `--services witness` for a witness.
    #[arg(long, value_delimiter = ',', default_value = "rekor,tiles,ca")]
    pub services: Vec<Service>,
    /// Transparency log signing key (PKCS#8 PEM, ECDSA P-256); created there on first start.
    /// Default: <data-dir>/keys/rekor.pem.
    #[arg(long, env = "SIGIL_REKOR_KEY")]
    pub rekor_key: Option<PathBuf>,
    /// CT log signing key (PKCS#8 PEM, ECDSA P-256); default <data-dir>/keys/ctlog.pem.
    #[arg(long, env = "SIGIL_CT_KEY")]
    pub ct_key: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = sigil_log::http::DEFAULT_BODY_LIMIT, env = "SIGIL_MAX_BODY_BYTES")]
    pub max_body_bytes: usize,
    /// Writes (log entries, certificate requests) in flight at once, across all services.
    /// Beyond it a write is answered 503 with Retry-After before it is parsed, which keeps
    /// the latency of accepted writes bounded under overload.
    #[arg(long, default_value_t = sigil_log::admission::DEFAULT_MAX_PENDING_WRITES, env = "SIGIL_MAX_PENDING_WRITES")]
    pub max_pending_writes: usize,
    /// Bytes of request input that may wait for signature checks at once; beyond it, 503.
    #[arg(long, default_value_t = sigil_log::work::DEFAULT_QUEUED_BYTES, env = "SIGIL_MAX_QUEUED_WORK_BYTES")]
    pub max_queued_work_bytes: usize,
    /// Per-client (source IP) limit on writes, e.g. `50/s`, `600/m` or `20/s,burst=100`.
    /// Over it: 429 with Retry-After. Behind a proxy every client shares the proxy's address.
    #[arg(long, value_name = "RATE", env = "SIGIL_RATE_LIMIT_CLIENT")]
    pub rate_limit_client: Option<sigil_log::admission::Rate>,
    /// High availability: several sigild on one PostgreSQL database. Each log is sequenced by
    /// the node holding its lock in the database; the others serve reads, forward writes to
    /// it and take over within about a second when it stops. Needs --database-url; every node
    /// needs the same keys and --public-url. See docs/operations.md.
    #[arg(long, env = "SIGIL_HA", requires = "database_url")]
    pub ha: bool,
    /// Without --ha, on PostgreSQL: how long start-up waits, in seconds, for another
    /// database session's hold on a log to end before refusing to start. A sigild killed a
    /// moment ago leaves its session behind until PostgreSQL notices (up to about 5 s for a
    /// host that vanished); a second sigild on the same database is refused after the wait.
    /// 0 refuses at once.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10,
        env = "SIGIL_LOCK_WAIT"
    )]
    pub lock_wait: u64,
    /// With --ha: the URL other nodes reach this one at (its internal write route). Defaults
    /// to http://<listen address> when that is a specific address.
    #[arg(long, env = "SIGIL_ADVERTISE_URL", requires = "ha")]
    pub advertise_url: Option<String>,
    /// Ask this witness to cosign the log's checkpoints: `VKEY@URL`, the witness's verifier
    /// key and its submission prefix (a sigild witness: https://host/witness). Repeatable.
    /// Cosigned checkpoints are served at /api/v1/log/witnessed-checkpoint.
    #[arg(
        long = "witness",
        value_name = "VKEY@URL",
        env = "SIGIL_WITNESSES",
        value_delimiter = ' '
    )]
    pub witnesses: Vec<String>,
    #[command(flatten)]
    pub witness: WitnessArgs,
    #[command(flatten)]
    pub ca: CaArgs,
    /// Log format: text or json.
    #[arg(long, default_value = "text", env = "SIGIL_LOG_FORMAT")]
    pub log_format: String,
    /// SQLite only: how search keys move into sorted runs, as FLUSH_KEYS,FANOUT,MERGE_CHUNK
    /// (default 16384,8,8192, measured at 10M entries). Hidden: tests make them tiny so that
    /// flushes and merges happen every few entries, e.g. under kill -9.
    #[arg(long, hide = true, value_name = "FLUSH_KEYS,FANOUT,MERGE_CHUNK", value_parser = str::parse::<sigil_log::search_runs::Tuning>)]
    pub search_runs: Option<sigil_log::search_runs::Tuning>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One TLS provider for every client in the process (OIDC discovery, JWKS).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            init_tracing(&args.log_format);
            runtime.block_on(serve::serve(*args))
        }
        Command::TrustConfig(args) => {
            init_tracing("text");
            runtime.block_on(serve::print_trust_config(*args))
        }
        Command::MigrateSqliteToPostgres(args) => {
            init_tracing("text");
            runtime.block_on(migrate::sqlite_to_postgres(args))
        }
    }
}

fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colour codes only for a person at a terminal: in files, journald and CI logs they are
    // noise that breaks grep.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
