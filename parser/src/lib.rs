//! The parser stage: takes `file.fetched` messages, reads the raw file from the blob store,
//! decodes and maps it to canonical people, and publishes `snapshot.parsed` with the blob
//! key of a snapshot sorted by email.
//!
//! Promises: a file that cannot be read as a whole (not text, unknown encoding, no email
//! column, broken JSON) is refused with a message naming the file and the place, and
//! nothing is published (the run ends `rejected`); a row that fails alone is recorded
//! with its line and column and the rest go on; memory holds the snapshot once, however
//! long the file.

use std::collections::HashSet;
use std::io::{BufWriter, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use roster_shared::blob::BlobStore;
use roster_shared::config::ConsumeSettings;
use roster_shared::db::{runs, tenants};
use roster_shared::error::StageError;
use roster_shared::model::envelope::{
    Envelope, FileFetched, Format, RowError, SnapshotParsed, SyncMode,
};
use roster_shared::model::ids::MessageId;
use roster_shared::model::mapping::ValueRules;
use roster_shared::model::person::MappingTarget;
use roster_shared::model::run::RunState;
use roster_shared::stage::{self, ConsumeOptions, Progress, Services};
use roster_shared::transport::{Queue, Stage};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub mod ad;
pub mod bundle;
pub mod collect;
pub mod contacts;
pub mod csv_input;
pub mod db;
pub mod decode;
pub mod error;
pub mod headers;
pub mod json_input;
pub mod links;
pub mod preview;
pub mod rejects;
pub mod rows;
pub mod rules;
pub mod scan;
pub mod soap_input;

pub use collect::ParsedFile;
pub use error::{RejectReason, Rejection};

/// Bytes written to a snapshot file at a time: large, whole-page writes keep the kernel
/// from zeroing each new page before filling it.
const SNAPSHOT_WRITE_BUFFER: usize = 1 << 20;

/// Default of `ROSTER_MAX_ROWS`.
pub const DEFAULT_MAX_ROWS: u64 = 5_000_000;
/// Default of `ROSTER_MAX_CELL_BYTES`.
pub const DEFAULT_MAX_CELL_BYTES: usize = 64 * 1024;
/// Default of `ROSTER_MAX_ROW_BYTES`.
pub const DEFAULT_MAX_ROW_BYTES: usize = 1024 * 1024;
/// Default of `ROSTER_MAX_RECORD_LINES`.
pub const DEFAULT_MAX_RECORD_LINES: u64 = 20;

/// What one file may hold: the install's input limits, checked as the file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct ParseLimits {
    /// Rows in one file; a longer file is refused as a whole.
    #[arg(
        long,
        env = "ROSTER_MAX_ROWS",
        default_value_t = DEFAULT_MAX_ROWS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_rows: u64,

    /// Bytes in one value; a row with a longer one is rejected alone.
    #[arg(long, env = "ROSTER_MAX_CELL_BYTES", default_value_t = DEFAULT_MAX_CELL_BYTES)]
    pub max_cell_bytes: usize,

    /// Bytes in one row; a longer row is rejected alone (it would make messages too big).
    #[arg(long, env = "ROSTER_MAX_ROW_BYTES", default_value_t = DEFAULT_MAX_ROW_BYTES)]
    pub max_row_bytes: usize,

    /// Lines one quoted value may run over; past it the file is refused as a whole (a
    /// quote left open would otherwise swallow the rows after it).
    #[arg(
        long,
        env = "ROSTER_MAX_RECORD_LINES",
        default_value_t = DEFAULT_MAX_RECORD_LINES,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_record_lines: u64,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_rows: DEFAULT_MAX_ROWS,
            max_cell_bytes: DEFAULT_MAX_CELL_BYTES,
            max_row_bytes: DEFAULT_MAX_ROW_BYTES,
            max_record_lines: DEFAULT_MAX_RECORD_LINES,
        }
    }
}

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
    /// The tenant's organizations (`organizations:` in the tenants file): when there are
    /// any, a row naming another organization is rejected alone.
    pub organizations: Vec<String>,
    /// The tenant's value rules (`mapping.values`, `mapping.defaults`).
    pub value_rules: ValueRules,
    /// The install's input limits.
    pub limits: ParseLimits,
    /// Bytes of encoded rows sorted in memory at once ([`DEFAULT_SORT_MEMORY`]); a file
    /// whose rows take more is sorted in runs written to `spill_dir` and merged.
    pub sort_memory: usize,
    /// Where the runs of a large file go (`None`: the system's temporary folder). They
    /// are unnamed files: nothing is left behind, whatever happens to the process.
    pub spill_dir: Option<PathBuf>,
    /// Read a bundle's files without checking that they are UTF-8 with a byte-order mark.
    pub ignore_encoding: bool,
    /// The names of a bundle's files.
    pub bundle: bundle::BundleFiles,
}

pub use collect::DEFAULT_SORT_MEMORY;

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
    // A zip archive is a bundle (and only a bundle may be one: decoding refuses archives),
    // unless the file was declared something else (a bundle's users file, say: a zip
    // there is refused as not text, never opened as a bundle within the bundle).
    let mut input = input;
    let mut magic = Vec::with_capacity(4);
    (&mut input)
        .take(4)
        .read_to_end(&mut magic)
        .map_err(|e| reject(RejectReason::Io(e)))?;
    let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(magic.clone()).chain(input));
    if options.format == Format::Bundle
        || (options.format == Format::Auto && bundle::is_zip(&magic))
    {
        return bundle::parse(input, options, progress);
    }
    let decoded = decode::decode(input, options.encoding.as_deref()).map_err(reject)?;
    let headers = headers::HeaderMap::new(&options.mappings);
    let first = decoded
        .head
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace());
    let format = match options.format {
        Format::Auto if matches!(first, Some(b'{' | b'[')) => Format::Json,
        Format::Auto if first == Some(b'<') => Format::Soap,
        Format::Auto => Format::Csv,
        other => other,
    };
    let mut out = collect::Collector::new(
        options.limits,
        options.sort_memory,
        options.spill_dir.clone(),
    );
    let mut rules =
        rows::RowRules::new(options.limits, &options.organizations, &options.value_rules);
    let mut layout = None;
    let (email_column, covered) = match format {
        Format::Json => {
            let covered =
                json_input::read(decoded, &headers, &rules, &mut out, progress).map_err(reject)?;
            (None, covered)
        }
        Format::Soap => {
            let json = soap_input::to_json(decoded).map_err(reject)?;
            let covered =
                json_input::read(json, &headers, &rules, &mut out, progress).map_err(reject)?;
            (None, covered)
        }
        Format::Bundle => unreachable!("bundles are read above"),
        Format::Tsv | Format::Csv | Format::Auto | Format::People | Format::ContactDetails => {
            let delimiter = match format {
                Format::Tsv => b'\t',
                _ => csv_input::sniff_delimiter(&decoded.head),
            };
            if format == Format::ContactDetails
                || (format != Format::People && is_contacts_file(&decoded.head, delimiter))
            {
                return contact_details(decoded, delimiter, options).map_err(reject);
            }
            // An Active Directory export naming managers by distinguished name is read
            // twice: first for whose name is whose email.
            let (decoded, managers) =
                ad::managers(decoded, delimiter, &headers, options.spill_dir.as_deref())
                    .map_err(reject)?;
            rules.managers = managers.map(Arc::new);
            layout = Some(rejects::Layout::of(&decoded, delimiter));
            csv_input::read(decoded, delimiter, &headers, &rules, &mut out, progress)
                .map_err(reject)?
        }
    };
    let mut parsed = out.finish(|_| email_column.clone()).map_err(reject)?;
    let mut covered = covered;
    for (field, _) in &rules.defaults {
        // A default feeds its field for every row.
        if !covered.covers(field.name()) {
            covered.fields.push(field.name().to_owned());
        }
    }
    parsed.covered = covered;
    parsed.layout = layout;
    Ok(parsed)
}

/// Whether the header row in `head` is a contact-details file's.
fn is_contacts_file(head: &[u8], delimiter: u8) -> bool {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(head);
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => contacts::is_contacts_header(&record.iter().collect::<Vec<_>>()),
        // Not text yet (cut mid-character) or no row: the people reader says why.
        _ => false,
    }
}

/// Reads a contact-details file: no people (its run changes no one, so its mode is
/// `delta`), its rows as the run's related records.
fn contact_details(
    decoded: decode::Decoded,
    delimiter: u8,
    options: &ParseOptions,
) -> Result<ParsedFile, RejectReason> {
    let layout = rejects::Layout::of(&decoded, delimiter);
    let read = contacts::read(decoded, delimiter, &options.limits)?;
    let mut parsed = collect::Collector::new(options.limits, 1, None).finish(|_| None)?;
    parsed.rows_read = read.rows_read;
    parsed.rejected = read.errors.len() as u64;
    parsed.errors = read.errors;
    parsed.accepted = read.rows.len() as u64;
    parsed.layout = Some(layout);
    parsed.mode = Some(roster_shared::model::envelope::SyncMode::Delta);
    parsed.related = Some(roster_shared::model::related::RelatedSnapshot {
        contacts: read.rows,
        ..Default::default()
    });
    Ok(parsed)
}

/// Default of `ROSTER_PARSER_MEMORY_MB`.
pub const DEFAULT_MEMORY_MB: u32 = 1024;

/// The parser stage's own settings: the input limits, and how much memory files being
/// parsed at once may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct ParserSettings {
    /// What one file may hold.
    #[command(flatten)]
    pub limits: ParseLimits,

    /// Megabytes the files parsed at once may take: a file is admitted when its estimated
    /// need (three times its size) fits beside the others, or alone when it needs more.
    #[arg(
        long,
        env = "ROSTER_PARSER_MEMORY_MB",
        default_value_t = DEFAULT_MEMORY_MB,
        value_parser = clap::value_parser!(u32).range(16..)
    )]
    pub memory_mb: u32,

    /// Megabytes of rows one file sorts in memory; a file whose rows take more (some
    /// 1.4 million rows of 120 bytes at the default) is sorted in runs written to the
    /// data folder's scratch space and merged, so memory stays bounded whatever the
    /// file's size.
    #[arg(
        long,
        env = "ROSTER_PARSER_SORT_MEMORY_MB",
        default_value_t = DEFAULT_SORT_MEMORY_MB,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub sort_memory_mb: u32,
}

/// Default of `ROSTER_PARSER_SORT_MEMORY_MB`.
pub const DEFAULT_SORT_MEMORY_MB: u32 = (DEFAULT_SORT_MEMORY >> 20) as u32;

impl ParserSettings {
    /// Bytes of rows one file sorts in memory.
    pub fn sort_memory(&self) -> usize {
        (self.sort_memory_mb as usize) << 20
    }
}

impl Default for ParserSettings {
    fn default() -> Self {
        ParserSettings {
            limits: ParseLimits::default(),
            memory_mb: DEFAULT_MEMORY_MB,
            sort_memory_mb: DEFAULT_SORT_MEMORY_MB,
        }
    }
}

/// The memory the parser shares among the files it parses at once, in MiB.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total: u32,
    /// The most one file needs, in MiB, however large: its sort's memory and entries.
    most: u32,
}

/// Bytes of memory a parse takes per byte of its file (the encoded snapshot held for
/// sorting, and its index), measured on 1M-row files with room to spare.
const MEMORY_PER_FILE_BYTE: u64 = 3;

impl MemoryBudget {
    /// A budget of `mb` MiB for files that each sort up to `sort_memory_mb` MiB of rows
    /// in memory.
    pub fn new(mb: u32, sort_memory_mb: u32) -> Self {
        MemoryBudget {
            permits: Arc::new(Semaphore::new(mb as usize)),
            total: mb,
            // The rows, 48 bytes of entry per ~100 bytes of row, and the buffers.
            most: sort_memory_mb.saturating_mul(3) / 2 + 16,
        }
    }

    /// The MiB a file of `size` bytes is admitted with: its estimated need (at most what
    /// its sort is allowed), at least 1, at most the whole budget.
    pub fn need(&self, size: u64) -> u32 {
        let mb = (size.saturating_mul(MEMORY_PER_FILE_BYTE)).div_ceil(1 << 20);
        u32::try_from(mb)
            .unwrap_or(u32::MAX)
            .min(self.most)
            .clamp(1, self.total)
    }

    /// Waits until a file of `size` bytes fits beside the files being parsed; the
    /// returned permit gives the memory back when dropped.
    pub async fn admit(&self, size: u64) -> OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_many_owned(self.need(size))
            .await
            .expect("the budget's semaphore is never closed")
    }
}

/// Settings of the parser stage.
#[derive(Debug, Clone)]
pub struct ParserConfig {
    /// How messages are consumed.
    pub consume: ConsumeOptions,
    /// What one file may hold.
    pub limits: ParseLimits,
    /// The memory shared by files parsed at once.
    pub memory: MemoryBudget,
    /// Bytes of rows one file sorts in memory.
    pub sort_memory: usize,
}

impl ParserConfig {
    /// The parser's settings, for a database that is SQLite or not.
    pub fn new(consume: &ConsumeSettings, settings: &ParserSettings, sqlite: bool) -> Self {
        ParserConfig {
            consume: ConsumeOptions::new(consume, sqlite),
            limits: settings.limits,
            memory: MemoryBudget::new(settings.memory_mb, settings.sort_memory_mb),
            sort_memory: settings.sort_memory(),
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
        handle(&services, &config, env)
    })
    .await?;
    Ok(())
}

/// Handles one `file.fetched` message (idempotent: a run parsed before is only announced
/// again, a run further along is left alone).
pub async fn handle(
    services: &Services,
    config: &ParserConfig,
    env: Envelope<FileFetched>,
) -> Result<(), StageError> {
    let tenant = &env.tenant;
    let Some(run) = runs::get(&services.db, tenant, env.run_id).await? else {
        return Err(StageError::internal(format!(
            "run {} is unknown",
            env.run_id
        )));
    };
    let parsed = match run.state {
        RunState::Fetched => parse_and_store(services, config, &env).await?,
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
    config: &ParserConfig,
    env: &Envelope<FileFetched>,
) -> Result<SnapshotParsed, StageError> {
    let tenant = &env.tenant;
    let body = &env.body;
    let _memory = config.memory.admit(body.size).await;
    let started = Instant::now();
    let reading = tenants::reading_rules(&services.db, tenant).await?;
    let options = ParseOptions {
        file_name: body.file_name.clone(),
        format: body.format,
        encoding: body.encoding.clone(),
        mappings: reading.mappings,
        organizations: reading.organizations,
        value_rules: reading.values,
        limits: config.limits,
        sort_memory: config.sort_memory,
        spill_dir: Some(services.blobs.scratch_dir().to_owned()),
        ignore_encoding: body.ignore_encoding,
        bundle: reading.bundle,
    };
    let parse_config = tenants::parse_config(
        &options.mappings,
        &options.organizations,
        &options.value_rules,
        &options.bundle,
    );
    let file = services.blobs.open(&body.blob_key).await?;
    // A second handle, to read the rejected rows back for the reject file.
    let again = file.try_clone().map_err(|e| StageError::Blob(e.into()))?;
    let snapshot_path = services.blobs.scratch_path("snapshot");
    let rejects_path = services.blobs.scratch_path("rejects");
    let progress = services.progress.clone();
    let (snap, rej) = (snapshot_path.clone(), rejects_path.clone());
    let parsed = tokio::task::spawn_blocking(move || -> Result<ParsedFile, StageError> {
        let io = |e: std::io::Error| StageError::Blob(e.into());
        let parsed = parse(Box::new(file), &options, progress.as_ref()).map_err(|r| {
            match r.reason {
                // Our disk, not the file: tried again.
                RejectReason::Scratch(e) => io(e),
                _ => StageError::rejected(r),
            }
        })?;
        parsed
            .write_snapshot(BufWriter::with_capacity(
                SNAPSHOT_WRITE_BUFFER,
                std::fs::File::create(&snap).map_err(io)?,
            ))
            .map_err(io)?;
        let out = BufWriter::new(std::fs::File::create(&rej).map_err(io)?);
        match parsed.layout {
            Some(layout) if parsed.rejected > 0 => {
                let mut again = again;
                std::io::Seek::rewind(&mut again).map_err(io)?;
                rejects::write(
                    Box::new(again),
                    options.encoding.as_deref(),
                    layout,
                    &parsed.errors,
                    options.limits.max_record_lines,
                    out,
                )
                .map_err(|r| match r {
                    RejectReason::Io(e) | RejectReason::Scratch(e) => io(e),
                    other => StageError::internal_from(
                        "reading the rejected rows back",
                        Rejection {
                            file: options.file_name.clone(),
                            reason: other,
                        },
                    ),
                })?;
            }
            _ => parsed.write_rejects(out).map_err(io)?,
        }
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
    let mut parsed = parsed;
    let mode = parsed.mode.unwrap_or(body.mode);
    warn_unknown_managers(&services.db, tenant, mode, &mut parsed).await?;
    let snapshot_key = BlobStore::snapshot_key(tenant, env.run_id);
    let rejects_key = BlobStore::rejects_key(tenant, env.run_id);
    services
        .blobs
        .put_file(&snapshot_key, &snapshot_path)
        .await?;
    services.blobs.put_file(&rejects_key, &rejects_path).await?;
    // Where each person's row is, for the rows planning may refuse (an email taken by
    // another person, which only an employee id can tell).
    if parsed
        .covered
        .covers(roster_shared::model::person::Field::EmployeeId.name())
    {
        let key = BlobStore::lines_key(tenant, env.run_id);
        services.blobs.put_bytes(&key, parsed.lines_bytes()).await?;
    }
    let related_key = match parsed.related.as_ref().filter(|r| !r.is_empty()) {
        Some(related) => {
            let key = BlobStore::related_key(tenant, env.run_id);
            let bytes = serde_json::to_vec(related)
                .map_err(|e| StageError::internal_from("encoding related records", e))?;
            services.blobs.put_bytes(&key, bytes).await?;
            Some(key)
        }
        None => None,
    };
    let result = SnapshotParsed {
        snapshot_key,
        rejects_key,
        rows_read: parsed.rows_read,
        accepted: parsed.accepted,
        rejected: parsed.rejected,
        mode: parsed.mode.unwrap_or(body.mode),
        generation: 0,
        covered: Some(parsed.covered.clone()),
        related_key,
    };
    let stored: Vec<_> = parsed
        .errors
        .iter()
        .take(MAX_STORED_ERRORS)
        .cloned()
        .collect();
    let elapsed = started.elapsed().as_millis() as i64;
    let parsed_run = db::Parsed {
        body: &result,
        errors: &stored,
        skipped: parsed.skipped,
        parse_ms: elapsed,
        parse_config: &parse_config,
    };
    db::mark_parsed(&services.db, tenant, env.run_id, &parsed_run).await?;
    info!(
        file = %body.file_name,
        rows = parsed.rows_read,
        accepted = parsed.accepted,
        rejected = parsed.rejected,
        skipped = parsed.skipped,
        runs = parsed.runs,
        ms = elapsed,
        "parsed"
    );
    Ok(result)
}

/// Turns the rows of `parsed` whose manager is not among the file's people into
/// warnings, unless (in a `delta`) the manager is an active person of the tenant's
/// directory: a full file is the whole directory, so a manager not in it is nobody.
pub async fn warn_unknown_managers(
    db: &roster_shared::db::Db,
    tenant: &roster_shared::model::ids::TenantId,
    mode: SyncMode,
    parsed: &mut ParsedFile,
) -> Result<(), roster_shared::sea_orm::DbErr> {
    if parsed.unknown_managers.is_empty() {
        return Ok(());
    }
    let known = match mode {
        SyncMode::Full => HashSet::new(),
        SyncMode::Delta => {
            let mut managers: Vec<&str> = parsed
                .unknown_managers
                .iter()
                .map(|u| u.manager.as_str())
                .collect();
            managers.sort_unstable();
            managers.dedup();
            db::active_people(db, tenant, &managers).await?
        }
    };
    parsed.warn_unknown_managers(|m| known.contains(m));
    Ok(())
}

/// Whether `error` says its row repeats a key an earlier row has: a duplicate email in a
/// people file or a bundle's users, a repeated group id in a bundle's groups. Such rows
/// are rejected alone here; a client checking files before sending them (`roster push`)
/// stops on them instead.
pub fn is_duplicate_key(error: &RowError) -> bool {
    // The messages are made by `collect::Dedupe::keep` and `bundle::read_groups`; a
    // bundle's errors start with their file's name.
    let message = error
        .message
        .split_once(": ")
        .filter(|(file, _)| !file.contains(' '))
        .map_or(error.message.as_str(), |(_, rest)| rest);
    message.starts_with(collect::DUPLICATE_EMAIL)
        || (message.starts_with("group id ") && message.contains(" is already on line "))
}

/// Row errors kept in the database per run (all of them are in the rejects blob).
pub const MAX_STORED_ERRORS: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_admitted_by_the_memory_they_need() {
        let budget = MemoryBudget::new(100, 1000);
        assert_eq!(budget.need(0), 1);
        assert_eq!(budget.need(10 << 20), 30);
        assert_eq!(
            budget.need(1 << 40),
            100,
            "a huge file takes all, and runs alone"
        );
        let sorting_little = MemoryBudget::new(100, 20);
        assert_eq!(
            sorting_little.need(1 << 40),
            46,
            "a huge file sorted in runs needs what one run needs"
        );
        let first = budget.admit(20 << 20).await; // 60 MiB
        let second = budget.admit(10 << 20).await; // 30 MiB: fits beside it
        let third = budget.admit(5 << 20); // 15 MiB: must wait
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut third)
                .await
                .is_err(),
            "admitted past the budget"
        );
        drop(first);
        drop(third.await);
        drop(second);
    }
}
