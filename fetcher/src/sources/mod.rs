//! Sources: where each tenant's files come from, as the tenants file declares them
//! ([`tenants`]), and how each kind is fetched: files pulled from an SFTP server
//! ([`sftp`]) or an FTP/FTPS server ([`ftp`]) through one flow ([`files`]), a web
//! service queried page by page ([`http`]), a local folder ([`crate::inbox`]). Every
//! fetched file lands where inbox files land (blob store, run, `file.fetched`), so
//! nothing after the fetcher knows where a file came from.
//!
//! [`fetch`] fetches one source now; [`schedule`] fetches each on its schedule, one
//! replica at a time per source (a lease), backing off after failures.
//!
//! Promises: no password, token or key material is ever logged, stored, printed or
//! shown by `Debug` ([`secrets`]); a file still being written is never taken; a file is
//! known by name, size, modification time and content, so it is neither taken twice
//! nor skipped when rewritten.

use std::time::Duration;

use roster_shared::error::StageError;
use roster_shared::model::ids::RunId;

pub mod db;
pub mod fetch;
pub mod files;
pub mod ftp;
pub mod http;
pub mod local;
pub mod schedule;
pub mod secrets;
pub mod sftp;
pub use roster_shared::soap;
pub mod spec;
pub mod tenants;

pub use fetch::{FetchOptions, Fetched, fetch};
pub use spec::{AfterFetch, ResponseKind, Schedule, SourceKind, SourceSpec};

/// Why a fetch failed. The message names the source's host, file or page and never
/// holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source's settings cannot be used as they are (a secret's variable unset, a
    /// file unreadable, a template without its placeholders).
    #[error("{0}")]
    Config(String),
    /// The server could not be reached, refused the login, or showed an unknown host key.
    #[error("{0}")]
    Connect(String),
    /// The server answered, but not as it should (an FTP error, an HTTP status, a SOAP
    /// fault, a page repeating the previous one, an answer that is not JSON or XML).
    #[error("{0}")]
    Protocol(String),
    /// The server took longer than allowed.
    #[error("{0}")]
    Timeout(String),
    /// Storing what was fetched failed (database, blob store, broker).
    #[error(transparent)]
    Stage(#[from] StageError),
}

impl SourceError {
    /// Wraps an I/O error on the local side (a scratch file) with what was being done.
    pub fn local(what: &str, e: &std::io::Error) -> Self {
        SourceError::Stage(StageError::internal(format!("{what}: {e}")))
    }
}

impl From<roster_shared::sea_orm::DbErr> for SourceError {
    fn from(e: roster_shared::sea_orm::DbErr) -> Self {
        SourceError::Stage(StageError::Database(e))
    }
}

impl From<roster_shared::blob::BlobError> for SourceError {
    fn from(e: roster_shared::blob::BlobError) -> Self {
        SourceError::Stage(StageError::Blob(e))
    }
}

/// Runs `work`, failing with a [`SourceError::Timeout`] naming `what` if it takes longer
/// than `limit`.
pub async fn within<T>(
    limit: Duration,
    what: impl FnOnce() -> String,
    work: impl Future<Output = Result<T, SourceError>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(SourceError::Timeout(format!(
            "{}: no answer within {}",
            what(),
            humantime::format_duration(limit)
        ))),
    }
}

/// One file a fetch brought, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Stored; this run imports it.
    Run(RunId),
    /// A dry run: fetched to a local file, nothing recorded.
    Local {
        /// The file's name at the source.
        name: String,
        /// Where it is now (the caller removes it).
        path: std::path::PathBuf,
    },
}
