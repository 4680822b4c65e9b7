//! `roster push --config config.json`: the customer-side sync tool, for cron or a
//! scheduled task. It checks the files locally, uploads them to a Roster import API
//! (`POST <api_url>/v1/imports`) and waits for the import to finish.
//!
//! Promises:
//! - it never opens a database nor reads a `ROSTER_*` server setting: its whole world
//!   is the config file, the files it names and the API;
//! - nothing is sent until every file passed the local checks (UTF-8 with a byte-order
//!   mark unless `--ignore-encoding`, headers Roster can map, no key twice); the first
//!   problem stops it, naming the file, line and column;
//! - `--dump-request` writes what would be sent to `dump.json` beside the config and
//!   opens no connection at all;
//! - files are streamed from disk, never read whole into memory for the upload;
//! - the token appears nowhere: not in errors, not with `--verbose`, not in the dump;
//! - exactly one summary line goes to stdout at the end, errors go to stderr as
//!   `roster push: ...`, and nothing ever asks a question;
//! - exit codes: 0 done, 2 rejected or invalid (config, local checks, an upload the API
//!   refuses as such, an import rejected), 3 held by a brake, 1 anything else.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::header::{LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use roster_fetcher::api::error::ErrorBody as ApiError;
use roster_fetcher::api::imports::Status as ImportStatus;
use roster_parser::bundle::BundleFiles;
use roster_parser::{ParseOptions, RejectReason, Rejection};
use roster_shared::model::envelope::{Format, RowError, SyncMode};
use roster_shared::stage::NoProgress;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Arguments of `roster push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The push's config file (JSON): the API's URL, the token (or the variable holding
    /// it), the files, their type and the import mode.
    #[arg(long)]
    pub config: PathBuf,
    /// Say each step on standard error: the files checked, the bytes sent, the import's
    /// id and each status polled.
    #[arg(long)]
    pub verbose: bool,
    /// Check the files, write what would be sent to `dump.json` beside the config, and
    /// send nothing.
    #[arg(long)]
    pub dump_request: bool,
    /// Do not check that the files are UTF-8 with a byte-order mark.
    #[arg(long)]
    pub ignore_encoding: bool,
}

/// Why a push stopped, by what its exit code tells the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The config or a file is wrong, or the API refused the upload as such (exit 2).
    #[error("{0}")]
    Invalid(String),
    /// Anything else: the network, the token, the server, a wait given up (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl PushError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            PushError::Invalid(_) => 2,
            PushError::Failed(_) => 1,
        }
    }
}

/// Default of `poll_timeout_secs`: how long to wait for an import before giving up.
pub const DEFAULT_POLL_TIMEOUT_SECS: u64 = 3600;
/// How many times a refusal for too many requests is waited out before giving up.
const MAX_RATE_LIMIT_RETRIES: u32 = 5;
/// The longest wait a `Retry-After` is honoured for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The first pause between two polls; it doubles up to [`MAX_POLL_DELAY`].
const FIRST_POLL_DELAY: Duration = Duration::from_millis(500);
/// The longest pause between two polls.
const MAX_POLL_DELAY: Duration = Duration::from_secs(10);
/// Polls in a row that may fail (network, 5xx) before the wait is given up.
const MAX_POLL_FAILURES: u32 = 5;
/// How long connecting to the API may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one status request may take.
const POLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The name of the file `--dump-request` writes beside the config.
pub const DUMP_FILE: &str = "dump.json";
/// The byte-order mark a file must start with.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The config file as written: snake_case keys, or the vendor tool's PascalCase ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// The API's base URL (sandbox or live).
    #[serde(alias = "ApiUrl")]
    api_url: String,
    /// The token itself.
    #[serde(default, alias = "ApiKey")]
    api_token: Option<String>,
    /// The environment variable holding the token.
    #[serde(default)]
    api_token_env: Option<String>,
    /// The files, relative to the config's folder.
    files: Files,
    /// What the files are (default auto).
    #[serde(default, rename = "type")]
    format: Option<Format>,
    /// Full snapshot or delta (default full).
    #[serde(default)]
    mode: Option<SyncMode>,
    /// Whether new people are invited.
    #[serde(default, alias = "InviteNewUsers")]
    invite_new_users: Option<bool>,
    /// Who hears about the sync.
    #[serde(default, alias = "SyncManagerEmail")]
    sync_manager_email: Option<String>,
    /// Plan only, change nothing.
    #[serde(default)]
    dry_run: Option<bool>,
    /// How long to wait for the import, in seconds.
    #[serde(default)]
    poll_timeout_secs: Option<u64>,
}

/// One path or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Files {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

/// An API token: formatted as `<redacted>` wherever it is formatted.
#[derive(Clone)]
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A push's settings, checked: what to send, where, how.
#[derive(Debug, Clone)]
struct PushConfig {
    /// The config file, for messages.
    path: PathBuf,
    /// Its folder, where the files are found and the dump is written.
    dir: PathBuf,
    /// The API's base URL without a trailing slash.
    api_url: String,
    /// The token.
    token: Token,
    /// The files, absolute, in their order (a bundle's: users, groups, mappings).
    files: Vec<PathBuf>,
    /// What they are (`bundle` for more than one).
    format: Format,
    /// Full or delta.
    mode: SyncMode,
    /// The optional fields of the upload.
    invite_new_users: Option<bool>,
    sync_manager_email: Option<String>,
    dry_run: Option<bool>,
    /// Whether the server, too, reads a bundle without checking its encoding
    /// (`--ignore-encoding`).
    ignore_encoding: bool,
    /// How long to wait for the import.
    poll_timeout: Duration,
}

impl PushConfig {
    /// `<api_url>/v1/imports`.
    fn imports_url(&self) -> String {
        format!("{}/v1/imports", self.api_url)
    }

    /// The upload's text fields, in the order they are sent.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("type", self.format.name().to_owned()),
            ("mode", self.mode.name().to_owned()),
        ];
        if let Some(dry_run) = self.dry_run {
            fields.push(("dry_run", dry_run.to_string()));
        }
        if let Some(invite) = self.invite_new_users {
            fields.push(("invite_new_users", invite.to_string()));
        }
        if let Some(email) = &self.sync_manager_email {
            fields.push(("sync_manager_email", email.clone()));
        }
        if self.ignore_encoding {
            fields.push(("ignore_encoding", "true".to_owned()));
        }
        fields
    }

    /// `text` with the token, should a server have echoed it, blotted out.
    fn redact(&self, text: &str) -> String {
        if self.token.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.token.0, "<redacted>")
        }
    }
}

/// Reads and checks the config file at `path`, taking the token from the environment
/// through `env` when the config names a variable.
fn load_config(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<PushConfig, PushError> {
    let shown = path.display();
    let invalid = |what: String| PushError::Invalid(format!("{shown}: {what}"));
    let bytes = std::fs::read(path).map_err(|e| invalid(format!("cannot read the config: {e}")))?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    let file: ConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        if at == "." {
            invalid(inner.to_string())
        } else {
            invalid(format!("{at}: {inner}"))
        }
    })?;

    let token = match (file.api_token, file.api_token_env) {
        (Some(token), None) => token,
        (None, Some(var)) => env(&var)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(format!("api_token_env names {var}, which is not set")))?,
        (Some(_), Some(_)) => {
            return Err(invalid(
                "api_token and api_token_env both given; give one".into(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                "no api_token or api_token_env: give the token, or the environment variable \
                 holding it"
                    .into(),
            ));
        }
    };
    if token.is_empty() {
        return Err(invalid("api_token is empty".into()));
    }

    let api_url = file.api_url.trim().trim_end_matches('/').to_owned();
    let parsed = Url::parse(&api_url)
        .map_err(|e| invalid(format!("api_url {:?} is not a URL: {e}", file.api_url)))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "api_url {:?}: only http and https URLs are allowed",
            file.api_url
        )));
    }

    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir)
        .map_err(|e| invalid(format!("cannot tell the config's folder: {e}")))?;
    let files = match file.files {
        Files::One(one) => vec![one],
        Files::Many(many) => many,
    };
    if files.is_empty() || files.len() > 3 {
        return Err(invalid(format!(
            "files: {} given; give one file, or a bundle's users, groups and groups-mapping \
             files",
            files.len()
        )));
    }
    let files: Vec<PathBuf> = files.into_iter().map(|f| dir.join(f)).collect();
    let format = match (file.format.unwrap_or(Format::Auto), files.len()) {
        (format, 1) => format,
        (Format::Auto | Format::Bundle, _) => Format::Bundle,
        (other, n) => {
            return Err(invalid(format!(
                "type {other} takes one file, and {n} are given (several files are a bundle: \
                 type bundle)"
            )));
        }
    };
    if let Some(email) = &file.sync_manager_email
        && !looks_like_email(email)
    {
        return Err(invalid(format!(
            "sync_manager_email {email:?} is not an email address"
        )));
    }
    Ok(PushConfig {
        path: path.to_owned(),
        dir,
        api_url,
        token: Token(token),
        files,
        format,
        mode: file.mode.unwrap_or(SyncMode::Full),
        invite_new_users: file.invite_new_users,
        sync_manager_email: file.sync_manager_email,
        dry_run: file.dry_run,
        ignore_encoding: false,
        poll_timeout: Duration::from_secs(
            file.poll_timeout_secs.unwrap_or(DEFAULT_POLL_TIMEOUT_SECS),
        ),
    })
}

/// Whether `text` looks like an email address: something, one `@`, a domain with a dot.
fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// The last part of `path`, as the upload names the file.
fn base_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Refuses `input` (the file `name`) unless it is UTF-8 starting with a byte-order mark,
/// naming the line and column (in characters, from 1) of the first byte that is not.
fn check_encoding(name: &str, mut input: impl Read) -> Result<(), PushError> {
    let cannot_read = |e: std::io::Error| PushError::Invalid(format!("{name}: cannot read: {e}"));
    let mut head = Vec::with_capacity(3);
    (&mut input)
        .take(3)
        .read_to_end(&mut head)
        .map_err(cannot_read)?;
    if head != UTF8_BOM {
        return Err(PushError::Invalid(format!(
            "{name}: line 1, column 1: not UTF-8 with a byte-order mark (save it as \"UTF-8 \
             with BOM\", or pass --ignore-encoding)"
        )));
    }
    let (mut line, mut column) = (1u64, 1u64);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let read = input.read(&mut buffer).map_err(cannot_read)?;
        if read == 0 {
            if pending.is_empty() {
                return Ok(());
            }
            return Err(PushError::Invalid(format!(
                "{name}: line {line}, column {column}: not valid UTF-8 (the file ends in the \
                 middle of a character)"
            )));
        }
        pending.extend_from_slice(&buffer[..read]);
        let (valid, bad) = match std::str::from_utf8(&pending) {
            Ok(text) => (text.len(), false),
            // `None`: a character cut by the end of the buffer, completed by the next read.
            Err(e) => (e.valid_up_to(), e.error_len().is_some()),
        };
        let text = std::str::from_utf8(&pending[..valid]).expect("checked just above");
        for c in text.chars() {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        if bad {
            return Err(PushError::Invalid(format!(
                "{name}: line {line}, column {column}: not valid UTF-8 (byte 0x{:02X}); save \
                 the file as \"UTF-8 with BOM\"",
                pending[valid]
            )));
        }
        pending.drain(..valid);
    }
}

/// Checks every file of the push before anything is sent: its encoding (unless
/// `ignore_encoding`), then the parser's reading of it: a file refused as a whole, or a
/// row repeating a key, stops the push; other row errors are the server's to report.
fn validate(config: &PushConfig, ignore_encoding: bool, verbose: bool) -> Result<(), PushError> {
    let names: Vec<String> = config.files.iter().map(|f| base_name(f)).collect();
    for (path, name) in config.files.iter().zip(&names) {
        let file = std::fs::File::open(path).map_err(|e| {
            PushError::Invalid(format!("{name}: cannot read {}: {e}", path.display()))
        })?;
        if !ignore_encoding && !is_zip(path) {
            check_encoding(name, std::io::BufReader::new(file))?;
        }
    }
    let mut options = ParseOptions {
        file_name: names[0].clone(),
        format: config.format,
        encoding: None,
        mappings: Vec::new(),
        organizations: Vec::new(),
        value_rules: Default::default(),
        limits: roster_parser::ParseLimits::default(),
        sort_memory: roster_parser::DEFAULT_SORT_MEMORY,
        spill_dir: None,
        ignore_encoding,
        bundle: BundleFiles::default(),
    };
    let packed = if config.files.len() > 1 {
        // The parser reads a bundle as one archive: the files packed under their own
        // names, which are the bundle's names in order (users, groups, mappings).
        for (i, name) in names.iter().enumerate() {
            if names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
                return Err(PushError::Invalid(format!(
                    "{}: files: two files are named {name}; a bundle's files need names of \
                     their own",
                    config.path.display()
                )));
            }
        }
        let defaults = BundleFiles::default();
        options.bundle = BundleFiles {
            users: names[0].clone(),
            groups: names.get(1).cloned().unwrap_or(defaults.groups),
            mappings: names.get(2).cloned().unwrap_or(defaults.mappings),
        };
        options.file_name = "bundle".into();
        let zip = std::env::temp_dir().join(format!("roster-push-{}.zip", uuid::Uuid::now_v7()));
        let files: Vec<(String, PathBuf)> = names
            .iter()
            .cloned()
            .zip(config.files.iter().cloned())
            .collect();
        roster_parser::bundle::pack_files(&files, &zip)
            .map_err(|e| PushError::Failed(format!("cannot pack the bundle to check it: {e}")))?;
        Some(zip)
    } else {
        None
    };
    let input = packed.as_deref().unwrap_or(&config.files[0]);
    let parsed = std::fs::File::open(input)
        .map_err(|e| PushError::Invalid(format!("{}: cannot read: {e}", options.file_name)))
        .and_then(|file| {
            roster_parser::parse(Box::new(file), &options, &NoProgress)
                .map_err(|r| PushError::Invalid(rejection_message(&r)))
        });
    if let Some(zip) = packed {
        let _ = std::fs::remove_file(zip);
    }
    let parsed = parsed?;
    let repeated = parsed
        .errors
        .iter()
        .filter(|e| roster_parser::is_duplicate_key(e))
        .map(|e| located(config, &names, e))
        .min_by_key(|(file, line, _)| (*file, *line));
    if let Some((_, _, message)) = repeated {
        return Err(PushError::Invalid(message));
    }
    if verbose {
        for (path, name) in config.files.iter().zip(&names) {
            let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
            eprintln!("checked {name} ({bytes} bytes)");
        }
        eprintln!(
            "{} rows read, {} would be rejected by the server",
            parsed.rows_read, parsed.rejected
        );
    }
    Ok(())
}

/// Whether the file at `path` is a zip archive (a bundle in one file, whose files the
/// parser checks itself).
fn is_zip(path: &Path) -> bool {
    let mut head = Vec::with_capacity(4);
    std::fs::File::open(path)
        .and_then(|f| f.take(4).read_to_end(&mut head))
        .is_ok()
        && roster_parser::bundle::is_zip(&head)
}

/// A whole-file refusal's message: a bundle's inner file named first, as for any file.
fn rejection_message(rejection: &Rejection) -> String {
    match &rejection.reason {
        RejectReason::InBundle { file, reason } => format!("{file}: {reason}"),
        RejectReason::Bundle(message) => message.clone(),
        _ => rejection.to_string(),
    }
}

/// A row error's file (its position in the push), line and message naming the file,
/// line and column (by number, from the file's header row, when it has one).
fn located(config: &PushConfig, names: &[String], error: &RowError) -> (usize, u64, String) {
    // A bundle's errors start with their file's name.
    let (index, message) = match error.message.split_once(": ") {
        Some((file, rest)) if names.len() > 1 && names.iter().any(|n| n == file) => (
            names.iter().position(|n| n == file).unwrap_or(0),
            rest.to_owned(),
        ),
        _ => (0, error.message.clone()),
    };
    let name = &names[index];
    let column = error.column.as_deref().map(|header| {
        header_position(&config.files[index], header)
            .map_or_else(|| format!("{header:?}"), |n| n.to_string())
    });
    let line = error.line.unwrap_or(0);
    let text = match (error.line, column) {
        (Some(l), Some(c)) => format!("{name}: line {l}, column {c}: {message}"),
        (Some(l), None) => format!("{name}: line {l}: {message}"),
        (None, Some(c)) => format!("{name}: {c}: {message}"),
        (None, None) => format!("{name}: {message}"),
    };
    (index, line, text)
}

/// The position (from 1) of the column headed `header` in the delimited file at `path`.
fn header_position(path: &Path, header: &str) -> Option<usize> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .ok()?;
    let head = head.strip_prefix(UTF8_BOM).unwrap_or(&head);
    let delimiter = roster_parser::csv_input::sniff_delimiter(head);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(head);
    let mut record = csv::StringRecord::new();
    if !reader.read_record(&mut record).ok()? {
        return None;
    }
    record
        .iter()
        .position(|h| h.trim() == header.trim())
        .map(|i| i + 1)
}

/// What `--dump-request` writes: the request as it would be sent, the token redacted.
#[derive(Debug, Serialize)]
struct Dump {
    method: &'static str,
    url: String,
    headers: DumpHeaders,
    fields: serde_json::Map<String, serde_json::Value>,
    files: Vec<DumpFile>,
}

/// The request's headers in the dump.
#[derive(Debug, Serialize)]
struct DumpHeaders {
    #[serde(rename = "Authorization")]
    authorization: &'static str,
    #[serde(rename = "Content-Type")]
    content_type: &'static str,
}

/// One file part in the dump.
#[derive(Debug, Serialize)]
struct DumpFile {
    field: &'static str,
    file_name: String,
    path: PathBuf,
    bytes: u64,
    sha256: String,
}

/// Writes `dump.json` beside the config: what would be sent. Returns its path.
fn write_dump(config: &PushConfig) -> Result<PathBuf, PushError> {
    let mut files = Vec::new();
    for path in &config.files {
        let (bytes, sha256) = digest(path)
            .map_err(|e| PushError::Invalid(format!("{}: cannot read: {e}", path.display())))?;
        files.push(DumpFile {
            field: "file",
            file_name: base_name(path),
            path: path.clone(),
            bytes,
            sha256,
        });
    }
    let dump = Dump {
        method: "POST",
        url: config.imports_url(),
        headers: DumpHeaders {
            authorization: "Bearer <redacted>",
            content_type: "multipart/form-data",
        },
        fields: config
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
            .collect(),
        files,
    };
    let out = config.dir.join(DUMP_FILE);
    let mut text = serde_json::to_string_pretty(&dump)
        .map_err(|e| PushError::Failed(format!("cannot encode the dump: {e}")))?;
    text.push('\n');
    std::fs::write(&out, text)
        .map_err(|e| PushError::Failed(format!("cannot write {}: {e}", out.display())))?;
    Ok(out)
}

/// A file's size and hex SHA-256, read in pieces.
fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// The content type a file is sent with, by its extension.
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "csv" | "tsv" | "txt" => "text/csv",
        "json" => "application/json",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// The API's answer to an upload it accepted.
#[derive(Debug, Deserialize)]
struct Queued {
    /// The import's id.
    id: String,
}

/// The exit code of an import that ended with `status` (`None` while it goes on).
fn exit_code(status: ImportStatus) -> Option<u8> {
    match status {
        ImportStatus::Queued | ImportStatus::Processing => None,
        ImportStatus::Done => Some(0),
        ImportStatus::Held => Some(3),
        ImportStatus::Rejected => Some(2),
        ImportStatus::Error => Some(1),
    }
}

/// An import as `GET /v1/imports/<id>` shows it (the fields this tool reads).
#[derive(Debug, Deserialize)]
struct Import {
    id: String,
    status: ImportStatus,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    sandbox: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    counts: Counts,
    #[serde(default)]
    errors: Vec<ImportRowError>,
}

/// What an import did.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Counts {
    created: u64,
    updated: u64,
    deactivated: u64,
    reactivated: u64,
    unchanged: u64,
    rejected: u64,
}

/// One row the server rejected.
#[derive(Debug, Deserialize)]
struct ImportRowError {
    #[serde(default)]
    line: Option<u64>,
    #[serde(default)]
    column: Option<serde_json::Value>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message: String,
}

impl Import {
    /// The one summary line.
    fn summary(&self) -> String {
        let c = &self.counts;
        let mut line = format!(
            "{}import {}: {}: {} created, {} updated, {} deactivated, {} reactivated, {} \
             unchanged, {} rejected",
            if self.dry_run || self.sandbox {
                "dry run "
            } else {
                ""
            },
            self.id,
            self.status.name(),
            c.created,
            c.updated,
            c.deactivated,
            c.reactivated,
            c.unchanged,
            c.rejected
        );
        if matches!(
            self.status,
            ImportStatus::Held | ImportStatus::Rejected | ImportStatus::Error
        ) {
            line.push_str(": ");
            line.push_str(self.reason.as_deref().unwrap_or("no reason given"));
        }
        line
    }
}

/// How a push ended well enough to have a summary.
enum Outcome {
    /// `--dump-request`: the dump's path.
    Dumped(PathBuf),
    /// The import ended (done, held, rejected or error).
    Finished(Import),
}

/// Runs `roster push`.
pub async fn run(args: PushArgs) -> anyhow::Result<ExitCode> {
    let (code, summary) = match push(&args).await {
        Ok(Outcome::Dumped(path)) => (
            0,
            format!("request written to {}; nothing sent", path.display()),
        ),
        Ok(Outcome::Finished(import)) => {
            let code = exit_code(import.status).unwrap_or(1);
            if code != 0 {
                eprintln!(
                    "roster push: import {} is {}: {}",
                    import.id,
                    import.status.name(),
                    import.reason.as_deref().unwrap_or("no reason given")
                );
            }
            (code, import.summary())
        }
        Err(e) => {
            eprintln!("roster push: {e}");
            let what = match e {
                PushError::Invalid(_) => "push refused",
                PushError::Failed(_) => "push failed",
            };
            (e.exit_code(), format!("{what}: {e}"))
        }
    };
    println!("{summary}");
    Ok(ExitCode::from(code))
}

/// The push from config to outcome.
async fn push(args: &PushArgs) -> Result<Outcome, PushError> {
    let mut config = load_config(&args.config, |var| std::env::var(var).ok())?;
    config.ignore_encoding = args.ignore_encoding;
    let checked = config.clone();
    let (ignore, verbose) = (args.ignore_encoding, args.verbose);
    tokio::task::spawn_blocking(move || validate(&checked, ignore, verbose))
        .await
        .map_err(|e| PushError::Failed(format!("checking the files failed: {e}")))??;
    if args.dump_request {
        return Ok(Outcome::Dumped(write_dump(&config)?));
    }
    let client = client()?;
    let id = upload(&client, &config, args.verbose).await?;
    let import = wait(&client, &config, &id, args.verbose).await?;
    if args.verbose {
        for error in import.errors.iter().take(100) {
            let column = error
                .field
                .clone()
                .or_else(|| error.column.as_ref().map(ToString::to_string));
            eprintln!(
                "row error: line {}{}: {}",
                error.line.map_or_else(|| "?".to_owned(), |l| l.to_string()),
                column.map(|c| format!(", {c}")).unwrap_or_default(),
                config.redact(&error.message)
            );
        }
    }
    Ok(Outcome::Finished(import))
}

/// The HTTP client: TLS by the process's rustls provider and the platform's roots, 10 s
/// to connect, no redirects (a redirect would carry the token elsewhere).
fn client() -> Result<reqwest::Client, PushError> {
    roster_shared::install_crypto_provider();
    reqwest::Client::builder()
        .tls_backend_rustls()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("roster-push/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| PushError::Failed(format!("cannot set up the HTTP client: {}", chain(&e))))
}

/// An error and its causes, one after the other.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// The multipart form: every file streamed from disk with its length, then the fields.
async fn form(config: &PushConfig) -> Result<(reqwest::multipart::Form, u64), PushError> {
    let mut form = reqwest::multipart::Form::new();
    let mut total = 0;
    for path in &config.files {
        let cannot =
            |e: std::io::Error| PushError::Invalid(format!("{}: cannot read: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(cannot)?;
        let length = file.metadata().await.map_err(cannot)?.len();
        total += length;
        let part = reqwest::multipart::Part::stream_with_length(file, length)
            .file_name(base_name(path))
            .mime_str(content_type(path))
            .map_err(|e| PushError::Failed(format!("a content type: {e}")))?;
        form = form.part("file", part);
    }
    for (name, value) in config.fields() {
        form = form.text(name, value);
    }
    Ok((form, total))
}

/// How long a 429 asks to wait (its `Retry-After` in seconds, at most a minute).
fn retry_after(response: &reqwest::Response, otherwise: Duration) -> Duration {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(otherwise, Duration::from_secs)
        .min(MAX_RETRY_AFTER)
}

/// The error an API's refusal is, by its status: the upload refused as such is
/// [`PushError::Invalid`], anything else [`PushError::Failed`].
async fn refusal(config: &PushConfig, response: reqwest::Response, upload: bool) -> PushError {
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    let error: ApiError = serde_json::from_str(&body).unwrap_or_else(|_| ApiError {
        code: String::new(),
        message: body.chars().take(300).collect(),
    });
    let code = if error.code.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        error.code
    };
    let message = config.redact(error.message.trim());
    let what = format!("({} {code}): {message}", status.as_u16());
    match status {
        StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY
            if upload =>
        {
            PushError::Invalid(format!("the API refused the upload {what}"))
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PushError::Failed(format!(
            "the API refused the token {what}; check api_token or api_token_env in {}",
            config.path.display()
        )),
        s if s.is_redirection() => PushError::Failed(format!(
            "the API answered {} redirecting to {}; set api_url to the API's own address",
            s.as_u16(),
            location.as_deref().unwrap_or("nowhere")
        )),
        s if s.is_server_error() => PushError::Failed(format!("the API failed {what}")),
        _ => PushError::Failed(format!("the API answered {what}")),
    }
}

/// Uploads the files, waiting out rate limits; returns the import's id.
async fn upload(
    client: &reqwest::Client,
    config: &PushConfig,
    verbose: bool,
) -> Result<String, PushError> {
    let url = config.imports_url();
    let mut limited = 0;
    loop {
        let (form, bytes) = form(config).await?;
        if verbose {
            eprintln!("sending {bytes} bytes to {url}");
        }
        let response = client
            .post(&url)
            .bearer_auth(&config.token.0)
            .multipart(form)
            .send()
            .await
            .map_err(|e| {
                PushError::Failed(config.redact(&format!("cannot send to {url}: {}", chain(&e))))
            })?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS && limited < MAX_RATE_LIMIT_RETRIES {
            limited += 1;
            let pause = retry_after(&response, Duration::from_secs(1));
            if verbose {
                eprintln!("rate limited; sending again in {} s", pause.as_secs_f32());
            }
            tokio::time::sleep(pause).await;
            continue;
        }
        if !status.is_success() {
            return Err(refusal(config, response, true).await);
        }
        let queued: Queued = response.json().await.map_err(|e| {
            PushError::Failed(format!(
                "the API accepted the upload ({status}) but its answer is not an import: {}",
                chain(&e)
            ))
        })?;
        if verbose {
            eprintln!("import {} queued", queued.id);
        }
        return Ok(queued.id);
    }
}

/// Polls the import until it ends, backing off from half a second to ten.
async fn wait(
    client: &reqwest::Client,
    config: &PushConfig,
    id: &str,
    verbose: bool,
) -> Result<Import, PushError> {
    let url = format!("{}/{id}", config.imports_url());
    let started = Instant::now();
    let mut delay = FIRST_POLL_DELAY;
    let mut failures = 0;
    let mut last = ImportStatus::Queued;
    loop {
        if started.elapsed() + delay > config.poll_timeout {
            return Err(PushError::Failed(format!(
                "import {id}: gave up waiting after {} s (poll_timeout_secs); it was {}",
                config.poll_timeout.as_secs(),
                last.name()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL_DELAY);
        let sent = client
            .get(&url)
            .bearer_auth(&config.token.0)
            .timeout(POLL_REQUEST_TIMEOUT)
            .send()
            .await;
        let response = match sent {
            Ok(r) if r.status().is_server_error() => Err(refusal(config, r, false).await),
            Ok(r) => Ok(r),
            Err(e) => Err(PushError::Failed(
                config.redact(&format!("cannot ask {url}: {}", chain(&e))),
            )),
        };
        let response = match response {
            Ok(r) => {
                failures = 0;
                r
            }
            Err(e) => {
                failures += 1;
                if failures > MAX_POLL_FAILURES {
                    return Err(e);
                }
                if verbose {
                    eprintln!("{e}; asking again");
                }
                continue;
            }
        };
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            delay = retry_after(&response, delay);
            continue;
        }
        if !response.status().is_success() {
            return Err(refusal(config, response, false).await);
        }
        let mut import: Import = response.json().await.map_err(|e| {
            PushError::Failed(format!(
                "import {id}: the API's status is not one this tool reads: {}",
                chain(&e)
            ))
        })?;
        // Whatever the server says, the token is not shown.
        import.reason = import.reason.map(|r| config.redact(&r));
        if verbose {
            eprintln!("import {id}: {}", import.status.name());
        }
        last = import.status;
        if exit_code(import.status).is_some() {
            return Ok(import);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn config_in(dir: &Path, json: &str) -> Result<PushConfig, PushError> {
        let path = dir.join("config.json");
        std::fs::write(&path, json).unwrap();
        load_config(&path, env_with(&[("MY_TOKEN", "tok-from-env")]))
    }

    fn message(result: Result<PushConfig, PushError>) -> String {
        match result {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn a_config_reads_snake_case_keys_and_files_from_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(
            dir.path(),
            r#"{"api_url": "https://roster.example.com/", "api_token_env": "MY_TOKEN",
                "files": ["users.csv", "groups.csv", "groups-mapping.csv"], "type": "bundle",
                "mode": "delta", "invite_new_users": false,
                "sync_manager_email": "admin@widget.com", "dry_run": true,
                "poll_timeout_secs": 5}"#,
        )
        .unwrap();
        assert_eq!(config.api_url, "https://roster.example.com");
        assert_eq!(
            config.imports_url(),
            "https://roster.example.com/v1/imports"
        );
        assert_eq!(config.token.0, "tok-from-env");
        assert_eq!(config.files[0], dir.path().join("users.csv"));
        assert_eq!(config.files[2], dir.path().join("groups-mapping.csv"));
        assert_eq!(config.format, Format::Bundle);
        assert_eq!(config.mode, SyncMode::Delta);
        assert_eq!(config.poll_timeout, Duration::from_secs(5));
        assert_eq!(
            config.fields(),
            [
                ("type", "bundle".to_owned()),
                ("mode", "delta".to_owned()),
                ("dry_run", "true".to_owned()),
                ("invite_new_users", "false".to_owned()),
                ("sync_manager_email", "admin@widget.com".to_owned()),
            ]
        );
        assert!(
            !format!("{config:?}").contains("tok-from-env"),
            "the token is never formatted"
        );
    }

    #[test]
    fn a_config_reads_the_vendor_keys_and_defaults_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(
            dir.path(),
            r#"{"ApiUrl": "http://127.0.0.1:8080", "ApiKey": "tok-inline",
                "InviteNewUsers": true, "SyncManagerEmail": "a@b.co",
                "files": "/abs/people.csv"}"#,
        )
        .unwrap();
        assert_eq!(config.token.0, "tok-inline");
        assert_eq!(config.files, [PathBuf::from("/abs/people.csv")]);
        assert_eq!(config.format, Format::Auto);
        assert_eq!(config.mode, SyncMode::Full);
        assert_eq!(config.invite_new_users, Some(true));
        assert_eq!(config.sync_manager_email.as_deref(), Some("a@b.co"));
        assert_eq!(
            config.poll_timeout,
            Duration::from_secs(DEFAULT_POLL_TIMEOUT_SECS)
        );
        let several = config_in(
            dir.path(),
            r#"{"api_url": "http://x.test", "api_token": "t", "files": ["a.csv", "b.csv"]}"#,
        )
        .unwrap();
        assert_eq!(several.format, Format::Bundle, "several files are a bundle");
    }

    #[test]
    fn a_config_with_a_problem_names_it_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = r#""api_url": "https://x.test", "files": ["p.csv"]"#;
        let unknown = message(config_in(
            dir.path(),
            &format!(r#"{{{base}, "api_token": "t", "ApiSecret": 1}}"#),
        ));
        assert!(unknown.contains("config.json"), "{unknown}");
        assert!(unknown.contains("ApiSecret"), "{unknown}");
        let missing = message(config_in(
            dir.path(),
            &format!(r#"{{{base}, "api_token_env": "NOT_THERE"}}"#),
        ));
        assert!(missing.contains("config.json"), "{missing}");
        assert!(missing.contains("NOT_THERE"), "{missing}");
        let both = message(config_in(
            dir.path(),
            &format!(r#"{{{base}, "api_token": "t", "api_token_env": "MY_TOKEN"}}"#),
        ));
        assert!(both.contains("both"), "{both}");
        let none = message(config_in(dir.path(), &format!("{{{base}}}")));
        assert!(none.contains("api_token"), "{none}");
        let kind = message(config_in(
            dir.path(),
            &format!(r#"{{{base}, "api_token": "t", "type": "xlsx"}}"#),
        ));
        assert!(kind.contains("xlsx"), "{kind}");
        let email = message(config_in(
            dir.path(),
            &format!(r#"{{{base}, "api_token": "t", "sync_manager_email": "admin"}}"#),
        ));
        assert!(email.contains("sync_manager_email"), "{email}");
        let ftp = message(config_in(
            dir.path(),
            r#"{"api_url": "ftp://x.test", "api_token": "t", "files": "p.csv"}"#,
        ));
        assert!(ftp.contains("http"), "{ftp}");
        let csv_of_three = message(config_in(
            dir.path(),
            r#"{"api_url": "https://x.test", "api_token": "t", "type": "csv",
                "files": ["a.csv", "b.csv", "c.csv"]}"#,
        ));
        assert!(csv_of_three.contains("bundle"), "{csv_of_three}");
    }

    fn encoding(bytes: &[u8]) -> Result<(), String> {
        check_encoding("people.csv", bytes).map_err(|e| {
            assert_eq!(e.exit_code(), 2);
            e.to_string()
        })
    }

    #[test]
    fn files_must_be_utf8_with_a_bom_and_a_bad_byte_is_named_by_line_and_column() {
        assert_eq!(
            encoding("\u{feff}Primary Email,Name\r\nann@x.com,Änn\r\n".as_bytes()),
            Ok(())
        );
        let no_bom = encoding(b"Primary Email,Name\nann@x.com,Ann\n").unwrap_err();
        assert!(
            no_bom.starts_with("people.csv: line 1, column 1: not UTF-8 with a byte-order mark"),
            "{no_bom}"
        );
        assert!(no_bom.contains("--ignore-encoding"), "{no_bom}");
        let utf16 = encoding(b"\xFF\xFEP\x00r\x00").unwrap_err();
        assert!(
            utf16.contains("line 1, column 1: not UTF-8 with a byte-order mark"),
            "{utf16}"
        );
        let utf16_be = encoding(b"\xFE\xFF\x00P").unwrap_err();
        assert!(utf16_be.contains("line 1, column 1"), "{utf16_be}");

        let lf = b"\xEF\xBB\xBFPrimary Email,Name\nann@x.com,Ann\nb\xC3\xA9a@x.com,B\xE9a\n";
        let crlf =
            b"\xEF\xBB\xBFPrimary Email,Name\r\nann@x.com,Ann\r\nb\xC3\xA9a@x.com,B\xE9a\r\n";
        let bad_lf = encoding(lf).unwrap_err();
        let bad_crlf = encoding(crlf).unwrap_err();
        // "béa@x.com,B" is 11 characters: the bad byte is the 12th.
        assert!(
            bad_lf.starts_with("people.csv: line 3, column 12: "),
            "{bad_lf}"
        );
        assert!(bad_lf.contains("0xE9"), "{bad_lf}");
        assert!(
            bad_crlf.starts_with("people.csv: line 3, column 12: "),
            "{bad_crlf}"
        );
        let cut = encoding(b"\xEF\xBB\xBFa,b\nx,\xC3").unwrap_err();
        assert!(cut.contains("line 2, column 3"), "{cut}");
    }

    #[test]
    fn a_bad_byte_across_read_buffers_is_found_where_it_is() {
        let mut bytes = UTF8_BOM.to_vec();
        for _ in 0..30_000 {
            bytes.extend_from_slice("é,x\r\n".as_bytes());
        }
        assert_eq!(
            encoding(&bytes),
            Ok(()),
            "characters cut by a buffer are fine"
        );
        bytes.extend_from_slice(b"ab\xFF\r\n");
        let bad = encoding(&bytes).unwrap_err();
        assert!(bad.contains("line 30001, column 3"), "{bad}");
    }

    fn push_args(config: &Path, dump: bool, ignore: bool) -> PushArgs {
        PushArgs {
            config: config.to_owned(),
            verbose: false,
            dump_request: dump,
            ignore_encoding: ignore,
        }
    }

    fn people_push(dir: &Path, people: &[u8]) -> PathBuf {
        std::fs::create_dir_all(dir.join("exports")).unwrap();
        std::fs::write(dir.join("exports/people.csv"), people).unwrap();
        let config = dir.join("config.json");
        std::fs::write(
            &config,
            r#"{"api_url": "http://127.0.0.1:9/", "api_token": "secret-token-123",
                "files": ["exports/people.csv"], "dry_run": false}"#,
        )
        .unwrap();
        config
    }

    #[tokio::test]
    async fn the_dump_is_written_beside_the_config_without_the_token_or_any_connection() {
        let dir = tempfile::tempdir().unwrap();
        let people = "\u{feff}Primary Email,Name\r\nann@x.com,Ann\r\nbo@x.com,Bo\r\n";
        let config = people_push(dir.path(), people.as_bytes());
        // Port 9 is closed: a connection would fail the push.
        let code = run(push_args(&config, true, false)).await.unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let text = std::fs::read_to_string(dir.path().join(DUMP_FILE)).unwrap();
        assert!(!text.contains("secret-token-123"), "{text}");
        let dump: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(dump["method"], "POST");
        assert_eq!(dump["url"], "http://127.0.0.1:9/v1/imports");
        assert_eq!(dump["headers"]["Authorization"], "Bearer <redacted>");
        assert_eq!(dump["headers"]["Content-Type"], "multipart/form-data");
        assert_eq!(
            dump["fields"],
            serde_json::json!({"type": "auto", "mode": "full", "dry_run": "false"})
        );
        let file = &dump["files"][0];
        assert_eq!(file["field"], "file");
        assert_eq!(file["file_name"], "people.csv");
        assert_eq!(
            file["path"],
            dir.path().join("exports/people.csv").display().to_string()
        );
        assert_eq!(file["bytes"], people.len());
        assert_eq!(
            file["sha256"],
            hex::encode(Sha256::digest(people.as_bytes())).as_str()
        );
    }

    #[tokio::test]
    async fn local_checks_stop_the_push_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let config = people_push(dir.path(), b"Primary Email,Name\nann@x.com,Ann\n");
        let code = run(push_args(&config, true, false)).await.unwrap();
        assert_eq!(code, ExitCode::from(2));
        assert!(!dir.path().join(DUMP_FILE).exists(), "nothing dumped");
        let code = run(push_args(&config, true, true)).await.unwrap();
        assert_eq!(code, ExitCode::SUCCESS, "--ignore-encoding skips the check");

        let twice =
            "\u{feff}Name,Primary Email\r\nAnn,ann@x.com\r\nBo,bo@x.com\r\nAnn,ann@x.com\r\n";
        let config = people_push(dir.path(), twice.as_bytes());
        let loaded = load_config(&config, |_| None).unwrap();
        let err = validate(&loaded, false, false).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = err.to_string();
        assert!(
            err.starts_with("people.csv: line 4, column 2: duplicate email ann@x.com"),
            "{err}"
        );

        let no_key = "\u{feff}Name,Phone\r\nAnn,1\r\n";
        let config = people_push(dir.path(), no_key.as_bytes());
        let loaded = load_config(&config, |_| None).unwrap();
        let err = validate(&loaded, false, false).unwrap_err().to_string();
        assert!(err.starts_with("people.csv: no email column"), "{err}");

        let bad_row = "\u{feff}Primary Email,Name\r\nnot-an-email,Ann\r\n";
        let config = people_push(dir.path(), bad_row.as_bytes());
        let loaded = load_config(&config, |_| None).unwrap();
        validate(&loaded, false, false).expect("other row errors are the server's to report");
    }

    #[test]
    fn a_bundles_files_are_checked_together_under_their_own_names() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle");
        std::fs::copy(fixtures.join("users.csv"), dir.path().join("staff.csv")).unwrap();
        std::fs::copy(fixtures.join("groups.csv"), dir.path().join("groups.csv")).unwrap();
        std::fs::copy(
            fixtures.join("groups-mapping.csv"),
            dir.path().join("groups-mapping.csv"),
        )
        .unwrap();
        let config = config_in(
            dir.path(),
            r#"{"api_url": "https://x.test", "api_token": "t",
                "files": ["staff.csv", "groups.csv", "groups-mapping.csv"]}"#,
        )
        .unwrap();
        validate(&config, false, false).unwrap();
        std::fs::write(
            dir.path().join("groups.csv"),
            "\u{feff}id,name\r\ng-sales,Sales\r\ng-emea,EMEA\r\ng-eng,Eng\r\ng-sales,Again\r\n",
        )
        .unwrap();
        let err = validate(&config, false, false).unwrap_err().to_string();
        assert!(
            err.starts_with("groups.csv: line 5, column 1: group id g-sales is already on line 2"),
            "{err}"
        );
        std::fs::write(dir.path().join("groups.csv"), "id,name\r\ng,G\r\n").unwrap();
        let err = validate(&config, false, false).unwrap_err().to_string();
        assert!(err.starts_with("groups.csv: line 1, column 1"), "{err}");
    }

    #[test]
    fn the_summary_says_what_the_import_did() {
        let import: Import = serde_json::from_str(
            r#"{"id": "0193", "status": "done", "state": "done", "dry_run": false,
                "sandbox": false, "reason": null, "related": null, "errors": [],
                "counts": {"rows_read": 16, "created": 3, "updated": 1, "deactivated": 0,
                           "reactivated": 0, "unchanged": 10, "rejected": 2, "skipped": 0}}"#,
        )
        .unwrap();
        assert_eq!(
            import.summary(),
            "import 0193: done: 3 created, 1 updated, 0 deactivated, 0 reactivated, 10 \
             unchanged, 2 rejected"
        );
        let held: Import = serde_json::from_str(
            r#"{"id": "01", "status": "held", "dry_run": true, "reason": "would deactivate 60%"}"#,
        )
        .unwrap();
        assert_eq!(exit_code(held.status), Some(3));
        assert!(
            held.summary()
                .starts_with("dry run import 01: held: 0 created")
        );
        assert!(held.summary().ends_with(": would deactivate 60%"));
        assert_eq!(exit_code(ImportStatus::Rejected), Some(2));
        assert_eq!(exit_code(ImportStatus::Processing), None);
        assert!(serde_json::from_str::<Import>(r#"{"id": "1", "status": "paused"}"#).is_err());
    }
}
