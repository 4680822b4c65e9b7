//! Settings, in groups: each binary and subcommand takes the groups it uses (a stage's own
//! groups live in the stage: the fetcher's polling, the differ's brake). Every setting is
//! a flag with a `ROSTER_*` environment variable (flags win); the stage binaries read the
//! environment alone ([`from_env`]). Defaults are the `DEFAULT_*` constants here, used by
//! both the flags and the `Default` impls, so in-process callers never read the caller's
//! environment. Values are checked when read; a bad one is refused with a message naming
//! the setting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::model::ClosedSet;
use crate::secret::SecretUrl;

/// Default of `ROSTER_DATABASE_URL`: an embedded SQLite file in the working folder.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./roster.db";
/// Default of `ROSTER_DATA_DIR`.
pub const DEFAULT_DATA_DIR: &str = "./roster-data";
/// Default of `ROSTER_PREFETCH`.
pub const DEFAULT_PREFETCH: u16 = 8;
/// Default of `ROSTER_MAX_ATTEMPTS`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Default of `ROSTER_RETRY_BASE_MS`.
pub const DEFAULT_RETRY_BASE_MS: u64 = 1000;
/// Default of `ROSTER_STALL_AFTER_SECS`.
pub const DEFAULT_STALL_AFTER_SECS: u64 = 120;
/// Default of `ROSTER_SUPERVISE_INTERVAL_MS`.
pub const DEFAULT_SUPERVISE_INTERVAL_MS: u64 = 2000;
/// Default of `ROSTER_SUPERVISOR_LEASE_SECS`.
pub const DEFAULT_SUPERVISOR_LEASE_SECS: u64 = 15;
/// Default of `ROSTER_WEBHOOK_BACKOFF_MS`: 5 s, 30 s, 2 min, 10 min, 30 min, then hourly.
pub const DEFAULT_WEBHOOK_BACKOFF_MS: &str = "5000,30000,120000,600000,1800000,3600000";
/// Default of `ROSTER_WEBHOOK_GIVE_UP_SECS`: a day.
pub const DEFAULT_WEBHOOK_GIVE_UP_SECS: u64 = 24 * 3600;
/// Default of `ROSTER_WEBHOOK_TIMEOUT_MS`.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 10_000;
/// Default of `ROSTER_WEBHOOK_INTERVAL_MS`.
pub const DEFAULT_WEBHOOK_INTERVAL_MS: u64 = 1000;
/// Default of `ROSTER_WEBHOOK_ENDPOINTS_AT_ONCE`.
pub const DEFAULT_WEBHOOK_ENDPOINTS_AT_ONCE: usize = 32;

/// Where an install keeps its state. Every command and binary takes these.
#[derive(Debug, Clone, Args)]
pub struct StoreSettings {
    /// Database URL: `sqlite://path` (embedded) or `postgres://user@host/db`.
    #[arg(
        long,
        env = "ROSTER_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        global = true,
        hide_env_values = true
    )]
    pub database_url: SecretUrl,

    /// Folder for raw files, snapshots and tenant inboxes (`<dir>/inbox/<tenant>/`).
    #[arg(long, env = "ROSTER_DATA_DIR", default_value = DEFAULT_DATA_DIR, global = true)]
    pub data_dir: PathBuf,

    /// Folder of our SFTP server's per-tenant jails (`<dir>/<tenant>/upload/` and
    /// `<dir>/<tenant>/delta/`), which the fetcher polls like the inboxes (default:
    /// `<data dir>/push`).
    #[arg(long, env = "ROSTER_PUSH_ROOT", global = true)]
    pub push_root: Option<PathBuf>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            database_url: SecretUrl::new(DEFAULT_DATABASE_URL),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            push_root: None,
        }
    }
}

impl StoreSettings {
    /// Settings for the SQLite database `path` and the data folder `data_dir`.
    pub fn sqlite(path: &std::path::Path, data_dir: PathBuf) -> Self {
        StoreSettings {
            database_url: SecretUrl::new(format!("sqlite://{}", path.display())),
            data_dir,
            push_root: None,
        }
    }

    /// Whether the database is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose().starts_with("sqlite:")
    }

    /// The blob store folder.
    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// The inbox folder holding one folder per tenant.
    pub fn inbox_dir(&self) -> PathBuf {
        self.data_dir.join("inbox")
    }

    /// The folder of our SFTP server's per-tenant jails.
    pub fn push_dir(&self) -> PathBuf {
        self.push_root
            .clone()
            .unwrap_or_else(|| self.data_dir.join("push"))
    }
}

/// How logs are written on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Log output. Every command and binary takes these.
#[derive(Debug, Clone, Default, Args)]
pub struct LogSettings {
    /// Log format on stderr.
    #[arg(
        long,
        env = "ROSTER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
}

/// The message broker between stages. Without a URL, stages talk in memory within one
/// process (the embedded default).
#[derive(Debug, Clone, Default, Args)]
pub struct BrokerSettings {
    /// RabbitMQ URL (`amqp://user:pass@host:5672/vhost`). Without it, stages talk in memory.
    #[arg(long, env = "ROSTER_AMQP_URL", hide_env_values = true, global = true)]
    pub amqp_url: Option<SecretUrl>,

    /// Prefix of every queue and exchange name, so installs or tests share a broker.
    #[arg(long, env = "ROSTER_QUEUE_PREFIX", default_value = "", global = true)]
    pub queue_prefix: String,
}

/// How a stage that consumes a queue takes and retries messages.
#[derive(Debug, Clone, Args)]
pub struct ConsumeSettings {
    /// Messages a stage works on at once (default: 1 on SQLite, where the writer takes 2
    /// and writes them in turn; 4 otherwise).
    #[arg(long, env = "ROSTER_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: Option<u16>,

    /// Deliveries a stage holds unacknowledged at once.
    #[arg(
        long,
        env = "ROSTER_PREFETCH",
        default_value_t = DEFAULT_PREFETCH,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub prefetch: u16,

    /// Attempts before a failing message goes to the dead-letter queue.
    #[arg(
        long,
        env = "ROSTER_MAX_ATTEMPTS",
        default_value_t = DEFAULT_MAX_ATTEMPTS,
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub max_attempts: u32,

    /// First retry delay in milliseconds; each retry doubles it, up to 60 s.
    #[arg(
        long,
        env = "ROSTER_RETRY_BASE_MS",
        default_value_t = DEFAULT_RETRY_BASE_MS,
        value_parser = clap::value_parser!(u64).range(1..=60_000)
    )]
    pub retry_base_ms: u64,
}

impl Default for ConsumeSettings {
    fn default() -> Self {
        ConsumeSettings {
            concurrency: None,
            prefetch: DEFAULT_PREFETCH,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base_ms: DEFAULT_RETRY_BASE_MS,
        }
    }
}

impl ConsumeSettings {
    /// Messages a stage works on at once: as set, else 1 on SQLite (one writer at a
    /// time) and 4 otherwise. (The writer on SQLite takes 2 unless set: see
    /// `roster_writer::WriterConfig`.)
    pub fn concurrency(&self, sqlite: bool) -> usize {
        self.concurrency
            .map_or(if sqlite { 1 } else { 4 }, usize::from)
    }

    /// The retry policy these settings describe.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base: Duration::from_millis(self.retry_base_ms),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// The supervisor: which runs are announced again when they stall, and how the one
/// supervising process of an install is chosen (a lease in the database).
#[derive(Debug, Clone, Args)]
pub struct SupervisorSettings {
    /// Seconds an unfinished run may go without moving before it is announced again (at
    /// the stage it stopped in; every stage is idempotent).
    #[arg(
        long,
        env = "ROSTER_STALL_AFTER_SECS",
        default_value_t = DEFAULT_STALL_AFTER_SECS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub stall_after_secs: u64,

    /// How often the supervisor looks for stalled runs and dead letters, in milliseconds.
    #[arg(
        long,
        env = "ROSTER_SUPERVISE_INTERVAL_MS",
        default_value_t = DEFAULT_SUPERVISE_INTERVAL_MS,
        value_parser = clap::value_parser!(u64).range(10..=600_000)
    )]
    pub supervise_interval_ms: u64,

    /// Seconds the supervising process's lease lasts without renewal: after a crash,
    /// another process takes over within this time.
    #[arg(
        long,
        env = "ROSTER_SUPERVISOR_LEASE_SECS",
        default_value_t = DEFAULT_SUPERVISOR_LEASE_SECS,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub lease_secs: u64,

    /// Webhook deliveries, which every long-running process sends alongside.
    #[command(flatten)]
    pub webhooks: WebhookSettings,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            stall_after_secs: DEFAULT_STALL_AFTER_SECS,
            supervise_interval_ms: DEFAULT_SUPERVISE_INTERVAL_MS,
            lease_secs: DEFAULT_SUPERVISOR_LEASE_SECS,
            webhooks: WebhookSettings::default(),
        }
    }
}

/// How webhook messages are sent (see [`crate::webhooks`]).
#[derive(Debug, Clone, Args)]
pub struct WebhookSettings {
    /// Milliseconds to wait before each retry of a failed delivery, comma-separated; the
    /// last one repeats until the delivery gives up.
    #[arg(long, env = "ROSTER_WEBHOOK_BACKOFF_MS", default_value = DEFAULT_WEBHOOK_BACKOFF_MS)]
    pub webhook_backoff_ms: Backoff,

    /// Seconds after a message was recorded when its delivery gives up (`failed`).
    #[arg(
        long,
        env = "ROSTER_WEBHOOK_GIVE_UP_SECS",
        default_value_t = DEFAULT_WEBHOOK_GIVE_UP_SECS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub webhook_give_up_secs: u64,

    /// Milliseconds one request to an endpoint may take, connecting included.
    #[arg(
        long,
        env = "ROSTER_WEBHOOK_TIMEOUT_MS",
        default_value_t = DEFAULT_WEBHOOK_TIMEOUT_MS,
        value_parser = clap::value_parser!(u64).range(100..=600_000)
    )]
    pub webhook_timeout_ms: u64,

    /// How often due deliveries and unannounced runs are looked for, in milliseconds.
    #[arg(
        long,
        env = "ROSTER_WEBHOOK_INTERVAL_MS",
        default_value_t = DEFAULT_WEBHOOK_INTERVAL_MS,
        value_parser = clap::value_parser!(u64).range(10..=600_000)
    )]
    pub webhook_interval_ms: u64,

    /// Endpoints a process sends to at once (each endpoint's messages go one at a time,
    /// in order; a slow endpoint holds only its own).
    #[arg(
        long,
        env = "ROSTER_WEBHOOK_ENDPOINTS_AT_ONCE",
        default_value_t = DEFAULT_WEBHOOK_ENDPOINTS_AT_ONCE,
        value_parser = clap::value_parser!(usize)
    )]
    pub webhook_endpoints_at_once: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            webhook_backoff_ms: DEFAULT_WEBHOOK_BACKOFF_MS
                .parse()
                .expect("the default backoff parses"),
            webhook_give_up_secs: DEFAULT_WEBHOOK_GIVE_UP_SECS,
            webhook_timeout_ms: DEFAULT_WEBHOOK_TIMEOUT_MS,
            webhook_interval_ms: DEFAULT_WEBHOOK_INTERVAL_MS,
            webhook_endpoints_at_once: DEFAULT_WEBHOOK_ENDPOINTS_AT_ONCE,
        }
    }
}

impl WebhookSettings {
    /// How long after its recording a message stops being retried.
    pub fn give_up_after(&self) -> Duration {
        Duration::from_secs(self.webhook_give_up_secs)
    }

    /// How long one request may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.webhook_timeout_ms)
    }

    /// How often the dispatcher looks for work.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.webhook_interval_ms)
    }

    /// Endpoints served at once, at least one.
    pub fn endpoints_at_once(&self) -> usize {
        self.webhook_endpoints_at_once.max(1)
    }
}

/// Waits between retries: the `n`th failed attempt waits the `n`th, the last repeating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff(Vec<Duration>);

impl Backoff {
    /// The wait after the `attempts`th failed attempt (from 1).
    pub fn after(&self, attempts: u32) -> Duration {
        let i = (attempts.max(1) as usize - 1).min(self.0.len() - 1);
        self.0[i]
    }
}

impl std::str::FromStr for Backoff {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let waits = s
            .split(',')
            .map(|part| {
                part.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| format!("{part:?} is not a positive number of milliseconds"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if waits.is_empty() {
            return Err("give at least one wait".into());
        }
        Ok(Backoff(waits))
    }
}

impl SupervisorSettings {
    /// How long a run may go without moving before it is announced again.
    pub fn stall_after(&self) -> Duration {
        Duration::from_secs(self.stall_after_secs)
    }

    /// How often the supervisor looks.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.supervise_interval_ms)
    }

    /// How long the lease lasts without renewal.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

/// Where a long-running process serves its probes.
#[derive(Debug, Clone, Default, Args)]
pub struct HealthSettings {
    /// Address serving `/healthz` and `/readyz`, e.g. `0.0.0.0:8080`.
    #[arg(long, env = "ROSTER_HEALTH_ADDR")]
    pub health_addr: Option<SocketAddr>,
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

/// A command-line parser for a closed set: its names are the possible values (listed in
/// `--help`), and an unknown one is refused naming them.
pub fn one_of<T: ClosedSet + Clone>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(T::ALL.iter().map(|v| v.name())).map(|name| {
        *T::ALL
            .iter()
            .find(|v| v.name() == name)
            .expect("the parser allows only the set's names")
    })
}

/// Why settings could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SettingsError {
    message: String,
}

/// Reads the settings group `T` from `ROSTER_*` environment variables alone (the stage
/// binaries take no flags). A bad value is refused with a message naming the variable.
pub fn from_env<T: Args + clap::FromArgMatches>() -> Result<T, SettingsError> {
    let command = T::augment_args(clap::Command::new("roster").no_binary_name(true));
    let matches = command
        .clone()
        .try_get_matches_from(std::iter::empty::<String>())
        .map_err(|e| SettingsError {
            message: explain(&command, &e),
        })?;
    T::from_arg_matches(&matches).map_err(|e| SettingsError {
        message: explain(&command, &e),
    })
}

/// A clap error about a value read from the environment, naming the variable.
fn explain(command: &clap::Command, e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.clone(),
        _ => return e.to_string().trim().to_owned(),
    };
    let env = command
        .get_arguments()
        .find(|a| {
            a.get_long()
                .is_some_and(|l| arg.starts_with(&format!("--{l}")))
        })
        .and_then(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned());
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => v.clone(),
        _ => String::new(),
    };
    let why = e
        .to_string()
        .lines()
        .next()
        .unwrap_or("")
        .rsplit_once(": ")
        .map(|(_, why)| why.to_owned())
        .unwrap_or_default();
    match env {
        Some(env) => format!("invalid value {value:?} for {env}: {why}"),
        None => e.to_string().trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_passwords() {
        let s = StoreSettings {
            database_url: SecretUrl::new("postgres://roster:db-secret@db/roster"),
            ..StoreSettings::default()
        };
        let b = BrokerSettings {
            amqp_url: Some(SecretUrl::new("amqp://roster:mq-secret@mq/%2f")),
            queue_prefix: String::new(),
        };
        let shown = format!("{s:?} {b:?}");
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

    #[test]
    fn bad_values_are_refused_naming_the_setting() {
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            consume: ConsumeSettings,
        }
        use clap::Parser;
        let err = Cli::try_parse_from(["x", "--prefetch", "0"]).unwrap_err();
        assert!(err.to_string().contains("--prefetch"), "{err}");
        let err = Cli::try_parse_from(["x", "--max-attempts", "0"]).unwrap_err();
        assert!(err.to_string().contains("--max-attempts"), "{err}");
        let ok = Cli::try_parse_from(["x", "--prefetch", "3"]).unwrap();
        assert_eq!(ok.consume.prefetch, 3);
    }

    #[test]
    fn environment_errors_name_the_variable() {
        // The same error a bad ROSTER_PREFETCH gives, made from arguments (tests must not
        // change the environment other tests read).
        let command = ConsumeSettings::augment_args(clap::Command::new("x").no_binary_name(true));
        let err = command
            .clone()
            .try_get_matches_from(["--prefetch", "0"])
            .unwrap_err();
        let shown = explain(&command, &err);
        assert!(
            shown.starts_with("invalid value \"0\" for ROSTER_PREFETCH: "),
            "{shown}"
        );
    }
}
