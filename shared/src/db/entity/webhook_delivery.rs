//! `webhook_deliveries`: every message for a tenant's webhook endpoint, with its
//! attempts (see [`crate::webhooks`]). The secret is never stored: only the name of the
//! environment variable that holds it.

use sea_orm::entity::prelude::*;

/// One message to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// The message id, sent as `webhook-id` (`msg_...`): the same on every attempt, so
    /// a receiver drops repeats.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// The run the message is about (empty for none).
    pub run_id: String,
    /// The endpoint.
    pub url: String,
    /// The environment variable holding the endpoint's secret (`whsec_...`).
    pub secret_env: String,
    /// `run.applied`, `employee.created`, ...
    pub event_type: String,
    /// The JSON body sent.
    pub payload: String,
    /// `pending`, `delivered` or `failed` ([`crate::webhooks::Status`]).
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The HTTP status of the last attempt, if one came back.
    pub last_code: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the message was recorded.
    pub created_at: DateTimeUtc,
    /// When it is due to be sent (again).
    pub next_attempt_at: DateTimeUtc,
    /// Until when a process is sending it (nobody else may meanwhile).
    pub claimed_until: Option<DateTimeUtc>,
    /// The process sending it.
    pub claimed_by: Option<String>,
    /// When an endpoint took it (a 2xx answer).
    pub delivered_at: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
