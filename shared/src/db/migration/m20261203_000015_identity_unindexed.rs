//! Identity continuity without an employee-id index: `people_by_employee_id` (from
//! `m20261202_000014_identity`) is dropped.
//!
//! The index cost every write of a person (a million people's first import took 28%
//! longer, BENCHMARKS.md) to serve a lookup that only matters when a file leaves stored
//! people out. The differ now reads the employee ids of the people a file leaves out
//! by email (the primary key) when they are few, and otherwise passes once over the
//! tenant's people joined to the employee ids it asks for (`differ/src/identity.rs`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum People {
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("people_by_employee_id")
                .table(People::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}
