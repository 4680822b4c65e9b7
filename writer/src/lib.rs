//! The writer stage: takes `changes.ready` batches, applies each in one transaction where
//! the stored rows are still in the state the differ saw, records the run's progress, and
//! publishes `employee.created / updated / deactivated / reactivated` events.
//!
//! Promises:
//! - applying the same batch twice changes nothing the second time (the batch is claimed
//!   in `run_batches` in the same transaction as its changes);
//! - a change is applied only where the stored row has the hash it expects; a row
//!   already in the target state is left alone, any other state is a conflict, and a
//!   batch with conflicts sends the run back to the differ to be planned again;
//! - batches of an older planning generation are ignored;
//! - events go out after the changes are durable, at least once, with stable ids.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use roster_shared::change::{Applicability, Change, ChangeCounts, ChangeKind, RowState};
use roster_shared::db::entity::{person, run_batch};
use roster_shared::db::{RunState, exec, people, raw, runs};
use roster_shared::envelope::{ChangesReady, DirectoryEvent, Envelope, EventBatch};
use roster_shared::error::StageError;
use roster_shared::ids::{MessageId, RunId, TenantId};
use roster_shared::sea_orm::sea_query::{Expr, OnConflict};
use roster_shared::sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, TransactionTrait,
    Value,
};
use roster_shared::stage::{self, ConsumeOptions, Services};
use roster_shared::transport::Stage;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Settings of the writer stage.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// How messages are consumed.
    pub consume: ConsumeOptions,
}

impl WriterConfig {
    /// The writer's settings from the install's.
    pub fn from_settings(settings: &roster_shared::config::Settings) -> Self {
        WriterConfig {
            consume: ConsumeOptions::from_settings(settings),
        }
    }
}

/// Runs the writer stage until `shutdown`.
pub async fn run(
    config: WriterConfig,
    services: Services,
    shutdown: CancellationToken,
) -> Result<(), StageError> {
    stage::consume(&services, Stage::Writer, config.consume, shutdown, |env| {
        handle(&services, env)
    })
    .await?;
    Ok(())
}

/// What applying one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changes applied, by kind.
    pub counts: ChangeCounts,
    /// Changes found stale.
    pub conflicts: u64,
    /// The changes applied, for events.
    pub changes: Vec<Change>,
}

/// Handles one `changes.ready` batch.
pub async fn handle(services: &Services, env: Envelope<ChangesReady>) -> Result<(), StageError> {
    let (db, tenant, run_id) = (&services.db, &env.tenant, env.run_id);
    let batch = &env.body;
    let generation = batch.generation as i32;
    let now = Utc::now();
    let txn = db.conn().begin().await?;
    // Claim the batch first: a write, so SQLite takes its write lock before we read.
    let claimed = exec(
        &txn,
        raw(
            db.backend(),
            "INSERT INTO run_batches (run_id, generation, batch, tenant_id, events_published, \
             applied_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            vec![
                run_id.to_string().into(),
                generation.into(),
                (batch.batch as i32).into(),
                tenant.as_str().into(),
                false.into(),
                now.into(),
            ],
        ),
    )
    .await?;
    if claimed == 0 {
        txn.rollback().await?;
        debug!(batch = batch.batch, "batch applied before");
        return redeliver_events(services, &env).await;
    }
    let Some(run) = runs::get_in(&txn, tenant, run_id).await? else {
        return Err(StageError::Internal(format!("run {run_id} is unknown")));
    };
    let state = runs::state_of(&run);
    if run.generation != generation || !matches!(state, RunState::Diffed | RunState::Applying) {
        txn.rollback().await?;
        debug!(batch = batch.batch, generation, "stale batch ignored");
        return Ok(());
    }
    let applied = apply(&txn, tenant, run_id, &batch.changes, now).await?;
    runs::add_applied(&txn, tenant, run_id, &applied.counts, applied.conflicts).await?;
    if applied.conflicts > 0 {
        // Not done: the stale part must be planned again, so this batch must not count
        // toward finishing the run's generation (its applied part stays applied).
        exec(
            &txn,
            raw(
                db.backend(),
                "DELETE FROM run_batches WHERE run_id = $1 AND generation = $2 AND batch = $3 \
                 AND tenant_id = $4",
                vec![
                    run_id.to_string().into(),
                    generation.into(),
                    (batch.batch as i32).into(),
                    tenant.as_str().into(),
                ],
            ),
        )
        .await?;
    }
    txn.commit().await?;
    services
        .progress
        .changes_applied(batch.changes.len() as u64);

    publish_events(services, &env, &applied.changes, now).await?;
    if applied.conflicts > 0 {
        warn!(
            conflicts = applied.conflicts,
            "stale changes: planning the run again"
        );
        replan(services, tenant, run_id, generation).await?;
    } else if services.finish_run(tenant, run_id, generation).await? {
        info!(file = %run.file_name, "run applied");
        refresh_statistics(services, tenant, run_id).await?;
    }
    Ok(())
}

/// Changes in one run after which PostgreSQL's statistics of the directory are refreshed.
const ANALYZE_AFTER: u64 = 10_000;

/// After a run that changed many people, refreshes PostgreSQL's statistics of the
/// directory, so the next run is planned against the table as it now is (a tenant that
/// grew from nothing is otherwise believed tiny, and its index is read by sorting instead
/// of walking the key). SQLite plans by its indexes alone and needs nothing.
async fn refresh_statistics(
    services: &Services,
    tenant: &TenantId,
    run_id: RunId,
) -> Result<(), StageError> {
    let db = &services.db;
    if db.backend() != DbBackend::Postgres {
        return Ok(());
    }
    let Some(run) = runs::get(db, tenant, run_id).await? else {
        return Ok(());
    };
    if runs::counts(&run).total() >= ANALYZE_AFTER {
        let started = std::time::Instant::now();
        db.conn().execute_unprepared("ANALYZE people").await?;
        debug!(
            ms = started.elapsed().as_millis() as u64,
            "refreshed directory statistics"
        );
    }
    Ok(())
}

/// Applies `changes` through `conn` (a transaction) where the stored rows allow it.
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    run: RunId,
    changes: &[Change],
    now: DateTime<Utc>,
) -> Result<Applied, DbErr> {
    let stored = stored_states(conn, tenant, changes).await?;
    let mut out = Applied::default();
    let mut rows = Vec::new();
    let mut deactivate = Vec::new();
    for change in changes {
        match change.check(stored.get(change.email.as_str()).copied()) {
            Applicability::Apply => {}
            Applicability::AlreadyApplied => continue,
            Applicability::Conflict => {
                out.conflicts += 1;
                continue;
            }
        }
        match &change.person {
            Some(p) => rows.push(people::to_row(tenant, p, run, now)),
            None if change.kind == ChangeKind::Deactivated => deactivate.push(change.email.clone()),
            None => {
                out.conflicts += 1;
                continue;
            }
        }
        out.counts.add(change.kind);
        out.changes.push(change.clone());
    }
    if !rows.is_empty() {
        person::Entity::insert_many(rows)
            .on_conflict(upsert())
            .exec_without_returning(conn)
            .await?;
    }
    let backend = conn.get_database_backend();
    for chunk in deactivate.chunks(500) {
        let mut values: Vec<Value> = vec![
            false.into(),
            now.into(),
            run.to_string().into(),
            tenant.as_str().into(),
        ];
        let keys = if backend == DbBackend::Postgres {
            // Probe by whole primary key (see `stored_states`).
            values.push(chunk.to_vec().into());
            "(SELECT $4, k.email FROM unnest($5::text[]) AS k(email))".to_owned()
        } else {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 5)).collect();
            values.extend(chunk.iter().map(|e| Value::from(e.clone())));
            format!(
                "(VALUES {})",
                placeholders
                    .iter()
                    .map(|p| format!("($4, {p})"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let sql = format!(
            "UPDATE people SET active = $1, deactivated_at = $2, updated_at = $2, \
             last_run_id = $3 WHERE (tenant_id, email) IN {keys}"
        );
        exec(conn, raw(backend, &sql, values)).await?;
    }
    Ok(out)
}

/// Insert, or on a known (tenant, email) replace every field but `created_at`;
/// `deactivated_at` keeps the first moment of an inactive streak.
fn upsert() -> OnConflict {
    use person::Column as C;
    OnConflict::columns([C::TenantId, C::Email])
        .update_columns([
            C::EmployeeId,
            C::FirstName,
            C::LastName,
            C::DisplayName,
            C::JobTitle,
            C::Department,
            C::Phone,
            C::Active,
            C::Group,
            C::Organization,
            C::Site,
            C::Location,
            C::Locale,
            C::TimeZone,
            C::ManagerEmail,
            C::Extra,
            C::RowHash,
            C::LastRunId,
            C::UpdatedAt,
        ])
        .value(
            C::DeactivatedAt,
            Expr::cust(
                "CASE WHEN excluded.active THEN NULL WHEN people.active \
                 THEN excluded.deactivated_at ELSE people.deactivated_at END",
            ),
        )
        .to_owned()
}

/// The stored state of each person `changes` touch (locked for update on PostgreSQL).
async fn stored_states<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    changes: &[Change],
) -> Result<HashMap<String, RowState>, DbErr> {
    let backend = conn.get_database_backend();
    let mut out = HashMap::with_capacity(changes.len());
    let mut read = |rows: Vec<roster_shared::sea_orm::QueryResult>| -> Result<(), DbErr> {
        for row in rows {
            out.insert(
                row.try_get_by_index::<String>(0)?,
                RowState {
                    hash: row.try_get_by_index(1)?,
                    active: row.try_get_by_index(2)?,
                },
            );
        }
        Ok(())
    };
    if backend == DbBackend::Postgres {
        // One unique-index probe per email (equality on the whole primary key), whatever
        // the statistics say: a tenant growing from nothing within one run is believed
        // tiny, and an IN list or join is then planned as a scan of all its people.
        let emails: Vec<String> = changes.iter().map(|c| c.email.clone()).collect();
        let sql = "SELECT p.email, p.row_hash, p.active FROM unnest($2::text[]) AS k(email) \
                   CROSS JOIN LATERAL (SELECT email, row_hash, active FROM people \
                   WHERE tenant_id = $1 AND email = k.email FOR UPDATE) p";
        let values = vec![tenant.as_str().into(), emails.into()];
        read(conn.query_all_raw(raw(backend, sql, values)).await?)?;
        return Ok(out);
    }
    for chunk in changes.chunks(500) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let mut values: Vec<Value> = vec![tenant.as_str().into()];
        values.extend(chunk.iter().map(|c| Value::from(c.email.clone())));
        let sql = format!(
            "SELECT email, row_hash, active FROM people WHERE tenant_id = $1 AND email IN ({})",
            placeholders.join(",")
        );
        read(conn.query_all_raw(raw(backend, &sql, values)).await?)?;
    }
    Ok(out)
}

/// Publishes one events message per kind for `changes`, then records the batch's events
/// as published.
async fn publish_events(
    services: &Services,
    env: &Envelope<ChangesReady>,
    changes: &[Change],
    at: DateTime<Utc>,
) -> Result<(), StageError> {
    let mut by_kind: BTreeMap<ChangeKind, Vec<DirectoryEvent>> = BTreeMap::new();
    for change in changes {
        by_kind
            .entry(change.kind)
            .or_default()
            .push(DirectoryEvent::of(change, &env.tenant, env.run_id, at));
    }
    let run = env.run_id.to_string();
    let (generation, batch) = (env.body.generation.to_string(), env.body.batch.to_string());
    for (kind, events) in by_kind {
        let out = Envelope::new(
            MessageId::derived(&["events", &run, &generation, &batch, kind.name()]),
            env.tenant.clone(),
            env.run_id,
            EventBatch { kind, events },
        );
        services
            .transport
            .publish_events(kind.event_name(), vec![stage::message(&out, None)])
            .await?;
    }
    let db = &services.db;
    exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE run_batches SET events_published = $1 WHERE run_id = $2 AND generation = $3 \
             AND batch = $4 AND tenant_id = $5",
            vec![
                true.into(),
                run.into(),
                (env.body.generation as i32).into(),
                (env.body.batch as i32).into(),
                env.tenant.as_str().into(),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// A batch applied before came again: publish its events if that had not happened
/// (a crash between commit and publish), and finish the run if that had not happened.
async fn redeliver_events(
    services: &Services,
    env: &Envelope<ChangesReady>,
) -> Result<(), StageError> {
    let db = &services.db;
    let generation = env.body.generation as i32;
    let claim = run_batch::Entity::find()
        .filter(run_batch::Column::RunId.eq(env.run_id.to_string()))
        .filter(run_batch::Column::Generation.eq(generation))
        .filter(run_batch::Column::Batch.eq(env.body.batch as i32))
        .filter(run_batch::Column::TenantId.eq(env.tenant.as_str()))
        .one(db.conn())
        .await?;
    if claim.is_some_and(|c| !c.events_published) {
        // Events for the changes now in effect; their ids repeat, so consumers can drop
        // any they saw.
        let stored = stored_states(db.conn(), &env.tenant, &env.body.changes).await?;
        let in_effect: Vec<Change> = env
            .body
            .changes
            .iter()
            .filter(|c| stored.get(c.email.as_str()) == Some(&c.target))
            .cloned()
            .collect();
        publish_events(services, env, &in_effect, Utc::now()).await?;
    }
    services
        .finish_run(&env.tenant, env.run_id, generation)
        .await?;
    Ok(())
}

/// Sends the run back to the differ to be planned again against the directory as it is.
async fn replan(
    services: &Services,
    tenant: &TenantId,
    run_id: RunId,
    generation: i32,
) -> Result<(), StageError> {
    let Some(run) = runs::get(&services.db, tenant, run_id).await? else {
        return Ok(());
    };
    let id = MessageId::derived(&["replan", &run_id.to_string(), &generation.to_string()]);
    services.send_to_differ(tenant, run_id, &run, id).await?;
    Ok(())
}
