//! From settings to running services: the database (migrated automatically when it is an
//! embedded SQLite file), the blob store and the transport, plus each stage's settings.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use roster_differ::DifferConfig;
use roster_fetcher::FetcherConfig;
use roster_parser::ParserConfig;
use roster_shared::blob::BlobStore;
use roster_shared::config::Settings;
use roster_shared::db::{Db, redact_url};
use roster_shared::stage::{ConsumeOptions, NoProgress, Progress, Services};
use roster_shared::transport::TransportConfig;
use roster_writer::WriterConfig;

/// Messages an in-memory queue holds before publishers wait.
const MEMORY_QUEUE_CAPACITY: usize = 8;

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
        roster_shared::install_crypto_provider();
        let db = Db::connect(&settings.database_url).await?;
        if db.is_sqlite() {
            db.migrate()
                .await
                .context("preparing the SQLite database")?;
        } else if db.needs_migration().await? {
            bail!(
                "the database at {} needs migrating: run `roster migrate` first",
                redact_url(&settings.database_url)
            );
        }
        Self::with_db(settings, db, progress).await
    }

    /// Opens the install with an already connected database, as it is.
    pub async fn with_db(
        settings: Settings,
        db: Db,
        progress: Arc<dyn Progress>,
    ) -> anyhow::Result<App> {
        let blobs = BlobStore::local(settings.blob_dir()).with_context(|| {
            format!(
                "opening the blob store in {}",
                settings.blob_dir().display()
            )
        })?;
        let transport = Self::transport_config(&settings).connect().await?;
        Ok(App {
            settings,
            services: Services {
                db,
                blobs,
                transport,
                progress,
            },
        })
    }

    /// Opens the install without progress reporting.
    pub async fn open_quiet(settings: Settings) -> anyhow::Result<App> {
        Self::open(settings, Arc::new(NoProgress)).await
    }

    /// The transport the settings ask for.
    pub fn transport_config(settings: &Settings) -> TransportConfig {
        match &settings.amqp_url {
            Some(url) => TransportConfig::RabbitMq {
                url: url.clone(),
                prefix: settings.queue_prefix.clone(),
            },
            None => TransportConfig::Memory {
                capacity: MEMORY_QUEUE_CAPACITY,
            },
        }
    }

    /// Whether the stages run in this process (no broker configured).
    pub fn is_embedded(&self) -> bool {
        self.settings.amqp_url.is_none()
    }

    /// How stages consume.
    pub fn consume(&self) -> ConsumeOptions {
        ConsumeOptions {
            concurrency: self.settings.concurrency(),
            prefetch: self.settings.prefetch,
            retry: self.settings.retry(),
        }
    }

    /// The parser's settings.
    pub fn parser(&self) -> ParserConfig {
        ParserConfig {
            consume: self.consume(),
        }
    }

    /// The differ's settings.
    pub fn differ(&self) -> DifferConfig {
        DifferConfig {
            consume: self.consume(),
            brake: self.settings.brake(),
        }
    }

    /// The writer's settings.
    pub fn writer(&self) -> WriterConfig {
        WriterConfig {
            consume: self.consume(),
        }
    }

    /// The fetcher's settings.
    pub fn fetcher(&self) -> FetcherConfig {
        FetcherConfig {
            inbox: self.settings.inbox_dir(),
            poll_interval: std::time::Duration::from_millis(self.settings.poll_interval_ms),
            resend_after: std::time::Duration::from_secs(30),
        }
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
