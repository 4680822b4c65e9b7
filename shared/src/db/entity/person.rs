//! `people`: the directory. One row per tenant and email; rows are deactivated, never
//! deleted.

use sea_orm::entity::prelude::*;

/// One stored person.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "people")]
pub struct Model {
    /// Owner.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// Normalised email, the key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub email: String,
    /// See [`crate::person::Person`].
    pub employee_id: Option<String>,
    /// See [`crate::person::Person`].
    pub first_name: Option<String>,
    /// See [`crate::person::Person`].
    pub last_name: Option<String>,
    /// See [`crate::person::Person`].
    pub display_name: Option<String>,
    /// See [`crate::person::Person`].
    pub job_title: Option<String>,
    /// See [`crate::person::Person`].
    pub department: Option<String>,
    /// See [`crate::person::Person`].
    pub phone: Option<String>,
    /// See [`crate::person::Person`].
    pub active: bool,
    /// See [`crate::person::Person`] (`group` is a reserved word, hence the column name).
    #[sea_orm(column_name = "group_name")]
    pub group: Option<String>,
    /// See [`crate::person::Person`].
    pub organization: Option<String>,
    /// See [`crate::person::Person`].
    pub site: Option<String>,
    /// See [`crate::person::Person`].
    pub location: Option<String>,
    /// See [`crate::person::Person`].
    pub locale: Option<String>,
    /// See [`crate::person::Person`].
    pub time_zone: Option<String>,
    /// See [`crate::person::Person`].
    pub manager_email: Option<String>,
    /// Extra attributes as a JSON object, absent when there are none.
    pub extra: Option<String>,
    /// [`crate::person::Person::content_hash`].
    pub row_hash: i64,
    /// The run that last changed the row.
    pub last_run_id: String,
    /// First stored.
    pub created_at: DateTimeUtc,
    /// Last changed.
    pub updated_at: DateTimeUtc,
    /// When the person became inactive (absent while active).
    pub deactivated_at: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
