//! The parser stage: takes `file.fetched` messages, reads the raw file from the blob store,
//! decodes and maps it to canonical people, and publishes `snapshot.parsed` with the blob
//! key of a snapshot sorted by email.
//!
//! Promises: a file that cannot be read as a whole (not text, unknown encoding, no email
//! column, broken JSON) is refused with a message naming the file and the place, and
//! nothing is published (the run ends `rejected`); a row that fails alone is recorded
//! with its line and column and the rest go on; memory holds the snapshot once, however
//! long the file.

use std::io::{BufWriter, Read};
use std::time::Instant;

use roster_shared::blob::BlobStore;
use roster_shared::config::ConsumeSettings;
use roster_shared::db::{runs, tenants};
use roster_shared::error::StageError;
use roster_shared::model::envelope::{Envelope, FileFetched, Format, SnapshotParsed};
use roster_shared::model::ids::MessageId;
use roster_shared::model::person::MappingTarget;
use roster_shared::model::run::RunState;
use roster_shared::stage::{self, ConsumeOptions, Progress, Services};
use roster_shared::transport::{Queue, Stage};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub mod collect;
pub mod csv_input;
pub mod db;
pub mod decode;
pub mod error;
pub mod headers;
pub mod json_input;
pub mod rows;
pub mod rules;

pub use collect::ParsedFile;
pub use error::{RejectReason, Rejection};

/// Bytes written to a snapshot file at a time: large, whole-page writes keep the kernel
/// from zeroing each new page before filling it.
const SNAPSHOT_WRITE_BUFFER: usize = 1 << 20;

/// How to read one file.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// The file's name, to start every whole-file error with.
    pub file_name: String,
    /// Format hint.
    pub format: Format,
    /// Encoding for files without a byte-order mark (`None`: UTF-8).
    pub encoding: Option<String>,
    /// The tenant's own header mappings (header, target).
    pub mappings: Vec<(String, MappingTarget)>,
}

/// Reads a whole file into a sorted snapshot and its row errors.
pub fn parse(
    input: Box<dyn Read + Send>,
    options: &ParseOptions,
    progress: &dyn Progress,
) -> Result<ParsedFile, Rejection> {
    let reject = |reason: RejectReason| Rejection {
        file: options.file_name.clone(),
        reason,
    };
    let decoded = decode::decode(input, options.encoding.as_deref()).map_err(reject)?;
    let headers = headers::HeaderMap::new(&options.mappings);
    let first = decoded
        .head
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace());
    let format = match options.format {
        Format::Auto if matches!(first, Some(b'{' | b'[')) => Format::Json,
        Format::Auto => Format::Csv,
        other => other,
    };
    let mut out = collect::Collector::default();
    let email_column = match format {
        Format::Json => {
            json_input::read(decoded, &headers, &mut out, progress).map_err(reject)?;
            None
        }
        Format::Tsv => {
            csv_input::read(decoded, b'\t', &headers, &mut out, progress).map_err(reject)?
        }
        Format::Csv | Format::Auto => {
            let delimiter = csv_input::sniff_delimiter(&decoded.head);
            csv_input::read(decoded, delimiter, &headers, &mut out, progress).map_err(reject)?
        }
    };
    Ok(out.finish(|_| email_column.clone()))
}

/// Settings of the parser stage.
#[derive(Debug, Clone, Copy)]
pub struct ParserConfig {
    /// How messages are consumed.
    pub consume: ConsumeOptions,
}

impl ParserConfig {
    /// The parser's settings, for a database that is SQLite or not.
    pub fn new(consume: &ConsumeSettings, sqlite: bool) -> Self {
        ParserConfig {
            consume: ConsumeOptions::new(consume, sqlite),
        }
    }
}

/// Runs the parser stage until `shutdown`.
pub async fn run(
    config: ParserConfig,
    services: Services,
    shutdown: CancellationToken,
) -> Result<(), StageError> {
    stage::consume(&services, Stage::Parser, config.consume, shutdown, |env| {
        handle(&services, env)
    })
    .await?;
    Ok(())
}

/// Handles one `file.fetched` message (idempotent: a run parsed before is only announced
/// again, a run further along is left alone).
pub async fn handle(services: &Services, env: Envelope<FileFetched>) -> Result<(), StageError> {
    let tenant = &env.tenant;
    let Some(run) = runs::get(&services.db, tenant, env.run_id).await? else {
        return Err(StageError::internal(format!(
            "run {} is unknown",
            env.run_id
        )));
    };
    let parsed = match run.state {
        RunState::Fetched => parse_and_store(services, &env).await?,
        RunState::Parsed => runs::parsed_body(&run),
        _ => return Ok(()),
    };
    let out = Envelope::new(
        MessageId::derived(&["snapshot.parsed", &env.run_id.to_string()]),
        tenant.clone(),
        env.run_id,
        parsed,
    );
    services
        .publish(Queue::Parsed, &out, Some(&env.body.file_name))
        .await?;
    Ok(())
}

async fn parse_and_store(
    services: &Services,
    env: &Envelope<FileFetched>,
) -> Result<SnapshotParsed, StageError> {
    let started = Instant::now();
    let tenant = &env.tenant;
    let body = &env.body;
    let options = ParseOptions {
        file_name: body.file_name.clone(),
        format: body.format,
        encoding: body.encoding.clone(),
        mappings: tenants::mappings(&services.db, tenant).await?,
    };
    let file = services.blobs.open(&body.blob_key).await?;
    let snapshot_path = services.blobs.scratch_path("snapshot");
    let rejects_path = services.blobs.scratch_path("rejects");
    let progress = services.progress.clone();
    let (snap, rej) = (snapshot_path.clone(), rejects_path.clone());
    let parsed = tokio::task::spawn_blocking(move || -> Result<ParsedFile, StageError> {
        let parsed =
            parse(Box::new(file), &options, progress.as_ref()).map_err(StageError::rejected)?;
        let io = |e: std::io::Error| StageError::Blob(e.into());
        parsed
            .write_snapshot(BufWriter::with_capacity(
                SNAPSHOT_WRITE_BUFFER,
                std::fs::File::create(&snap).map_err(io)?,
            ))
            .map_err(io)?;
        parsed
            .write_rejects(BufWriter::new(std::fs::File::create(&rej).map_err(io)?))
            .map_err(io)?;
        Ok(parsed)
    })
    .await
    .map_err(|e| StageError::internal_from("the parser task failed", e))?;
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&snapshot_path);
            let _ = std::fs::remove_file(&rejects_path);
            return Err(e);
        }
    };
    let snapshot_key = BlobStore::snapshot_key(tenant, env.run_id);
    let rejects_key = BlobStore::rejects_key(tenant, env.run_id);
    services
        .blobs
        .put_file(&snapshot_key, &snapshot_path)
        .await?;
    services.blobs.put_file(&rejects_key, &rejects_path).await?;
    let result = SnapshotParsed {
        snapshot_key,
        rejects_key,
        rows_read: parsed.rows_read,
        accepted: parsed.accepted,
        rejected: parsed.rejected,
        mode: body.mode,
    };
    let stored: Vec<_> = parsed
        .errors
        .iter()
        .take(MAX_STORED_ERRORS)
        .cloned()
        .collect();
    let elapsed = started.elapsed().as_millis() as i64;
    db::mark_parsed(&services.db, tenant, env.run_id, &result, &stored, elapsed).await?;
    info!(
        file = %body.file_name,
        rows = parsed.rows_read,
        accepted = parsed.accepted,
        rejected = parsed.rejected,
        ms = elapsed,
        "parsed"
    );
    Ok(result)
}

/// Row errors kept in the database per run (all of them are in the rejects blob).
pub const MAX_STORED_ERRORS: usize = 1000;
