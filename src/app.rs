//! From settings to running services: the database (migrated automatically when it is an
//! embedded SQLite file), the blob store and the transport, plus each stage's settings.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use roster_differ::DifferConfig;
use roster_fetcher::FetcherConfig;
use roster_parser::ParserConfig;
use roster_shared::config::Settings;
use roster_shared::db::redact_url;
use roster_shared::stage::{NoProgress, Progress, Services};
use roster_writer::WriterConfig;

/// An opened install: settings plus the services stages need.
#[derive(Clone)]
pub struct App {
    /// The settings it was opened with.
    pub settings: Settings,
    /// Database, blobs, transport and progress.
    pub services: Services,
}

/// The local path of a SQLite URL, if it is one with a file.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

impl App {
    /// Opens the install `settings` describe. An embedded SQLite database is created and
    /// migrated as needed; any other must have been migrated with `roster migrate`.
    pub async fn open(settings: Settings, progress: Arc<dyn Progress>) -> anyhow::Result<App> {
        let services = Services::open(&settings, progress)
            .await
            .with_context(|| format!("opening {}", redact_url(&settings.database_url)))?;
        Ok(App { settings, services })
    }

    /// Opens the install without progress reporting.
    pub async fn open_quiet(settings: Settings) -> anyhow::Result<App> {
        Self::open(settings, Arc::new(NoProgress)).await
    }

    /// Whether the stages run in this process (no broker configured).
    pub fn is_embedded(&self) -> bool {
        self.settings.amqp_url.is_none()
    }

    /// The parser's settings.
    pub fn parser(&self) -> ParserConfig {
        ParserConfig::from_settings(&self.settings)
    }

    /// The differ's settings.
    pub fn differ(&self) -> DifferConfig {
        DifferConfig::from_settings(&self.settings)
    }

    /// The writer's settings.
    pub fn writer(&self) -> WriterConfig {
        WriterConfig::from_settings(&self.settings)
    }

    /// The fetcher's settings (an in-process fetcher recovers stalled runs sooner: see
    /// [`crate::pipeline::EMBEDDED_STALL_AFTER`]).
    pub fn fetcher(&self) -> FetcherConfig {
        let mut config = FetcherConfig::from_settings(&self.settings);
        if self.is_embedded() {
            config.stall_after = config
                .stall_after
                .min(crate::pipeline::EMBEDDED_STALL_AFTER);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://./roster.db"),
            Some(PathBuf::from("./roster.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:/tmp/x.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }
}
