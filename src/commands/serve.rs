//! `roster serve`: all four stages in one process until SIGTERM, polling the inboxes.
//! Against RabbitMQ and PostgreSQL for small installs, or embedded (in memory, SQLite).

use std::process::ExitCode;

use roster_shared::config::Settings;
use tracing::info;

use crate::App;
use crate::pipeline::Pipeline;

/// Runs `roster serve`.
pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let app = App::open_quiet(settings).await?;
    let shutdown = roster_shared::stage::shutdown_on_signals();
    let mut pipeline = Pipeline::start(&app, true);
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
