//! Rows skipped on purpose (an Active Directory service account without an email): each
//! keeps a note in `run_errors` (`severity = 'note'`, the rejected rows' being `error`),
//! and the run counts them in `runs.skipped`. A tenant may list its organizations
//! (`tenants.organizations`, a JSON list), which rows must name, and value rules
//! (`tenants.value_rules`: values rewritten, defaults). A run records what its
//! file's columns feed (`runs.covered`), so the fields it leaves out keep their values.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RunErrors {
    Table,
    Severity,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    Skipped,
    Covered,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Organizations,
    ValueRules,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(RunErrors::Table)
                .add_column(string(RunErrors::Severity).default("error"))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(big_integer(Runs::Skipped).default(0))
                .to_owned(),
        )
        .await?;
        // One column per statement: SQLite alters no more at once.
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(text_null(Runs::Covered))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .add_column(text_null(Tenants::Organizations))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .add_column(text_null(Tenants::ValueRules))
                .to_owned(),
        )
        .await
    }
}
