//! Tenants and their column mappings (a tenant's own names for fields, read by the parser
//! and set by operators with `roster mapping`).

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    sea_query::OnConflict,
};

use super::Db;
use super::entity::{column_mapping, tenant};
use crate::model::ids::TenantId;
use crate::model::mapping::ValueRules;
use crate::model::person::{MappingTarget, UnknownTarget};
use crate::model::related::BundleFiles;
use crate::model::safety::Safety;

/// Every tenant known to the database (the one query that spans tenants).
pub async fn list(db: &Db) -> Result<Vec<TenantId>, DbErr> {
    let rows = tenant::Entity::find()
        .order_by_asc(tenant::Column::Id)
        .all(db.conn())
        .await?;
    rows.into_iter()
        .map(|t| TenantId::new(t.id).map_err(|e| DbErr::Type(format!("column tenants.id: {e}"))))
        .collect()
}

/// Creates `tenant` through `conn` unless it exists.
pub async fn ensure<C: ConnectionTrait>(conn: &C, tenant: &TenantId) -> Result<(), DbErr> {
    tenant::Entity::insert(tenant::ActiveModel {
        id: Set(tenant.to_string()),
        next_run_seq: Set(1),
        created_at: Set(chrono::Utc::now()),
        organizations: Set(None),
        value_rules: Set(None),
        bundle_files: Set(None),
        safety: Set(None),
        webhooks: Set(None),
    })
    .on_conflict(
        OnConflict::column(tenant::Column::Id)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// The revision of the parser's rules (aliases, Active Directory handling, ...) within
/// one version: bumped when a change reads some file differently, so a file delivered
/// again is parsed again rather than taken as unchanged.
const PARSE_RULES: &str = "rules 2";

/// The fingerprint of what decides how a file of the tenant is read: its column
/// `mappings`, its `organizations` and its value `rules` (its [`ReadingRules`]) and this
/// build's parsing rules (its version and [`PARSE_RULES`]).
/// Two runs with the same raw content and the same fingerprint give the same people; the
/// parser records it on each run (`runs.parse_config`) and the fetcher compares it before
/// skipping a re-delivered file.
pub fn parse_config(
    mappings: &[(String, MappingTarget)],
    organizations: &[String],
    rules: &ValueRules,
    bundle: &BundleFiles,
) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(concat!("roster ", env!("CARGO_PKG_VERSION"), "\n"));
    hash.update(PARSE_RULES);
    if bundle != &BundleFiles::default() {
        let names = serde_json::to_string(bundle).expect("strings serialise");
        hash.update((names.len() as u64).to_le_bytes());
        hash.update(names.as_bytes());
    }
    let rules = serde_json::to_string(rules).expect("maps of strings serialise");
    hash.update((rules.len() as u64).to_le_bytes());
    hash.update(rules.as_bytes());
    hash.update((organizations.len() as u64).to_le_bytes());
    for name in organizations {
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
    }
    for (header, target) in mappings {
        // Lengths first: no two different lists give the same bytes.
        for part in [header.as_str(), target.name()] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
    }
    hex::encode(&hash.finalize()[..16])
}

/// What decides how a file of a tenant is read, beside the file itself and the parser's
/// own rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadingRules {
    /// Its column mappings (normalised header, target), sorted by header ([`mappings`]).
    pub mappings: Vec<(String, MappingTarget)>,
    /// Its organizations (`organizations:` in the tenants file), in the file's order;
    /// empty when it lists none.
    pub organizations: Vec<String>,
    /// Its value rules (`mapping.values` and `mapping.defaults` in the tenants file).
    pub values: ValueRules,
    /// The names of its bundle's files (`bundle:` in the tenants file).
    pub bundle: BundleFiles,
}

impl ReadingRules {
    /// Their fingerprint ([`parse_config`]).
    pub fn fingerprint(&self) -> String {
        parse_config(
            &self.mappings,
            &self.organizations,
            &self.values,
            &self.bundle,
        )
    }
}

/// The tenant's [`ReadingRules`] (none for a tenant not known yet): two queries.
pub async fn reading_rules(db: &Db, tenant: &TenantId) -> Result<ReadingRules, DbErr> {
    let mappings = mappings(db, tenant).await?;
    let row = tenant::Entity::find_by_id(tenant.as_str())
        .one(db.conn())
        .await?;
    let (organizations, values, bundle) = row.map_or((None, None, None), |r| {
        (r.organizations, r.value_rules, r.bundle_files)
    });
    Ok(ReadingRules {
        mappings,
        organizations: json_column(organizations, "tenants.organizations")?,
        values: json_column(values, "tenants.value_rules")?,
        bundle: json_column(bundle, "tenants.bundle_files")?,
    })
}

/// A JSON column's value (its type's default when `NULL`).
fn json_column<T: serde::de::DeserializeOwned + Default>(
    json: Option<String>,
    column: &str,
) -> Result<T, DbErr> {
    json.map_or_else(
        || Ok(T::default()),
        |j| serde_json::from_str(&j).map_err(|e| DbErr::Type(format!("column {column}: {e}"))),
    )
}

/// Declares the tenant's mapping through `conn` as the tenants file gives it: its column
/// mappings become exactly `columns` (normalised header, target), and its value rules
/// `rules`. The tenant must exist ([`ensure`]).
pub async fn declare_mapping<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    columns: &[(String, MappingTarget)],
    rules: &ValueRules,
) -> Result<(), DbErr> {
    column_mapping::Entity::delete_many()
        .filter(column_mapping::Column::TenantId.eq(tenant.as_str()))
        .exec(conn)
        .await?;
    if !columns.is_empty() {
        column_mapping::Entity::insert_many(columns.iter().map(|(header, target)| {
            column_mapping::ActiveModel {
                tenant_id: Set(tenant.to_string()),
                header: Set(header.clone()),
                field: Set(target.name().to_owned()),
            }
        }))
        .exec_without_returning(conn)
        .await?;
    }
    let json = (!rules.is_empty()).then(|| serde_json::to_string(rules).expect("serialises"));
    set_json_column(conn, tenant, tenant::Column::ValueRules, json).await
}

/// Sets the tenant's organizations through `conn` (`None`: it lists none). The tenant
/// must exist ([`ensure`]).
pub async fn set_organizations<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    organizations: Option<&[String]>,
) -> Result<(), DbErr> {
    let json = organizations.map(|o| serde_json::to_string(o).expect("strings serialise"));
    set_json_column(conn, tenant, tenant::Column::Organizations, json).await
}

/// Sets the names of the tenant's bundle files through `conn` (`None`: the usual
/// names). The tenant must exist ([`ensure`]).
pub async fn set_bundle_files<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    bundle: Option<&BundleFiles>,
) -> Result<(), DbErr> {
    let json = bundle
        .filter(|b| **b != BundleFiles::default())
        .map(|b| serde_json::to_string(b).expect("strings serialise"));
    set_json_column(conn, tenant, tenant::Column::BundleFiles, json).await
}

/// Sets the tenant's safety settings through `conn` (`None` or the defaults: `NULL`). The
/// tenant must exist ([`ensure`]).
pub async fn set_safety<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    safety: Option<&Safety>,
) -> Result<(), DbErr> {
    let json = safety
        .filter(|s| !s.is_default())
        .map(|s| serde_json::to_string(s).expect("settings serialise"));
    set_json_column(conn, tenant, tenant::Column::Safety, json).await
}

/// The tenant's safety settings (the defaults for a tenant not known yet, or without any).
pub async fn safety<C: ConnectionTrait>(conn: &C, tenant: &TenantId) -> Result<Safety, DbErr> {
    let row = tenant::Entity::find_by_id(tenant.as_str())
        .one(conn)
        .await?;
    json_column(row.and_then(|r| r.safety), "tenants.safety")
}

/// Sets one of the tenant's JSON columns (`None`: `NULL`): the writing side of
/// [`json_column`].
async fn set_json_column<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    column: tenant::Column,
    json: Option<String>,
) -> Result<(), DbErr> {
    tenant::Entity::update_many()
        .col_expr(column, sea_orm::sea_query::Expr::value(json))
        .filter(tenant::Column::Id.eq(tenant.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// The tenant's own header mappings: (normalised header, target), sorted by header. A
/// stored target this build does not know is an error naming it.
pub async fn mappings(db: &Db, tenant: &TenantId) -> Result<Vec<(String, MappingTarget)>, DbErr> {
    let rows = column_mapping::Entity::find()
        .filter(column_mapping::Column::TenantId.eq(tenant.as_str()))
        .order_by_asc(column_mapping::Column::Header)
        .all(db.conn())
        .await?;
    rows.into_iter()
        .map(|m| {
            let target = m.field.parse().map_err(|e: UnknownTarget| {
                DbErr::Type(format!("column column_mappings.field: {e}"))
            })?;
            Ok((m.header, target))
        })
        .collect()
}

/// Maps the (already normalised) `header` to `target` for the tenant, replacing any
/// earlier mapping of that header.
pub async fn set_mapping(
    db: &Db,
    tenant: &TenantId,
    header: &str,
    target: MappingTarget,
) -> Result<(), DbErr> {
    column_mapping::Entity::insert(column_mapping::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        header: Set(header.to_owned()),
        field: Set(target.name().to_owned()),
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
