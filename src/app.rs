//! From settings to running services: the database (migrated automatically when it is an
//! embedded SQLite file), the blob store and the transport.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::db::Db;
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
    /// Opens the install the settings describe. With `migrate` (the embedded `import`
    /// and `serve`), an embedded SQLite database is created and migrated as needed;
    /// otherwise the schema must be up to date (`roster migrate`).
    pub async fn open(
        store: StoreSettings,
        broker: BrokerSettings,
        progress: Arc<dyn Progress>,
        migrate: bool,
    ) -> anyhow::Result<App> {
        let services = Services::open(&store, &broker, progress, migrate)
            .await
            .with_context(|| format!("opening {}", store.database_url))?;
        Ok(App {
            store,
            broker,
            services,
        })
    }

    /// Opens an install that must already exist, without progress reporting.
    pub async fn open_quiet(store: StoreSettings, broker: BrokerSettings) -> anyhow::Result<App> {
        let url = &store.database_url;
        if sqlite_path(url.expose()).is_some_and(|p| !p.exists()) {
            anyhow::bail!(
                "no Roster database at {url} yet: import a file first, or run `roster migrate`"
            );
        }
        Self::open(store, broker, Arc::new(NoProgress), false).await
    }

    /// Whether the stages run in this process (no broker configured).
    pub fn is_embedded(&self) -> bool {
        self.broker.amqp_url.is_none()
    }
}

/// The install's database for a command that only reads it: never migrated (nothing
/// waits behind another process's migration), and when its SQLite file does not exist
/// yet, an empty install in memory (a read creates no file).
pub async fn read_db(store: &StoreSettings) -> anyhow::Result<Db> {
    roster_shared::install_crypto_provider();
    let url = &store.database_url;
    if sqlite_path(url.expose()).is_some_and(|p| !p.exists()) {
        let db = Db::connect(&"sqlite::memory:".into()).await?;
        db.migrate().await?;
        return Ok(db);
    }
    let db = Db::connect_existing(url)
        .await
        .with_context(|| format!("opening {url}"))?;
    anyhow::ensure!(
        !db.needs_migration().await?,
        "the database at {url} needs migrating: run `roster migrate` first"
    );
    Ok(db)
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
