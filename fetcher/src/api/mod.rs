//! The import API: customers upload files over HTTPS and follow their imports
//! (`POST /v1/imports`, `GET /v1/imports/{id}`, `.../rejects`, `.../changes`), with a
//! bearer token per integration (`roster tokens`), a sandbox, size and rate limits, and an
//! OpenAPI 3.1 document (`GET /v1/openapi.json`, kept in `docs/openapi.json`).
//!
//! Served by the fetcher (the `roster-fetcher` process, or `roster serve`) when
//! `ROSTER_API_ADDR` is set: with TLS when `ROSTER_API_TLS_CERT` and `ROSTER_API_TLS_KEY`
//! name PEM files (rustls), otherwise plain HTTP for an ingress that terminates TLS.
//! An upload is stored and announced like any delivered file (its run's source is `api`);
//! nothing is stored for a request answered with a 4xx.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use clap::Args;
use roster_shared::stage::Services;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::FetchLimits;

pub mod auth;
pub mod error;
pub mod imports;
pub mod openapi;
mod tls;
pub mod upload;

/// Bytes a multipart body may carry beyond its files' limit (boundaries, part headers,
/// text fields).
pub const MULTIPART_SLACK: u64 = 64 << 10;

/// Default of `ROSTER_API_RATE_PER_MINUTE`.
pub const DEFAULT_RATE_PER_MINUTE: u32 = 120;

/// How the import API is served.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ApiSettings {
    /// Address the import API listens on (none: no API).
    #[arg(long, env = "ROSTER_API_ADDR")]
    pub api_addr: Option<SocketAddr>,
    /// PEM certificate chain to serve the API over TLS (with `ROSTER_API_TLS_KEY`).
    #[arg(long, env = "ROSTER_API_TLS_CERT", requires = "api_tls_key")]
    pub api_tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "ROSTER_API_TLS_KEY", requires = "api_tls_cert")]
    pub api_tls_key: Option<PathBuf>,
    /// Requests a tenant may make a minute (in bursts of as many); more are answered 429.
    #[arg(
        long,
        env = "ROSTER_API_RATE_PER_MINUTE",
        default_value_t = DEFAULT_RATE_PER_MINUTE,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub api_rate_per_minute: u32,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            api_addr: None,
            api_tls_cert: None,
            api_tls_key: None,
            api_rate_per_minute: DEFAULT_RATE_PER_MINUTE,
        }
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub struct ApiState {
    /// The stores and transport uploads go to.
    pub services: Services,
    /// What an uploaded file may be.
    pub limits: FetchLimits,
    /// Tokens and rate limits.
    pub gate: auth::Gate,
}

/// The API's routes on `state`.
pub fn router(state: Arc<ApiState>) -> Router {
    let body_limit = usize::try_from(state.limits.max_file_bytes.saturating_add(MULTIPART_SLACK))
        .unwrap_or(usize::MAX);
    Router::new()
        .route(
            "/v1/imports",
            post(imports::create).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/v1/imports/{id}", get(imports::status))
        .route("/v1/imports/{id}/rejects", get(imports::rejects))
        .route("/v1/imports/{id}/changes", get(imports::changes))
        .route("/v1/imports/{id}/review", get(imports::review))
        .route("/v1/imports/{id}/approve", post(imports::approve))
        .route("/v1/imports/{id}/reject", post(imports::reject))
        .route("/v1/openapi.json", get(openapi::serve))
        .with_state(state)
}

/// Starts serving the API as `settings` say until `shutdown`; `None` when no address is
/// set. Fails at once when the address cannot be bound or the TLS files not read.
pub async fn start(
    settings: &ApiSettings,
    services: Services,
    limits: FetchLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(addr) = settings.api_addr else {
        return Ok(None);
    };
    let tls = match (&settings.api_tls_cert, &settings.api_tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let per_minute = NonZeroU32::new(settings.api_rate_per_minute).unwrap_or(NonZeroU32::MIN);
    let state = Arc::new(ApiState {
        services,
        limits,
        gate: auth::Gate::new(per_minute),
    });
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("ROSTER_API_ADDR {addr}: cannot listen: {e}"))?;
    let bound = listener.local_addr()?;
    info!(addr = %bound, tls = tls.is_some(), "serving the import API");
    Ok(Some(match tls {
        Some(acceptor) => tokio::spawn(tls::serve(listener, acceptor, app, shutdown)),
        None => tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the import API stopped");
            }
        }),
    }))
}
