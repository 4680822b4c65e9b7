//! `roster-fetcher`: the fetcher stage as its own process, for scaling and restarting it
//! on its own. Settings come from `ROSTER_*` environment variables alone: where the install
//! keeps its state, the broker, probes and supervisor (`roster_shared::runner::ProcessSettings`)
//! and how often inboxes are polled (`ROSTER_POLL_INTERVAL_MS`). A bad value is refused at
//! start, naming the variable. SIGTERM stops it cleanly.

use clap::Args;
use roster_fetcher::{FetcherConfig, FetcherSettings};
use roster_shared::config::from_env;
use roster_shared::runner::{self, ProcessSettings};

/// Everything `roster-fetcher` reads from the environment.
#[derive(Debug, Args)]
struct Settings {
    #[command(flatten)]
    process: ProcessSettings,
    #[command(flatten)]
    fetcher: FetcherSettings,
}

fn main() -> anyhow::Result<()> {
    let settings: Settings = from_env()?;
    let config = FetcherConfig::new(&settings.process.store, &settings.fetcher);
    runner::main("fetcher", settings.process, |services, shutdown| {
        roster_fetcher::run(config, services, shutdown)
    })?;
    Ok(())
}
