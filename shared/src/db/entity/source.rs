//! `sources`: where each tenant's files come from, as the tenants file declares them, and
//! how their fetches went.

use sea_orm::entity::prelude::*;

use crate::model::source::{FetchOutcome, SourceKind};

/// One source of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sources")]
pub struct Model {
    /// Owner.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// Its name in the tenants file (`hr-sftp`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// How it delivers.
    pub kind: SourceKind,
    /// Its settings as JSON (the fetcher's `SourceSpec`): secrets only named.
    pub spec: String,
    /// False once it is no longer in the tenants file (its history is kept).
    pub enabled: bool,
    /// When it is fetched on its own (`None`: on demand only).
    pub schedule: Option<String>,
    /// When it was first declared.
    pub created_at: DateTimeUtc,
    /// When its declaration last changed.
    pub updated_at: DateTimeUtc,
    /// When its last fetch started.
    pub last_attempt_at: Option<DateTimeUtc>,
    /// When its last successful fetch started.
    pub last_success_at: Option<DateTimeUtc>,
    /// How its last fetch ended.
    pub last_outcome: Option<FetchOutcome>,
    /// Why its last fetch failed (no secret: errors are redacted before they are stored).
    pub last_error: Option<String>,
    /// Runs its last fetch started.
    pub last_runs: i64,
    /// Failed fetches in a row.
    pub failures: i64,
    /// Whether it failed often enough in a row to be reported failing.
    pub failing: bool,
    /// Not fetched on schedule before this (after a failure: backing off).
    pub next_attempt_at: Option<DateTimeUtc>,
    /// Web services with deltas: when the last fetch whose every page succeeded started.
    pub watermark: Option<DateTimeUtc>,
    /// When the last successful full fetch started.
    pub full_at: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
