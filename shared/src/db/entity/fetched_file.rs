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
    /// When it was taken (or seen again, unchanged in content).
    pub fetched_at: DateTimeUtc,
    /// For a local file, its inode and status-change time when taken (which any write or
    /// touch changes and nobody can set back): listed again with the same token, size
    /// and time, it is known without being read. `None` for a remote file.
    pub change_token: Option<String>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
