//! Webhooks: a tenant's endpoints and invite settings (`tenants.webhooks`, JSON:
//! [`crate::webhooks::TenantWebhooks`]), every delivery to an endpoint with its attempts
//! (`webhook_deliveries`), and which settled state of a run was announced to the
//! tenant's endpoints (`runs.announced`), so each is announced once.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    TenantId,
    RunId,
    Url,
    SecretEnv,
    EventType,
    Payload,
    Status,
    Attempts,
    LastCode,
    LastError,
    CreatedAt,
    NextAttemptAt,
    ClaimedUntil,
    ClaimedBy,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    Announced,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Webhooks,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(WebhookDeliveries::Table)
                .if_not_exists()
                .col(string(WebhookDeliveries::Id).primary_key())
                .col(string(WebhookDeliveries::TenantId))
                .col(string(WebhookDeliveries::RunId))
                .col(text(WebhookDeliveries::Url))
                .col(string(WebhookDeliveries::SecretEnv))
                .col(string(WebhookDeliveries::EventType))
                .col(text(WebhookDeliveries::Payload))
                .col(string(WebhookDeliveries::Status))
                .col(integer(WebhookDeliveries::Attempts).default(0))
                .col(integer_null(WebhookDeliveries::LastCode))
                .col(text_null(WebhookDeliveries::LastError))
                .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                .col(timestamp_with_time_zone_null(
                    WebhookDeliveries::ClaimedUntil,
                ))
                .col(string_null(WebhookDeliveries::ClaimedBy))
                .col(timestamp_with_time_zone_null(
                    WebhookDeliveries::DeliveredAt,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("webhook_deliveries_due")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::Status)
                .col(WebhookDeliveries::NextAttemptAt)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("webhook_deliveries_by_tenant")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::TenantId)
                .col(WebhookDeliveries::CreatedAt)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // One column per statement: SQLite alters no more at once.
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(string_null(Runs::Announced))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .add_column(text_null(Tenants::Webhooks))
                .to_owned(),
        )
        .await
    }
}
