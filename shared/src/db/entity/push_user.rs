//! `push_users`: each tenant's login to our SFTP server (`roster push-server`), as the
//! tenants file declares it. No secret is stored: a crypt(3) hash and public keys.

use sea_orm::entity::prelude::*;

/// One tenant's push login (the login name is the tenant id).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "push_users")]
pub struct Model {
    /// The tenant, which is also the login name.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// A crypt(3) SHA-512 hash (`$6$...`) of the password, if password logins are allowed.
    pub password_hash: Option<String>,
    /// The public keys that may log in, as a JSON list of OpenSSH `authorized_keys` lines.
    pub authorized_keys: String,
    /// When the declaration last changed.
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
