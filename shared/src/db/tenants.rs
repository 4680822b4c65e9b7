//! Tenants, their column mappings and the files taken from their sources.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    sea_query::OnConflict,
};

use super::Db;
use super::entity::{column_mapping, fetched_file, tenant};
use crate::ids::TenantId;
use crate::person::Field;

/// Every tenant known to the database (the one query that spans tenants).
pub async fn list(db: &Db) -> Result<Vec<TenantId>, DbErr> {
    let rows = tenant::Entity::find()
        .order_by_asc(tenant::Column::Id)
        .all(db.conn())
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|t| TenantId::new(t.id).ok())
        .collect())
}

/// What a header can be mapped to besides a field name: kept as an extra attribute,
/// dropped, or read as a full name.
pub const MAPPING_TARGETS: [&str; 3] = ["extra", "ignore", "name"];

/// Whether `target` is a field name or one of [`MAPPING_TARGETS`].
pub fn is_mapping_target(target: &str) -> bool {
    Field::from_name(target).is_some() || MAPPING_TARGETS.contains(&target)
}

/// The tenant's own header mappings: (normalised header, target), sorted by header.
pub async fn mappings(db: &Db, tenant: &TenantId) -> Result<Vec<(String, String)>, DbErr> {
    let rows = column_mapping::Entity::find()
        .filter(column_mapping::Column::TenantId.eq(tenant.as_str()))
        .order_by_asc(column_mapping::Column::Header)
        .all(db.conn())
        .await?;
    Ok(rows.into_iter().map(|m| (m.header, m.field)).collect())
}

/// Maps the (already normalised) `header` to `target` (see [`is_mapping_target`]) for the
/// tenant, replacing any earlier mapping of that header.
pub async fn set_mapping(
    db: &Db,
    tenant: &TenantId,
    header: &str,
    target: &str,
) -> Result<(), DbErr> {
    if !is_mapping_target(target) {
        return Err(DbErr::Custom(format!("{target:?} is not a field name")));
    }
    column_mapping::Entity::insert(column_mapping::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        header: Set(header.to_owned()),
        field: Set(target.to_owned()),
    })
    .on_conflict(
        OnConflict::columns([
            column_mapping::Column::TenantId,
            column_mapping::Column::Header,
        ])
        .update_column(column_mapping::Column::Field)
        .to_owned(),
    )
    .exec(db.conn())
    .await?;
    Ok(())
}

/// Removes the tenant's mapping of `header`; returns whether there was one.
pub async fn remove_mapping(db: &Db, tenant: &TenantId, header: &str) -> Result<bool, DbErr> {
    let res = column_mapping::Entity::delete_many()
        .filter(column_mapping::Column::TenantId.eq(tenant.as_str()))
        .filter(column_mapping::Column::Header.eq(header))
        .exec(db.conn())
        .await?;
    Ok(res.rows_affected > 0)
}

/// Whether the file `name` with this size and modification time was already taken from
/// the tenant's `source`.
pub async fn was_fetched(
    db: &Db,
    tenant: &TenantId,
    source: &str,
    name: &str,
    size: u64,
    modified_ms: i64,
) -> Result<bool, DbErr> {
    let found = fetched_file::Entity::find()
        .filter(fetched_file::Column::TenantId.eq(tenant.as_str()))
        .filter(fetched_file::Column::Source.eq(source))
        .filter(fetched_file::Column::Name.eq(name))
        .filter(fetched_file::Column::Size.eq(size as i64))
        .filter(fetched_file::Column::ModifiedMs.eq(modified_ms))
        .one(db.conn())
        .await?;
    Ok(found.is_some())
}
