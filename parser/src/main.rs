//! `roster-parser`: the parser stage as its own process, for scaling and restarting it on
//! its own. Settings come from `ROSTER_*` environment variables alone: where the install
//! keeps its state, the broker, probes and supervisor (`roster_shared::runner::ProcessSettings`),
//! how messages are consumed (`ROSTER_CONCURRENCY`, `ROSTER_PREFETCH`, ...) and the input
//! limits (`ROSTER_MAX_ROWS`, `ROSTER_PARSER_MEMORY_MB`, ...). A bad value is refused at
//! start, naming the variable. SIGTERM stops it cleanly.

use clap::Args;
use roster_parser::{ParserConfig, ParserSettings};
use roster_shared::config::{ConsumeSettings, from_env};
use roster_shared::runner::{self, ProcessSettings};

/// Everything `roster-parser` reads from the environment.
#[derive(Debug, Args)]
struct Settings {
    #[command(flatten)]
    process: ProcessSettings,
    #[command(flatten)]
    consume: ConsumeSettings,
    #[command(flatten)]
    parser: ParserSettings,
}

fn main() -> anyhow::Result<()> {
    let settings: Settings = from_env()?;
    let config = ParserConfig::new(
        &settings.consume,
        &settings.parser,
        settings.process.store.is_sqlite(),
    );
    runner::main("parser", settings.process, |services, shutdown| {
        roster_parser::run(config, services, shutdown)
    })?;
    Ok(())
}
