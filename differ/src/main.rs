//! `roster-differ`: the differ stage as its own process, for scaling and restarting it on
//! its own. Settings come from `ROSTER_*` environment variables alone: where the install
//! keeps its state, the broker, probes and supervisor (`roster_shared::runner::ProcessSettings`),
//! how messages are consumed (`ROSTER_CONCURRENCY`, `ROSTER_PREFETCH`, ...) and the
//! mass-deactivation brake (`ROSTER_MAX_DEACTIVATE_PERCENT`, ...). A bad value is refused
//! at start, naming the variable. SIGTERM stops it cleanly.

use clap::Args;
use roster_differ::{BrakeSettings, DifferConfig};
use roster_shared::config::{ConsumeSettings, from_env};
use roster_shared::runner::{self, ProcessSettings};

/// Everything `roster-differ` reads from the environment.
#[derive(Debug, Args)]
struct Settings {
    #[command(flatten)]
    process: ProcessSettings,
    #[command(flatten)]
    consume: ConsumeSettings,
    #[command(flatten)]
    brake: BrakeSettings,
}

fn main() -> anyhow::Result<()> {
    let settings: Settings = from_env()?;
    let config = DifferConfig::new(
        &settings.consume,
        &settings.brake,
        settings.process.store.is_sqlite(),
    );
    runner::main("differ", settings.process, |services, shutdown| {
        roster_differ::run(config, services, shutdown)
    })?;
    Ok(())
}
