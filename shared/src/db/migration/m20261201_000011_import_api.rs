//! The import API: tokens (`api_tokens`: one per integration, naming its tenant and
//! whether it only tries data in the sandbox; only a slow hash of the secret is kept), and
//! what a run through the API records: whether it is a dry run that writes nothing
//! (`runs.dry_run`), where its planned changes are (`runs.changes_key`), the admin the
//! sync runs for (`runs.requested_by`) and whether new people should be invited
//! (`runs.invite_new_users`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    TenantId,
    Sandbox,
    Hash,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    DryRun,
    ChangesKey,
    RequestedBy,
    InviteNewUsers,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ApiTokens::Table)
                .if_not_exists()
                .col(string(ApiTokens::Id).primary_key())
                .col(string(ApiTokens::TenantId))
                .col(boolean(ApiTokens::Sandbox).default(false))
                .col(text(ApiTokens::Hash))
                .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("api_tokens_by_tenant")
                .table(ApiTokens::Table)
                .col(ApiTokens::TenantId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // One column per statement: SQLite alters no more at once.
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(boolean(Runs::DryRun).default(false))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(text_null(Runs::ChangesKey))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(text_null(Runs::RequestedBy))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(boolean_null(Runs::InviteNewUsers))
                .to_owned(),
        )
        .await
    }
}
