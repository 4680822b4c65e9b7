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
//! - events are written to the outbox with the changes, in one transaction, and published
//!   from there: at least once, never lost, with stable ids; routing keys start with the
//!   tenant (`acme.employee.created`);
//! - a run's related records (groups, memberships, contact details) come in its last
//!   batch, applied after all its people ([`related`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use roster_shared::CHANGE_BATCH_SIZE;
use roster_shared::blob::{BlobError, BlobStore};
use roster_shared::config::ConsumeSettings;
use roster_shared::db::Txn;
use roster_shared::db::runs;
use roster_shared::error::StageError;
use roster_shared::model::change::{Applicability, Change, ChangeCounts, ChangeKind};
use roster_shared::model::envelope::{
    ChangesReady, DirectoryEvent, Envelope, EventBatchOf, TraceContext,
};
use roster_shared::model::ids::{MessageId, RunId, TenantId};
use roster_shared::model::person::Person;
use roster_shared::model::run::RunState;
use roster_shared::model::snapshot::{SnapshotError, SnapshotReader};
use roster_shared::outbox;
use roster_shared::sea_orm::{ConnectionTrait, DbBackend, DbErr};
use roster_shared::stage::{self, ConsumeOptions, Services};
use roster_shared::transport::Message;
use roster_shared::transport::Stage;
use roster_shared::webhooks;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub mod db;
pub mod related;

use db::BatchId;

/// Settings of the writer stage.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// How messages are consumed.
    pub consume: ConsumeOptions,
}

impl WriterConfig {
    /// The writer's settings, for a database that is SQLite or not. Unless set, the
    /// writer on SQLite works on two batches at once: one is read while the other is
    /// written (the writing itself goes one batch at a time, see [`handle`]).
    pub fn new(consume: &ConsumeSettings, sqlite: bool) -> Self {
        let mut options = ConsumeOptions::new(consume, sqlite);
        if sqlite && consume.concurrency.is_none() {
            options.concurrency = 2;
            options.prefetch = options.prefetch.max(2);
        }
        WriterConfig { consume: options }
    }
}

/// On SQLite, one writing transaction at a time in this process: a second would only
/// meet SQLite's lock and poll for it, sleeping.
static SQLITE_WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    /// The positions in the batch of the changes applied, for events.
    pub applied: Vec<usize>,
}

/// Handles one `changes.ready` batch. On SQLite the batch's transaction waits for any
/// other this process is writing (one at a time), so two batches taken at once overlap
/// only in reading their messages and encoding the rows of a creating batch, never in
/// SQLite's write lock.
pub async fn handle(
    services: &Services,
    mut env: Envelope<ChangesReady>,
) -> Result<(), StageError> {
    if env.body.related.is_some() {
        return related::handle(services, &env).await;
    }
    // Creations by reference: the lines of the run's snapshot. Gone only once the run
    // finished, so a batch applied before may find it gone (the claim below says so).
    let slice = match &env.body.creates_from {
        // Only this run's own snapshot: a batch must never create people from another
        // run's, let alone another tenant's.
        Some(s) if s.key != BlobStore::snapshot_key(&env.tenant, env.run_id) => {
            return Err(StageError::internal(format!(
                "the batch creates people from {}, which is not its run's snapshot",
                s.key
            )));
        }
        Some(s) => match services.blobs.get_range(&s.key, s.start..s.end).await {
            Ok(bytes) => Some(bytes),
            Err(BlobError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let slice_missing = env.body.creates_from.is_some() && slice.is_none();
    // The moment of every change of the batch: the rows of a creating batch carry it.
    let now = Utc::now();
    let copy = services.db.backend() == DbBackend::Postgres;
    // Read and encoded before the transaction (and off this task, which other batches
    // share).
    let (env, new_rows) = tokio::task::spawn_blocking(move || {
        if let Some(bytes) = slice {
            match creations(&bytes) {
                Ok(created) if env.body.changes.is_empty() => env.body.changes = created,
                Ok(mut created) => env.body.changes.append(&mut created),
                Err(e) => return (env, Err(e)),
            }
        }
        let target = copy.then_some((&env.tenant, env.run_id, now));
        let rows = creating_rows(&env.body.changes, target).map_err(StageError::from);
        (env, rows)
    })
    .await
    .map_err(|e| StageError::internal(format!("encoding the batch's rows: {e}")))?;
    let new_rows = new_rows?;
    // Shared with the thread that builds the batch's events.
    let env = Arc::new(env);
    let (tenant, run_id) = (&env.tenant, env.run_id);
    let batch = &env.body;
    let id = batch_id(&env);
    let _writing = if services.db.backend() == DbBackend::Sqlite {
        Some(SQLITE_WRITES.lock().await)
    } else {
        None
    };
    let started = std::time::Instant::now();
    let txn = services.db.begin_txn().await?;
    // Claim the batch first: a write, so SQLite takes its write lock before we read.
    if !db::claim_batch(&txn, tenant, id, now).await? {
        txn.rollback().await?;
        debug!(batch = batch.batch, "batch applied before");
        return redeliver_events(services, &env).await;
    }
    let Some(run) = runs::get_in(&txn, tenant, run_id).await? else {
        return Err(StageError::internal(format!("run {run_id} is unknown")));
    };
    if slice_missing
        && run.generation == id.generation
        && matches!(run.state, RunState::Diffed | RunState::Applying)
    {
        txn.rollback().await?;
        return Err(StageError::internal(format!(
            "the snapshot part this batch creates people from is gone ({})",
            env.body
                .creates_from
                .as_ref()
                .map_or("", |s| s.key.as_str())
        )));
    }
    if run.generation != id.generation
        || !matches!(run.state, RunState::Diffed | RunState::Applying)
    {
        txn.rollback().await?;
        debug!(
            batch = batch.batch,
            generation = id.generation,
            "stale batch ignored"
        );
        return Ok(());
    }
    let applied = apply(&txn, tenant, run_id, &batch.changes, new_rows, now).await?;
    db::add_applied(&txn, tenant, run_id, &applied.counts, applied.conflicts).await?;
    // Events for a broker go into the outbox with the changes: committed together or not
    // at all. Events that stay in this process need no outbox: they go out after commit.
    // Nobody to receive them (an embedded install without subscribers): not built.
    // Built on a blocking thread: thousands of events take milliseconds the other
    // batches this stage works on (one task) should not wait for.
    // The tenant's webhooks get the same events, recorded with the changes too.
    let hooks = webhooks::settings(&txn, tenant).await?;
    let hooked = hooks.as_ref().is_some_and(|h| !h.endpoints.is_empty());
    let events = if services.transport.events_wanted() || hooked {
        let creates = applied
            .applied
            .iter()
            .any(|&i| env.body.changes[i].kind == ChangeKind::Created);
        let invite = if creates {
            Some(webhooks::invite(&txn, &run, hooks.as_ref()).await?)
        } else {
            None
        };
        let (env, applied) = (Arc::clone(&env), applied.applied.clone());
        // The thread is outside this batch's span: its trace goes along by hand.
        let trace = roster_shared::telemetry::current_trace_context();
        tokio::task::spawn_blocking(move || {
            let changes: Vec<&Change> = applied.iter().map(|&i| &env.body.changes[i]).collect();
            events(&env, &changes, now, &trace, invite)
        })
        .await
        .map_err(|e| StageError::internal(format!("building the batch's events: {e}")))?
    } else {
        Vec::new()
    };
    let outboxed = services.transport.events_leave_process();
    if outboxed {
        if txn.get_database_backend() == DbBackend::Postgres && !events.is_empty() {
            // PostgreSQL: the outbox insert planned generically, its megabytes of events
            // a parameter rather than a constant the planner copies (this install's
            // connections plan with real values, see `shared::db`). Until commit.
            txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
                .await?;
        }
        outbox::record(&txn, tenant, run_id, &events).await?;
    }
    webhooks::record_events(&txn, tenant, run_id, hooks.as_ref(), &events).await?;
    if applied.conflicts > 0 {
        // Not done: the stale part must be planned again, so this batch must not count
        // toward finishing the run's generation (its applied part stays applied).
        db::release_batch(&txn, tenant, id).await?;
    }
    txn.commit().await?;
    debug!(
        batch = batch.batch,
        changes = batch.changes.len(),
        ms = started.elapsed().as_millis() as u64,
        "batch written"
    );
    services
        .progress
        .changes_applied(batch.changes.len() as u64);

    publish_committed(services, outboxed, events).await?;
    if outboxed {
        // And whatever an earlier try of this batch recorded but could not publish.
        outbox::publish(services, &event_ids(&env)).await?;
    }
    if applied.conflicts > 0 {
        warn!(
            conflicts = applied.conflicts,
            "stale changes: planning the run again"
        );
        replan(services, tenant, run_id, id.generation).await?;
    } else if services.finish_run(tenant, run_id, id.generation).await? {
        info!(file = %run.file_name, "run applied");
        refresh_statistics(services, tenant, run_id).await?;
    }
    Ok(())
}

/// Publishes the events of a batch just committed: from the outbox they were recorded in
/// (`outboxed`), or straight to the process's subscribers.
pub(crate) async fn publish_committed(
    services: &Services,
    outboxed: bool,
    events: Vec<(String, Message)>,
) -> Result<(), StageError> {
    if outboxed {
        outbox::publish_recorded(services, events).await?;
    } else {
        for (key, message) in events {
            services
                .transport
                .publish_events(&key, vec![message])
                .await?;
        }
    }
    Ok(())
}

/// Which batch an envelope carries.
fn batch_id(env: &Envelope<ChangesReady>) -> BatchId {
    BatchId {
        run: env.run_id,
        generation: env.body.generation as i32,
        batch: env.body.batch as i32,
    }
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

/// The creations a batch carries by reference: every line of `slice` (whole lines of a
/// run's snapshot) that is not a protected row.
fn creations(slice: &[u8]) -> Result<Vec<Change>, StageError> {
    let mut reader = SnapshotReader::new(slice);
    let mut out = Vec::with_capacity(CHANGE_BATCH_SIZE);
    while let Some(entry) = reader.next_ref().map_err(corrupt_slice)? {
        if let Some(change) = entry.creation().map_err(corrupt_slice)? {
            out.push(change);
        }
    }
    Ok(out)
}

/// A snapshot Roster wrote itself does not read: a bug or corruption, not bad input.
fn corrupt_slice(e: SnapshotError) -> StageError {
    StageError::internal(format!("the batch's part of the snapshot: {e}"))
}

/// The people of a batch that only creates people (every batch of a tenant's first
/// import), encoded for [`db::insert_new`]; `None` for any other batch. With `copy`
/// (PostgreSQL), encoded for `COPY` as new people of that tenant, run and moment.
pub fn creating_rows(
    changes: &[Change],
    copy: Option<(&TenantId, RunId, DateTime<Utc>)>,
) -> Result<Option<db::Rows>, DbErr> {
    let new: Option<Vec<&Person>> = changes
        .iter()
        .map(|c| c.person.as_ref().filter(|_| c.expected.is_none()))
        .collect();
    new.filter(|rows| !rows.is_empty())
        .map(|rows| match copy {
            Some((tenant, run, now)) => db::Rows::encode_copy(&rows, tenant, run, now),
            None => db::Rows::encode(&rows),
        })
        .transpose()
}

/// The savepoint a creating batch's insert is tried in.
const CREATE_SAVEPOINT: &str = "roster_create";

/// Applies `changes` through `conn` (a transaction) where the stored rows allow it.
///
/// A batch creating people only (all of a tenant's first import), whose people come
/// encoded as `new_rows` ([`creating_rows`]), is first tried as one insert
/// ([`db::insert_new`]), with no reading of stored rows: when the database inserted
/// every row, each change met the state it expected (no row). Otherwise (a key stored
/// meanwhile) that attempt is undone (a savepoint) and the batch is checked row by row
/// as any other.
pub async fn apply(
    conn: &Txn,
    tenant: &TenantId,
    run: RunId,
    changes: &[Change],
    new_rows: Option<db::Rows>,
    now: DateTime<Utc>,
) -> Result<Applied, DbErr> {
    if let Some(rows) = new_rows {
        let sent = rows.len() as u64;
        conn.savepoint(CREATE_SAVEPOINT).await?;
        if db::insert_new(conn, tenant, rows, run, now).await? == sent {
            conn.release(CREATE_SAVEPOINT).await?;
            let mut out = Applied::default();
            for change in changes {
                out.counts.add(change.kind);
            }
            out.applied = (0..changes.len()).collect();
            return Ok(out);
        }
        conn.rollback_to(CREATE_SAVEPOINT).await?;
        debug!("some people of a creating batch are stored already: checking each");
    }
    // A change moving a person to a new email is checked against both rows.
    let emails: Vec<&str> = changes
        .iter()
        .flat_map(|c| std::iter::once(c.email.as_str()).chain(c.renamed_from.as_deref()))
        .collect();
    let stored = db::stored_states(conn, tenant, &emails).await?;
    let mut out = Applied::default();
    let mut rows: Vec<&Person> = Vec::new();
    let mut deactivate = Vec::new();
    let mut renames: Vec<(&str, &str)> = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        match change.check_with(|email| stored.get(email).copied()) {
            Applicability::Apply => {}
            Applicability::AlreadyApplied => continue,
            Applicability::Conflict => {
                out.conflicts += 1;
                continue;
            }
        }
        match (&change.person, &change.renamed_from) {
            (Some(p), Some(from)) => {
                renames.push((from, &change.email));
                rows.push(p);
            }
            (Some(p), None) => rows.push(p),
            (None, None) if change.kind == ChangeKind::Deactivated => {
                deactivate.push(change.email.clone());
            }
            (None, _) => {
                out.conflicts += 1;
                continue;
            }
        }
        out.counts.add(change.kind);
        out.applied.push(i);
    }
    // Moved first: the upsert then finds each moved row under its new email.
    for (from, to) in renames {
        db::rename(conn, tenant, from, to).await?;
    }
    db::upsert(conn, tenant, &rows, run, now).await?;
    db::deactivate(conn, tenant, &deactivate, run, now).await?;
    Ok(out)
}

/// The events messages announcing `changes` (one per kind, holding that kind's events),
/// each with its routing key: `<tenant>.employee.<kind>`. `invite` says, on each
/// `employee.created` event, whether the new person should be invited.
fn events(
    env: &Envelope<ChangesReady>,
    changes: &[&Change],
    at: DateTime<Utc>,
    trace: &TraceContext,
    invite: Option<bool>,
) -> Vec<(String, Message)> {
    let mut by_kind: BTreeMap<ChangeKind, Vec<&Change>> = BTreeMap::new();
    for change in changes {
        by_kind.entry(change.kind).or_default().push(change);
    }
    by_kind
        .into_iter()
        .map(|(kind, changes)| {
            let mut out = Envelope::new(
                event_id(env, kind),
                env.tenant.clone(),
                env.run_id,
                EventBatchOf {
                    kind,
                    changes: &changes,
                    tenant: &env.tenant,
                    run: env.run_id,
                    at,
                    invite: (kind == ChangeKind::Created).then_some(invite.unwrap_or(false)),
                },
            );
            out.trace = trace.clone();
            (
                DirectoryEvent::routing_key(&env.tenant, kind.event_name()),
                stage::message(&out, None),
            )
        })
        .collect()
}

/// The id of the events message of `kind` for a batch: the same batch always gives the
/// same ids, so a redelivery repeats no event and consumers can drop what they saw.
fn event_id(env: &Envelope<ChangesReady>, kind: ChangeKind) -> MessageId {
    MessageId::derived(&[
        "events",
        &env.run_id.to_string(),
        &env.body.generation.to_string(),
        &env.body.batch.to_string(),
        kind.name(),
    ])
}

/// The ids every events message of a batch could have.
fn event_ids(env: &Envelope<ChangesReady>) -> Vec<MessageId> {
    ChangeKind::ALL.iter().map(|k| event_id(env, *k)).collect()
}

/// A batch applied before came again: publish its events if that had not happened
/// (a crash or a broker blip between commit and publish), and finish the run if that
/// had not happened.
async fn redeliver_events(
    services: &Services,
    env: &Envelope<ChangesReady>,
) -> Result<(), StageError> {
    outbox::publish(services, &event_ids(env)).await?;
    services
        .finish_run(&env.tenant, env.run_id, batch_id(env).generation)
        .await?;
    Ok(())
}

/// Sends the run back to the differ to be planned again against the directory as it is.
pub(crate) async fn replan(
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
