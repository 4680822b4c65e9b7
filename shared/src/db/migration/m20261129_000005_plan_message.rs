//! The message that started a run's current planning generation: a redelivery of that
//! very message (its planner died mid-way) may plan the run again, while any other
//! announcement made for an older generation is stale and starts nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    PlanMessageId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(string_null(Runs::PlanMessageId))
                .to_owned(),
        )
        .await
    }
}
