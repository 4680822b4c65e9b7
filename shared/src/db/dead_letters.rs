//! The dead-letter archive. The dead-letter queues are where stages park messages; the
//! archive is where operators work with them: [`drain`] moves every waiting dead letter
//! into this table (acking it only once stored), and the rest reads and updates rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::Db;
use super::entity::dead_letter;
pub use super::entity::dead_letter::DeadLetterStatus;
use super::runs::{self, RunState};
use crate::model::ids::{RunId, TenantId};
use crate::transport::{Message, Queue, Stage, Transport, TransportError, header};

/// Why draining failed.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The database failed; the message stays in its queue.
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The broker failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

fn time(message: &Message, name: &str) -> DateTime<Utc> {
    message
        .header(name)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
}

/// Stores one dead letter taken from `queue`'s dead-letter queue (again: the same
/// message dying twice is one row, with the latest failure).
pub async fn archive(db: &Db, queue: Queue, message: &Message) -> Result<(), DbErr> {
    let now = Utc::now();
    let row = dead_letter::ActiveModel {
        id: Set(message.id.to_string()),
        tenant_id: Set(message.header(header::TENANT).unwrap_or("").to_owned()),
        run_id: Set(message.header(header::RUN).map(str::to_owned)),
        queue: Set(queue),
        stage: Set(message
            .header(header::STAGE)
            .and_then(|s| s.parse::<Stage>().ok())
            .unwrap_or(queue.consumer())),
        file_name: Set(message.header(header::FILE).map(str::to_owned)),
        reason: Set(message
            .header(header::REASON)
            .unwrap_or("no reason recorded")
            .to_owned()),
        attempts: Set(message
            .header(header::ATTEMPT)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1)),
        first_failed_at: Set(time(message, header::FIRST_FAILED_AT)),
        last_failed_at: Set(time(message, header::LAST_FAILED_AT)),
        headers: Set(serde_json::to_string(&message.headers).expect("a map of strings")),
        payload: Set(String::from_utf8_lossy(&message.payload).into_owned()),
        status: Set(DeadLetterStatus::Dead),
        replays: Set(0),
        updated_at: Set(now),
    };
    use dead_letter::Column as C;
    dead_letter::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::Id)
                .update_columns([
                    C::Stage,
                    C::Reason,
                    C::Attempts,
                    C::LastFailedAt,
                    C::Headers,
                    C::Payload,
                    C::Status,
                    C::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db.conn())
        .await?;
    // The stage marks the run failed (or rejected) when it parks a message; make sure of
    // it here, the same way (the same state, only from where that stage works on the
    // run), in case that write did not happen yet: the database was away, or this drain
    // came first.
    if let (Some(tenant), Some(run)) = (
        message
            .header(header::TENANT)
            .and_then(|t| TenantId::new(t).ok()),
        message
            .header(header::RUN)
            .and_then(|r| r.parse::<RunId>().ok()),
    ) {
        let reason = message.header(header::REASON).unwrap_or("dead-lettered");
        let state = match message.header(header::OUTCOME) {
            Some("rejected") => RunState::Rejected,
            _ => RunState::Failed,
        };
        let stage = message
            .header(header::STAGE)
            .and_then(|s| s.parse::<Stage>().ok())
            .unwrap_or(queue.consumer());
        let generation = message
            .header(header::GENERATION)
            .and_then(|g| g.parse::<i32>().ok());
        runs::fail(db, &tenant, run, stage, generation, state, reason).await?;
    }
    Ok(())
}

/// Moves every waiting dead letter of every queue into the archive. Returns how many.
pub async fn drain(db: &Db, transport: &dyn Transport) -> Result<usize, DrainError> {
    let mut moved = 0;
    for &queue in Queue::ALL {
        while let Some(delivery) = transport.next_dead_letter(queue).await? {
            match archive(db, queue, delivery.message()).await {
                Ok(()) => {
                    delivery.ack().await?;
                    moved += 1;
                }
                Err(e) => {
                    delivery.requeue().await?;
                    return Err(e.into());
                }
            }
        }
    }
    Ok(moved)
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this stage's.
    pub stage: Option<Stage>,
    /// Only this tenant's.
    pub tenant: Option<TenantId>,
    /// Also replayed and dropped ones.
    pub all: bool,
}

/// Dead letters matching `filter`, oldest failure first.
pub async fn list(db: &Db, filter: &Filter) -> Result<Vec<dead_letter::Model>, DbErr> {
    let mut q = dead_letter::Entity::find();
    if let Some(stage) = &filter.stage {
        q = q.filter(dead_letter::Column::Stage.eq(*stage));
    }
    if let Some(tenant) = &filter.tenant {
        q = q.filter(dead_letter::Column::TenantId.eq(tenant.as_str()));
    }
    if !filter.all {
        q = q.filter(dead_letter::Column::Status.eq(DeadLetterStatus::Dead));
    }
    q.order_by_asc(dead_letter::Column::FirstFailedAt)
        .all(db.conn())
        .await
}

/// The dead letter whose id is or starts with `id` (at least 8 characters).
pub async fn find(db: &Db, id: &str) -> Result<Result<dead_letter::Model, String>, DbErr> {
    if let Some(row) = dead_letter::Entity::find_by_id(id.to_owned())
        .one(db.conn())
        .await?
    {
        return Ok(Ok(row));
    }
    if id.len() < 8 {
        return Ok(Err(format!("no dead letter {id}")));
    }
    let mut rows = dead_letter::Entity::find()
        .filter(dead_letter::Column::Id.starts_with(id))
        .all(db.conn())
        .await?;
    Ok(match rows.len() {
        0 => Err(format!("no dead letter {id}")),
        1 => Ok(rows.remove(0)),
        n => Err(format!(
            "{id} matches {n} dead letters; give more of the id"
        )),
    })
}

/// Sets a dead letter's status (counting a replay).
pub async fn set_status(db: &Db, id: &str, new_status: DeadLetterStatus) -> Result<(), DbErr> {
    let Some(row) = dead_letter::Entity::find_by_id(id.to_owned())
        .one(db.conn())
        .await?
    else {
        return Err(DbErr::RecordNotFound(id.to_owned()));
    };
    let replays = row.replays + i32::from(new_status == DeadLetterStatus::Replayed);
    let mut active: dead_letter::ActiveModel = row.into();
    active.status = Set(new_status);
    active.replays = Set(replays);
    active.updated_at = Set(Utc::now());
    dead_letter::Entity::update(active).exec(db.conn()).await?;
    Ok(())
}

/// The message to publish when replaying `row`: its payload and headers, as a first
/// attempt, without the failure's reason (its first failure time stays).
pub fn replay_message(row: &dead_letter::Model) -> Message {
    let mut headers: BTreeMap<String, String> =
        serde_json::from_str(&row.headers).unwrap_or_default();
    headers.retain(|k, _| {
        !k.starts_with("x-death")
            && !k.starts_with("x-first-death")
            && !k.starts_with("x-last-death")
    });
    headers.remove(header::REASON);
    headers.remove(header::STAGE);
    headers.insert(header::ATTEMPT.into(), "1".into());
    Message::new(
        row.id.parse().unwrap_or_default(),
        headers,
        row.payload.clone().into_bytes(),
    )
}
