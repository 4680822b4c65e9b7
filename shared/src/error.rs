//! The error a stage's handler returns, sorted by what should happen next: retry later,
//! postpone without counting an attempt, or give up and dead-letter.

use std::error::Error;
use std::fmt::Write as _;
use std::time::Duration;

use sea_orm::{DbErr, RuntimeErr};

use crate::blob::BlobError;
use crate::transport::TransportError;

/// Any error, boxed, as a source.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// What to do about a failed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Try again later with a growing delay, up to the attempt limit.
    Retry,
    /// Not tried yet, only postponed: try again after the delay, no attempt counted.
    Defer(Duration),
    /// Will never work as it is: dead-letter now.
    Permanent,
}

/// A stage handler's failure.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The database failed or is away (retryable).
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// The transport failed or is away (retryable).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The blob store failed (retryable).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The input was refused as a whole: bad encoding, no key column, unknown format.
    /// Permanent; the run ends `rejected` and nothing is written. The error (the
    /// parser's, say) names the file and the place.
    #[error(transparent)]
    Rejected(BoxError),
    /// The work must wait (for example for an earlier run of the tenant).
    #[error("waiting: {reason}")]
    Deferred {
        /// What it waits for.
        reason: String,
        /// When to look again.
        delay: Duration,
    },
    /// A bug or corrupt internal data. Permanent.
    #[error("internal error: {what}")]
    Internal {
        /// What went wrong.
        what: String,
        /// The error behind it, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl StageError {
    /// A broken promise inside Roster (corrupt data, a bug), described by `what`.
    pub fn internal(what: impl Into<String>) -> Self {
        StageError::Internal {
            what: what.into(),
            source: None,
        }
    }

    /// A broken promise inside Roster while doing `what`, caused by `source`.
    pub fn internal_from(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StageError::Internal {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// The input refused as a whole, for the reason `error` gives.
    pub fn rejected(error: impl Into<BoxError>) -> Self {
        StageError::Rejected(error.into())
    }

    /// What should happen to the message.
    pub fn disposition(&self) -> Disposition {
        match self {
            StageError::Database(e) if is_data_error(e) => Disposition::Permanent,
            StageError::Database(_) | StageError::Transport(_) => Disposition::Retry,
            StageError::Blob(BlobError::NotFound(_)) => Disposition::Permanent,
            StageError::Blob(_) => Disposition::Retry,
            StageError::Deferred { delay, .. } => Disposition::Defer(*delay),
            StageError::Rejected(_) | StageError::Internal { .. } => Disposition::Permanent,
        }
    }

    /// Whether the input itself was refused (the run ends `rejected`, not `failed`).
    pub fn is_rejection(&self) -> bool {
        matches!(self, StageError::Rejected(_))
    }
}

/// Whether the database refused the data itself, so that trying again changes nothing:
/// PostgreSQL's SQLSTATE classes 22 (data exception: a NUL in text, a value out of range)
/// and 23 (integrity constraint); SQLite's constraint, too-big, mismatch and range
/// errors. Anything else (the database away, a lock, a timeout) is worth retrying.
pub fn is_data_error(e: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(e))
    | DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))) = e
    else {
        return false;
    };
    let Some(code) = e
        .as_database_error()
        .and_then(sea_orm::sqlx::error::DatabaseError::code)
    else {
        return false;
    };
    if code.len() == 5 {
        // PostgreSQL: a five-character SQLSTATE (SQLite's codes have at most four digits).
        code.starts_with("22") || code.starts_with("23")
    } else {
        // SQLite: a numeric result code; the primary code is its low byte.
        code.parse::<u32>()
            .is_ok_and(|n| matches!(n & 0xFF, 18 | 19 | 20 | 25))
    }
}

/// `error` with every source after it, `: `-separated: the whole story in one line, for
/// logs and stored reasons.
pub fn report(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        // A wrapper that already quotes its source says it once.
        if !out.ends_with(&text) {
            let _ = write!(out, ": {text}");
        }
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions() {
        assert_eq!(
            StageError::Database(DbErr::Custom("x".into())).disposition(),
            Disposition::Retry
        );
        assert_eq!(
            StageError::rejected("bad").disposition(),
            Disposition::Permanent
        );
        assert_eq!(
            StageError::Blob(BlobError::NotFound("k".into())).disposition(),
            Disposition::Permanent
        );
    }

    #[tokio::test]
    async fn data_errors_are_permanent_and_others_retried() {
        use sea_orm::ConnectionTrait;
        let db = crate::db::Db::connect(&"sqlite::memory:".into())
            .await
            .unwrap();
        db.conn()
            .execute_unprepared("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .await
            .unwrap();
        db.conn()
            .execute_unprepared("INSERT INTO t VALUES ('a')")
            .await
            .unwrap();
        let dup = db
            .conn()
            .execute_unprepared("INSERT INTO t VALUES ('a')")
            .await
            .unwrap_err();
        assert!(is_data_error(&dup), "{dup:?}");
        assert_eq!(
            StageError::Database(dup).disposition(),
            Disposition::Permanent
        );
        let missing = db
            .conn()
            .execute_unprepared("SELECT * FROM no_such_table")
            .await
            .unwrap_err();
        assert!(!is_data_error(&missing), "{missing:?}");
    }

    #[test]
    fn internal_errors_keep_their_source() {
        let io = std::io::Error::other("disk on fire");
        let e = StageError::internal_from("writing the snapshot", io);
        assert_eq!(e.to_string(), "internal error: writing the snapshot");
        assert_eq!(e.source().unwrap().to_string(), "disk on fire");
        assert_eq!(
            report(&e),
            "internal error: writing the snapshot: disk on fire"
        );
        assert_eq!(
            StageError::rejected("f.csv: empty").to_string(),
            "f.csv: empty"
        );
    }
}
