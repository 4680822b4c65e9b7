//! Opening an install's services from [`Settings`], and running one stage as its own
//! process: what every stage binary's `main` calls.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::blob::BlobStore;
use crate::config::Settings;
use crate::db::{Db, redact_url};
use crate::error::StageError;
use crate::health::{self, Readiness};
use crate::stage::{NoProgress, Progress, Services, shutdown_on_signals};
use crate::transport::TransportConfig;

/// Messages an in-memory queue holds before publishers wait.
pub const MEMORY_QUEUE_CAPACITY: usize = 8;

/// Why services could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database is unreachable or failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The schema is behind this build.
    #[error("the database at {0} needs migrating: run `roster migrate` first")]
    NeedsMigration(String),
    /// The broker is unreachable.
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    /// The blob store folder is unusable.
    #[error(transparent)]
    Blob(#[from] crate::blob::BlobError),
}

impl OpenError {
    /// Whether waiting may fix it (a service still starting, a migration Job not done).
    pub fn is_transient(&self) -> bool {
        !matches!(self, OpenError::Blob(_))
    }
}

/// The transport `settings` ask for: RabbitMQ when `ROSTER_AMQP_URL` is set, else memory.
pub fn transport_config(settings: &Settings) -> TransportConfig {
    match &settings.amqp_url {
        Some(url) => TransportConfig::RabbitMq {
            url: url.clone(),
            prefix: settings.queue_prefix.clone(),
        },
        None => TransportConfig::Memory {
            capacity: MEMORY_QUEUE_CAPACITY,
        },
    }
}

impl Services {
    /// Connects the database, blob store and transport `settings` describe. An embedded
    /// SQLite database is created and migrated as needed; any other must have been
    /// migrated (`roster migrate`).
    pub async fn open(
        settings: &Settings,
        progress: Arc<dyn Progress>,
    ) -> Result<Services, OpenError> {
        crate::install_crypto_provider();
        let db = Db::connect(&settings.database_url).await?;
        if db.is_sqlite() {
            db.migrate().await?;
        } else if db.needs_migration().await? {
            return Err(OpenError::NeedsMigration(redact_url(
                &settings.database_url,
            )));
        }
        let blobs = BlobStore::local(settings.blob_dir())?;
        let transport = transport_config(settings).connect().await?;
        Ok(Services {
            db,
            blobs,
            transport,
            progress,
        })
    }
}

/// Runs one stage as a process: waits for its services (database, schema, broker) with
/// backoff instead of crash-looping, serves the probes on `ROSTER_HEALTH_ADDR`, runs
/// `stage` until SIGTERM or Ctrl-C, and lets it finish the messages in hand.
pub async fn run_stage<F, Fut>(
    name: &'static str,
    settings: Settings,
    stage: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Services, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), StageError>>,
{
    if settings.amqp_url.is_none() {
        anyhow::bail!(
            "roster-{name} runs against RabbitMQ: set ROSTER_AMQP_URL (or run all stages in \
             one process with `roster serve`)"
        );
    }
    let shutdown = shutdown_on_signals();
    let readiness = Readiness::default();
    if let Some(addr) = settings.health_addr {
        health::serve(addr, readiness.clone(), shutdown.clone()).await?;
    }
    let mut backoff = Duration::from_millis(500);
    let services = loop {
        match Services::open(&settings, Arc::new(NoProgress)).await {
            Ok(s) => break s,
            Err(e) if e.is_transient() => {
                warn!(stage = name, error = %e, retry_in_ms = backoff.as_millis() as u64, "waiting for services");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e.into()),
        }
    };
    readiness.set(services.clone());
    info!(stage = name, "started");
    let stopping = shutdown.clone();
    let watch = readiness.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        watch.stopping();
    });
    let result = stage(services, shutdown).await;
    match &result {
        Ok(()) => info!(stage = name, "stopped"),
        Err(e) => error!(stage = name, error = %e, "stopped with an error"),
    }
    result.map_err(Into::into)
}
