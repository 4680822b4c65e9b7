//! `/healthz` and `/readyz` for Kubernetes probes. Liveness says the process serves HTTP;
//! readiness says the database answers and the transport can move messages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use sea_orm::ConnectionTrait;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::stage::Services;

/// What `/readyz` checks, filled in once the services are connected.
#[derive(Clone, Default)]
pub struct Readiness {
    services: Arc<std::sync::Mutex<Option<Services>>>,
    stopping: Arc<AtomicBool>,
}

impl Readiness {
    /// Marks the services as connected.
    pub fn set(&self, services: Services) {
        *self.services.lock().expect("readiness lock") = Some(services);
    }

    /// Marks the process as stopping (not ready for new work).
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    async fn check(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("stopping".into());
        }
        let services = self
            .services
            .lock()
            .expect("readiness lock")
            .clone()
            .ok_or("starting: not connected yet")?;
        services
            .db
            .conn()
            .execute_unprepared("SELECT 1")
            .await
            .map_err(|e| format!("database: {e}"))?;
        services
            .transport
            .check()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        Ok(())
    }
}

async fn readyz(State(r): State<Readiness>) -> (StatusCode, String) {
    match r.check().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// Serves the probes on `addr` until `shutdown`. Returns the bound address (useful with
/// port 0).
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(readiness);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    info!(addr = %bound, "serving /healthz and /readyz");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(bound)
}
