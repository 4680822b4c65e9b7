//! `tenants`: one row per organization.

use sea_orm::entity::prelude::*;

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    /// The [`crate::model::ids::TenantId`].
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Sequence number the next run of this tenant gets.
    pub next_run_seq: i64,
    /// When the tenant was first seen.
    pub created_at: DateTimeUtc,
    /// Its organizations as a JSON list of names (`organizations:` in the tenants file),
    /// or `NULL` when it lists none.
    pub organizations: Option<String>,
    /// Its value rules as JSON ([`crate::model::mapping::ValueRules`]: `mapping.values`
    /// and `mapping.defaults` in the tenants file), or `NULL` when it has none.
    pub value_rules: Option<String>,
    /// The names of its bundle's files as JSON ([`crate::model::related::BundleFiles`]:
    /// `bundle:` in the tenants file), or `NULL` for the usual names.
    pub bundle_files: Option<String>,
    /// The tenant's safety settings as JSON ([`crate::model::safety::Safety`]): brake
    /// thresholds and how file names carry the time a file was produced.
    pub safety: Option<String>,
    /// Its webhook endpoints and invite settings as JSON
    /// ([`crate::webhooks::TenantWebhooks`]), or `NULL` when it has none.
    pub webhooks: Option<String>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
