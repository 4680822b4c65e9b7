//! The dead-letter archive: messages drained from the dead-letter queues, kept for
//! operators to list, inspect, replay or drop.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeadLetters {
    Table,
    Id,
    TenantId,
    RunId,
    Queue,
    Stage,
    FileName,
    Reason,
    Attempts,
    FirstFailedAt,
    LastFailedAt,
    Headers,
    Payload,
    Status,
    Replays,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DeadLetters::Table)
                .if_not_exists()
                .col(string(DeadLetters::Id).primary_key())
                .col(string(DeadLetters::TenantId))
                .col(string_null(DeadLetters::RunId))
                .col(string(DeadLetters::Queue))
                .col(string(DeadLetters::Stage))
                .col(text_null(DeadLetters::FileName))
                .col(text(DeadLetters::Reason))
                .col(integer(DeadLetters::Attempts))
                .col(timestamp_with_time_zone(DeadLetters::FirstFailedAt))
                .col(timestamp_with_time_zone(DeadLetters::LastFailedAt))
                .col(text(DeadLetters::Headers))
                .col(text(DeadLetters::Payload))
                .col(string(DeadLetters::Status))
                .col(integer(DeadLetters::Replays).default(0))
                .col(timestamp_with_time_zone(DeadLetters::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("dead_letters_tenant")
                .table(DeadLetters::Table)
                .col(DeadLetters::TenantId)
                .col(DeadLetters::Status)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}
