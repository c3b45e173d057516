//! `sigild serve`: open storage, start each log's sequencer, mount the personalities.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sigil_log::admission::WriteAdmission;
use sigil_log::cluster::{self, Cluster};
use sigil_log::cosigning::{self, Cosigner, WitnessEndpoint};
use sigil_log::head_file::HeadFile;
use sigil_log::rekor_v1::{self, RekorLog};
use sigil_log::witness;
use sigil_log::work::WorkPool;
use sigil_log::{EngineOptions, LogEngine, LogSigner, Store, tiles};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::{CaArgs, ServeArgs, Service, TrustConfigArgs};
use sigil_ca::config::IssuersConfig;
use sigil_ca::{
    Ca, CaKeyAlgorithm, CaOptions, ImportedCa, KeyProtection, KeyStoreOptions, TrustConfigInputs,
};
use sigil_log::ct::CtLog;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.listen));
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;

    let store = match args.database_url.as_deref() {
        None => {
            let tuning = args.search_runs.unwrap_or_default();
            Store::open_sqlite_with(&args.data_dir, tuning).await
        }
        Some(_) if args.search_runs.is_some() => {
            anyhow::bail!("--search-runs applies to SQLite only")
        }
        Some(url) => Store::open_postgres(url).await,
    }
    .context("opening storage")?;
    let cluster = match args.ha {
        false => None,
        true => {
            let url = match &args.advertise_url {
                Some(url) => url.clone(),
                None if !args.listen.ip().is_unspecified() => format!("http://{}", args.listen),
                None => anyhow::bail!(
                    "--ha with --listen {} needs --advertise-url: the address other nodes reach \
                     this one at",
                    args.listen
                ),
            };
            let secret = store
                .cluster_secret()
                .await
                .context("reading the cluster secret")?;
            tracing::info!(advertise_url = %url, "high availability: sharing logs with other nodes");
            Some(Cluster::new(&url, secret))
        }
    };
    let mut cluster_engines: Vec<LogEngine> = Vec::new();
    let rekor_key_path = args
        .rekor_key
        .clone()
        .unwrap_or_else(|| args.data_dir.join("keys/rekor.pem"));
    let rekor_key = LogSigner::load_or_create(&rekor_key_path)?;
    let rekor_engine = open_log(&store, "rekor", &args, cluster.clone()).await?;
    cluster_engines.push(rekor_engine.clone());
    // One pool for every service's signature checks: the cores are shared, so is the queue.
    let work = WorkPool::new(
        sigil_log::work::default_threads(),
        args.max_queued_work_bytes,
    );
    let rekor = Arc::new(
        RekorLog::new(rekor_engine, Arc::new(rekor_key), &public_url).with_work_pool(work.clone()),
    );
    rekor
        .engine()
        .bind_identity(&rekor.signer().key_id(), &rekor.origin())
        .await?;
    tracing::info!(
        backend = store.backend(),
        public_url = %public_url,
        log_id = %rekor.log_id_hex(),
        tree_size = rekor.engine().tree_head().size,
        "transparency log ready"
    );

    let mut ca_args = args.ca.clone();
    let mut dev_issuer_url = None;
    if ca_args.dev {
        let dev = sigil_ca::dev_issuer::start(ca_args.dev_issuer_listen).await?;
        tracing::warn!(
            token_url = %format!("{}/token?email=you@example.com", dev.url),
            "DEVELOPMENT MODE: trusting a local token issuer and keeping CA keys unencrypted; never use in production"
        );
        ca_args.insecure_unencrypted_ca_keys = true;
        ca_args.allow_development_issuers = true;
        dev_issuer_url = Some(dev.url);
    }
    let args = ServeArgs {
        ca: ca_args,
        ..args
    };
    let issuers = issuers(&args.ca, dev_issuer_url.as_deref())?;
    let mut app = Router::new();
    let mut ready_engines: Vec<LogEngine> = Vec::new();
    let wants = |s: Service| args.services.contains(&s);
    if !wants(Service::Ca) {
        tracing::info!("CA not mounted (--services)");
    } else if issuers.is_empty() {
        tracing::warn!(
            "no OIDC issuers configured (--config / --oidc-issuer): the CA is not serving"
        );
    } else {
        let ct_key_path = args
            .ct_key
            .clone()
            .unwrap_or_else(|| args.data_dir.join("keys/ctlog.pem"));
        let ct_key = LogSigner::load_or_create(&ct_key_path)?;
        let ct_engine = open_log(&store, "ct", &args, cluster.clone()).await?;
        cluster_engines.push(ct_engine.clone());
        let ct = CtLog::new(ct_engine, ct_key);
        // A CT log is named by its key alone (its log ID); there is no checkpoint origin.
        ct.engine().bind_identity(&ct.log_id(), "ct").await?;
        ready_engines.push(ct.engine().clone());
        let verifier = sigil_ca::oidc::TokenVerifier::new(issuers)?;
        let mut ca = Ca::open(ca_options(&args.ca, &args.data_dir)?, verifier, ct.clone())
            .await?
            .with_work_pool(work.clone());
        if let Some(rate) = args.ca.rate_limit_identity {
            ca = ca.with_identity_rate_limit(rate);
        }
        let mut inputs = trust_inputs(&args.ca, &public_url, rekor.signer().spki_der());
        if dev_issuer_url.is_some() {
            inputs.oidc_url = dev_issuer_url.clone();
        }
        tracing::info!(issuers = ?ca.configuration().issuers.len(), "certificate authority ready");
        app = app
            .merge(sigil_ca::router_with_trust(Arc::new(ca), Some(inputs)))
            .merge(sigil_log::ct::http::router(ct));
    }

    if wants(Service::Rekor) {
        app = app.merge(rekor_v1::router(rekor.clone(), args.max_body_bytes));
    }
    if wants(Service::Tiles) {
        app = app.merge(tiles::router(rekor.clone()));
    }
    if !args.witnesses.is_empty() {
        let endpoints = args
            .witnesses
            .iter()
            .map(|w| WitnessEndpoint::parse(w).map_err(|e| anyhow::anyhow!("--witness {w}: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        tracing::info!(
            witnesses = endpoints.len(),
            "collecting witness cosignatures"
        );
        let cosigner = Cosigner::new(rekor.clone(), endpoints);
        // Serve the recorded cosigned checkpoint from the first request on.
        cosigner.refresh().await;
        tokio::spawn(cosigner.clone().run());
        app = app.merge(cosigning::router(cosigner));
    }
    if wants(Service::Witness) {
        app = app.merge(witness::router(Arc::new(
            open_witness(&args, &public_url, &store).await?,
        )));
    }
    let admission = WriteAdmission::new(args.max_pending_writes, args.rate_limit_client);
    ready_engines.push(rekor.engine().clone());
    let app = app
        .layer(middleware::from_fn_with_state(
            admission.clone(),
            sigil_log::admission::admit_writes,
        ))
        // Liveness: the process answers. Readiness: the log's writer can commit.
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(move || readyz(ready_engines.clone())))
        .route("/metrics", get(move || render_metrics(metrics.clone())))
        // Forwarded writes were rate-limited by the node that took them; here they take a
        // slot among this node's in-flight writes like its own clients' do.
        .merge(match &cluster {
            Some(c) => cluster::router(c.clone(), cluster_engines).layer(
                middleware::from_fn_with_state(admission, sigil_log::admission::admit_forwarded),
            ),
            None => Router::new(),
        })
        .fallback(sigil_log::http::not_found_fallback)
        .layer(middleware::from_fn(sigil_log::http::record_request))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(60),
        ))
        .layer(CatchPanicLayer::custom(sigil_log::http::panic_response))
        // Refusals under overload are 5xx by design: logging each at ERROR would flood the
        // logs exactly when the server is busiest. Our own faults log themselves at ERROR.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        // Outermost, so that it sees the final answer, whichever layer gave it.
        .layer(middleware::from_fn(sigil_log::http::close_if_body_unread));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %args.listen, "sigild serving");
    // In-flight requests (and so the batch they wait on) finish before the process exits.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    drop(rekor);
    tracing::info!("sigild stopped");
    Ok(())
}

/// The witness service: its key (created on first start), name and the logs it follows.
async fn open_witness(
    args: &ServeArgs,
    public_url: &str,
    store: &Store,
) -> anyhow::Result<witness::Witness> {
    let path = args
        .witness
        .witness_logs
        .as_ref()
        .context("--services witness needs --witness-logs FILE (the logs it cosigns)")?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let logs = witness::WitnessedLog::from_config(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let name = args
        .witness
        .witness_name
        .clone()
        .unwrap_or_else(|| format!("{}/witness", rekor_v1::url_host(public_url)));
    let key_path = args
        .witness
        .witness_key
        .clone()
        .unwrap_or_else(|| args.data_dir.join("keys/witness.pem"));
    let signer = witness::WitnessSigner::load_or_create(&key_path, &name)?;
    tracing::info!(
        vkey = %signer.vkey().to_text(),
        logs = ?logs.iter().map(|l| l.origin.as_str()).collect::<Vec<_>>(),
        "witness ready"
    );
    Ok(witness::Witness::new(signer, logs, store.clone()))
}

/// Opens a log whose last committed head is also recorded in `<data-dir>/heads/<name>`.
/// The head file is this node's own evidence: in a cluster each node keeps one for the
/// commits it made while it was the leader.
async fn open_log(
    store: &Store,
    name: &str,
    args: &ServeArgs,
    cluster: Option<Cluster>,
) -> anyhow::Result<LogEngine> {
    let options = EngineOptions {
        head_file: Some(HeadFile::new(args.data_dir.join("heads").join(name))),
        cluster,
        lock_wait: Duration::from_secs(args.lock_wait),
    };
    Ok(LogEngine::open_with(store.clone(), name, options).await?)
}

fn issuers(args: &CaArgs, dev_issuer: Option<&str>) -> anyhow::Result<IssuersConfig> {
    let mut issuers = match &args.issuers_config {
        Some(path) => IssuersConfig::from_file(path)?,
        None => IssuersConfig::default(),
    };
    if let Some(url) = dev_issuer {
        let mut issuer = sigil_ca::config::IssuerConfig::email(url);
        issuer.development_only = true;
        issuer.description = Some("sigild --dev token issuer".into());
        issuers.add_issuer(url, issuer)?;
    }
    for url in &args.oidc_issuers {
        issuers.add_email_issuer(url)?;
    }
    issuers.check_development(args.allow_development_issuers)?;
    Ok(issuers)
}

fn ca_options(args: &CaArgs, data_dir: &std::path::Path) -> anyhow::Result<CaOptions> {
    let algorithm = match args.ca_key_algorithm.as_str() {
        "p256" => CaKeyAlgorithm::EcdsaP256,
        "p384" => CaKeyAlgorithm::EcdsaP384,
        other => anyhow::bail!("--ca-key-algorithm must be p256 or p384, not {other:?}"),
    };
    let imported = match (&args.ca_key, &args.ca_chain) {
        (Some(key), Some(chain)) => Some(ImportedCa {
            key_pem: key.clone(),
            chain_pem: chain.clone(),
        }),
        _ => None,
    };
    Ok(CaOptions {
        keys: KeyStoreOptions {
            data_dir: data_dir.to_path_buf(),
            algorithm,
            protection: KeyProtection::from_env(args.insecure_unencrypted_ca_keys),
            imported,
            organization: "sigil".to_string(),
        },
        leaf_validity: Duration::from_secs(args.leaf_validity_secs),
    })
}

fn trust_inputs(args: &CaArgs, public_url: &str, rekor_spki_der: &[u8]) -> TrustConfigInputs {
    let url = public_url.trim_end_matches('/').to_string();
    TrustConfigInputs {
        ca_url: url.clone(),
        rekor_url: url.clone(),
        ct_url: url.clone(),
        rekor_spki_der: rekor_spki_der.to_vec(),
        oidc_url: args.oidc_login_url.clone(),
        operator: args
            .operator
            .clone()
            .unwrap_or_else(|| rekor_v1::url_host(&url)),
        valid_from: None,
    }
}

/// `sigild trust-config`: the same document `GET /api/v1/trust-config` serves.
pub async fn print_trust_config(args: TrustConfigArgs) -> anyhow::Result<()> {
    let keys = ca_options(&args.ca, &args.data_dir)?.keys;
    let material =
        tokio::task::spawn_blocking(move || sigil_ca::keystore::load_or_create(&keys)).await??;
    let rekor_key_path = args
        .rekor_key
        .clone()
        .unwrap_or_else(|| args.data_dir.join("keys/rekor.pem"));
    let rekor_key = LogSigner::load_or_create(&rekor_key_path)?;
    let ct_key_path = args
        .ct_key
        .clone()
        .unwrap_or_else(|| args.data_dir.join("keys/ctlog.pem"));
    let ct_key = LogSigner::load_or_create(&ct_key_path)?;
    let inputs = trust_inputs(&args.ca, &args.public_url, rekor_key.spki_der());
    let config = sigil_ca::trust_config::client_trust_config(
        &sigil_ca::trust_config::TrustMaterial {
            ca_chain: &material.chain,
            ct_spki_der: ct_key.spki_der(),
        },
        &inputs,
    )?;
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}

/// Ready when every log's writer can commit (the CA issues through the CT log's writer).
async fn readyz(engines: Vec<LogEngine>) -> Response {
    for engine in &engines {
        if let Err(e) = engine.check_ready().await {
            let message = format!("not ready: log {}: {e}", engine.name());
            return sigil_log::http::HttpError::unavailable(message).into_response();
        }
    }
    (StatusCode::OK, "ready").into_response()
}

async fn render_metrics(handle: PrometheusHandle) -> String {
    handle.render()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
