//! `fetched_files`: every file a source handed over, so none is taken twice.

use sea_orm::entity::prelude::*;

/// One taken file.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "fetched_files")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Owner.
    pub tenant_id: String,
    /// The source (`inbox`, ...).
    pub source: String,
    /// The file's name at the source.
    pub name: String,
    /// Size when taken.
    pub size: i64,
    /// Modification time when taken, in milliseconds since the epoch.
    pub modified_ms: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// The run it started.
    pub run_id: String,
    /// When it was taken.
    pub fetched_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
