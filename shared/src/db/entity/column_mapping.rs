//! `column_mappings`: a tenant's own header names for canonical fields, on top of the
//! built-in aliases.

use sea_orm::entity::prelude::*;

/// One mapping.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "column_mappings")]
pub struct Model {
    /// Owner.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// The header, normalised (see `roster_parser`'s header matching).
    #[sea_orm(primary_key, auto_increment = false)]
    pub header: String,
    /// The canonical field name ([`crate::model::person::Field::name`]), or `extra`, `ignore`, `name`.
    pub field: String,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
