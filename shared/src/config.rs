//! Settings shared by every binary, read from command-line flags or `ROSTER_*` environment
//! variables (flags win). Defaults live here and only here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Where Roster keeps its state and how its stages run. Its `Debug` output hides the
/// passwords in the database and broker URLs.
#[derive(Clone, Args)]
pub struct Settings {
    /// Database URL: `sqlite://path` (embedded) or `postgres://user@host/db`.
    #[arg(
        long,
        env = "ROSTER_DATABASE_URL",
        default_value = "sqlite://./roster.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Folder for raw files, snapshots and tenant inboxes (`<dir>/inbox/<tenant>/`).
    #[arg(
        long,
        env = "ROSTER_DATA_DIR",
        default_value = "./roster-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// RabbitMQ URL (`amqp://user:pass@host:5672/vhost`). Without it, stages talk in memory.
    #[arg(long, env = "ROSTER_AMQP_URL", global = true, hide_env_values = true)]
    pub amqp_url: Option<String>,

    /// Prefix of every queue and exchange name, so installs or tests share a broker.
    #[arg(long, env = "ROSTER_QUEUE_PREFIX", default_value = "", global = true)]
    pub queue_prefix: String,

    /// Address serving `/healthz` and `/readyz` (stage binaries and `roster serve`).
    #[arg(long, env = "ROSTER_HEALTH_ADDR", global = true)]
    pub health_addr: Option<SocketAddr>,

    /// Messages a stage works on at once (default: 1 on SQLite, 4 otherwise).
    #[arg(long, env = "ROSTER_CONCURRENCY", global = true)]
    pub concurrency: Option<usize>,

    /// Deliveries a stage holds unacknowledged at once.
    #[arg(long, env = "ROSTER_PREFETCH", default_value_t = 8, global = true)]
    pub prefetch: u16,

    /// Attempts before a failing message goes to the dead-letter queue.
    #[arg(long, env = "ROSTER_MAX_ATTEMPTS", default_value_t = 8, global = true)]
    pub max_attempts: u32,

    /// First retry delay in milliseconds; each retry doubles it, up to 60 s.
    #[arg(
        long,
        env = "ROSTER_RETRY_BASE_MS",
        default_value_t = 1000,
        global = true
    )]
    pub retry_base_ms: u64,

    /// How often the fetcher looks for new files, in milliseconds.
    #[arg(
        long,
        env = "ROSTER_POLL_INTERVAL_MS",
        default_value_t = 2000,
        global = true
    )]
    pub poll_interval_ms: u64,

    /// Seconds an unfinished run may go without moving before the fetcher announces it
    /// again (at the stage it stopped in; every stage is idempotent).
    #[arg(
        long,
        env = "ROSTER_STALL_AFTER_SECS",
        default_value_t = 120,
        global = true
    )]
    pub stall_after_secs: u64,

    /// Mass-deactivation brake: a full snapshot deactivating more than this percentage of
    /// the active people is held for approval...
    #[arg(
        long,
        env = "ROSTER_MAX_DEACTIVATE_PERCENT",
        default_value_t = 10,
        global = true
    )]
    pub max_deactivate_percent: u32,

    /// ...or more than this many people, whichever limit is lower...
    #[arg(
        long,
        env = "ROSTER_MAX_DEACTIVATE",
        default_value_t = 500,
        global = true
    )]
    pub max_deactivate: u64,

    /// ...but a run deactivating at most this many is never held.
    #[arg(
        long,
        env = "ROSTER_DEACTIVATE_FLOOR",
        default_value_t = 10,
        global = true
    )]
    pub deactivate_floor: u64,

    /// Log format on stderr: `text` or `json`.
    #[arg(long, env = "ROSTER_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &crate::db::redact_url(&self.database_url))
            .field("data_dir", &self.data_dir)
            .field(
                "amqp_url",
                &self.amqp_url.as_deref().map(crate::db::redact_url),
            )
            .field("queue_prefix", &self.queue_prefix)
            .field("health_addr", &self.health_addr)
            .field("concurrency", &self.concurrency)
            .field("prefetch", &self.prefetch)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base_ms", &self.retry_base_ms)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Settings from the environment alone (the stage binaries take no flags).
    pub fn from_env() -> Result<Settings, clap::Error> {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        use clap::Parser;
        Only::try_parse_from(["roster"]).map(|o| o.settings)
    }

    /// Whether the database is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// Messages a stage works on at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
            .unwrap_or(if self.is_sqlite() { 1 } else { 4 })
            .max(1)
    }

    /// The retry policy these settings describe.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            base: Duration::from_millis(self.retry_base_ms),
            max_delay: Duration::from_secs(60),
        }
    }

    /// The blob store folder.
    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// The inbox folder holding one folder per tenant.
    pub fn inbox_dir(&self) -> PathBuf {
        self.data_dir.join("inbox")
    }

    /// The mass-deactivation brake these settings describe.
    pub fn brake(&self) -> crate::brake::Brake {
        crate::brake::Brake {
            percent: self.max_deactivate_percent,
            max: self.max_deactivate,
            floor: self.deactivate_floor,
        }
    }
}

/// How failed messages are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Delay after the first attempt.
    pub base: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The delay after attempt `attempt` (1-based) failed: `base * 2^(attempt-1)`, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_passwords() {
        let mut s = Settings::from_env().unwrap();
        s.database_url = "postgres://roster:db-secret@db/roster".into();
        s.amqp_url = Some("amqp://roster:mq-secret@mq/%2f".into());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("db-secret") && !shown.contains("mq-secret"),
            "{shown}"
        );
        assert!(shown.contains("roster:***@db"), "{shown}");
    }

    #[test]
    fn delays_grow_and_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        };
        assert_eq!(p.delay(1), Duration::from_secs(1));
        assert_eq!(p.delay(2), Duration::from_secs(2));
        assert_eq!(p.delay(4), Duration::from_secs(8));
        assert_eq!(p.delay(30), Duration::from_secs(60));
    }
}
