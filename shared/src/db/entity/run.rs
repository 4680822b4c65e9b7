//! `runs`: one row per sync run, moved through its states by the stages.

use sea_orm::entity::prelude::*;

use crate::model::envelope::{Format, SyncMode};
use crate::model::run::RunState;

/// A sync run.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "runs")]
pub struct Model {
    /// The [`crate::model::ids::RunId`].
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// Order of the run among its tenant's runs, from 1.
    pub seq: i64,
    /// Where the file came from (`cli`, `inbox`, a source name).
    pub source: String,
    /// The file's original name.
    pub file_name: String,
    /// Blob key of the raw file.
    pub blob_key: String,
    /// Hex SHA-256 of the raw file.
    pub sha256: String,
    /// Size of the raw file in bytes.
    pub size: i64,
    /// Format hint.
    pub format: Format,
    /// Full snapshot or delta.
    pub mode: SyncMode,
    /// Encoding label for BOM-less files, if not UTF-8.
    pub encoding: Option<String>,
    /// Where the run is.
    pub state: RunState,
    /// Why the run failed, was rejected, held or superseded.
    pub reason: Option<String>,
    /// Whether the `file.fetched` message went out (the fetcher re-sends it otherwise).
    pub published: bool,
    /// Whether an operator approved a held run.
    pub approved: bool,
    /// Data rows read.
    pub rows_read: i64,
    /// Rows in the snapshot.
    pub accepted: i64,
    /// Rows rejected alone.
    pub rejected: i64,
    /// Rows skipped on purpose, each with a note (Active Directory accounts without an
    /// email).
    pub skipped: i64,
    /// What the file's columns feed, as JSON
    /// ([`crate::model::envelope::Covered`]); `NULL` for runs parsed before it existed.
    pub covered: Option<String>,
    /// Blob key of the run's related records (groups, memberships, contact details:
    /// [`crate::model::related::RelatedSnapshot`]); `NULL` when its file had none.
    pub related_key: Option<String>,
    /// The related changes applied, as JSON ([`crate::model::related::RelatedCounts`]).
    pub related_counts: Option<String>,
    /// Whether the bundle encoding check (UTF-8 with a byte-order mark) was waived.
    pub ignore_encoding: bool,
    /// Whether the run only plans: its changes are recorded (`changes_key`), nothing is
    /// applied, and it never stands in the way of the tenant's other runs.
    pub dry_run: bool,
    /// Blob key of a dry run's planned changes (JSON lines, as `import --dry-run --dump`
    /// writes them).
    pub changes_key: Option<String>,
    /// Who the sync runs for (an import's `sync_manager_email`).
    pub requested_by: Option<String>,
    /// Whether the import asked for new people to be invited.
    pub invite_new_users: Option<bool>,
    /// The brakes that held the run, as a JSON array of brake names
    /// ([`crate::model::run::BrakeName`]); `NULL` when none did.
    pub held_by: Option<String>,
    /// The `seq` of the tenant's last applied run when this one was held: an approval
    /// applies the held plan only while it still is (otherwise the run is planned again,
    /// brakes included).
    pub held_base: Option<i64>,
    /// When the run's file was produced (its delivery time, or a timestamp its name
    /// carries); a file older than the last applied one is `stale`.
    pub produced_at: Option<DateTimeUtc>,
    /// Active people in the directory when the run was planned.
    pub active_before: Option<i64>,
    /// When an operator approved the run (brake windows start afresh after it).
    pub approved_at: Option<DateTimeUtc>,
    /// People created.
    pub created: i64,
    /// People updated.
    pub updated: i64,
    /// People deactivated.
    pub deactivated: i64,
    /// People reactivated.
    pub reactivated: i64,
    /// People in the snapshot that needed no change.
    pub unchanged: i64,
    /// Planned changes found stale when applied.
    pub conflicts: i64,
    /// Planning generation (bumped by each re-plan).
    pub generation: i32,
    /// The message that started the current generation (its redelivery may plan again).
    pub plan_message_id: Option<String>,
    /// Number of change batches in the current generation.
    pub batches_total: Option<i32>,
    /// Blob key of the snapshot.
    pub snapshot_key: Option<String>,
    /// Blob key of the rejected rows.
    pub rejects_key: Option<String>,
    /// Fetched (run created).
    pub fetched_at: DateTimeUtc,
    /// Parsed.
    pub parsed_at: Option<DateTimeUtc>,
    /// Diffed.
    pub diffed_at: Option<DateTimeUtc>,
    /// Reached a final state.
    pub finished_at: Option<DateTimeUtc>,
    /// Milliseconds the parser spent.
    pub parse_ms: Option<i64>,
    /// Milliseconds the differ spent.
    pub diff_ms: Option<i64>,
    /// What shaped the parse ([`crate::db::tenants::parse_config`]), set when parsed.
    pub parse_config: Option<String>,
    /// Last change of this row.
    pub updated_at: DateTimeUtc,
    /// The settled state (`applied`, `held`, `failed`, `rejected`) last announced to the
    /// tenant's webhooks; `NULL` until one is (see [`crate::webhooks`]).
    pub announced: Option<String>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
