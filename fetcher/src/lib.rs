//! The fetcher stage: brings files in, stores each in the blob store before anything else
//! happens to it, creates its run and publishes `file.fetched`.
//!
//! Sources: files handed over directly ([`submit`], used by `roster import`); the
//! per-tenant inbox folders `$ROSTER_DATA_DIR/inbox/<tenant>/` and our SFTP server's jails
//! `$ROSTER_PUSH_ROOT/<tenant>/upload/` ([`inbox`]; files in `<tenant>/delta/` are delta
//! syncs, all others full); and the sources the tenants file declares, fetched on their
//! schedules ([`sources`]: SFTP, FTP/FTPS, web services, local folders). A file larger than the install
//! allows (`ROSTER_MAX_FILE_BYTES`) is refused here, before anything reads it: its run is
//! recorded `rejected` with the reason. (A run that stalls after that is the supervisor's:
//! `roster_shared::supervisor`.)

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use roster_shared::blob::BlobStore;
use roster_shared::config::StoreSettings;
use roster_shared::db::tenants;
use roster_shared::error::StageError;
use roster_shared::model::envelope::{Format, SyncMode};
use roster_shared::model::ids::{RunId, TenantId};
use roster_shared::stage::Services;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub mod api;
pub mod db;
pub mod file_time;
pub mod inbox;
pub mod sources;

pub use db::{NewRun, RunOptions, SourceFile};
pub use inbox::{InboxState, poll_inbox};

/// Default of `ROSTER_MAX_FILE_BYTES`: 2 GiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 2 << 30;

/// What a delivered file may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct FetchLimits {
    /// Bytes in one delivered file; a larger one is refused when fetched, before anything
    /// reads it (its run ends `rejected`).
    #[arg(
        long,
        env = "ROSTER_MAX_FILE_BYTES",
        default_value_t = DEFAULT_MAX_FILE_BYTES,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_file_bytes: u64,

    /// Rows in one file (the parser's `ROSTER_MAX_ROWS`): a web service that sends more
    /// pages than this divided by its page size is taken to be looping.
    #[arg(
        id = "fetch_max_rows",
        long = "fetch-max-rows",
        env = "ROSTER_MAX_ROWS",
        default_value_t = DEFAULT_MAX_ROWS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_rows: u64,
}

/// Default of `ROSTER_MAX_ROWS`, as the parser's.
pub const DEFAULT_MAX_ROWS: u64 = 5_000_000;

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }
}

/// Default of `ROSTER_POLL_INTERVAL_MS`.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 2000;

/// The fetcher's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct FetcherSettings {
    /// The import API.
    #[command(flatten)]
    pub api: api::ApiSettings,

    /// What a delivered file may be.
    #[command(flatten)]
    pub limits: FetchLimits,

    /// How often the fetcher looks for new files and due sources, in milliseconds.
    #[arg(
        long,
        env = "ROSTER_POLL_INTERVAL_MS",
        default_value_t = DEFAULT_POLL_INTERVAL_MS,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000)
    )]
    pub poll_interval_ms: u64,

    /// Failed fetches in a row after which a source is reported failing (an event
    /// `<tenant>.source.failing`, and `failing` in `roster sources list`).
    #[arg(
        long,
        env = "ROSTER_SOURCE_FAILING_AFTER",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub failing_after: u32,

    /// Seconds before a failed scheduled fetch is tried again (doubling with each
    /// failure in a row, at most an hour).
    #[arg(
        long,
        env = "ROSTER_SOURCE_RETRY_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub retry_secs: u64,

    /// Scheduled fetches running at once in one fetcher process, at most.
    #[arg(
        long,
        env = "ROSTER_FETCH_CONCURRENCY",
        default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(1..=256)
    )]
    pub fetch_concurrency: u32,
}

impl Default for FetcherSettings {
    fn default() -> Self {
        FetcherSettings {
            api: api::ApiSettings::default(),
            limits: FetchLimits::default(),
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            failing_after: 3,
            retry_secs: 30,
            fetch_concurrency: 4,
        }
    }
}

/// Settings of the fetcher stage.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// The folder holding one inbox folder per tenant.
    pub inbox: PathBuf,
    /// The folder holding our SFTP server's per-tenant jails.
    pub push: PathBuf,
    /// Time between polls.
    pub poll_interval: Duration,
    /// What a delivered file may be.
    pub limits: FetchLimits,
    /// How scheduled sources are fetched.
    pub scheduler: sources::schedule::SchedulerOptions,
    /// The import API, when it is served.
    pub api: api::ApiSettings,
}

impl FetcherConfig {
    /// The fetcher's settings for the install `store` describes.
    pub fn new(store: &StoreSettings, settings: &FetcherSettings) -> Self {
        FetcherConfig {
            inbox: store.inbox_dir(),
            push: store.push_dir(),
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
            limits: settings.limits,
            api: settings.api.clone(),
            scheduler: sources::schedule::SchedulerOptions {
                fetch: sources::FetchOptions {
                    dry_run: false,
                    limits: settings.limits,
                    max_rows: settings.limits.max_rows,
                    failing_after: settings.failing_after,
                },
                retry_base: Duration::from_secs(settings.retry_secs),
                concurrency: settings.fetch_concurrency as usize,
            },
        }
    }
}

/// One file to bring in.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Owner.
    pub tenant: TenantId,
    /// Source name (`cli`, `inbox`, ...).
    pub source: String,
    /// Where the file is now.
    pub path: PathBuf,
    /// The name to show (the original file name).
    pub file_name: String,
    /// Format hint.
    pub format: Format,
    /// Sync mode.
    pub mode: SyncMode,
    /// Encoding for BOM-less files (`None`: UTF-8).
    pub encoding: Option<String>,
    /// Whether a bundle's files are read without checking their encoding.
    pub ignore_encoding: bool,
    /// How the file was seen at its source, to record it as taken.
    pub seen: Option<SourceFile>,
    /// Dry run, and what an API import asked for.
    pub options: RunOptions,
}

/// Opens the file at `sub.path` (following links: the caller named it), then
/// [`store`]s it. Returns the run; its trace starts here.
#[tracing::instrument(name = "fetch", skip_all, fields(tenant = %sub.tenant, file = %sub.file_name))]
pub async fn submit(
    services: &Services,
    sub: Submission,
    limits: &FetchLimits,
) -> Result<RunId, StageError> {
    let file = File::open(&sub.path).map_err(|e| StageError::Blob(e.into()))?;
    store(services, sub, file, limits).await
}

/// A file copied into the scratch area, with what copying it measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Where it is.
    pub scratch: PathBuf,
    /// Hex SHA-256 of its content.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Stores the open `file` in the blob store, creates its run and announces it; or, when
/// it is larger than `limits` allow, records its run `rejected` without reading it.
/// Returns the run.
pub async fn store(
    services: &Services,
    sub: Submission,
    file: File,
    limits: &FetchLimits,
) -> Result<RunId, StageError> {
    let declared = file
        .metadata()
        .map_err(|e| StageError::Blob(e.into()))?
        .len();
    let max = limits.max_file_bytes;
    if declared > max {
        return refuse_size(services, &sub, declared, max).await;
    }
    let Some(copied) = copy(services, file, max).await? else {
        // It grew past the limit while being copied.
        return refuse_size(services, &sub, max + 1, max).await;
    };
    store_copied(services, sub, copied).await
}

/// Copies the open `file` into the scratch area, hashing it; `None` (and nothing left
/// behind) if more than `max` bytes came.
pub async fn copy(services: &Services, file: File, max: u64) -> Result<Option<Copied>, StageError> {
    let scratch = services.blobs.scratch_path("raw");
    let dst = scratch.clone();
    let copied = tokio::task::spawn_blocking(move || copy_hashing(file, &dst, max))
        .await
        .map_err(|e| StageError::internal_from("copying the file", e))?
        .map_err(|e| StageError::Blob(e.into()))?;
    match copied {
        Some((sha256, size)) => Ok(Some(Copied {
            scratch,
            sha256,
            size,
        })),
        None => {
            let _ = tokio::fs::remove_file(&scratch).await;
            Ok(None)
        }
    }
}

/// Stores a file already copied into the scratch area (`copied`, which this consumes) in
/// the blob store, creates its run and announces it. Returns the run.
pub async fn store_copied(
    services: &Services,
    sub: Submission,
    copied: Copied,
) -> Result<RunId, StageError> {
    let Copied {
        scratch,
        sha256,
        size,
    } = copied;
    let blob_key = BlobStore::raw_key(&sub.tenant, &sha256);
    if services.blobs.exists(&blob_key).await? {
        let _ = tokio::fs::remove_file(&scratch).await;
    } else {
        services.blobs.put_file(&blob_key, &scratch).await?;
    }
    let new = new_run(&sub, blob_key, sha256, size);
    // The same content as the tenant's last applied run, read the same way: nothing
    // would change, so the run ends here (a query or two instead of a parse and a plan;
    // the mappings are read only when the content is the same). A dry run is planned
    // whatever it repeats: it is asked for its list of changes.
    if !new.options.dry_run
        && let Some(of) = db::repeated_run(&services.db, &new).await?
        && of.parse_config.as_deref()
            == Some(
                &*tenants::reading_rules(&services.db, &sub.tenant)
                    .await?
                    .fingerprint(),
            )
    {
        db::create_repeat_run(&services.db, &new, sub.seen.as_ref(), &of).await?;
        info!(
            tenant = %sub.tenant,
            run = %new.id,
            file = %sub.file_name,
            repeats = %of.id,
            "fetched the content of the last applied run again: nothing to change"
        );
        return Ok(new.id);
    }
    let run = db::create_run(&services.db, &new, sub.seen.as_ref()).await?;
    services.send_to_parser(&sub.tenant, new.id, &run).await?;
    info!(tenant = %sub.tenant, run = %new.id, file = %sub.file_name, size, "fetched");
    Ok(new.id)
}

/// The run a submission starts.
fn new_run(sub: &Submission, blob_key: String, sha256: String, size: u64) -> NewRun {
    NewRun {
        tenant: sub.tenant.clone(),
        id: RunId::new(),
        source: sub.source.clone(),
        file_name: sub.file_name.clone(),
        blob_key,
        sha256,
        size,
        format: sub.format,
        mode: sub.mode,
        encoding: sub.encoding.clone(),
        ignore_encoding: sub.ignore_encoding,
        options: sub.options.clone(),
    }
}

/// Records the run of a file too large to take: `rejected`, with the reason, its raw
/// bytes never read nor stored (and the file recorded as taken, so it is not refused
/// again at every poll).
pub(crate) async fn refuse_size(
    services: &Services,
    sub: &Submission,
    size: u64,
    max: u64,
) -> Result<RunId, StageError> {
    let reason = format!(
        "{}: the file is {size} bytes, over the limit of {max} bytes (ROSTER_MAX_FILE_BYTES); \
         it was not read",
        sub.file_name
    );
    warn!(tenant = %sub.tenant, file = %sub.file_name, size, max, "refusing a file over the size limit");
    let new = new_run(sub, String::new(), String::new(), size);
    db::create_rejected_run(&services.db, &new, sub.seen.as_ref(), &reason).await?;
    Ok(new.id)
}

/// Copies `input` to `dst`, returning the hex SHA-256 and the size, or `None` if more
/// than `max` bytes came.
fn copy_hashing(mut input: File, dst: &Path, max: u64) -> std::io::Result<Option<(String, u64)>> {
    let mut output = std::io::BufWriter::new(File::create(dst)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > max {
            return Ok(None);
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
    }
    output.flush()?;
    Ok(Some((hex::encode(hasher.finalize()), size)))
}

/// The format hint a file name suggests.
pub fn format_of(name: &str) -> Format {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".json") {
        Format::Json
    } else if lower.ends_with(".zip") {
        Format::Bundle
    } else if lower.ends_with(".tsv") || lower.ends_with(".tab") {
        Format::Tsv
    } else {
        Format::Auto
    }
}

/// The lease of the replica that polls the inboxes and the push jails.
pub const INBOX_LEASE: &str = "fetcher:folders";

/// Runs the fetcher until `shutdown`: polls the inboxes and the push jails (while it
/// holds [`INBOX_LEASE`]: one replica at a time), and fetches each scheduled source
/// when it is due (each under its own lease).
pub async fn run(
    config: FetcherConfig,
    services: Services,
    shutdown: CancellationToken,
) -> Result<(), StageError> {
    let api = api::start(
        &config.api,
        services.clone(),
        config.limits,
        shutdown.clone(),
    )
    .await
    .map_err(|e| StageError::internal(format!("{e:#}")))?;
    let mut inbox_state = InboxState::default();
    let mut push_state = InboxState::default();
    let mut scheduler = sources::schedule::Scheduler::new(config.scheduler.clone());
    let holder = roster_shared::db::lease::process_name();
    // One replica polls the folders at a time (two would race for the same files); the
    // lease outlives a few polls, so a replica that dies hands over quickly.
    let lease_ttl = (config.poll_interval * 5).max(Duration::from_secs(10));
    info!(inbox = %config.inbox.display(), push = %config.push.display(), "polling inboxes and sources");
    loop {
        let held = roster_shared::db::lease::acquire(&services.db, INBOX_LEASE, &holder, lease_ttl)
            .await
            .unwrap_or_else(|e| {
                warn!(error = %e, "cannot take the folders' lease; trying again next time");
                false
            });
        if held {
            if let Err(e) =
                poll_inbox(&services, &config.inbox, &config.limits, &mut inbox_state).await
            {
                warn!(error = %e, "inbox poll failed; trying again next time");
            }
            if let Err(e) = inbox::poll(
                &services,
                &config.push,
                inbox::Layout::PUSH,
                &config.limits,
                &mut push_state,
            )
            .await
            {
                warn!(error = %e, "push jail poll failed; trying again next time");
            }
        } else {
            // Another replica polls; forget what was seen, so taking over starts afresh.
            inbox_state = InboxState::default();
            push_state = InboxState::default();
        }
        if let Err(e) = scheduler.tick(&services).await {
            warn!(error = %e, "cannot read the sources; trying again next time");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(config.poll_interval) => {}
        }
    }
    scheduler.stop(Duration::from_secs(10)).await;
    let _ = roster_shared::db::lease::release(&services.db, INBOX_LEASE, &holder).await;
    if let Some(api) = api {
        let _ = api.await;
    }
    info!("fetcher stopped");
    Ok(())
}
