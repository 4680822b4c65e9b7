//! The last batch of a run with related records (groups, memberships, contact details):
//! applied once every other batch of its generation is (people before what refers to
//! them), in one transaction with its claim, its row errors, its counts and its events;
//! and only if every stored row is still what the differ saw, else nothing of it is
//! applied and the run is planned again.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use roster_shared::db::runs;
use roster_shared::db::{exec, raw, related, tv};
use roster_shared::error::StageError;
use roster_shared::model::envelope::DirectoryEvent;
use roster_shared::model::envelope::{ChangesReady, Envelope, RowError};
use roster_shared::model::ids::{MessageId, RunId, TenantId};
use roster_shared::model::related::{RelatedCounts, RelatedEvent, RelatedEventBatch};
use roster_shared::model::run::RunState;
use roster_shared::outbox;
use roster_shared::sea_orm::{ConnectionTrait, DbBackend, DbErr, TransactionTrait};
use roster_shared::stage::{self, Services};
use roster_shared::transport::Message;
use tracing::{debug, info, warn};

use crate::db::{self, BatchId};

/// Every event name a related batch may publish, for finding its messages again.
const EVENT_NAMES: [&str; 7] = [
    "group.created",
    "group.renamed",
    "group.removed",
    "membership.added",
    "membership.removed",
    "membership.changed",
    "contact.changed",
];

/// How long the related batch waits before looking again at the run's people batches.
const WAIT_FOR_PEOPLE: Duration = Duration::from_millis(250);

/// Applies the related batch `env` (its `related` is set).
pub async fn handle(services: &Services, env: &Envelope<ChangesReady>) -> Result<(), StageError> {
    let plan = env
        .body
        .related
        .as_ref()
        .expect("called for related batches only");
    let (tenant, run_id) = (&env.tenant, env.run_id);
    let id = BatchId {
        run: run_id,
        generation: env.body.generation as i32,
        batch: env.body.batch as i32,
    };
    let others = people_batches_applied(services.db.conn(), tenant, id).await?;
    if others < u64::from(env.body.of.saturating_sub(1)) {
        let Some(run) = runs::get(&services.db, tenant, run_id).await? else {
            return Err(StageError::internal(format!("run {run_id} is unknown")));
        };
        if run.generation != id.generation
            || !matches!(run.state, RunState::Diffed | RunState::Applying)
        {
            debug!(generation = id.generation, "stale related batch ignored");
            return Ok(());
        }
        return Err(StageError::Deferred {
            reason: format!(
                "{others} of the run's {} batches of people applied",
                env.body.of - 1
            ),
            delay: WAIT_FOR_PEOPLE,
        });
    }
    let now = Utc::now();
    let writing = if services.db.backend() == DbBackend::Sqlite {
        Some(crate::SQLITE_WRITES.lock().await)
    } else {
        None
    };
    let txn = services.db.conn().begin().await?;
    if !db::claim_batch(&txn, tenant, id, now).await? {
        txn.rollback().await?;
        outbox::publish(services, &event_ids(env)).await?;
        services.finish_run(tenant, run_id, id.generation).await?;
        return Ok(());
    }
    let Some(run) = runs::get_in(&txn, tenant, run_id).await? else {
        return Err(StageError::internal(format!("run {run_id} is unknown")));
    };
    if run.generation != id.generation
        || !matches!(run.state, RunState::Diffed | RunState::Applying)
    {
        txn.rollback().await?;
        debug!(generation = id.generation, "stale related batch ignored");
        return Ok(());
    }
    let conflicts = related::apply(&txn, tenant, &plan.changes, now).await?;
    if conflicts > 0 {
        txn.rollback().await?;
        warn!(
            conflicts,
            "related records moved since planning: planning the run again"
        );
        crate::replan(services, tenant, run_id, id.generation).await?;
        return Ok(());
    }
    record_outcome(
        &txn,
        tenant,
        run_id,
        &RelatedCounts::of(&plan.changes),
        &plan.errors,
    )
    .await?;
    // The tenant's webhooks get the same events, recorded with the changes too.
    let hooks = roster_shared::webhooks::settings(&txn, tenant).await?;
    let hooked = hooks.as_ref().is_some_and(|h| !h.endpoints.is_empty());
    let events = if services.transport.events_wanted() || hooked {
        events(env, now)
    } else {
        Vec::new()
    };
    let outboxed = services.transport.events_leave_process();
    if outboxed {
        outbox::record(&txn, tenant, run_id, &events).await?;
    }
    roster_shared::webhooks::record_events(&txn, tenant, run_id, hooks.as_ref(), &events).await?;
    txn.commit().await?;
    drop(writing);
    info!(
        changes = plan.changes.len(),
        errors = plan.errors.len(),
        "related records written"
    );
    crate::publish_committed(services, outboxed, events).await?;
    if services.finish_run(tenant, run_id, id.generation).await? {
        info!(file = %run.file_name, "run applied");
    }
    Ok(())
}

/// Batches of `id`'s generation applied, other than `id` itself.
async fn people_batches_applied<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    id: BatchId,
) -> Result<u64, DbErr> {
    let row = conn
        .query_one_raw(raw(
            conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM run_batches WHERE run_id = $1 AND generation = $2 \
             AND batch <> $3 AND tenant_id = $4",
            id.key(tenant).to_vec(),
        ))
        .await?;
    Ok(row.map_or(Ok(0), |r| r.try_get_by::<i64, _>("n"))? as u64)
}

/// Records the related counts and the row errors found at planning with the run.
async fn record_outcome<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    run: RunId,
    counts: &RelatedCounts,
    errors: &[RowError],
) -> Result<(), DbErr> {
    exec(
        conn,
        raw(
            conn.get_database_backend(),
            "UPDATE runs SET related_counts = $1, rejected = rejected + $2, \
             accepted = accepted - $2, updated_at = $3 WHERE id = $4 AND tenant_id = $5",
            vec![
                serde_json::to_string(counts)
                    .expect("counts serialise")
                    .into(),
                (errors.len() as i64).into(),
                Utc::now().into(),
                run.to_string().into(),
                tv(tenant),
            ],
        ),
    )
    .await?;
    runs::insert_errors(conn, tenant, run, errors).await
}

/// The id of the events message of `event` for the related batch `env`.
fn event_id(env: &Envelope<ChangesReady>, event: &str) -> MessageId {
    MessageId::derived(&[
        "events",
        &env.run_id.to_string(),
        &env.body.generation.to_string(),
        &env.body.batch.to_string(),
        event,
    ])
}

fn event_ids(env: &Envelope<ChangesReady>) -> Vec<MessageId> {
    EVENT_NAMES.iter().map(|e| event_id(env, e)).collect()
}

/// The batch's events, one message per event name.
fn events(env: &Envelope<ChangesReady>, at: DateTime<Utc>) -> Vec<(String, Message)> {
    let plan = env.body.related.as_ref().expect("a related batch");
    let mut by_name: BTreeMap<&str, Vec<RelatedEvent>> = BTreeMap::new();
    for change in &plan.changes {
        by_name
            .entry(change.event_name())
            .or_default()
            .push(RelatedEvent::of(change, &env.tenant, env.run_id, at));
    }
    by_name
        .into_iter()
        .map(|(name, events)| {
            let out = Envelope::new(
                event_id(env, name),
                env.tenant.clone(),
                env.run_id,
                RelatedEventBatch {
                    event: name.to_owned(),
                    events,
                },
            );
            (
                DirectoryEvent::routing_key(&env.tenant, name),
                stage::message(&out, None),
            )
        })
        .collect()
}
