//! One fetch of one source: connect, bring what is new, store it (a run per file), and
//! record how it went on the source (outcome, error, watermark, failures in a row).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use roster_shared::db::Db;
use roster_shared::model::envelope::{Envelope, Format, SyncMode};
use roster_shared::model::ids::{MessageId, RunId, TenantId};
use roster_shared::model::source::{SourceEvent, SourceKind};
use roster_shared::stage::{self, Services};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tracing::{info, warn};

use super::db::{self as sources_db, SourceRow, Success};
use super::files::{self, Pull};
use super::spec::SourceSpec;
use super::{SourceError, Taken, ftp, http, local, sftp};
use crate::{Copied, FetchLimits, Submission};

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Bring the files to local scratch files only: store, record and change nothing
    /// (here or on the server), the watermark included.
    pub dry_run: bool,
    /// What a delivered file may be.
    pub limits: FetchLimits,
    /// Rows a file may hold (`ROSTER_MAX_ROWS`): a web service sending more pages than
    /// `max_rows / page size` is taken to be looping.
    pub max_rows: u64,
    /// Failures in a row after which a source is reported failing.
    pub failing_after: u32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            dry_run: false,
            limits: FetchLimits::default(),
            max_rows: 5_000_000,
            failing_after: 3,
        }
    }
}

/// What a fetch brought.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The runs it started, oldest file first.
    pub runs: Vec<RunId>,
    /// A dry run's local files, oldest first. The caller removes them.
    pub local: Vec<LocalFile>,
}

/// A file a dry run fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// The name to show.
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
    /// How it would be imported.
    pub mode: SyncMode,
    /// Its format hint.
    pub format: Format,
    /// Its encoding, if it has no byte-order mark and is not UTF-8.
    pub encoding: Option<String>,
    /// Whether a bundle's encoding check is waived.
    pub ignore_encoding: bool,
}

/// Fetches `tenant`'s source `name` now and records how it went on the source (unless a
/// dry run): on success the outcome and, for a delta feed, the new watermark; on failure
/// the error, one more failure in a row and a pause before the next scheduled attempt
/// (`retry_in`), and a `source.failing` event when `failing_after` failures came in a
/// row.
pub async fn fetch(
    services: &Services,
    tenant: &TenantId,
    name: &str,
    options: &FetchOptions,
    retry_in: Duration,
) -> Result<Fetched, SourceError> {
    let db = &services.db;
    let Some(row) = sources_db::get(db, tenant, name).await? else {
        return Err(SourceError::Config(format!(
            "{tenant}/{name}: no such source (see `roster sources list --tenant {tenant}`)"
        )));
    };
    if !row.enabled {
        return Err(SourceError::Config(format!(
            "{tenant}/{name}: disabled (no longer in the tenants file)"
        )));
    }
    let spec: SourceSpec = serde_json::from_str(&row.spec).map_err(|e| {
        SourceError::Config(format!("{tenant}/{name}: stored settings unreadable: {e}"))
    })?;
    let started = Utc::now();
    if options.dry_run {
        return fetch_once(services, tenant, &row, &spec, options, started)
            .await
            .map(|(fetched, _)| fetched);
    }
    sources_db::started(db, tenant, name, started).await?;
    match fetch_once(services, tenant, &row, &spec, options, started).await {
        Ok((fetched, ok)) => {
            let recovered = sources_db::succeeded(db, tenant, name, &ok).await?;
            if recovered {
                announce(services, tenant, name, "source.recovered", 0, "").await;
            }
            info!(tenant = %tenant, source = name, runs = fetched.runs.len(), "fetched");
            Ok(fetched)
        }
        Err(e) => {
            if let SourceError::Stage(roster_shared::error::StageError::Database(_)) = &e {
                // The database is away: nothing can be recorded; the caller retries.
                return Err(e);
            }
            let reason = e.to_string();
            let retry_at = Utc::now() + chrono::Duration::from_std(retry_in).unwrap_or_default();
            let (failures, now_failing) =
                sources_db::failed(db, tenant, name, &reason, retry_at, options.failing_after)
                    .await?;
            warn!(tenant = %tenant, source = name, failures, error = %reason, "fetch failed");
            if now_failing {
                announce(services, tenant, name, "source.failing", failures, &reason).await;
            }
            Err(e)
        }
    }
}

/// One fetch, nothing recorded on the source: what it brought, and what to record.
async fn fetch_once(
    services: &Services,
    tenant: &TenantId,
    row: &SourceRow,
    spec: &SourceSpec,
    options: &FetchOptions,
    started: DateTime<Utc>,
) -> Result<(Fetched, Success), SourceError> {
    let what = format!("{tenant}/{}", row.name);
    let mut ok = Success {
        started,
        runs: 0,
        full: false,
        watermark: None,
    };
    if row.kind == SourceKind::Http {
        let fetched = fetch_http(services, tenant, row, spec, options, started, &mut ok).await?;
        ok.runs = fetched.runs.len() as u64;
        return Ok((fetched, ok));
    }
    let mut server = match row.kind {
        SourceKind::Sftp => sftp::connect(spec, &what).await?,
        SourceKind::Ftp | SourceKind::Ftps => ftp::connect(spec, &what).await?,
        SourceKind::Inbox => local::open(spec, &what)?,
        SourceKind::Http => unreachable!("handled above"),
    };
    let pull = Pull {
        services,
        tenant,
        source: &row.name,
        spec,
        limits: &options.limits,
        dry_run: options.dry_run,
    };
    let taken = files::pull(server.as_mut(), &pull).await;
    if let Err(e) = server.close().await {
        warn!(source = %what, error = %e, "closing the connection failed");
    }
    let mut fetched = Fetched::default();
    for t in taken? {
        match t {
            Taken::Run(run) => fetched.runs.push(run),
            Taken::Local { name, path } => fetched.local.push(LocalFile {
                format: spec.format.unwrap_or_else(|| crate::format_of(&name)),
                name,
                path,
                mode: spec.mode.unwrap_or(SyncMode::Full),
                encoding: spec.encoding.clone(),
                ignore_encoding: spec.ignore_encoding,
            }),
        }
    }
    ok.runs = fetched.runs.len() as u64;
    Ok((fetched, ok))
}

/// A web service fetch: full (no `since`) the first time, when the source has no
/// `delta`, or when `full_every` has passed since the last full fetch; otherwise a delta
/// from the watermark minus the overlap. All pages form one file, one run.
async fn fetch_http(
    services: &Services,
    tenant: &TenantId,
    row: &SourceRow,
    spec: &SourceSpec,
    options: &FetchOptions,
    started: DateTime<Utc>,
    ok: &mut Success,
) -> Result<Fetched, SourceError> {
    let what = format!("{tenant}/{}", row.name);
    let since = match (&spec.delta, row.watermark) {
        (Some(delta), Some(mark)) => {
            let full_due = delta.full_every.is_some_and(|every| {
                row.full_at.is_none_or(|at| {
                    started - at >= chrono::Duration::from_std(every.0).unwrap_or_default()
                })
            });
            (!full_due)
                .then(|| mark - chrono::Duration::from_std(delta.overlap.0).unwrap_or_default())
        }
        _ => None,
    };
    let mode = if since.is_some() {
        SyncMode::Delta
    } else {
        SyncMode::Full
    };
    let scratch = services.blobs.scratch_path("http");
    let result = http::fetch(
        spec,
        since,
        options.max_rows,
        options.limits.max_file_bytes,
        &scratch,
        &what,
    )
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&scratch).await;
        return Err(e);
    }
    let file_name = format!("{}-{}.json", row.name, started.format("%Y%m%dT%H%M%SZ"));
    if options.dry_run {
        return Ok(Fetched {
            runs: Vec::new(),
            local: vec![LocalFile {
                name: file_name,
                path: scratch,
                mode,
                format: Format::Json,
                encoding: None,
                ignore_encoding: false,
            }],
        });
    }
    let (sha256, size) = hash_file(&scratch).await?;
    let sub = Submission {
        tenant: tenant.clone(),
        source: row.name.clone(),
        path: scratch.clone(),
        file_name,
        format: Format::Json,
        mode,
        encoding: None,
        ignore_encoding: false,
        seen: None,
        options: Default::default(),
    };
    let run = crate::store_copied(
        services,
        sub,
        Copied {
            scratch,
            sha256,
            size,
        },
    )
    .await?;
    ok.full = mode == SyncMode::Full;
    ok.watermark = spec.delta.is_some().then_some(started);
    Ok(Fetched {
        runs: vec![run],
        local: Vec::new(),
    })
}

async fn hash_file(path: &std::path::Path) -> Result<(String, u64), SourceError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| SourceError::local("reading a fetched file", &e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| SourceError::local("reading a fetched file", &e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Records a source event in the outbox and publishes it (a failed publish is left to
/// the supervisor's sweep: the event is not lost).
async fn announce(
    services: &Services,
    tenant: &TenantId,
    source: &str,
    event: &str,
    failures: u64,
    error: &str,
) {
    let body = SourceEvent {
        event_id: MessageId::new(),
        event: event.to_owned(),
        tenant: tenant.clone(),
        source: source.to_owned(),
        failures,
        error: error.to_owned(),
        at: Utc::now(),
    };
    let key = body.routing_key();
    let envelope = Envelope::new(
        body.event_id,
        tenant.clone(),
        RunId::derived(&["source", tenant.as_str(), source]),
        body,
    );
    let message = stage::message(&envelope, None);
    let id = message.id;
    if let Err(e) = record(&services.db, tenant, &key, &message).await {
        warn!(tenant = %tenant, source, event, error = %e, "cannot record the source event");
        return;
    }
    if let Err(e) = roster_shared::outbox::publish(services, &[id]).await {
        warn!(tenant = %tenant, source, event, error = %e, "source event not published yet; the supervisor will");
    }
}

async fn record(
    db: &Db,
    tenant: &TenantId,
    key: &str,
    message: &roster_shared::transport::Message,
) -> Result<(), roster_shared::sea_orm::DbErr> {
    roster_shared::outbox::record_event(db.conn(), tenant, key, message).await
}
