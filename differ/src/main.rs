//! `roster-differ`: the differ stage as its own process, for scaling and restarting it
//! on its own. Settings come from `ROSTER_*` environment variables (`ROSTER_AMQP_URL`,
//! `ROSTER_DATABASE_URL`, `ROSTER_DATA_DIR`, `ROSTER_QUEUE_PREFIX`, `ROSTER_HEALTH_ADDR`,
//! `ROSTER_CONCURRENCY`, ...; see `roster --help`). SIGTERM stops it cleanly.

use roster_differ::DifferConfig;
use roster_shared::config::Settings;

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let _telemetry = roster_shared::telemetry::init("roster-differ", "info", &settings.log_format);
    let config = DifferConfig::from_settings(&settings);
    tokio::runtime::Runtime::new()?.block_on(roster_shared::runner::run_stage(
        "differ",
        settings,
        |services, shutdown| roster_differ::run(config, services, shutdown),
    ))
}
