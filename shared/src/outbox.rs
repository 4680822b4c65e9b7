//! The events outbox. The writer records a batch's events ([`record`]) in the same
//! transaction as the batch's changes, then publishes them ([`publish`]) and marks them
//! published. A crash or a broker blip between commit and publish leaves them in the
//! outbox: the batch's redelivery publishes them, and the supervisor sweeps up whatever
//! stays unpublished ([`publish_stale`]). Events are thus delivered at least once, never
//! lost; their ids are stable, so consumers drop repeats.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::db::entity::outbox;
use crate::db::{Db, exec, raw};
use crate::error::StageError;
use crate::model::ids::{MessageId, RunId, TenantId};
use crate::stage::Services;
use crate::transport::Message;

/// Messages published per sweep, at most (the rest wait for the next).
const SWEEP: u64 = 500;

/// Published rows older than this are deleted by the sweep.
const KEEP_PUBLISHED: Duration = Duration::from_secs(24 * 3600);

/// Adds `messages` (each with its routing key on the events exchange) to the outbox
/// through `conn`, the transaction that makes the changes they announce. A message
/// already there (the same id) is left as it is.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    run: RunId,
    messages: &[(String, Message)],
) -> Result<(), DbErr> {
    if messages.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let run = run.to_string();
    let rows = messages
        .iter()
        .map(|(key, m)| row(tenant, &run, key, m, now));
    insert(conn, rows).await
}

/// The outbox row of `message`.
fn row(
    tenant: &TenantId,
    run: &str,
    routing_key: &str,
    message: &Message,
    now: chrono::DateTime<Utc>,
) -> outbox::ActiveModel {
    outbox::ActiveModel {
        id: Set(message.id.to_string()),
        tenant_id: Set(tenant.to_string()),
        run_id: Set(run.to_owned()),
        routing_key: Set(routing_key.to_owned()),
        headers: Set(serde_json::to_string(&message.headers).expect("a map of strings")),
        // Our own JSON, so UTF-8: checked, not scanned for repairs.
        payload: Set(String::from_utf8(message.payload.clone())
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        created_at: Set(now),
        published_at: Set(None),
    }
}

/// Inserts `rows`, leaving any already there (the same id) as it is.
async fn insert<C: ConnectionTrait>(
    conn: &C,
    rows: impl IntoIterator<Item = outbox::ActiveModel>,
) -> Result<(), DbErr> {
    outbox::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(outbox::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Adds one event that no run made (a source reported failing, say) to the outbox
/// through `conn`, with its routing key on the events exchange.
pub async fn record_event<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    routing_key: &str,
    message: &Message,
) -> Result<(), DbErr> {
    insert(conn, [row(tenant, "", routing_key, message, Utc::now())]).await
}

/// Publishes the outbox messages among `ids` that are not published yet, then marks
/// them. Returns how many went out.
pub async fn publish(services: &Services, ids: &[MessageId]) -> Result<usize, StageError> {
    let rows = outbox::Entity::find()
        .filter(outbox::Column::Id.is_in(ids.iter().map(ToString::to_string)))
        .filter(outbox::Column::PublishedAt.is_null())
        .order_by_asc(outbox::Column::CreatedAt)
        .all(services.db.conn())
        .await?;
    send(services, rows).await
}

/// Publishes `messages` (each with its routing key), which a transaction now committed
/// has just recorded in the outbox, from memory rather than read back (a batch's
/// events are as large as its changes), skipping any the outbox already holds as
/// published; then marks them. Returns how many went out.
pub async fn publish_recorded(
    services: &Services,
    messages: Vec<(String, Message)>,
) -> Result<usize, StageError> {
    if messages.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = messages.iter().map(|(_, m)| m.id.to_string()).collect();
    let unpublished: std::collections::HashSet<String> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Id)
        .filter(outbox::Column::Id.is_in(ids))
        .filter(outbox::Column::PublishedAt.is_null())
        .into_tuple::<String>()
        .all(services.db.conn())
        .await?
        .into_iter()
        .collect();
    let mut sent = 0;
    for (key, message) in messages {
        let id = message.id.to_string();
        if unpublished.contains(&id) {
            services
                .transport
                .publish_events(&key, vec![message])
                .await?;
            mark_published(&services.db, id).await?;
            sent += 1;
        }
    }
    Ok(sent)
}

/// Publishes every message unpublished for longer than `older_than` (its writer died
/// between commit and publish, or the broker was away), and forgets published ones
/// older than a day. Returns how many went out.
pub async fn publish_stale(services: &Services, older_than: Duration) -> Result<usize, StageError> {
    let db = &services.db;
    let before = Utc::now() - chrono::Duration::from_std(older_than).unwrap_or_default();
    let rows = outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_null())
        .filter(outbox::Column::CreatedAt.lt(before))
        .order_by_asc(outbox::Column::CreatedAt)
        .limit(SWEEP)
        .all(db.conn())
        .await?;
    let sent = send(services, rows).await?;
    let forget = Utc::now() - chrono::Duration::from_std(KEEP_PUBLISHED).unwrap_or_default();
    exec(
        db.conn(),
        raw(
            db.backend(),
            "DELETE FROM outbox WHERE published_at < $1",
            vec![forget.into()],
        ),
    )
    .await?;
    Ok(sent)
}

/// Publishes `rows` in order, marking each as it goes out.
async fn send(services: &Services, rows: Vec<outbox::Model>) -> Result<usize, StageError> {
    let db = &services.db;
    let mut sent = 0;
    for row in rows {
        let id: MessageId = row
            .id
            .parse()
            .map_err(|e| StageError::internal_from(format!("outbox row {}", row.id), e))?;
        let headers: BTreeMap<String, String> = serde_json::from_str(&row.headers)
            .map_err(|e| StageError::internal_from(format!("outbox row {}", row.id), e))?;
        let message = Message::new(id, headers, row.payload.into_bytes());
        services
            .transport
            .publish_events(&row.routing_key, vec![message])
            .await?;
        mark_published(db, row.id).await?;
        sent += 1;
    }
    Ok(sent)
}

/// Marks the outbox message `id` published.
async fn mark_published(db: &Db, id: String) -> Result<(), DbErr> {
    exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE outbox SET published_at = $1 WHERE id = $2",
            vec![Utc::now().into(), id.into()],
        ),
    )
    .await?;
    Ok(())
}

/// The pending outbox messages of the install, for probes and tests.
pub async fn pending(db: &Db) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_null())
        .count(db.conn())
        .await
}
