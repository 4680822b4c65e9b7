//! `roster-fetcher`: the fetcher stage as its own process, for scaling and restarting it
//! on its own. Settings come from `ROSTER_*` environment variables alone: where the install
//! keeps its state, the broker, probes and supervisor (`roster_shared::runner::ProcessSettings`)
//! how often inboxes, push jails and due sources are looked at (`ROSTER_POLL_INTERVAL_MS`),
//! and how failing sources are retried (`ROSTER_SOURCE_RETRY_SECS`,
//! `ROSTER_SOURCE_FAILING_AFTER`, `ROSTER_FETCH_CONCURRENCY`). Replicas share the work: one
//! polls the folders, each source is fetched by one at a time (leases). A bad value is
//! refused at start, naming the variable. SIGTERM stops it cleanly.

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
