//! `run_batches`: which change batches the writer applied, so a redelivered batch is
//! recognised and not applied or counted twice.

use sea_orm::entity::prelude::*;

/// One applied batch.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "run_batches")]
pub struct Model {
    /// The run.
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_id: String,
    /// Planning generation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub generation: i32,
    /// Batch number.
    #[sea_orm(primary_key, auto_increment = false)]
    pub batch: i32,
    /// Owner.
    pub tenant_id: String,
    /// When it was applied.
    pub applied_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
