//! Opening an install's services from settings, and running one stage as its own
//! process: what every stage binary's `main` calls.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::blob::BlobStore;
use crate::config::{
    BrokerSettings, HealthSettings, LogSettings, StoreSettings, SupervisorSettings,
};
use crate::db::Db;
use crate::error::{StageError, report};
use crate::health::{self, Readiness};
use crate::stage::{NoProgress, Progress, Services, shutdown_on_signals};
use crate::transport::TransportConfig;

/// Change batches the in-memory queue of the writer holds before the differ waits (the
/// other in-memory queues, of references, are not bounded).
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

/// The transport `broker` asks for: RabbitMQ when `ROSTER_AMQP_URL` is set, else memory.
pub fn transport_config(broker: &BrokerSettings) -> TransportConfig {
    match &broker.amqp_url {
        Some(url) => TransportConfig::RabbitMq {
            url: url.clone(),
            prefix: broker.queue_prefix.clone(),
        },
        None => TransportConfig::Memory {
            capacity: MEMORY_QUEUE_CAPACITY,
        },
    }
}

impl Services {
    /// Connects the database, blob store and transport the settings describe. With
    /// `migrate`, an embedded SQLite database is created and migrated as needed (the
    /// embedded `roster import` and `roster serve`); otherwise the schema must be up to
    /// date (`roster migrate`), and nothing waits behind another process's migration.
    pub async fn open(
        store: &StoreSettings,
        broker: &BrokerSettings,
        progress: Arc<dyn Progress>,
        migrate: bool,
    ) -> Result<Services, OpenError> {
        crate::install_crypto_provider();
        let db = Db::connect(&store.database_url).await?;
        if migrate && db.is_sqlite() {
            db.migrate().await?;
        } else if db.needs_migration().await? {
            return Err(OpenError::NeedsMigration(store.database_url.redacted()));
        }
        let blobs = BlobStore::local(store.blob_dir())?;
        let transport = transport_config(broker).connect().await?;
        Ok(Services {
            db,
            blobs,
            transport,
            progress,
        })
    }
}

/// What every stage process takes: where the install keeps its state, logging, the
/// broker, the probes and the supervisor.
#[derive(Debug, Clone, Default, Args)]
pub struct ProcessSettings {
    /// Database and data folder.
    #[command(flatten)]
    pub store: StoreSettings,
    /// Logging.
    #[command(flatten)]
    pub log: LogSettings,
    /// The broker.
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// Probes.
    #[command(flatten)]
    pub health: HealthSettings,
    /// The supervisor every process competes to be.
    #[command(flatten)]
    pub supervisor: SupervisorSettings,
}

/// Runs one stage as a process: waits for its services (database, schema, broker) with
/// backoff instead of crash-looping, serves the probes on `ROSTER_HEALTH_ADDR`, competes
/// for the supervisor's lease, runs `stage` until SIGTERM or Ctrl-C, and lets it finish
/// the messages in hand.
pub async fn run_stage<F, Fut>(
    name: &'static str,
    settings: ProcessSettings,
    stage: F,
) -> Result<(), RunError>
where
    F: FnOnce(Services, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), StageError>>,
{
    if settings.broker.amqp_url.is_none() {
        return Err(RunError::NoBroker(name));
    }
    let shutdown = shutdown_on_signals();
    let readiness = Readiness::default();
    if let Some(addr) = settings.health.health_addr {
        health::serve(addr, readiness.clone(), shutdown.clone())
            .await
            .map_err(RunError::Probes)?;
    }
    let mut backoff = Duration::from_millis(500);
    let services = loop {
        match Services::open(
            &settings.store,
            &settings.broker,
            Arc::new(NoProgress),
            false,
        )
        .await
        {
            Ok(s) => break s,
            Err(e) if e.is_transient() => {
                warn!(stage = name, error = %e, retry_in_ms = backoff.as_millis() as u64, "waiting for services");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(RunError::Open(e)),
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
    let supervisor = tokio::spawn(crate::supervisor::run(
        services.clone(),
        settings.supervisor.clone(),
        shutdown.clone(),
    ));
    let result = stage(services, shutdown.clone()).await;
    shutdown.cancel();
    let _ = supervisor.await;
    match &result {
        Ok(()) => info!(stage = name, "stopped"),
        Err(e) => error!(stage = name, error = %report(e), "stopped with an error"),
    }
    result.map_err(RunError::Stage)
}

/// The whole `main` of a stage binary: logging and tracing for `roster-<name>`, a
/// runtime, then [`run_stage`].
pub fn main<F, Fut>(name: &'static str, settings: ProcessSettings, stage: F) -> Result<(), RunError>
where
    F: FnOnce(Services, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), StageError>>,
{
    let _telemetry =
        crate::telemetry::init(&format!("roster-{name}"), "info", settings.log.log_format);
    tokio::runtime::Runtime::new()
        .map_err(RunError::Runtime)?
        .block_on(run_stage(name, settings, stage))
}

/// Why a stage process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No broker configured: a stage process needs one.
    #[error(
        "roster-{0} runs against RabbitMQ: set ROSTER_AMQP_URL (or run all stages in one \
         process with `roster serve`)"
    )]
    NoBroker(&'static str),
    /// The probes' address could not be bound.
    #[error("serving the probes: {0}")]
    Probes(#[source] std::io::Error),
    /// The services could not be opened for good.
    #[error("opening the services: {0}")]
    Open(#[source] OpenError),
    /// The stage failed.
    #[error("the stage failed: {0}")]
    Stage(#[source] StageError),
    /// No async runtime could be started.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
