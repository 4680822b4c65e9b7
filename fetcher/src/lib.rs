//! The fetcher stage: brings files in, stores each in the blob store before anything else
//! happens to it, creates its run and publishes `file.fetched`.
//!
//! Sources today: files handed over directly ([`submit`], used by `roster import`) and the
//! per-tenant inbox folders `$ROSTER_DATA_DIR/inbox/<tenant>/` ([`poll_inbox`]; files in
//! `<tenant>/delta/` are delta syncs, all others full). Promises: a file is taken only
//! once its upload is finished (a `.done` marker, or size and modification time unchanged
//! across two polls; dot-files and `.tmp`/`.part` names are never taken), and never
//! twice; a run that stalls (its message lost with a process, say) is announced again.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use roster_shared::blob::BlobStore;
use roster_shared::db::runs::{self, NewRun, SourceFile};
use roster_shared::db::{RunState, dead_letters, entity::run, tenants};
use roster_shared::envelope::{Envelope, FileFetched, Format, SyncMode};
use roster_shared::error::StageError;
use roster_shared::ids::{MessageId, RunId, TenantId};
use roster_shared::stage::Services;
use roster_shared::transport::Queue;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Settings of the fetcher stage.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// The folder holding one inbox folder per tenant.
    pub inbox: PathBuf,
    /// Time between polls.
    pub poll_interval: Duration,
    /// How long an unfinished run may go without moving before it is announced again.
    pub stall_after: Duration,
}

impl FetcherConfig {
    /// The fetcher's settings from the install's.
    pub fn from_settings(settings: &roster_shared::config::Settings) -> Self {
        FetcherConfig {
            inbox: settings.inbox_dir(),
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
            stall_after: Duration::from_secs(settings.stall_after_secs),
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
        .map_err(|e| StageError::Internal(e.to_string()))?
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
    let run = runs::create(&services.db, &new, sub.seen.as_ref()).await?;
    announce(services, &run).await?;
    info!(tenant = %sub.tenant, run = %new.id, file = %sub.file_name, size, "fetched");
    Ok(new.id)
}

/// Publishes the run's `file.fetched` and records that it went out.
async fn announce(services: &Services, run: &run::Model) -> Result<(), StageError> {
    let tenant =
        TenantId::new(run.tenant_id.clone()).map_err(|e| StageError::Internal(e.to_string()))?;
    let run_id: RunId = run
        .id
        .parse()
        .map_err(|e: uuid::Error| StageError::Internal(e.to_string()))?;
    let env = Envelope::new(
        MessageId::derived(&["file.fetched", &run.id]),
        tenant.clone(),
        run_id,
        FileFetched {
            source: run.source.clone(),
            blob_key: run.blob_key.clone(),
            sha256: run.sha256.clone(),
            size: run.size as u64,
            file_name: run.file_name.clone(),
            format: Format::parse(&run.format).unwrap_or_default(),
            mode: SyncMode::parse(&run.mode).unwrap_or_default(),
            encoding: run.encoding.clone(),
        },
    );
    services
        .publish(Queue::Fetched, &env, Some(&run.file_name))
        .await?;
    runs::mark_published(&services.db, &tenant, run_id).await?;
    Ok(())
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
    if tenants::was_fetched(&services.db, tenant, "inbox", &shown, now.0, now.1).await? {
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

/// Announces again every unfinished run that has not moved for `after`, at the stage it
/// stopped in: `file.fetched` for a fetched run (its announcement may never have gone
/// out), `snapshot.parsed` (a fresh plan) for a parsed, diffed or applying one (its
/// message may have died with a process, or been dead-lettered while the database was
/// away). Every stage is idempotent, so announcing a run that was only slow costs work,
/// not correctness. Returns how many runs were announced.
pub async fn recover_stalled(services: &Services, after: Duration) -> Result<usize, StageError> {
    let before = Utc::now() - chrono::Duration::from_std(after).unwrap_or_default();
    let mut sent = 0;
    for tenant in tenants::list(&services.db).await? {
        for run in runs::stalled(&services.db, &tenant, before).await? {
            warn!(tenant = %tenant, run = %run.id, state = %run.state, "announcing a stalled run again");
            let run_id: RunId = run
                .id
                .parse()
                .map_err(|e: uuid::Error| StageError::Internal(e.to_string()))?;
            if runs::state_of(&run) == RunState::Fetched {
                announce(services, &run).await?;
            } else {
                let id = MessageId::derived(&["recover", &run.id, &run.updated_at.to_rfc3339()]);
                services.send_to_differ(&tenant, run_id, &run, id).await?;
            }
            runs::touch(&services.db, &tenant, run_id).await?;
            sent += 1;
        }
    }
    Ok(sent)
}

/// Runs the fetcher until `shutdown`: polls the inboxes, re-announces stalled runs and
/// archives dead letters (which also marks their runs failed).
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
        if let Err(e) = dead_letters::drain(&services.db, services.transport.as_ref()).await {
            warn!(error = %e, "archiving dead letters failed; trying again next time");
        }
        if let Err(e) = recover_stalled(&services, config.stall_after).await {
            warn!(error = %e, "re-announcing stalled runs failed; trying again next time");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(config.poll_interval) => {}
        }
    }
    info!("fetcher stopped");
    Ok(())
}
