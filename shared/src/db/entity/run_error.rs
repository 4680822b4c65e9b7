//! `run_errors`: the rows a run rejected or skipped, with where and why.

use sea_orm::entity::prelude::*;

/// One rejected row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "run_errors")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Owner.
    pub tenant_id: String,
    /// The run.
    pub run_id: String,
    /// Line in the file, when the format has lines.
    pub line: Option<i64>,
    /// Column header or field path.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
    /// `error` (the row was rejected) or `note` (skipped on purpose):
    /// [`crate::model::envelope::Severity::name`].
    pub severity: String,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
