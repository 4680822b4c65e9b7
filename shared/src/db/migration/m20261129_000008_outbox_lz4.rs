//! The outbox's event payloads (up to half a kilobyte of JSON per person changed, a
//! first import of a million people writes ~460 MB) are compressed with lz4 on
//! PostgreSQL instead of pglz, the default, which took a quarter of PostgreSQL's time on
//! such an import (`perf`, BENCHMARKS.md). A server built without lz4 keeps pglz.
//! SQLite has no such setting.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        m.get_connection()
            .execute_unprepared(
                "DO $$ BEGIN \
                   ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4; \
                 EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL; \
                 END $$",
            )
            .await?;
        Ok(())
    }
}
