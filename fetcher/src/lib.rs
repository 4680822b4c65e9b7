//! The fetcher stage: brings files in, stores each in the blob store before anything else
//! happens to it, creates its run and publishes `file.fetched`.
//!
//! Sources today: files handed over directly ([`submit`], used by `roster import`) and the
//! per-tenant inbox folders `$ROSTER_DATA_DIR/inbox/<tenant>/` ([`inbox`]; files in
//! `<tenant>/delta/` are delta syncs, all others full). A file larger than the install
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
use roster_shared::error::StageError;
use roster_shared::model::envelope::{Format, SyncMode};
use roster_shared::model::ids::{RunId, TenantId};
use roster_shared::stage::Services;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub mod db;
pub mod inbox;

pub use db::{NewRun, SourceFile};
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
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

/// Default of `ROSTER_POLL_INTERVAL_MS`.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 2000;

/// The fetcher's own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct FetcherSettings {
    /// What a delivered file may be.
    #[command(flatten)]
    pub limits: FetchLimits,

    /// How often the fetcher looks for new files, in milliseconds.
    #[arg(
        long,
        env = "ROSTER_POLL_INTERVAL_MS",
        default_value_t = DEFAULT_POLL_INTERVAL_MS,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000)
    )]
    pub poll_interval_ms: u64,
}

impl Default for FetcherSettings {
    fn default() -> Self {
        FetcherSettings {
            limits: FetchLimits::default(),
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
        }
    }
}

/// Settings of the fetcher stage.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// The folder holding one inbox folder per tenant.
    pub inbox: PathBuf,
    /// Time between polls.
    pub poll_interval: Duration,
    /// What a delivered file may be.
    pub limits: FetchLimits,
}

impl FetcherConfig {
    /// The fetcher's settings for the install `store` describes.
    pub fn new(store: &StoreSettings, settings: &FetcherSettings) -> Self {
        FetcherConfig {
            inbox: store.inbox_dir(),
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
            limits: settings.limits,
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
    /// How the file was seen at its source, to record it as taken.
    pub seen: Option<SourceFile>,
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
    let scratch = services.blobs.scratch_path("raw");
    let dst = scratch.clone();
    let copied = tokio::task::spawn_blocking(move || copy_hashing(file, &dst, max))
        .await
        .map_err(|e| StageError::internal_from("copying the file", e))?
        .map_err(|e| StageError::Blob(e.into()))?;
    let Some((sha256, size)) = copied else {
        // It grew past the limit while being copied.
        let _ = tokio::fs::remove_file(&scratch).await;
        return refuse_size(services, &sub, max + 1, max).await;
    };
    let blob_key = BlobStore::raw_key(&sub.tenant, &sha256);
    if services.blobs.exists(&blob_key).await? {
        let _ = tokio::fs::remove_file(&scratch).await;
    } else {
        services.blobs.put_file(&blob_key, &scratch).await?;
    }
    let new = new_run(&sub, blob_key, sha256, size);
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
    }
}

/// Records the run of a file too large to take: `rejected`, with the reason, its raw
/// bytes never read nor stored (and the file recorded as taken, so it is not refused
/// again at every poll).
async fn refuse_size(
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
    } else if lower.ends_with(".tsv") || lower.ends_with(".tab") {
        Format::Tsv
    } else {
        Format::Auto
    }
}

/// Runs the fetcher until `shutdown`: polls the inboxes.
pub async fn run(
    config: FetcherConfig,
    services: Services,
    shutdown: CancellationToken,
) -> Result<(), StageError> {
    let mut state = InboxState::default();
    info!(inbox = %config.inbox.display(), "polling inboxes");
    loop {
        if let Err(e) = poll_inbox(&services, &config.inbox, &config.limits, &mut state).await {
            warn!(error = %e, "inbox poll failed; trying again next time");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(config.poll_interval) => {}
        }
    }
    info!("fetcher stopped");
    Ok(())
}
