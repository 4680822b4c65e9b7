//! Webhooks: a tenant's endpoints (`webhooks:` in the tenants file) receive its run
//! outcomes and directory change events as JSON, signed the Standard Webhooks way.
//!
//! Promises:
//! - every message is recorded (`webhook_deliveries`) in the transaction that makes what
//!   it announces: a batch's directory events with the batch's changes ([`record_events`]),
//!   a run's settled state with the mark that it was announced ([`announce_runs`]). So a
//!   message is never lost, and never recorded twice;
//! - each message has a stable id, sent as `webhook-id` on every attempt, so receivers
//!   drop repeats (delivery is at least once);
//! - the body is signed with the endpoint's secret (`whsec_` + base64, read from the
//!   environment variable the tenants file names, at sending time: never stored, never
//!   logged): `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`;
//! - a failed attempt (no answer within the timeout, or a status other than 2xx) is
//!   retried with backoff (`ROSTER_WEBHOOK_BACKOFF_MS`) until a day after the message
//!   was recorded (`ROSTER_WEBHOOK_GIVE_UP_SECS`), then the delivery is `failed`;
//! - each endpoint is served by its own task, its messages one at a time in order: a
//!   slow or failing endpoint delays only its own messages;
//! - a delivery is claimed by a conditional update before it is sent, so two processes
//!   never send the same one at once.
//!
//! Run outcomes are `run.applied`, `run.held`, `run.failed` and `run.rejected` (a `stale`
//! run, whose file is older than one already applied, is announced as `run.rejected`
//! with `state: "stale"`); dry runs and superseded runs announce nothing.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::WebhookSettings;
use crate::db::entity::{run, run_error, tenant, webhook_delivery};
use crate::db::{Db, exec, raw, tv};
use crate::model::ids::{MessageId, RunId, TenantId};
use crate::model::run::RunState;
use crate::transport::Message;

/// One endpoint of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Where messages are posted (`http` or `https`).
    pub url: String,
    /// The environment variable holding the endpoint's secret (`whsec_` + base64).
    pub secret_env: String,
}

/// A tenant's webhook settings, as stored in `tenants.webhooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantWebhooks {
    /// Its endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Whether new people should be invited (unless the import says otherwise).
    #[serde(default)]
    pub invite_new_users: bool,
    /// Whether the tenant's first import asks for invites too.
    #[serde(default)]
    pub invite_on_first_import: bool,
}

impl TenantWebhooks {
    /// Whether there is nothing to store (no endpoint, invite settings at their defaults).
    pub fn is_empty(&self) -> bool {
        *self == TenantWebhooks::default()
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not delivered yet; due at `next_attempt_at`.
    Pending,
    /// An endpoint answered 2xx.
    Delivered,
    /// Gave up: no 2xx within a day of recording.
    Failed,
}

impl Status {
    /// Its name in the database and in listings.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }
}

/// Why a message could not be signed. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set (or not UTF-8).
    #[error("the environment variable {0} holding the endpoint's secret is not set")]
    Missing(String),
    /// The value is not `whsec_` followed by base64.
    #[error("the environment variable {0} does not hold `whsec_` followed by base64")]
    Malformed(String),
}

/// The Standard Webhooks signature of `body` sent as message `id` at `timestamp` (unix
/// seconds) with `secret` (`whsec_` + base64 of the key; the prefix may be left out):
/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. `None` when `secret` is not base64.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = BASE64.decode(encoded.trim()).ok()?;
    if key.is_empty() {
        return None;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// The signature of a message with the secret in the environment variable `env`.
fn sign_with_env(env: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SecretError> {
    let secret = std::env::var(env).map_err(|_| SecretError::Missing(env.to_owned()))?;
    if !secret.starts_with("whsec_") {
        return Err(SecretError::Malformed(env.to_owned()));
    }
    signature(&secret, id, timestamp, body).ok_or_else(|| SecretError::Malformed(env.to_owned()))
}

/// The tenant's webhook settings through `conn`; `None` when it has none.
pub async fn settings<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
) -> Result<Option<TenantWebhooks>, DbErr> {
    let stored: Option<Option<String>> = tenant::Entity::find_by_id(tenant.as_str())
        .select_only()
        .column(tenant::Column::Webhooks)
        .into_tuple()
        .one(conn)
        .await?;
    stored
        .flatten()
        .map(|json| {
            serde_json::from_str(&json)
                .map_err(|e| DbErr::Custom(format!("tenants.webhooks of {tenant}: {e}")))
        })
        .transpose()
}

/// Sets the tenant's webhook settings through `conn` (`None` or empty: none). The tenant
/// must exist. A tenant gaining its first endpoint does not hear of its runs settled
/// before: they are marked announced.
pub async fn set<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    hooks: Option<&TenantWebhooks>,
) -> Result<(), DbErr> {
    let hooks = hooks.filter(|h| !h.is_empty());
    let had_endpoints = settings(conn, tenant)
        .await?
        .is_some_and(|h| !h.endpoints.is_empty());
    if !had_endpoints && hooks.is_some_and(|h| !h.endpoints.is_empty()) {
        let settled = crate::db::runs::states_sql(&ANNOUNCED);
        exec(
            conn,
            raw(
                conn.get_database_backend(),
                &format!(
                    "UPDATE runs SET announced = {MARK} WHERE tenant_id = $1 \
                     AND state IN ({settled})"
                ),
                vec![tv(tenant)],
            ),
        )
        .await?;
    }
    let json = hooks.map(|h| serde_json::to_string(h).expect("settings serialise"));
    tenant::Entity::update_many()
        .col_expr(
            tenant::Column::Webhooks,
            sea_orm::sea_query::Expr::value(json),
        )
        .filter(tenant::Column::Id.eq(tenant.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Whether the people a run creates should be invited: as the run asks
/// (`runs.invite_new_users`, an import's setting), else as the tenant's
/// `invite_new_users` says; and never on the tenant's first import unless its
/// `invite_on_first_import` is set. The first import is a run of a tenant none of whose
/// earlier runs (by `seq`) was applied having created someone.
pub async fn invite<C: ConnectionTrait>(
    conn: &C,
    run: &run::Model,
    hooks: Option<&TenantWebhooks>,
) -> Result<bool, DbErr> {
    let defaults = TenantWebhooks::default();
    let hooks = hooks.unwrap_or(&defaults);
    if !run.invite_new_users.unwrap_or(hooks.invite_new_users) {
        return Ok(false);
    }
    if hooks.invite_on_first_import {
        return Ok(true);
    }
    let earlier = conn
        .query_one_raw(raw(
            conn.get_database_backend(),
            "SELECT 1 FROM runs WHERE tenant_id = $1 AND seq < $2 AND state = $3 \
             AND created > 0 LIMIT 1",
            vec![
                run.tenant_id.clone().into(),
                run.seq.into(),
                RunState::Applied.to_string().into(),
            ],
        ))
        .await?;
    Ok(earlier.is_some())
}

/// The id of the message for `endpoint` about `parts`: the same endpoint and parts
/// always give the same id.
fn message_id(endpoint: &Endpoint, parts: &[&str]) -> String {
    let mut all = vec!["webhook", endpoint.url.as_str()];
    all.extend_from_slice(parts);
    format!(
        "msg_{}",
        MessageId::derived(&all).to_string().replace('-', "")
    )
}

/// Records, through `conn` (the transaction that applies a batch), a message for each of
/// the tenant's endpoints for each events message of the batch (`events`: routing key
/// and message, as published): `{"type": "employee.created", "timestamp", "data":
/// {"tenant", "run_id", "kind", "events": [...]}}`. The ids derive from the endpoint
/// and the events message's id, so a batch applied again records nothing more.
/// Returns how many were recorded.
pub async fn record_events<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    run: RunId,
    hooks: Option<&TenantWebhooks>,
    events: &[(String, Message)],
) -> Result<usize, DbErr> {
    let Some(hooks) = hooks.filter(|h| !h.endpoints.is_empty()) else {
        return Ok(0);
    };
    let now = Utc::now();
    let mut rows = Vec::new();
    for (key, message) in events {
        let event_type = key.split_once('.').map_or(key.as_str(), |(_, name)| name);
        let envelope: Value = serde_json::from_slice(&message.payload)
            .map_err(|e| DbErr::Custom(format!("an events message is not JSON: {e}")))?;
        let mut data = match envelope.get("body") {
            Some(Value::Object(body)) => body.clone(),
            _ => serde_json::Map::new(),
        };
        data.insert("tenant".into(), json!(tenant));
        data.insert("run_id".into(), json!(run.to_string()));
        let body = json!({"type": event_type, "timestamp": now, "data": data}).to_string();
        let message_id = message.id.to_string();
        for endpoint in &hooks.endpoints {
            rows.push(row(
                tenant,
                &run.to_string(),
                endpoint,
                message_id_for(endpoint, &message_id),
                event_type,
                body.clone(),
                now,
            ));
        }
    }
    let n = rows.len();
    insert(conn, rows).await?;
    Ok(n)
}

/// The webhook message id for `endpoint` of the events message `id`.
fn message_id_for(endpoint: &Endpoint, id: &str) -> String {
    message_id(endpoint, &["events", id])
}

/// A new delivery row.
fn row(
    tenant: &TenantId,
    run: &str,
    endpoint: &Endpoint,
    id: String,
    event_type: &str,
    payload: String,
    now: DateTime<Utc>,
) -> webhook_delivery::ActiveModel {
    webhook_delivery::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant.to_string()),
        run_id: Set(run.to_owned()),
        url: Set(endpoint.url.clone()),
        secret_env: Set(endpoint.secret_env.clone()),
        event_type: Set(event_type.to_owned()),
        payload: Set(payload),
        status: Set(Status::Pending.name().to_owned()),
        attempts: Set(0),
        last_code: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        claimed_by: Set(None),
        delivered_at: Set(None),
    }
}

/// Inserts `rows`, leaving any already there (the same id) as it is.
async fn insert<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<webhook_delivery::ActiveModel>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    webhook_delivery::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(webhook_delivery::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The settled states announced to webhooks.
pub const ANNOUNCED: [RunState; 5] = [
    RunState::Applied,
    RunState::Held,
    RunState::Failed,
    RunState::Rejected,
    RunState::Stale,
];

/// What `runs.announced` holds once a run's state is announced: the state and the
/// planning generation, so a run settling again (held, approved, planned afresh, held
/// again) is announced again.
const MARK: &str = "state || ':' || CAST(generation AS TEXT)";

/// Row errors sent with a run outcome, at most.
pub const ROW_ERRORS_SENT: u64 = 100;

/// Runs looked at per sweep, at most.
const RUNS_PER_SWEEP: u64 = 200;

/// The event type announcing a run in `state`.
fn run_event(state: RunState) -> Option<&'static str> {
    match state {
        RunState::Applied => Some("run.applied"),
        RunState::Held => Some("run.held"),
        RunState::Failed => Some("run.failed"),
        RunState::Rejected | RunState::Stale => Some("run.rejected"),
        _ => None,
    }
}

/// Records a message for each endpoint of the run's tenant for every run (not a dry
/// run) that settled (applied, held, failed, rejected, stale) and was not announced in
/// that state yet, marking it announced in the same transaction (a conditional update:
/// two processes sweeping at once announce it once). Returns how many runs were announced.
pub async fn announce_runs(db: &Db) -> Result<usize, DbErr> {
    let settled = crate::db::runs::states_sql(&ANNOUNCED);
    let sql = format!(
        "SELECT r.* FROM runs r JOIN tenants t ON t.id = r.tenant_id \
         WHERE t.webhooks IS NOT NULL AND r.dry_run = $1 AND r.state IN ({settled}) \
         AND (r.announced IS NULL OR r.announced <> r.{}) ORDER BY r.fetched_at LIMIT {RUNS_PER_SWEEP}",
        MARK.replace("generation", "r.generation")
    );
    let candidates = run::Entity::find()
        .from_raw_sql(raw(db.backend(), &sql, vec![false.into()]))
        .all(db.conn())
        .await?;
    let mut announced = 0;
    for run in candidates {
        if announce(db, &run).await? {
            announced += 1;
        }
    }
    Ok(announced)
}

/// Announces one settled run, if no one did meanwhile; returns whether this call did.
async fn announce(db: &Db, run: &run::Model) -> Result<bool, DbErr> {
    let Some(event_type) = run_event(run.state) else {
        return Ok(false);
    };
    let Ok(tenant) = TenantId::new(run.tenant_id.clone()) else {
        return Ok(false);
    };
    let mark = format!("{}:{}", run.state, run.generation);
    let txn = db.conn().begin().await?;
    let claimed = exec(
        &txn,
        raw(
            db.backend(),
            "UPDATE runs SET announced = $1 WHERE id = $2 AND tenant_id = $3 AND state = $4 \
             AND generation = $5 AND (announced IS NULL OR announced <> $1)",
            vec![
                mark.clone().into(),
                run.id.clone().into(),
                tv(&tenant),
                run.state.to_string().into(),
                run.generation.into(),
            ],
        ),
    )
    .await?;
    if claimed == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    let hooks = settings(&txn, &tenant).await?.unwrap_or_default();
    let errors = run_error::Entity::find()
        .filter(run_error::Column::TenantId.eq(tenant.as_str()))
        .filter(run_error::Column::RunId.eq(run.id.as_str()))
        .order_by_asc(run_error::Column::Id)
        .limit(ROW_ERRORS_SENT)
        .all(&txn)
        .await?;
    let now = Utc::now();
    let body = json!({
        "type": event_type,
        "timestamp": now,
        "data": run_data(run, &errors),
    })
    .to_string();
    let rows = hooks
        .endpoints
        .iter()
        .map(|endpoint| {
            row(
                &tenant,
                &run.id,
                endpoint,
                message_id(endpoint, &["run", &run.id, &mark]),
                event_type,
                body.clone(),
                now,
            )
        })
        .collect();
    insert(&txn, rows).await?;
    txn.commit().await?;
    debug!(tenant = %tenant, run = %run.id, event = event_type, "run outcome recorded for webhooks");
    Ok(true)
}

/// The `data` of a run outcome: the run, its counts and its first row errors.
fn run_data(run: &run::Model, errors: &[run_error::Model]) -> Value {
    let held_by: Option<Value> = run
        .held_by
        .as_deref()
        .and_then(|h| serde_json::from_str(h).ok());
    json!({
        "tenant": run.tenant_id,
        "run_id": run.id,
        "seq": run.seq,
        "state": run.state.to_string(),
        "source": run.source,
        "file_name": run.file_name,
        "reason": run.reason,
        "held_by": held_by,
        "requested_by": run.requested_by,
        "fetched_at": run.fetched_at,
        "finished_at": run.finished_at,
        "counts": {
            "rows_read": run.rows_read,
            "accepted": run.accepted,
            "rejected": run.rejected,
            "skipped": run.skipped,
            "created": run.created,
            "updated": run.updated,
            "deactivated": run.deactivated,
            "reactivated": run.reactivated,
            "unchanged": run.unchanged,
            "conflicts": run.conflicts,
        },
        "errors": errors.iter().map(|e| json!({
            "line": e.line,
            "column": e.column,
            "message": e.message,
            "severity": e.severity,
        })).collect::<Vec<_>>(),
    })
}

/// The tenant's deliveries, newest first, at most `limit`.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    limit: u64,
) -> Result<Vec<webhook_delivery::Model>, DbErr> {
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::TenantId.eq(tenant.as_str()))
        .order_by_desc(webhook_delivery::Column::CreatedAt)
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(limit)
        .all(db.conn())
        .await
}

/// Deliveries one claim takes from one endpoint, at most.
const CLAIM_PER_ENDPOINT: usize = 20;

/// Due deliveries looked at per pass, at most.
const DUE_PER_PASS: u64 = 1000;

/// Extra time a claim lasts beyond its requests' timeouts.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);

/// Sends due deliveries and announces settled runs until `shutdown`: every
/// `settings.interval()`, it records the outcomes of runs newly settled, then claims
/// the due deliveries of every endpoint not already being served by this process and
/// serves each endpoint in its own task (at most `settings.endpoints_at_once()` at
/// once), its messages one at a time, in the order they were recorded.
pub async fn run(db: Db, settings: WebhookSettings, shutdown: CancellationToken) {
    let client = match client(&settings) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot set up the webhook HTTP client; webhooks are not sent");
            return;
        }
    };
    let me = crate::db::lease::process_name();
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let slots = Arc::new(Semaphore::new(settings.endpoints_at_once()));
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        if let Err(e) = announce_runs(&db).await {
            warn!(error = %e, "announcing runs to webhooks failed; trying again");
        }
        match claim_due(&db, &me, &busy, &slots, &settings).await {
            Ok(claims) => {
                for claim in claims {
                    let sender = Sender {
                        db: db.clone(),
                        client: client.clone(),
                        settings: settings.clone(),
                        busy: Arc::clone(&busy),
                    };
                    tasks.spawn(sender.serve(claim));
                }
            }
            Err(e) => warn!(error = %e, "looking for due webhook deliveries failed; trying again"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(settings.interval()) => {}
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // What this process claimed and did not send goes to whoever comes next.
    if let Err(e) = exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE webhook_deliveries SET claimed_until = NULL, claimed_by = NULL \
             WHERE status = $1 AND claimed_by LIKE $2",
            vec![Status::Pending.name().into(), format!("{me}/%").into()],
        ),
    )
    .await
    {
        warn!(error = %e, "could not release webhook deliveries; their claims will expire");
    }
}

/// The HTTP client: TLS by the process's rustls provider with the platform's roots, no
/// redirects (a signed message goes where it was addressed or nowhere).
fn client(settings: &WebhookSettings) -> Result<reqwest::Client, reqwest::Error> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .tls_backend_rustls()
        .timeout(settings.timeout())
        .connect_timeout(settings.timeout())
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("roster-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The deliveries of one endpoint claimed by this process, with the permit that counts it
/// among the endpoints served at once.
struct Claim {
    url: String,
    rows: Vec<webhook_delivery::Model>,
    token: String,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// Claims the due deliveries of each endpoint this process is not serving already, as
/// many endpoints as there are free slots.
async fn claim_due(
    db: &Db,
    me: &str,
    busy: &Arc<Mutex<HashSet<String>>>,
    slots: &Arc<Semaphore>,
    settings: &WebhookSettings,
) -> Result<Vec<Claim>, DbErr> {
    let now = Utc::now();
    let due: Vec<(String, String)> = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .column(webhook_delivery::Column::Url)
        .filter(webhook_delivery::Column::Status.eq(Status::Pending.name()))
        .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
        .filter(
            sea_orm::Condition::any()
                .add(webhook_delivery::Column::ClaimedUntil.is_null())
                .add(webhook_delivery::Column::ClaimedUntil.lt(now)),
        )
        .order_by_asc(webhook_delivery::Column::CreatedAt)
        .order_by_asc(webhook_delivery::Column::Id)
        .limit(DUE_PER_PASS)
        .into_tuple()
        .all(db.conn())
        .await?;
    let mut by_url: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, url) in due {
        let ids = by_url.entry(url).or_default();
        if ids.len() < CLAIM_PER_ENDPOINT {
            ids.push(id);
        }
    }
    let mut claims = Vec::new();
    for (url, ids) in by_url {
        if busy.lock().expect("not poisoned").contains(&url) {
            continue;
        }
        let Ok(slot) = Arc::clone(slots).try_acquire_owned() else {
            break;
        };
        let token = format!("{me}/{}", uuid::Uuid::new_v4().simple());
        let lasts = (settings.timeout() + Duration::from_secs(1)) * ids.len() as u32 + CLAIM_MARGIN;
        let until = now + chrono::Duration::from_std(lasts).unwrap_or_default();
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 5)).collect();
        let mut values: Vec<sea_orm::Value> = vec![
            token.clone().into(),
            until.into(),
            Status::Pending.name().into(),
            now.into(),
        ];
        values.extend(ids.iter().map(|id| id.clone().into()));
        let claimed = exec(
            db.conn(),
            raw(
                db.backend(),
                &format!(
                    "UPDATE webhook_deliveries SET claimed_by = $1, claimed_until = $2 \
                     WHERE status = $3 AND (claimed_until IS NULL OR claimed_until < $4) \
                     AND id IN ({})",
                    placeholders.join(", ")
                ),
                values,
            ),
        )
        .await?;
        if claimed == 0 {
            continue;
        }
        let rows = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::ClaimedBy.eq(token.as_str()))
            .filter(webhook_delivery::Column::Status.eq(Status::Pending.name()))
            .order_by_asc(webhook_delivery::Column::CreatedAt)
            .order_by_asc(webhook_delivery::Column::Id)
            .all(db.conn())
            .await?;
        busy.lock().expect("not poisoned").insert(url.clone());
        claims.push(Claim {
            url,
            rows,
            token,
            _slot: slot,
        });
    }
    Ok(claims)
}

/// Serves one endpoint's claimed deliveries.
struct Sender {
    db: Db,
    client: reqwest::Client,
    settings: WebhookSettings,
    busy: Arc<Mutex<HashSet<String>>>,
}

/// How one attempt went.
struct Outcome {
    code: Option<u16>,
    error: Option<String>,
}

impl Sender {
    /// Sends the claim's deliveries in order. After a failed attempt the rest are
    /// released, not tried: the endpoint is likely down, and they go at the next pass.
    async fn serve(self, claim: Claim) {
        let mut failed = false;
        for delivery in &claim.rows {
            if failed {
                break;
            }
            let outcome = self.send(delivery).await;
            failed = outcome.error.is_some();
            if let Err(e) = self.record(delivery, &outcome).await {
                warn!(delivery = %delivery.id, error = %e, "could not record a webhook attempt");
            }
        }
        if failed
            && let Err(e) = exec(
                self.db.conn(),
                raw(
                    self.db.backend(),
                    "UPDATE webhook_deliveries SET claimed_until = NULL, claimed_by = NULL \
                     WHERE claimed_by = $1 AND status = $2",
                    vec![claim.token.clone().into(), Status::Pending.name().into()],
                ),
            )
            .await
        {
            warn!(error = %e, "could not release webhook deliveries; their claims will expire");
        }
        self.busy.lock().expect("not poisoned").remove(&claim.url);
    }

    /// One attempt: signs the body now and posts it.
    async fn send(&self, delivery: &webhook_delivery::Model) -> Outcome {
        let timestamp = Utc::now().timestamp();
        let body = delivery.payload.as_bytes();
        let signature = match sign_with_env(&delivery.secret_env, &delivery.id, timestamp, body) {
            Ok(s) => s,
            Err(e) => {
                return Outcome {
                    code: None,
                    error: Some(e.to_string()),
                };
            }
        };
        let sent = self
            .client
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let code = response.status();
                if code.is_success() {
                    Outcome {
                        code: Some(code.as_u16()),
                        error: None,
                    }
                } else {
                    Outcome {
                        code: Some(code.as_u16()),
                        error: Some(format!("the endpoint answered {code}")),
                    }
                }
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    format!(
                        "no answer within {} ms",
                        self.settings.timeout().as_millis()
                    )
                } else {
                    error_chain(&e.without_url())
                };
                Outcome {
                    code: None,
                    error: Some(what),
                }
            }
        }
    }

    /// Records an attempt: delivered, retried later, or given up.
    async fn record(
        &self,
        delivery: &webhook_delivery::Model,
        outcome: &Outcome,
    ) -> Result<(), DbErr> {
        let now = Utc::now();
        let attempts = delivery.attempts + 1;
        let code = outcome.code.map(i32::from);
        let (status, next) = match &outcome.error {
            None => {
                info!(delivery = %delivery.id, event = %delivery.event_type, tenant = %delivery.tenant_id, attempts, "webhook delivered");
                (Status::Delivered, now)
            }
            Some(error) => {
                let give_up = delivery.created_at
                    + chrono::Duration::from_std(self.settings.give_up_after()).unwrap_or_default();
                let wait = self
                    .settings
                    .webhook_backoff_ms
                    .after(u32::try_from(attempts).unwrap_or(u32::MAX));
                let next = now + chrono::Duration::from_std(wait).unwrap_or_default();
                if now >= give_up {
                    warn!(delivery = %delivery.id, event = %delivery.event_type, tenant = %delivery.tenant_id, attempts, error = %error, "webhook delivery gave up");
                    (Status::Failed, now)
                } else {
                    warn!(delivery = %delivery.id, event = %delivery.event_type, tenant = %delivery.tenant_id, attempts, error = %error, retry_in_ms = wait.as_millis() as u64, "webhook attempt failed");
                    (Status::Pending, next.min(give_up))
                }
            }
        };
        let delivered = (status == Status::Delivered).then_some(now);
        exec(
            self.db.conn(),
            raw(
                self.db.backend(),
                "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_code = $3, \
                 last_error = $4, next_attempt_at = $5, delivered_at = $6, \
                 claimed_until = NULL, claimed_by = NULL WHERE id = $7",
                vec![
                    status.name().into(),
                    attempts.into(),
                    code.into(),
                    outcome.error.clone().into(),
                    next.into(),
                    delivered.into(),
                    delivery.id.clone().into(),
                ],
            ),
        )
        .await?;
        Ok(())
    }
}

/// An error and its causes, one after the other.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and its reference libraries.
    #[test]
    fn signs_as_the_standard_webhooks_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, id, 1_614_265_330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(signature("whsec_not base64!", id, 1, body), None);
    }

    #[test]
    fn backoff_repeats_its_last_wait() {
        let b: crate::config::Backoff = "5,30".parse().unwrap();
        assert_eq!(b.after(1), Duration::from_millis(5));
        assert_eq!(b.after(2), Duration::from_millis(30));
        assert_eq!(b.after(9), Duration::from_millis(30));
        assert!("".parse::<crate::config::Backoff>().is_err());
        assert!("5,x".parse::<crate::config::Backoff>().is_err());
    }
}
