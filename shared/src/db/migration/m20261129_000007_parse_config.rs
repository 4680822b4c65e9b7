//! What shaped a run's parse (`runs.parse_config`: a fingerprint of the tenant's column
//! mappings and the parser's rules): a file delivered again with the same content is
//! recognised at fetch time only when it would be read the same way as before.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    ParseConfig,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(string_null(Runs::ParseConfig))
                .to_owned(),
        )
        .await
    }
}
