//! From settings to running services: the database (migrated automatically when it is an
//! embedded SQLite file), the blob store and the transport.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::stage::{NoProgress, Progress, Services};

/// An opened install: the settings it was opened with plus the services stages need.
#[derive(Clone)]
pub struct App {
    /// Where the install keeps its state.
    pub store: StoreSettings,
    /// The broker (none: stages run in this process, in memory).
    pub broker: BrokerSettings,
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
    /// Opens the install the settings describe. An embedded SQLite database is created
    /// and migrated as needed; any other must have been migrated with `roster migrate`.
    pub async fn open(
        store: StoreSettings,
        broker: BrokerSettings,
        progress: Arc<dyn Progress>,
    ) -> anyhow::Result<App> {
        let services = Services::open(&store, &broker, progress)
            .await
            .with_context(|| format!("opening {}", store.database_url))?;
        Ok(App {
            store,
            broker,
            services,
        })
    }

    /// Opens the install without progress reporting.
    pub async fn open_quiet(store: StoreSettings, broker: BrokerSettings) -> anyhow::Result<App> {
        Self::open(store, broker, Arc::new(NoProgress)).await
    }

    /// Opens the install's database and blobs only, for commands that talk to no stage.
    pub async fn open_local(store: StoreSettings) -> anyhow::Result<App> {
        Self::open_quiet(store, BrokerSettings::default()).await
    }

    /// Whether the stages run in this process (no broker configured).
    pub fn is_embedded(&self) -> bool {
        self.broker.amqp_url.is_none()
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
