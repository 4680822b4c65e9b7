//! `roster-parser`: the parser stage as its own process, for scaling and restarting it on its
//! own. Settings come from `ROSTER_*` environment variables alone: where the install
//! keeps its state, the broker, probes and supervisor (`roster_shared::runner::ProcessSettings`)
//! and how messages are consumed (`ROSTER_CONCURRENCY`, `ROSTER_PREFETCH`, ...). A bad
//! value is refused at start, naming the variable. SIGTERM stops it cleanly.

use clap::Args;
use roster_parser::ParserConfig;
use roster_shared::config::{ConsumeSettings, from_env};
use roster_shared::runner::{self, ProcessSettings};

/// Everything `roster-parser` reads from the environment.
#[derive(Debug, Args)]
struct Settings {
    #[command(flatten)]
    process: ProcessSettings,
    #[command(flatten)]
    consume: ConsumeSettings,
}

fn main() -> anyhow::Result<()> {
    let settings: Settings = from_env()?;
    let config = ParserConfig::new(&settings.consume, settings.process.store.is_sqlite());
    runner::main("parser", settings.process, |services, shutdown| {
        roster_parser::run(config, services, shutdown)
    })?;
    Ok(())
}
