//! The messages stages hand each other. Every message is an [`Envelope`] around a small
//! body that refers to blobs rather than carrying files (RabbitMQ refuses big messages,
//! and big messages hurt everyone else on the broker).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::change::{Change, ChangeKind, FieldChange};
use crate::model::ids::{MessageId, RunId, TenantId};
use crate::model::person::Person;

/// Version of the envelope and body layout. A stage refuses (dead-letters) a message
/// with a version it does not know instead of misreading it.
pub const SCHEMA_VERSION: u16 = 1;

/// W3C trace context carried across stages, so one sync run is one trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// The `traceparent` header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The `tracestate` header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// The frame around every message body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Idempotency key: the same work always travels under the same id.
    pub message_id: MessageId,
    /// Whose data this is.
    pub tenant: TenantId,
    /// The sync run the message belongs to.
    pub run_id: RunId,
    /// Delivery attempt, 1 for the first. The transport keeps the authoritative count;
    /// this is what it was when published.
    pub attempt: u32,
    /// [`SCHEMA_VERSION`] of the publisher.
    pub schema_version: u16,
    /// Trace context of the publisher (filled in when the message is published; see
    /// `stage::message`).
    #[serde(default)]
    pub trace: TraceContext,
    /// The message itself.
    pub body: T,
}

impl<T: Serialize> Envelope<T> {
    /// A first-attempt envelope. Its trace context is that of the span it is published
    /// from (set at publishing time).
    pub fn new(message_id: MessageId, tenant: TenantId, run_id: RunId, body: T) -> Self {
        Envelope {
            message_id,
            tenant,
            run_id,
            attempt: 1,
            schema_version: SCHEMA_VERSION,
            trace: TraceContext::default(),
            body,
        }
    }

    /// JSON bytes of the envelope.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_traced(&self.trace)
    }

    /// JSON bytes of the envelope carrying the trace context `trace` (the publisher's)
    /// instead of its own.
    pub fn to_bytes_traced(&self, trace: &TraceContext) -> Vec<u8> {
        /// The envelope's fields, borrowed: serialises exactly as [`Envelope`] does.
        #[derive(Serialize)]
        struct View<'a, T> {
            message_id: MessageId,
            tenant: &'a TenantId,
            run_id: RunId,
            attempt: u32,
            schema_version: u16,
            trace: &'a TraceContext,
            body: &'a T,
        }
        serde_json::to_vec(&View {
            message_id: self.message_id,
            tenant: &self.tenant,
            run_id: self.run_id,
            attempt: self.attempt,
            schema_version: self.schema_version,
            trace,
            body: &self.body,
        })
        .expect("envelopes always serialise")
    }
}

impl<T: Serialize + DeserializeOwned> Envelope<T> {
    /// Reads an envelope, refusing unknown schema versions.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: u16,
        }
        // One pass when the envelope reads (the common case); the version alone is read
        // only to say why one does not.
        let version_error = || match serde_json::from_slice::<Version>(bytes) {
            Ok(v) if v.schema_version != SCHEMA_VERSION => {
                Some(EnvelopeError::UnknownVersion(v.schema_version))
            }
            _ => None,
        };
        match serde_json::from_slice::<Self>(bytes) {
            Ok(envelope) if envelope.schema_version == SCHEMA_VERSION => Ok(envelope),
            Ok(envelope) => Err(EnvelopeError::UnknownVersion(envelope.schema_version)),
            Err(e) => Err(version_error().unwrap_or(EnvelopeError::Malformed(e))),
        }
    }
}

/// Why bytes from the transport are not a usable envelope. Always permanent.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON of the expected shape.
    #[error("malformed message: {0}")]
    Malformed(serde_json::Error),
    /// Written by a Roster that speaks another schema version.
    #[error("message schema version {0} is not supported (this build speaks {SCHEMA_VERSION})")]
    UnknownVersion(u16),
}

crate::text_enum! {
    /// Input formats Roster reads.
    pub enum Format as "format" {
        /// Decide from the content.
        Auto = "auto",
        /// Delimited text with a header row; the delimiter (comma, semicolon, tab) is sniffed.
        Csv = "csv",
        /// Tab-separated text with a header row.
        Tsv = "tsv",
        /// The web-service JSON shape: `{"employees": [...]}` or a bare array.
        Json = "json",
        /// A SOAP 1.1 or 1.2 answer of a web service, read as the web-service source
        /// reads the answers it fetches.
        Soap = "soap",
        /// A People import file (delimited, `Primary Email` and the person's columns).
        People = "people",
        /// A People Contact Details file (delimited: `Person`, `Contact Protocol`, ...).
        ContactDetails = "contact_details",
        /// A three-file bundle (`users.csv`, `groups.csv`, `groups-mapping.csv`) as a
        /// zip archive (a folder is packed into one when it is delivered).
        Bundle = "bundle",
    }
}

crate::text_enum! {
    /// How a snapshot relates to the stored directory.
    pub enum SyncMode as "sync mode" {
        /// The snapshot is everyone: a stored person missing from it is deactivated.
        Full = "full",
        /// The snapshot holds only changed people: absent people are left alone.
        Delta = "delta",
    }
}

/// `file.fetched`: a raw file is safe in the blob store; the parser's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFetched {
    /// Where it came from (`inbox`, `cli`, a source name).
    pub source: String,
    /// Blob key of the raw bytes.
    pub blob_key: String,
    /// Hex SHA-256 of the raw bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The file's original name, for messages to people.
    pub file_name: String,
    /// Format hint.
    pub format: Format,
    /// Sync mode.
    pub mode: SyncMode,
    /// A text encoding to decode with when the file has no BOM (an `encoding_rs` label,
    /// such as `windows-1252`); `None` means UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Whether a bundle's files are read without checking that they are UTF-8 with a
    /// byte-order mark (`--ignore-encoding`, a source's `ignore_encoding: true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_encoding: bool,
}

/// `snapshot.parsed`: a file is parsed into a normalised snapshot; the differ's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotParsed {
    /// Blob key of the snapshot ([`crate::model::snapshot`] format, sorted by email).
    pub snapshot_key: String,
    /// Blob key of the reject file: the rejected rows in the file's own columns (with
    /// `line` and `error`) for a delimited file, JSON lines of [`RowError`] for JSON.
    pub rejects_key: String,
    /// Data rows read from the file.
    pub rows_read: u64,
    /// Rows in the snapshot.
    pub accepted: u64,
    /// Rows rejected alone.
    pub rejected: u64,
    /// Sync mode.
    pub mode: SyncMode,
    /// The run's planning generation when this was sent: the differ plans only from it,
    /// so a stale copy (a redelivery, a recovery racing a re-plan) starts nothing.
    #[serde(default)]
    pub generation: u32,
    /// What the file's columns feed; a field (or extra attribute) no column feeds keeps
    /// its stored value. `None` (runs parsed before this existed): every field is the
    /// file's, an absent one blank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered: Option<Covered>,
    /// Blob key of the file's related records (groups, memberships, contact details:
    /// [`crate::model::related::RelatedSnapshot`]), when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_key: Option<String>,
}

/// What a file's columns (or a JSON file's keys) feed: a stored person's other fields
/// are left as they are, since a column left out of a file says nothing about them (an
/// empty cell in a column that is there does blank its field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Covered {
    /// The text fields fed, by name ([`crate::model::record::RecordField::name`]).
    pub fields: Vec<String>,
    /// The extra attributes fed, by the header that feeds them.
    pub extras: Vec<String>,
}

impl Covered {
    /// Whether the file has a column feeding the text field named `field`
    /// ([`crate::model::record::RecordField::name`]).
    pub fn covers(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
    }

    /// Fills in `record` (read from the file) what the file does not cover from
    /// `stored`: every text field it has no column for, and every extra attribute of
    /// `stored` under a header it does not have.
    pub fn fill<R: crate::model::record::Record>(&self, record: &mut R, stored: &R) {
        use crate::model::record::RecordField;
        for field in R::Field::TEXT {
            if !self.covers(field.name()) {
                record.put(*field, stored.text(*field).map(str::to_owned));
            }
        }
        for (key, value) in stored.extra() {
            if !self.extras.contains(key) && !record.extra().contains_key(key) {
                record.extra_mut().insert(key.clone(), value.clone());
            }
        }
    }
}

/// `changes.ready`: one batch of planned changes; the writer's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesReady {
    /// Which planning of the run this batch belongs to; a re-plan bumps it and the
    /// writer ignores batches of older generations.
    pub generation: u32,
    /// Batch number, from 1.
    pub batch: u32,
    /// Number of batches in this generation.
    pub of: u32,
    /// The changes, at most `CHANGE_BATCH_SIZE` (5000).
    pub changes: Vec<Change>,
    /// Creations carried by reference instead (a tenant's first import, where every
    /// person of the snapshot is new): every line of this part of the run's snapshot
    /// that is not a protected row is the creation of its person. The writer reads the
    /// lines from the blob store, so a million new people do not travel through the
    /// broker as encoded changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates_from: Option<SnapshotSlice>,
    /// The run's related changes (groups, memberships, contact details): only ever in
    /// the last batch, which the writer applies once every other batch of the
    /// generation is applied (people before what refers to them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<crate::model::related::RelatedPlan>,
}

/// Whole lines of a snapshot in the blob store: bytes `start..end` of blob `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSlice {
    /// The snapshot's blob key.
    pub key: String,
    /// Offset of the first line.
    pub start: u64,
    /// Offset just past the last line's line feed.
    pub end: u64,
}

/// What a message about one input row means for that row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The row was rejected: nothing in it was applied.
    #[default]
    Error,
    /// The row was skipped on purpose and nothing is wrong with it (an Active Directory
    /// service account without an email, say).
    Note,
    /// The row was accepted and applied, but something in it deserves a look (a manager
    /// who is not in the directory, say).
    Warning,
}

impl Severity {
    /// The severity's name: `error`, `note` or `warning` (as stored in
    /// `run_errors.severity`).
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Note => "note",
            Severity::Warning => "warning",
        }
    }

    /// The severity named `name` ([`Severity::name`]); anything else is an error.
    pub fn from_name(name: &str) -> Severity {
        match name {
            "note" => Severity::Note,
            "warning" => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// Whether this is [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        *self == Severity::Error
    }
}

/// One error (or note) attached to one input row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// Line in the file where the row starts (1 is the first line), when the format
    /// has lines.
    pub line: Option<u64>,
    /// The column (its header) or field (`employees[3].email` in JSON) at fault.
    pub column: Option<String>,
    /// What is wrong, in words for the person who fixes the file.
    pub message: String,
    /// Whether the row was rejected (an error, the default) or skipped on purpose.
    #[serde(default, skip_serializing_if = "Severity::is_error")]
    pub severity: Severity,
}

impl RowError {
    /// An error rejecting the row that starts at `line`, at `column`.
    pub fn new(line: Option<u64>, column: Option<String>, message: impl Into<String>) -> Self {
        RowError {
            line,
            column,
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// A note on a row skipped on purpose.
    pub fn note(line: Option<u64>, column: Option<String>, message: impl Into<String>) -> Self {
        RowError {
            severity: Severity::Note,
            ..RowError::new(line, column, message)
        }
    }

    /// A warning on a row that was accepted all the same.
    pub fn warning(line: Option<u64>, column: Option<String>, message: impl Into<String>) -> Self {
        RowError {
            severity: Severity::Warning,
            ..RowError::new(line, column, message)
        }
    }
}

/// One event on the `roster.events` exchange: something changed for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEvent {
    /// Stable id: the same change always has the same id, so consumers can drop repeats.
    pub event_id: MessageId,
    /// `employee.created`, ... ([`ChangeKind::event_name`]).
    pub event: String,
    /// Whose directory.
    pub tenant: TenantId,
    /// The run that made the change.
    pub run_id: RunId,
    /// The person's key.
    pub email: String,
    /// The person after the change, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    /// The changed fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<FieldChange>,
    /// When the change was stored.
    pub at: DateTime<Utc>,
    /// On an `employee.created` event: whether the new person should be invited (the
    /// import's or the tenant's `invite_new_users`, never on the tenant's first import
    /// unless `invite_on_first_import`). Absent on other events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<bool>,
}

impl DirectoryEvent {
    /// The routing key of an event `name` (`employee.created`, ...) of `tenant` on the events
    /// exchange: `<tenant>.<name>`, so a consumer binds to its own tenant's events
    /// (`acme.#`). A `.` in a tenant id, which would split it into words, is written `~`.
    pub fn routing_key(tenant: &TenantId, name: &str) -> String {
        format!("{}.{name}", tenant.as_str().replace('.', "~"))
    }

    /// The event announcing `change`, made in `run` of `tenant` at `at`.
    pub fn of(change: &Change, tenant: &TenantId, run: RunId, at: DateTime<Utc>) -> Self {
        DirectoryEvent {
            event_id: Self::id_of(change, tenant, &run.to_string()),
            event: change.kind.event_name().to_owned(),
            tenant: tenant.clone(),
            run_id: run,
            email: change.email.clone(),
            person: change.person.clone(),
            changed: change.changed.clone(),
            at,
            invite: None,
        }
    }
}

impl DirectoryEvent {
    /// The id of the event announcing `change` of `tenant`, made in the run `run`.
    fn id_of(change: &Change, tenant: &TenantId, run: &str) -> MessageId {
        MessageId::derived(&[
            "event",
            tenant.as_str(),
            run,
            change.kind.name(),
            &change.email,
        ])
    }
}

/// The events announcing `changes` (all of `kind`), made in `run` of `tenant` at `at`:
/// serialises exactly as the [`EventBatch`] of their [`DirectoryEvent::of`], without
/// building those (a copy of every person). What the writer publishes.
#[derive(Debug, Clone, Copy)]
pub struct EventBatchOf<'a> {
    /// The kind every change has.
    pub kind: ChangeKind,
    /// The changes.
    pub changes: &'a [&'a Change],
    /// Whose.
    pub tenant: &'a TenantId,
    /// The run that made them.
    pub run: RunId,
    /// When they were stored.
    pub at: DateTime<Utc>,
    /// Whether new people should be invited: set on every event of an
    /// `employee.created` batch ([`DirectoryEvent::invite`]), `None` on others.
    pub invite: Option<bool>,
}

impl Serialize for EventBatchOf<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq, SerializeStruct};

        /// A [`DirectoryEvent`], borrowed; `at` as its JSON text, made once a batch.
        #[derive(Serialize)]
        struct View<'a> {
            event_id: MessageId,
            event: &'static str,
            tenant: &'a TenantId,
            run_id: RunId,
            email: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            person: Option<&'a Person>,
            #[serde(skip_serializing_if = "<[FieldChange]>::is_empty")]
            changed: &'a [FieldChange],
            at: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            invite: Option<bool>,
        }

        struct Events<'a>(&'a EventBatchOf<'a>, &'a str);

        impl Serialize for Events<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let (batch, at) = (self.0, self.1);
                let run = batch.run.to_string();
                let mut seq = s.serialize_seq(Some(batch.changes.len()))?;
                for change in batch.changes {
                    seq.serialize_element(&View {
                        event_id: DirectoryEvent::id_of(change, batch.tenant, &run),
                        event: change.kind.event_name(),
                        tenant: batch.tenant,
                        run_id: batch.run,
                        email: &change.email,
                        person: change.person.as_ref(),
                        changed: &change.changed,
                        at,
                        invite: batch.invite,
                    })?;
                }
                seq.end()
            }
        }

        // The time as `DateTime` writes it, once.
        let at = serde_json::to_value(self.at).map_err(S::Error::custom)?;
        let at = at
            .as_str()
            .ok_or_else(|| S::Error::custom("a time serialises as a string"))?;
        let mut out = s.serialize_struct("EventBatch", 2)?;
        out.serialize_field("kind", &self.kind)?;
        out.serialize_field("events", &Events(self, at))?;
        out.end()
    }
}

/// The body of an events message: events of one kind from one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// The kind all events here share.
    pub kind: ChangeKind,
    /// The events.
    pub events: Vec<DirectoryEvent>,
}

/// A `snapshot.parsed` envelope of tenant `acme` for tests, in `mode` at `generation`.
#[cfg(test)]
pub(crate) fn sample_snapshot_parsed(mode: SyncMode, generation: u32) -> Envelope<SnapshotParsed> {
    Envelope::new(
        MessageId::new(),
        TenantId::new("acme").unwrap(),
        RunId::new(),
        SnapshotParsed {
            snapshot_key: "s".into(),
            rejects_key: "r".into(),
            rows_read: 3,
            accepted: 2,
            rejected: 1,
            mode,
            generation,
            covered: None,
            related_key: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_file_leaves_out_is_filled_from_the_stored_person() {
        use crate::model::person::Field;
        let mut stored = Person::new("a@x.com".into());
        stored.set(Field::FirstName, "Ann");
        stored.set(Field::JobTitle, "Engineer");
        stored.set(Field::Phone, "+1 555");
        stored.extra.insert("Source".into(), "AD".into());
        stored.extra.insert("Badge".into(), "7".into());
        let mut read = Person::new("a@x.com".into());
        read.set(Field::FirstName, "Anna");
        read.extra.insert("Cost Center".into(), "42".into());
        let covered = Covered {
            fields: vec!["first_name".into(), "phone".into()],
            extras: vec!["Cost Center".into(), "Badge".into()],
        };
        covered.fill(&mut read, &stored);
        assert_eq!(
            read.first_name.as_deref(),
            Some("Anna"),
            "covered: the file's"
        );
        assert_eq!(
            read.job_title.as_deref(),
            Some("Engineer"),
            "left out: kept"
        );
        assert_eq!(read.phone, None, "covered and empty: blank");
        assert_eq!(read.extra["Source"], "AD", "left out: kept");
        assert!(!read.extra.contains_key("Badge"), "covered and empty: gone");
        assert_eq!(read.extra["Cost Center"], "42");
    }

    #[test]
    fn envelopes_round_trip_and_refuse_unknown_versions() {
        let env = sample_snapshot_parsed(SyncMode::Delta, 2);
        let bytes = env.to_bytes();
        assert_eq!(Envelope::<SnapshotParsed>::from_bytes(&bytes).unwrap(), env);

        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        value["schema_version"] = 99.into();
        let err = Envelope::<SnapshotParsed>::from_bytes(&serde_json::to_vec(&value).unwrap());
        assert!(matches!(err, Err(EnvelopeError::UnknownVersion(99))));
        // Another version's body need not read as ours: still named as the version.
        value["body"] = "another shape".into();
        let err = Envelope::<SnapshotParsed>::from_bytes(&serde_json::to_vec(&value).unwrap());
        assert!(matches!(err, Err(EnvelopeError::UnknownVersion(99))));
        assert!(matches!(
            Envelope::<SnapshotParsed>::from_bytes(b"{}"),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    /// What the writer publishes reads back as the events consumers expect, byte for byte
    /// what serialising those events gives.
    #[test]
    fn a_batch_of_events_serialises_as_the_events_it_stands_for() {
        use crate::model::change::RowState;
        use crate::model::person::Field;
        let mut p = Person::new("a@x.com".into());
        p.set(Field::FirstName, "Ann \"Q\" \\ 😀");
        p.extra.insert("Badge".into(), "7".into());
        let updated = Change {
            kind: ChangeKind::Updated,
            email: p.email.clone(),
            expected: Some(RowState {
                hash: 1,
                active: true,
            }),
            target: RowState::of(&p),
            person: Some(p.clone()),
            changed: vec![FieldChange {
                field: "first_name".into(),
                old: None,
                new: Some("Ann".into()),
            }],
            renamed_from: None,
        };
        let gone = Change {
            kind: ChangeKind::Updated,
            email: "b@x.com".into(),
            expected: Some(RowState {
                hash: 2,
                active: true,
            }),
            target: RowState {
                hash: 2,
                active: false,
            },
            person: None,
            changed: Vec::new(),
            renamed_from: None,
        };
        let (tenant, run) = (TenantId::new("acme").unwrap(), RunId::new());
        let at = Utc::now();
        let changes = [&updated, &gone];
        let by_ref = serde_json::to_string(&EventBatchOf {
            kind: ChangeKind::Updated,
            changes: &changes,
            tenant: &tenant,
            run,
            at,
            invite: None,
        })
        .unwrap();
        let owned = EventBatch {
            kind: ChangeKind::Updated,
            events: changes
                .iter()
                .map(|c| DirectoryEvent::of(c, &tenant, run, at))
                .collect(),
        };
        assert_eq!(by_ref, serde_json::to_string(&owned).unwrap());
        assert_eq!(serde_json::from_str::<EventBatch>(&by_ref).unwrap(), owned);
    }
}
