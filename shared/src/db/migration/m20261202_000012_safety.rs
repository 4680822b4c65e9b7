//! Safety over time: which brakes held a run (`runs.held_by`, a JSON array of brake
//! names), the directory it was held against (`runs.held_base`: the `seq` of the tenant's
//! last applied run then, so an approval can tell whether the directory moved), when its
//! file was produced (`runs.produced_at`: the delivery time, or a timestamp read from the
//! file name), how many people were active when it was planned (`runs.active_before`,
//! the population drift brake's baseline), when an operator approved it
//! (`runs.approved_at`: the rolling window starts afresh there), and a tenant's own
//! safety settings (`tenants.safety`, JSON: brake thresholds, the file-time pattern).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    HeldBy,
    HeldBase,
    ProducedAt,
    ActiveBefore,
    ApprovedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Safety,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters no more at once.
        for column in [
            text_null(Runs::HeldBy),
            big_integer_null(Runs::HeldBase),
            timestamp_with_time_zone_null(Runs::ProducedAt),
            big_integer_null(Runs::ActiveBefore),
            timestamp_with_time_zone_null(Runs::ApprovedAt),
        ] {
            let mut column = column;
            m.alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .add_column(text_null(Tenants::Safety))
                .to_owned(),
        )
        .await
    }
}
