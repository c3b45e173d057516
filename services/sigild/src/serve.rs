//! `sigild serve`: open storage, start each log's sequencer, mount the personalities.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sigil_log::rekor_v1::{self, RekorLog};
use sigil_log::{LogEngine, LogSigner, Store, tiles};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::ServeArgs;

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

    let store = Store::open(args.database_url.as_deref(), &args.data_dir)
        .await
        .context("opening storage")?;
    let rekor_key = LogSigner::load_or_create(&args.data_dir.join("keys/rekor.pem"))?;
    let rekor_engine = LogEngine::open(store.clone(), "rekor").await?;
    let rekor = Arc::new(RekorLog::new(
        rekor_engine,
        Arc::new(rekor_key),
        &public_url,
    ));
    tracing::info!(
        backend = store.backend(),
        public_url = %public_url,
        log_id = %rekor.log_id_hex(),
        tree_size = rekor.engine().tree_head().size,
        "transparency log ready"
    );

    let app = Router::new()
        .merge(rekor_v1::router(rekor.clone(), args.max_body_bytes))
        .merge(tiles::router(rekor.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(move || render_metrics(metrics.clone())))
        .fallback(sigil_log::http::not_found_fallback)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(60),
        ))
        .layer(TraceLayer::new_for_http());

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %args.listen, "sigild serving");
    // In-flight requests (and so the batch they wait on) finish before the process exits.
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    drop(rekor);
    tracing::info!("sigild stopped");
    Ok(())
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
