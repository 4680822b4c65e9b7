//! Schema migrations, named by date, run by `roster migrate` (and automatically for an
//! embedded SQLite database). Each works on SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;

mod m20261121_000001_directory;
mod m20261121_000002_dead_letters;
mod m20261129_000003_leases;
mod m20261129_000004_outbox;
mod m20261129_000005_plan_message;
mod m20261129_000006_sources;
mod m20261129_000007_parse_config;
mod m20261129_000008_outbox_lz4;
mod m20261130_000009_people_files;
mod m20261130_000010_related;
mod m20261201_000011_import_api;
mod m20261202_000012_safety;
mod m20261202_000013_webhooks;
mod m20261202_000014_identity;
mod m20261203_000015_identity_unindexed;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_directory::Migration),
            Box::new(m20261121_000002_dead_letters::Migration),
            Box::new(m20261129_000003_leases::Migration),
            Box::new(m20261129_000004_outbox::Migration),
            Box::new(m20261129_000005_plan_message::Migration),
            Box::new(m20261129_000006_sources::Migration),
            Box::new(m20261129_000007_parse_config::Migration),
            Box::new(m20261129_000008_outbox_lz4::Migration),
            Box::new(m20261130_000009_people_files::Migration),
            Box::new(m20261130_000010_related::Migration),
            Box::new(m20261201_000011_import_api::Migration),
            Box::new(m20261202_000012_safety::Migration),
            Box::new(m20261202_000013_webhooks::Migration),
            Box::new(m20261202_000014_identity::Migration),
            Box::new(m20261203_000015_identity_unindexed::Migration),
        ]
    }
}
