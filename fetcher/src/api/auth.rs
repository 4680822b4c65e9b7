//! Who is asking: the bearer token of each request, checked against its stored hash, and
//! the per-tenant rate limit.
//!
//! A token's secret is checked with Argon2id once; a verified secret's digest is kept in
//! memory, so later requests cost one indexed read (which also sees a revocation at
//! once) and a hash. Requests count against their tenant's limit before the slow check,
//! so guessing at a known token id spends that tenant's quota, not the server's CPU.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use roster_shared::db::tokens;
use roster_shared::model::ids::TenantId;
use sha2::{Digest, Sha256};

use super::ApiState;
use super::error::ApiError;

/// The caller of a request: a live token's tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's id.
    pub token: String,
    /// Its tenant.
    pub tenant: TenantId,
    /// Whether it only tries data (every import a dry run).
    pub sandbox: bool,
}

/// Verified tokens and request counts, shared by every request of one API server.
pub struct Gate {
    verified: Mutex<HashMap<String, [u8; 32]>>,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

/// Verified tokens kept at most; past it the memory is cleared (and refilled on use).
const VERIFIED_MAX: usize = 10_000;

impl Gate {
    /// A gate letting each tenant make `per_minute` requests a minute (in bursts of as
    /// many).
    pub fn new(per_minute: NonZeroU32) -> Self {
        Gate {
            verified: Mutex::new(HashMap::new()),
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// The caller `authorization` (the header's value) names, or why it is refused.
    pub async fn check(
        &self,
        state: &ApiState,
        authorization: Option<&str>,
    ) -> Result<Caller, ApiError> {
        let Some(value) = authorization else {
            return Err(ApiError::unauthorized(
                "missing_token",
                "send your token as `Authorization: Bearer <token>`",
            ));
        };
        let invalid = || ApiError::unauthorized("invalid_token", "the token is not valid");
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(invalid)?;
        let (id, secret) = tokens::split(token).ok_or_else(invalid)?;
        let row = tokens::get(&state.services.db, id)
            .await?
            .ok_or_else(invalid)?;
        if let Err(not_until) = self.limiter.check_key(&row.tenant_id) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests for this tenant; try again in {} s",
                    wait.as_secs() + 1
                ),
            );
            e.retry_after = Some(wait.as_secs() + 1);
            return Err(e);
        }
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let known = self.verified.lock().expect("gate lock").get(id) == Some(&digest);
        if !known {
            let (secret, hash) = (secret.to_owned(), row.hash.clone());
            let ok = tokio::task::spawn_blocking(move || tokens::verify(&secret, &hash))
                .await
                .map_err(|e| ApiError::internal(&e))?;
            if !ok {
                return Err(invalid());
            }
            let mut verified = self.verified.lock().expect("gate lock");
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
            verified.insert(id.to_owned(), digest);
        }
        if row.revoked_at.is_some() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "token_revoked",
                "the token was revoked; ask for a new one",
            ));
        }
        let tenant = TenantId::new(&row.tenant_id).map_err(|e| ApiError::internal(&e))?;
        Ok(Caller {
            token: row.id,
            tenant,
            sandbox: row.sandbox,
        })
    }
}

impl FromRequestParts<Arc<ApiState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let value =
            match parts.headers.get(header::AUTHORIZATION) {
                Some(v) => Some(v.to_str().map_err(|_| {
                    ApiError::unauthorized("invalid_token", "the token is not valid")
                })?),
                None => None,
            };
        state.gate.check(state, value).await
    }
}
