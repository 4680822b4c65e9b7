//! The import API's bearer tokens: made, listed and revoked by the operator
//! (`roster tokens`), checked by the API on every request.
//!
//! A token reads `rst_<id>_<secret>`: the id (16 hex digits) finds its row without a
//! scan, the secret (256 random bits, 64 hex digits) is checked against the Argon2id hash
//! the row keeps. The token itself is shown once, when made, and stored nowhere.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use super::Db;
use super::entity::api_token;
use crate::model::ids::TenantId;

/// What every token starts with, so a leaked one is recognised by secret scanners.
pub const PREFIX: &str = "rst_";

/// A token just made: the only time its secret is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Its public id.
    pub id: String,
    /// The whole token, to hand to the integration.
    pub token: String,
}

/// A token split into its id and secret, if it has the shape of one.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

/// `n` random bytes from the operating system.
fn random(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the operating system's random numbers");
    bytes
}

/// The Argon2id hash (PHC string) of `secret`, with a fresh salt.
fn hash(secret: &str) -> String {
    let hashed: PasswordHash = Argon2::default()
        .hash_password_with_salt(secret.as_bytes(), &random(16))
        .expect("Argon2 with its default parameters hashes any secret");
    hashed.to_string()
}

/// Whether `secret` matches `stored`, an Argon2id hash made by [`create`]. Slow on purpose
/// (tens of milliseconds): callers keep what they verified.
pub fn verify(secret: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &h)
            .is_ok()
    })
}

/// Makes a token for `tenant` (a sandbox one when `sandbox`); returns it, the only time
/// its secret is seen.
pub async fn create(db: &Db, tenant: &TenantId, sandbox: bool) -> Result<Created, DbErr> {
    let id = hex::encode(random(8));
    let secret = hex::encode(random(32));
    let hashed = tokio::task::spawn_blocking({
        let secret = secret.clone();
        move || hash(&secret)
    })
    .await
    .map_err(|e| DbErr::Custom(format!("hashing the token: {e}")))?;
    api_token::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant.to_string()),
        sandbox: Set(sandbox),
        hash: Set(hashed),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
    }
    .insert(db.conn())
    .await?;
    Ok(Created {
        token: format!("{PREFIX}{id}_{secret}"),
        id,
    })
}

/// The token `id`, revoked or not.
pub async fn get(db: &Db, id: &str) -> Result<Option<api_token::Model>, DbErr> {
    api_token::Entity::find_by_id(id).one(db.conn()).await
}

/// The tokens of `tenant`, or of every tenant, oldest first.
pub async fn list(db: &Db, tenant: Option<&TenantId>) -> Result<Vec<api_token::Model>, DbErr> {
    let mut query = api_token::Entity::find();
    if let Some(tenant) = tenant {
        query = query.filter(api_token::Column::TenantId.eq(tenant.as_str()));
    }
    query
        .order_by_asc(api_token::Column::CreatedAt)
        .order_by_asc(api_token::Column::Id)
        .all(db.conn())
        .await
}

/// Revokes the token `id`. Returns whether it exists (revoking twice keeps the first time).
pub async fn revoke(db: &Db, id: &str) -> Result<bool, DbErr> {
    let Some(token) = get(db, id).await? else {
        return Ok(false);
    };
    if token.revoked_at.is_none() {
        api_token::Entity::update_many()
            .col_expr(api_token::Column::RevokedAt, Utc::now().into())
            .filter(api_token::Column::Id.eq(id))
            .filter(api_token::Column::RevokedAt.is_null())
            .exec(db.conn())
            .await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_splits_into_its_id_and_secret_and_nothing_else_does() {
        let token = format!("rst_{}_{}", "a".repeat(16), "0".repeat(64));
        assert_eq!(
            split(&token),
            Some(("a".repeat(16).as_str(), "0".repeat(64).as_str()))
        );
        for bad in [
            "",
            "rst_",
            "Bearer rst_x",
            &format!("rst_{}_{}", "a".repeat(15), "0".repeat(64)),
            &format!("rst_{}_{}", "a".repeat(16), "0".repeat(63)),
            &format!("rst_{}_{}", "g".repeat(16), "0".repeat(64)),
            &format!("xyz_{}_{}", "a".repeat(16), "0".repeat(64)),
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_hashed_secret_verifies() {
        let stored = hash("s3cret");
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("s3cret"));
        assert!(verify("s3cret", &stored));
        assert!(!verify("s3cres", &stored));
        assert!(!verify("s3cret", "not a hash"));
        assert_ne!(hash("s3cret"), stored, "each hash has its own salt");
    }
}
