//! The events outbox: every directory event is written in the same transaction as the
//! changes it announces, then published from here and marked, so a crash or a broker
//! blip between commit and publish delays events but never loses them. The flag that
//! recorded a batch's events as published goes: the outbox rows say it now.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    TenantId,
    RunId,
    RoutingKey,
    Headers,
    Payload,
    CreatedAt,
    PublishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Outbox::Table)
                .if_not_exists()
                .col(string(Outbox::Id).primary_key())
                .col(string(Outbox::TenantId))
                .col(string(Outbox::RunId))
                .col(text(Outbox::RoutingKey))
                .col(text(Outbox::Headers))
                .col(text(Outbox::Payload))
                .col(timestamp_with_time_zone(Outbox::CreatedAt))
                .col(timestamp_with_time_zone_null(Outbox::PublishedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("outbox_pending")
                .table(Outbox::Table)
                .col(Outbox::PublishedAt)
                .col(Outbox::CreatedAt)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared("ALTER TABLE run_batches DROP COLUMN events_published")
            .await?;
        Ok(())
    }
}
