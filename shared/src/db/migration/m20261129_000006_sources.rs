//! Sources and push users, as the tenants file declares them: each source's settings
//! (secrets only named, never stored), its schedule and how its fetches went (the
//! watermark of a delta feed, failures in a row); each tenant's login to our SFTP server
//! (a password hash and public keys, no secret). A taken local file records its change
//! token (inode and status-change time); one file may be taken and seen many times, so
//! (name, size, time) no longer identifies a row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sources {
    Table,
    TenantId,
    Name,
    Kind,
    Spec,
    Enabled,
    Schedule,
    CreatedAt,
    UpdatedAt,
    LastAttemptAt,
    LastSuccessAt,
    LastOutcome,
    LastError,
    LastRuns,
    Failures,
    Failing,
    NextAttemptAt,
    Watermark,
    FullAt,
}

#[derive(DeriveIden)]
enum PushUsers {
    Table,
    TenantId,
    PasswordHash,
    AuthorizedKeys,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FetchedFiles {
    Table,
    ChangeToken,
    TenantId,
    Source,
    Name,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Sources::Table)
                .if_not_exists()
                .col(string(Sources::TenantId))
                .col(string(Sources::Name))
                .col(string(Sources::Kind))
                .col(text(Sources::Spec))
                .col(boolean(Sources::Enabled).default(true))
                .col(string_null(Sources::Schedule))
                .col(timestamp_with_time_zone(Sources::CreatedAt))
                .col(timestamp_with_time_zone(Sources::UpdatedAt))
                .col(timestamp_with_time_zone_null(Sources::LastAttemptAt))
                .col(timestamp_with_time_zone_null(Sources::LastSuccessAt))
                .col(string_null(Sources::LastOutcome))
                .col(text_null(Sources::LastError))
                .col(big_integer(Sources::LastRuns).default(0))
                .col(big_integer(Sources::Failures).default(0))
                .col(boolean(Sources::Failing).default(false))
                .col(timestamp_with_time_zone_null(Sources::NextAttemptAt))
                .col(timestamp_with_time_zone_null(Sources::Watermark))
                .col(timestamp_with_time_zone_null(Sources::FullAt))
                .primary_key(Index::create().col(Sources::TenantId).col(Sources::Name))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PushUsers::Table)
                .if_not_exists()
                .col(string(PushUsers::TenantId).primary_key())
                .col(text_null(PushUsers::PasswordHash))
                .col(text(PushUsers::AuthorizedKeys))
                .col(timestamp_with_time_zone(PushUsers::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(FetchedFiles::Table)
                .add_column(text_null(FetchedFiles::ChangeToken))
                .to_owned(),
        )
        .await?;
        // A file is no longer one row per (name, size, time): a rewrite within the same
        // second is a new take, and a file seen again is a new sighting.
        m.drop_index(
            Index::drop()
                .name("fetched_files_identity")
                .table(FetchedFiles::Table)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("fetched_files_by_name")
                .table(FetchedFiles::Table)
                .col(FetchedFiles::TenantId)
                .col(FetchedFiles::Source)
                .col(FetchedFiles::Name)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}
