//! Sources: where a tenant's files come from, as far as more than the fetcher needs to
//! know (the kind and how the last fetch went). What each kind's settings are is the
//! fetcher's (`roster_fetcher::sources::spec`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::envelope::DirectoryEvent;
use super::ids::{MessageId, TenantId};

crate::text_enum! {
    /// How a source delivers.
    pub enum SourceKind as "source kind" {
        /// We pull files from the organization's SFTP server.
        Sftp = "sftp",
        /// We pull files from its FTP server.
        Ftp = "ftp",
        /// We pull files from its FTP server over explicit TLS.
        Ftps = "ftps",
        /// We query its web service (JSON, SOAP 1.1, SOAP 1.2).
        Http = "http",
        /// Files appear in a local folder.
        Inbox = "inbox",
    }
}

crate::text_enum! {
    /// How a source's last fetch ended.
    pub enum FetchOutcome as "fetch outcome" {
        /// It brought one or more files (each became a run).
        Fetched = "fetched",
        /// It worked and there was nothing new.
        NothingNew = "nothing-new",
        /// It failed (the error says why); it is tried again after a pause.
        Failed = "failed",
    }
}

/// An event about a source (not about people), published on the events exchange with
/// routing key `<tenant>.source.failing` or `<tenant>.source.recovered`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEvent {
    /// Unique id (consumers drop repeats).
    pub event_id: MessageId,
    /// `source.failing` (failed too often in a row) or `source.recovered` (a fetch worked
    /// again after that).
    pub event: String,
    /// Whose source.
    pub tenant: TenantId,
    /// The source's name.
    pub source: String,
    /// Failed fetches in a row.
    pub failures: u64,
    /// Why the last fetch failed (empty when recovered).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// When.
    pub at: DateTime<Utc>,
}

impl SourceEvent {
    /// Its routing key on the events exchange.
    pub fn routing_key(&self) -> String {
        DirectoryEvent::routing_key(&self.tenant, &self.event)
    }
}
