//! Leases: named roles that one process of an install holds at a time (the supervisor),
//! each with its holder and an expiry by the database's clock.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Leases {
    Table,
    Name,
    Holder,
    ExpiresMs,
    AcquiredMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Leases::Table)
                .if_not_exists()
                .col(string(Leases::Name).primary_key())
                .col(string(Leases::Holder))
                .col(big_integer(Leases::ExpiresMs))
                .col(big_integer(Leases::AcquiredMs))
                .to_owned(),
        )
        .await
    }
}
