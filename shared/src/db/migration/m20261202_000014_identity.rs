//! Identity continuity: people are found by their employee id (`people_by_employee_id`
//! on `(tenant_id, employee_id)`), so the differ can tell a person whose email changed
//! from a new person with one query for the employee ids of a run's would-be creations.
//!
//! Superseded by `m20261203_000015_identity_unindexed`, which drops the index again
//! (kept so databases that ran this migration stay in step).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum People {
    Table,
    TenantId,
    EmployeeId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("people_by_employee_id")
                .table(People::Table)
                .col(People::TenantId)
                .col(People::EmployeeId)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}
