//! `roster serve`: all four stages in one process until SIGTERM, polling the inboxes.
//! Against RabbitMQ and PostgreSQL for small installs, or embedded (in memory, SQLite).

use std::process::ExitCode;

use std::sync::Arc;

use clap::Args;
use roster_fetcher::FetcherSettings;
use roster_shared::config::{BrokerSettings, HealthSettings, StoreSettings};
use roster_shared::health::{self, Readiness};
use roster_shared::stage::NoProgress;
use tracing::info;

use crate::App;
use crate::pipeline::{Pipeline, PipelineSettings};

/// Arguments of `roster serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The broker (none: the stages talk in memory).
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// How the stages run.
    #[command(flatten)]
    pub pipeline: PipelineSettings,
    /// How the inboxes are polled.
    #[command(flatten)]
    pub fetcher: FetcherSettings,
    /// Probes.
    #[command(flatten)]
    pub health: HealthSettings,
}

/// Runs `roster serve`.
pub async fn run(store: StoreSettings, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let embedded = args.broker.amqp_url.is_none();
    let app = App::open(store, args.broker, Arc::new(NoProgress), embedded).await?;
    let shutdown = roster_shared::stage::shutdown_on_signals();
    if let Some(addr) = args.health.health_addr {
        let readiness = Readiness::default();
        readiness.set(app.services.clone());
        health::serve(addr, readiness, shutdown.clone()).await?;
    }
    let mut pipeline = Pipeline::start(&app, &args.pipeline, Some(&args.fetcher));
    info!(embedded = app.is_embedded(), "serving");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        Some(ended) = pipeline.join_next() => {
            ended?;
            anyhow::bail!("a stage stopped unexpectedly");
        }
    }
    pipeline.stop().await?;
    info!("stopped");
    Ok(super::ok())
}
