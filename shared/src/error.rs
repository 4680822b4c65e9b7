//! The error a stage's handler returns, sorted by what should happen next: retry later,
//! postpone without counting an attempt, or give up and dead-letter.

use std::time::Duration;

use sea_orm::DbErr;

use crate::blob::BlobError;
use crate::transport::TransportError;

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
    /// Permanent; the run ends `rejected` and nothing is written.
    #[error("{0}")]
    Rejected(String),
    /// The work must wait (for example for an earlier run of the tenant).
    #[error("waiting: {reason}")]
    Deferred {
        /// What it waits for.
        reason: String,
        /// When to look again.
        delay: Duration,
    },
    /// A bug or corrupt internal data. Permanent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StageError {
    /// What should happen to the message.
    pub fn disposition(&self) -> Disposition {
        match self {
            StageError::Database(_) | StageError::Transport(_) => Disposition::Retry,
            StageError::Blob(BlobError::NotFound(_)) => Disposition::Permanent,
            StageError::Blob(_) => Disposition::Retry,
            StageError::Deferred { delay, .. } => Disposition::Defer(*delay),
            StageError::Rejected(_) | StageError::Internal(_) => Disposition::Permanent,
        }
    }

    /// Whether the input itself was refused (the run ends `rejected`, not `failed`).
    pub fn is_rejection(&self) -> bool {
        matches!(self, StageError::Rejected(_))
    }
}

/// The password in `url`, whether in its user info (`user:pass@`) or as a `password=`
/// query parameter (as libpq-style URLs allow).
pub fn url_password(url: &str) -> Option<&str> {
    let in_userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw);
    let in_query = url
        .split_once('?')
        .and_then(|(_, query)| query.split('&').find_map(|kv| kv.strip_prefix("password=")));
    in_userinfo.or(in_query).filter(|pw| !pw.is_empty())
}

/// `text` with the password of `url` (if it has one) replaced by `***`.
pub fn redact(text: &str, url: &str) -> String {
    match url_password(url) {
        Some(pw) => text.replace(pw, "***"),
        None => text.to_owned(),
    }
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
            StageError::Rejected("bad".into()).disposition(),
            Disposition::Permanent
        );
        assert_eq!(
            StageError::Blob(BlobError::NotFound("k".into())).disposition(),
            Disposition::Permanent
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact(
                "failed: amqp://u:pw123@h/ refused pw123",
                "amqp://u:pw123@h/"
            ),
            "failed: amqp://u:***@h/ refused ***"
        );
        assert_eq!(redact("plain", "sqlite://x.db"), "plain");
        let query = "postgres:///roster?host=db&user=r&password=qs3cret&sslmode=require";
        assert_eq!(
            redact(query, query),
            "postgres:///roster?host=db&user=r&password=***&sslmode=require"
        );
        assert_eq!(url_password("postgres://db/x?user=u"), None);
    }
}
