//! `api_tokens`: the import API's bearer tokens. Only a slow hash of each token's secret
//! is stored; the token itself is shown once, when made.

use sea_orm::entity::prelude::*;

/// One token.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    /// Public id, part of the token itself (so a token is found without scanning).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The tenant whose imports the token makes and sees.
    pub tenant_id: String,
    /// Whether the token only tries data: its imports are dry runs that write nothing.
    pub sandbox: bool,
    /// Argon2id hash (PHC string) of the token's secret.
    pub hash: String,
    /// When it was made.
    pub created_at: DateTimeUtc,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
