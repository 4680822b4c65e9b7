//! Tenants, runs (with their errors and applied batches), the directory, fetched files
//! and per-tenant column mappings.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::model::person::Field;
use crate::model::record::FieldKind;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    NextRunSeq,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    Id,
    TenantId,
    Seq,
    Source,
    FileName,
    BlobKey,
    Sha256,
    Size,
    Format,
    Mode,
    Encoding,
    State,
    Reason,
    Published,
    Approved,
    RowsRead,
    Accepted,
    Rejected,
    Created,
    Updated,
    Deactivated,
    Reactivated,
    Unchanged,
    Conflicts,
    Generation,
    BatchesTotal,
    SnapshotKey,
    RejectsKey,
    FetchedAt,
    ParsedAt,
    DiffedAt,
    FinishedAt,
    ParseMs,
    DiffMs,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RunErrors {
    Table,
    Id,
    TenantId,
    RunId,
    Line,
    Column,
    Message,
}

#[derive(DeriveIden)]
enum RunBatches {
    Table,
    RunId,
    Generation,
    Batch,
    TenantId,
    EventsPublished,
    AppliedAt,
}

#[derive(DeriveIden)]
enum People {
    Table,
    TenantId,
    Extra,
    RowHash,
    LastRunId,
    CreatedAt,
    UpdatedAt,
    DeactivatedAt,
}

#[derive(DeriveIden)]
enum FetchedFiles {
    Table,
    Id,
    TenantId,
    Source,
    Name,
    Size,
    ModifiedMs,
    Sha256,
    RunId,
    FetchedAt,
}

#[derive(DeriveIden)]
enum ColumnMappings {
    Table,
    TenantId,
    Header,
    Field,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tenants::Table)
                .if_not_exists()
                .col(string(Tenants::Id).primary_key())
                .col(big_integer(Tenants::NextRunSeq).default(1))
                .col(timestamp_with_time_zone(Tenants::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Runs::Table)
                .if_not_exists()
                .col(string(Runs::Id).primary_key())
                .col(string(Runs::TenantId))
                .col(big_integer(Runs::Seq))
                .col(string(Runs::Source))
                .col(text(Runs::FileName))
                .col(text(Runs::BlobKey))
                .col(string(Runs::Sha256))
                .col(big_integer(Runs::Size))
                .col(string(Runs::Format))
                .col(string(Runs::Mode))
                .col(string_null(Runs::Encoding))
                .col(string(Runs::State))
                .col(text_null(Runs::Reason))
                .col(boolean(Runs::Published).default(false))
                .col(boolean(Runs::Approved).default(false))
                .col(big_integer(Runs::RowsRead).default(0))
                .col(big_integer(Runs::Accepted).default(0))
                .col(big_integer(Runs::Rejected).default(0))
                .col(big_integer(Runs::Created).default(0))
                .col(big_integer(Runs::Updated).default(0))
                .col(big_integer(Runs::Deactivated).default(0))
                .col(big_integer(Runs::Reactivated).default(0))
                .col(big_integer(Runs::Unchanged).default(0))
                .col(big_integer(Runs::Conflicts).default(0))
                .col(integer(Runs::Generation).default(0))
                .col(integer_null(Runs::BatchesTotal))
                .col(text_null(Runs::SnapshotKey))
                .col(text_null(Runs::RejectsKey))
                .col(timestamp_with_time_zone(Runs::FetchedAt))
                .col(timestamp_with_time_zone_null(Runs::ParsedAt))
                .col(timestamp_with_time_zone_null(Runs::DiffedAt))
                .col(timestamp_with_time_zone_null(Runs::FinishedAt))
                .col(big_integer_null(Runs::ParseMs))
                .col(big_integer_null(Runs::DiffMs))
                .col(timestamp_with_time_zone(Runs::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("runs_tenant_seq")
                .table(Runs::Table)
                .col(Runs::TenantId)
                .col(Runs::Seq)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("runs_state")
                .table(Runs::Table)
                .col(Runs::State)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RunErrors::Table)
                .if_not_exists()
                .col(big_pk_auto(RunErrors::Id))
                .col(string(RunErrors::TenantId))
                .col(string(RunErrors::RunId))
                .col(big_integer_null(RunErrors::Line))
                .col(text_null(RunErrors::Column))
                .col(text(RunErrors::Message))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("run_errors_run")
                .table(RunErrors::Table)
                .col(RunErrors::TenantId)
                .col(RunErrors::RunId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RunBatches::Table)
                .if_not_exists()
                .col(string(RunBatches::RunId))
                .col(integer(RunBatches::Generation))
                .col(integer(RunBatches::Batch))
                .col(string(RunBatches::TenantId))
                .col(boolean(RunBatches::EventsPublished).default(false))
                .col(timestamp_with_time_zone(RunBatches::AppliedAt))
                .primary_key(
                    Index::create()
                        .col(RunBatches::RunId)
                        .col(RunBatches::Generation)
                        .col(RunBatches::Batch),
                )
                .to_owned(),
        )
        .await?;

        // The directory: one column per field of the person's table (see
        // `model::person`), then the bookkeeping. Emails sort and compare in plain byte
        // order on every backend (as Rust compares them; the differ merges sorted lists),
        // and on SQLite the directory is clustered on its key, so a tenant's index is read
        // in key order without a lookup per row.
        let mut people = Table::create();
        people.table(People::Table).if_not_exists();
        let backend = m.get_database_backend();
        if backend == sea_orm::DbBackend::Sqlite {
            people.extra("WITHOUT ROWID");
        }
        people.col(string(People::TenantId));
        for field in Field::ALL {
            let name = Alias::new(field.column());
            let mut column = match field.kind() {
                FieldKind::Key => string(name),
                FieldKind::Active => boolean(name),
                FieldKind::Text => text_null(name),
            };
            if field.kind() == FieldKind::Key && backend == sea_orm::DbBackend::Postgres {
                column.extra("COLLATE \"C\"");
            }
            people.col(column);
        }
        m.create_table(
            people
                .col(text_null(People::Extra))
                .col(big_integer(People::RowHash))
                .col(string(People::LastRunId))
                .col(timestamp_with_time_zone(People::CreatedAt))
                .col(timestamp_with_time_zone(People::UpdatedAt))
                .col(timestamp_with_time_zone_null(People::DeactivatedAt))
                .primary_key(
                    Index::create()
                        .col(People::TenantId)
                        .col(Alias::new(Field::Email.column())),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(FetchedFiles::Table)
                .if_not_exists()
                .col(big_pk_auto(FetchedFiles::Id))
                .col(string(FetchedFiles::TenantId))
                .col(string(FetchedFiles::Source))
                .col(text(FetchedFiles::Name))
                .col(big_integer(FetchedFiles::Size))
                .col(big_integer(FetchedFiles::ModifiedMs))
                .col(string(FetchedFiles::Sha256))
                .col(string(FetchedFiles::RunId))
                .col(timestamp_with_time_zone(FetchedFiles::FetchedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("fetched_files_identity")
                .table(FetchedFiles::Table)
                .col(FetchedFiles::TenantId)
                .col(FetchedFiles::Source)
                .col(FetchedFiles::Name)
                .col(FetchedFiles::Size)
                .col(FetchedFiles::ModifiedMs)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ColumnMappings::Table)
                .if_not_exists()
                .col(string(ColumnMappings::TenantId))
                .col(string(ColumnMappings::Header))
                .col(string(ColumnMappings::Field))
                .primary_key(
                    Index::create()
                        .col(ColumnMappings::TenantId)
                        .col(ColumnMappings::Header),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
