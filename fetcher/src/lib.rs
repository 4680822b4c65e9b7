//! The fetcher stage: brings files in, stores each in the blob store before anything else
//! happens to it, creates its run and publishes `file.fetched`.
//!
//! Sources today: files handed over directly ([`submit`], used by `roster import`) and the
//! per-tenant inbox folders `$ROSTER_DATA_DIR/inbox/<tenant>/` ([`poll_inbox`]; files in
//! `<tenant>/delta/` are delta syncs, all others full). Promises: a file is taken only
//! once its upload is finished (a `.done` marker, or size and modification time unchanged
//! across two polls; dot-files and `.tmp`/`.part` names are never taken), and never
//! twice. (A run that stalls after that is the supervisor's: `roster_shared::supervisor`.)

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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

pub use db::{NewRun, SourceFile};

/// Default of `ROSTER_POLL_INTERVAL_MS`.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 2000;

/// The fetcher's own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct FetcherSettings {
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
}

impl FetcherConfig {
    /// The fetcher's settings for the install `store` describes.
    pub fn new(store: &StoreSettings, settings: &FetcherSettings) -> Self {
        FetcherConfig {
            inbox: store.inbox_dir(),
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
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

/// Stores the file, creates its run and announces it. Returns the run. The run's trace
/// starts here.
#[tracing::instrument(name = "fetch", skip_all, fields(tenant = %sub.tenant, file = %sub.file_name))]
pub async fn submit(services: &Services, sub: Submission) -> Result<RunId, StageError> {
    let scratch = services.blobs.scratch_path("raw");
    let (src, dst) = (sub.path.clone(), scratch.clone());
    let (sha256, size) = tokio::task::spawn_blocking(move || copy_hashing(&src, &dst))
        .await
        .map_err(|e| StageError::internal_from("copying the file", e))?
        .map_err(|e| StageError::Blob(e.into()))?;
    let blob_key = BlobStore::raw_key(&sub.tenant, &sha256);
    if services.blobs.exists(&blob_key).await? {
        let _ = tokio::fs::remove_file(&scratch).await;
    } else {
        services.blobs.put_file(&blob_key, &scratch).await?;
    }
    let new = NewRun {
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
    };
    let run = db::create_run(&services.db, &new, sub.seen.as_ref()).await?;
    services.send_to_parser(&sub.tenant, new.id, &run).await?;
    info!(tenant = %sub.tenant, run = %new.id, file = %sub.file_name, size, "fetched");
    Ok(new.id)
}

/// Copies `src` to `dst`, returning the hex SHA-256 and the size.
fn copy_hashing(src: &Path, dst: &Path) -> std::io::Result<(String, u64)> {
    let mut input = std::fs::File::open(src)?;
    let mut output = std::io::BufWriter::new(std::fs::File::create(dst)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
        size += n as u64;
    }
    output.flush()?;
    Ok((hex::encode(hasher.finalize()), size))
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

/// What the inbox looked like at the last poll: path to (size, modified ms).
#[derive(Debug, Default)]
pub struct InboxState {
    last: HashMap<PathBuf, (u64, i64)>,
}

fn ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || [
            ".tmp",
            ".part",
            ".filepart",
            ".partial",
            ".done",
            ".crdownload",
            "~",
        ]
        .iter()
        .any(|s| lower.ends_with(s))
}

fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// One pass over every tenant's inbox: takes each finished, new file. Returns the runs
/// started. A file that cannot be taken (unreadable, say) is logged and skipped; the
/// others are taken all the same, and it is tried again at the next poll.
pub async fn poll_inbox(
    services: &Services,
    inbox: &Path,
    state: &mut InboxState,
) -> Result<Vec<RunId>, StageError> {
    let mut seen = HashMap::new();
    let mut started = Vec::new();
    let Ok(mut tenants_dir) = tokio::fs::read_dir(inbox).await else {
        return Ok(started);
    };
    while let Some(entry) = tenants_dir.next_entry().await.map_err(io)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(tenant) = TenantId::new(&name) else {
            continue;
        };
        if !entry.file_type().await.map_err(io)?.is_dir() {
            continue;
        }
        for (folder, mode) in [
            (entry.path(), SyncMode::Full),
            (entry.path().join("delta"), SyncMode::Delta),
        ] {
            let Ok(mut files) = tokio::fs::read_dir(&folder).await else {
                continue;
            };
            while let Some(file) = files.next_entry().await.map_err(io)? {
                let path = file.path();
                match take(services, &tenant, &folder, mode, &file, state, &mut seen).await {
                    Ok(Some(run)) => started.push(run),
                    Ok(None) => {}
                    Err(e) if matches!(e, StageError::Database(_) | StageError::Transport(_)) => {
                        return Err(e);
                    }
                    Err(e) => {
                        warn!(tenant = %tenant, file = %path.display(), error = %e, "cannot take the file; skipping it");
                    }
                }
            }
        }
    }
    state.last = seen;
    Ok(started)
}

/// Takes one inbox file if it is finished and new; `None` if it is not to be taken now.
async fn take(
    services: &Services,
    tenant: &TenantId,
    folder: &Path,
    mode: SyncMode,
    file: &tokio::fs::DirEntry,
    state: &InboxState,
    seen: &mut HashMap<PathBuf, (u64, i64)>,
) -> Result<Option<RunId>, StageError> {
    let file_name = file.file_name().to_string_lossy().into_owned();
    let meta = file.metadata().await.map_err(io)?;
    if !meta.is_file() || ignored(&file_name) {
        return Ok(None);
    }
    let path = file.path();
    let now = (meta.len(), modified_ms(&meta));
    seen.insert(path.clone(), now);
    let marked = folder.join(format!("{file_name}.done")).exists();
    let stable = state.last.get(&path) == Some(&now);
    if !(marked || stable) {
        return Ok(None);
    }
    let shown = if mode == SyncMode::Delta {
        format!("delta/{file_name}")
    } else {
        file_name.clone()
    };
    if db::was_fetched(&services.db, tenant, "inbox", &shown, now.0, now.1).await? {
        return Ok(None);
    }
    let run = submit(
        services,
        Submission {
            tenant: tenant.clone(),
            source: "inbox".into(),
            path,
            file_name: shown.clone(),
            format: format_of(&file_name),
            mode,
            encoding: None,
            seen: Some(SourceFile {
                name: shown,
                size: now.0,
                modified_ms: now.1,
            }),
        },
    )
    .await?;
    Ok(Some(run))
}

fn io(e: std::io::Error) -> StageError {
    StageError::Blob(e.into())
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
        if let Err(e) = poll_inbox(&services, &config.inbox, &mut state).await {
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
