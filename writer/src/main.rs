//! `roster-writer`: the writer stage as its own process, for scaling and restarting it
//! on its own. Settings come from `ROSTER_*` environment variables (`ROSTER_AMQP_URL`,
//! `ROSTER_DATABASE_URL`, `ROSTER_DATA_DIR`, `ROSTER_QUEUE_PREFIX`, `ROSTER_HEALTH_ADDR`,
//! `ROSTER_CONCURRENCY`, ...; see `roster --help`). SIGTERM stops it cleanly.

use roster_shared::config::Settings;
use roster_writer::WriterConfig;

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let _telemetry = roster_shared::telemetry::init("roster-writer", "info", &settings.log_format);
    let config = WriterConfig::from_settings(&settings);
    tokio::runtime::Runtime::new()?.block_on(roster_shared::runner::run_stage(
        "writer",
        settings,
        |services, shutdown| roster_writer::run(config, services, shutdown),
    ))
}
