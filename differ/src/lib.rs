//! The differ stage: takes `snapshot.parsed`, compares the snapshot with the tenant's
//! stored directory and publishes the changes as `changes.ready` batches, each change
//! naming the stored state it expects to replace.
//!
//! Promises:
//! - a tenant's runs are planned in order: a run waits while an earlier one is still
//!   moving (or a later one is being applied), and a full run overtaken by a later full
//!   one is `superseded`, never applied; a delta is planned against today's directory;
//! - an announcement made for an older planning generation starts nothing;
//! - a full snapshot with nobody in it is refused (it would deactivate everyone), and a
//!   run of any mode that trips a brake ([`brake`]: deactivations over a rolling window,
//!   attribute churn, population drift; the tenant's thresholds over the defaults) is
//!   `held` for an operator, with what it would do stored for review; an approved run is
//!   applied as it was reviewed while the directory is as it was, and braked afresh
//!   otherwise;
//! - a run whose file was produced before the file of a run applied before it arrived is
//!   `stale`, never applied;
//! - an unchanged person costs a hash comparison; records are decoded only for changes;
//! - planning again (a redelivery, a stale batch) starts a new generation, and the writer
//!   ignores batches of older ones.

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_shared::CHANGE_BATCH_SIZE;
use roster_shared::blob::BlobStore;
use roster_shared::config::ConsumeSettings;
use roster_shared::db::{Db, runs};
use roster_shared::error::StageError;
use roster_shared::model::change::{Change, ChangeCounts, ChangeKind, FieldChange, RowState};
use roster_shared::model::envelope::{
    ChangesReady, Covered, Envelope, SnapshotParsed, SnapshotSlice, SyncMode,
};
use roster_shared::model::ids::{MessageId, RunId, TenantId};
use roster_shared::model::person::Field;
use roster_shared::model::related::{RelatedCounts, RelatedPlan, RelatedSnapshot};
use roster_shared::model::run::RunState;
use roster_shared::model::snapshot::{SnapshotEntry, SnapshotError, SnapshotReader};
use roster_shared::stage::{self, ConsumeOptions, Services};
use roster_shared::transport::{Queue, Stage, header};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub mod brake;
pub mod changes;
pub mod db;
pub mod identity;
pub mod plan;
pub mod related;

pub use brake::{Brake, BrakeSettings};
pub use db::IndexEntry;
pub use identity::Identity;
pub use plan::{Fills, PlanSummary, Step};

/// Settings of the differ stage.
#[derive(Debug, Clone, Copy)]
pub struct DifferConfig {
    /// How messages are consumed.
    pub consume: ConsumeOptions,
    /// The mass-deactivation brake.
    pub brake: Brake,
}

impl DifferConfig {
    /// The differ's settings, for a database that is SQLite or not.
    pub fn new(consume: &ConsumeSettings, brake: &BrakeSettings, sqlite: bool) -> Self {
        DifferConfig {
            consume: ConsumeOptions::new(consume, sqlite),
            brake: brake.brake(),
        }
    }
}

/// Runs the differ stage until `shutdown`.
pub async fn run(
    config: DifferConfig,
    services: Services,
    shutdown: CancellationToken,
) -> Result<(), StageError> {
    stage::consume(&services, Stage::Differ, config.consume, shutdown, |env| {
        handle(&services, &config, env)
    })
    .await?;
    Ok(())
}

fn corrupt(e: SnapshotError) -> StageError {
    StageError::internal_from("reading a snapshot", e)
}

fn join_failed(e: tokio::task::JoinError) -> StageError {
    StageError::internal_from("a planning task failed", e)
}

/// How long a run waits before looking again at an earlier run still in flight.
const WAIT_FOR_EARLIER: Duration = Duration::from_millis(250);

/// Handles one `snapshot.parsed` message.
pub async fn handle(
    services: &Services,
    config: &DifferConfig,
    env: Envelope<SnapshotParsed>,
) -> Result<(), StageError> {
    let started = Instant::now();
    let (db, tenant, run_id) = (&services.db, &env.tenant, env.run_id);
    let Some(run) = runs::get(db, tenant, run_id).await? else {
        return Err(StageError::internal(format!("run {run_id} is unknown")));
    };
    match run.state {
        RunState::Parsed | RunState::Diffed | RunState::Applying => {}
        RunState::Fetched => {
            return Err(StageError::internal(format!(
                "run {run_id} is not parsed yet"
            )));
        }
        // Final or held: nothing to plan.
        _ => return Ok(()),
    }
    if run.dry_run {
        return plan_dry_run(services, config, &run, &env).await;
    }
    // A run waits for earlier runs still moving, unless it started planning before they
    // were reopened (a replay): a started run finishes first, and the reopened one waits
    // for it below (waiting both ways would be a deadlock).
    if run.generation == 0
        && let Some(earlier) = db::blocking_predecessor(db, tenant, run.seq).await?
    {
        return Err(StageError::Deferred {
            reason: format!("earlier run {} is {}", earlier.id, earlier.state),
            delay: WAIT_FOR_EARLIER,
        });
    }
    let mode = env.body.mode;
    match db::later_runs(db, tenant, run.seq, mode).await? {
        db::Later::Clear => {}
        db::Later::Supersedes(later) => {
            let why = format!(
                "run {} (a later full delivery) was {} first",
                later.id, later.state
            );
            if stop_planning(db, tenant, run_id, RunState::Superseded, &why).await? {
                services.discard_snapshot(tenant, run_id).await;
            }
            return Ok(());
        }
        db::Later::InProgress(later) => {
            return Err(StageError::Deferred {
                reason: format!("later run {} is {}", later.id, later.state),
                delay: WAIT_FOR_EARLIER,
            });
        }
    }
    if mode == SyncMode::Full && env.body.accepted == 0 {
        return Err(StageError::rejected(format!(
            "{}: {EMPTY_FULL_SNAPSHOT}",
            run.file_name
        )));
    }
    if let Some(produced) = run.produced_at
        && let Some((newer, newest)) = db::newest_applied_file(db.conn(), tenant, run.seq).await?
        && produced < newest
    {
        let why = format!(
            "stale: {} was produced at {}, before {newer} ({}), which is applied already; \
             an older file is not applied over a newer one",
            run.file_name,
            produced.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            newest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        if stop_planning(db, tenant, run_id, RunState::Stale, &why).await? {
            services.discard_snapshot(tenant, run_id).await;
        }
        return Ok(());
    }
    let from = i32::try_from(env.body.generation).unwrap_or(i32::MAX);
    let Some(generation) = db::begin_plan(db, tenant, run_id, from, env.message_id).await? else {
        // Planned since this announcement was made (or no longer plannable).
        return Ok(());
    };
    let index = Arc::new(db::load_index(db, tenant, run_id).await?);
    let index_ms = started.elapsed().as_millis() as u64;
    // A first import (nobody stored) is counted and cut into batches of creations by
    // reference in one pass; any other run is counted here and planned again below.
    let (
        summary,
        slices,
        Counted {
            fills,
            identity,
            errors,
        },
    ) = if index.is_empty() {
        let file = services.blobs.open(&env.body.snapshot_key).await?;
        let (summary, ranges) = tokio::task::spawn_blocking(move || cut_first_import(file))
            .await
            .map_err(join_failed)??;
        (summary, Some(ranges), Counted::default())
    } else {
        let key = &env.body.snapshot_key;
        let open = || async { Ok(services.blobs.open(key).await?) };
        let (summary, counted) = summarize_filled(
            db,
            tenant,
            &index,
            open,
            mode,
            env.body.covered.as_ref(),
            Lines::Stored(&services.blobs, &BlobStore::lines_key(tenant, run_id)),
        )
        .await?;
        (summary, None, counted)
    };
    // Rows planning itself refuses (an email taken by another person) are the run's row
    // errors beside the parser's.
    db::set_plan_errors(db, tenant, run_id, generation, &errors).await?;
    let active = index.iter().filter(|e| e.state.active).count() as u64;
    let base = db::directory_base(db.conn(), tenant).await?;
    // An approval lets through the plan the operator reviewed; if the directory moved
    // since the run was held, the run is planned afresh and braked like any other.
    let approved_as_held = run.approved && run.held_base.is_none_or(|held| held == base);
    // A run planned before (diffed or applying: a redelivery after a crash) passed the
    // brakes then; braking its re-plan would weigh it against its own partial work.
    let passed_before = matches!(run.state, RunState::Diffed | RunState::Applying);
    if !approved_as_held && !passed_before {
        let key = &env.body.snapshot_key;
        let open = || async { Ok(services.blobs.open(key).await?) };
        let trips = check_brakes(
            db,
            tenant,
            config.brake,
            &index,
            open,
            mode,
            &fills,
            summary.counts,
        )
        .await?;
        if !trips.is_empty() {
            let again = if run.approved {
                "held again: the directory changed after the run was held, and the new \
                 plan trips a brake; "
            } else {
                ""
            };
            // What it would do, kept for review (`roster runs show RUN --changes`).
            let changes_key = record_changes(services, None, &env)
                .await?
                .map(|(_, key)| key);
            let hold = db::Hold {
                trips: &trips,
                base,
                active,
                prefix: again,
                changes_key: changes_key.as_deref(),
            };
            if db::hold(db.conn(), tenant, run_id, &hold).await? {
                info!(
                    brakes = ?trips.iter().map(|t| t.brake.name()).collect::<Vec<_>>(),
                    deactivated = summary.counts.deactivated,
                    active,
                    "held by a brake"
                );
            }
            return Ok(());
        }
    }
    // Groups, memberships and contact details: one last batch, applied after the people.
    let related = match &env.body.related_key {
        Some(key) => {
            let snapshot = read_related(services, key).await?;
            Some(plan_related(db.conn(), tenant, &snapshot, &index).await?)
        }
        None => None,
    }
    .filter(|plan| !plan.changes.is_empty() || !plan.errors.is_empty());
    let people_batches = summary.batches;
    let batches = people_batches + u32::from(related.is_some());
    let diff_ms = started.elapsed().as_millis() as i64;
    if !db::set_plan(
        db,
        tenant,
        run_id,
        generation,
        batches,
        summary.unchanged,
        active,
        diff_ms,
    )
    .await?
    {
        // A newer planning of this run took over.
        return Ok(());
    }
    if batches == 0 {
        services.finish_run(tenant, run_id, generation).await?;
    } else {
        let source = match slices {
            Some(ranges) => Batches::slices(ranges, index),
            None => {
                let file = services.blobs.open(&env.body.snapshot_key).await?;
                Batches::start(index, file, mode, fills, identity)
            }
        };
        let published = publish_batches(services, &env, generation, batches, source).await?;
        if published != people_batches {
            return Err(StageError::internal(format!(
                "planned {people_batches} batches of people but produced {published}"
            )));
        }
        if let Some(plan) = related {
            publish_related(services, &env, generation, batches, plan).await?;
        }
    }
    info!(
        generation,
        created = summary.counts.created,
        updated = summary.counts.updated,
        deactivated = summary.counts.deactivated,
        reactivated = summary.counts.reactivated,
        unchanged = summary.unchanged,
        batches,
        index_ms,
        ms = started.elapsed().as_millis() as u64,
        "planned"
    );
    Ok(())
}

/// Stored people whose file leaves fields out are read this many at a time.
const FILL_CHUNK: usize = 1000;

/// What counting a plan settles besides its summary, for producing it.
#[derive(Debug, Clone, Default)]
struct Counted {
    /// Entries completed from the stored people ([`plan::Fills`]).
    fills: Arc<Fills>,
    /// Who moves to a new email, which rows are left out ([`identity`]).
    identity: Arc<Identity>,
    /// The row errors of the rows left out.
    errors: Vec<roster_shared::model::envelope::RowError>,
}

/// The summary of a plan of the snapshot `open` gives against `index`, with the entries
/// completed from the stored people where the file's columns (`covered`) leave fields
/// out ([`plan::Fills`]; `None`: the file's record is the whole record), and people
/// followed across a change of email by their employee id ([`identity`]).
///
/// One pass when nothing needed completing and nobody's email changed (the usual case:
/// what the file leaves out is blank in the directory too, or nobody changed),
/// otherwise the employee ids of would-be creations and changed rows are looked up, the
/// stored records of the people the file would modify are read ([`FILL_CHUNK`] at a
/// time), completed, and the plan counted again with them. Memory: the entries of the
/// people it would modify.
async fn summarize_filled<F, Fut>(
    db: &Db,
    tenant: &TenantId,
    index: &Arc<Vec<IndexEntry>>,
    open: F,
    mode: SyncMode,
    covered: Option<&Covered>,
    lines: Lines<'_>,
) -> Result<(PlanSummary, Counted), StageError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<File, StageError>>,
{
    let count = |file: File,
                 fills: Arc<Fills>,
                 identity: Arc<Identity>,
                 keep: bool,
                 candidates: Option<identity::Candidates>| {
        let index = index.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut candidates = candidates;
                plan::count(
                    &index,
                    &mut SnapshotReader::new(file),
                    mode,
                    &fills,
                    &identity,
                    keep,
                    candidates.as_mut(),
                )
                .map(|(summary, kept)| (summary, kept, candidates))
            })
            .await
            .map_err(join_failed)?
            .map_err(corrupt)
        }
    };
    // With nobody stored (a first import) nobody can be renamed: nothing to note.
    let noting = (!index.is_empty()).then(|| identity::Candidates::new(index.len()));
    let (mut summary, mut modified, candidates) = count(
        open().await?,
        Arc::default(),
        Arc::default(),
        covered.is_some(),
        noting,
    )
    .await?;
    let candidates = candidates.unwrap_or_default();
    let (found, refused) = identity::resolve(db.conn(), tenant, index, &candidates).await?;
    drop(candidates);
    let errors = if refused.is_empty() {
        Vec::new()
    } else {
        lines.name(&open, refused).await?
    };
    let identity = Arc::new(found);
    if !identity.is_empty() {
        (summary, modified, _) = count(
            open().await?,
            Arc::default(),
            identity.clone(),
            covered.is_some(),
            None,
        )
        .await?;
    }
    let done = |summary, fills| {
        Ok((
            summary,
            Counted {
                fills,
                identity: identity.clone(),
                errors: errors.clone(),
            },
        ))
    };
    let Some(covered) = covered.filter(|_| !modified.is_empty()) else {
        return done(summary, Arc::default());
    };
    let mut fills = Fills::new();
    for chunk in modified.chunks(FILL_CHUNK) {
        // A person moving to a new email is stored under the old one.
        let stored_email = |e: &SnapshotEntry| match identity.renamed_to(&e.email) {
            Some(i) => index[i].email.to_string(),
            None => e.email.clone(),
        };
        let keys: Vec<String> = chunk.iter().map(stored_email).collect();
        let emails: Vec<&str> = keys.iter().map(String::as_str).collect();
        let stored = db::fetch(db.conn(), tenant, &emails).await?;
        for (entry, key) in chunk.iter().zip(&keys) {
            let Some(old) = stored.get(key) else {
                continue;
            };
            let mut person = entry.person().map_err(corrupt)?;
            covered.fill(&mut person, old);
            let filled = SnapshotEntry::of(&person);
            if filled.state != entry.state {
                fills.insert(entry.email.clone(), filled);
            }
        }
    }
    drop(modified);
    if fills.is_empty() {
        return done(summary, Arc::default());
    }
    let fills = Arc::new(fills);
    let (summary, _, _) =
        count(open().await?, fills.clone(), identity.clone(), false, None).await?;
    done(summary, fills)
}

/// The brakes a run whose plan counts `counts` against `index` trips, with the tenant's
/// own thresholds over `defaults`, the runs applied within its window, and (only when
/// enough people change for it to matter) the attribute churn of the snapshot `open`
/// gives.
#[allow(clippy::too_many_arguments)]
async fn check_brakes<F, Fut>(
    db: &Db,
    tenant: &TenantId,
    defaults: Brake,
    index: &Arc<Vec<IndexEntry>>,
    open: F,
    mode: SyncMode,
    fills: &Arc<Fills>,
    counts: ChangeCounts,
) -> Result<Vec<brake::Trip>, StageError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<File, StageError>>,
{
    let safety = roster_shared::db::tenants::safety(db.conn(), tenant).await?;
    let brake = defaults.with(&safety.brakes);
    let active = index.iter().filter(|e| e.state.active).count() as u64;
    let window = db::window(db.conn(), tenant, brake.window_days, chrono::Utc::now()).await?;
    let changed = counts.updated + counts.reactivated + counts.deactivated;
    let churn = if brake.churn_possible(changed, active) {
        count_churn(db, tenant, index, open().await?, mode, fills).await?
    } else {
        None
    };
    Ok(brake.check_all(&brake::Observed {
        active,
        counts,
        window,
        churn,
    }))
}

/// The attribute of [`brake::CHURN_FIELDS`] that the snapshot in `file` changes for the
/// most stored people, with that number (`None`: none changes). Reads the stored records
/// of the people it modifies, [`FILL_CHUNK`] at a time.
async fn count_churn(
    db: &Db,
    tenant: &TenantId,
    index: &Arc<Vec<IndexEntry>>,
    file: File,
    mode: SyncMode,
    fills: &Arc<Fills>,
) -> Result<Option<(Field, u64)>, StageError> {
    let (index, fills) = (index.clone(), fills.clone());
    let (_, modified) = tokio::task::spawn_blocking(move || {
        plan::summarize_keeping(&index, &mut SnapshotReader::new(file), mode, &fills, true)
    })
    .await
    .map_err(join_failed)?
    .map_err(corrupt)?;
    let mut changed = [0u64; brake::CHURN_FIELDS.len()];
    for chunk in modified.chunks(FILL_CHUNK) {
        let emails: Vec<&str> = chunk.iter().map(|e| e.email.as_str()).collect();
        let stored = db::fetch(db.conn(), tenant, &emails).await?;
        for entry in chunk {
            let Some(old) = stored.get(&entry.email) else {
                continue;
            };
            let new = entry.person().map_err(corrupt)?;
            for (n, field) in changed.iter_mut().zip(brake::CHURN_FIELDS) {
                if old.display(field) != new.display(field) {
                    *n += 1;
                }
            }
        }
    }
    Ok(brake::CHURN_FIELDS
        .into_iter()
        .zip(changed)
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n))
}

/// Ends planning of a run in `to` (superseded or held) with the reason. Returns whether
/// this call moved it (a run already moved on is left as it is).
async fn stop_planning(
    db: &Db,
    tenant: &TenantId,
    run: RunId,
    to: RunState,
    why: &str,
) -> Result<bool, StageError> {
    let moved =
        runs::transition(db.conn(), tenant, run, &RunState::PLANNABLE, to, Some(why)).await?;
    if moved {
        info!(%why, state = to.name(), "planning stopped");
    }
    Ok(moved)
}

/// A change found by the merge, before its records are decoded.
#[derive(Debug)]
enum Pending {
    Create(SnapshotEntry),
    Modify {
        entry: SnapshotEntry,
        stored: usize,
        kind: ChangeKind,
    },
    Deactivate(usize),
}

/// Streams the snapshot against the index again and hands batches of pending changes to
/// `sink` as they fill (on a blocking thread).
fn produce(
    index: &[IndexEntry],
    file: File,
    mode: SyncMode,
    fills: &Fills,
    identity: &Identity,
    mut sink: impl FnMut(Vec<Pending>) -> bool,
) -> Result<(), StageError> {
    let mut batch = Vec::with_capacity(CHANGE_BATCH_SIZE);
    let mut batcher = plan::Batcher::default();
    let mut closed = false;
    let mut reader = SnapshotReader::new(file);
    plan::merge_with(index, &mut reader, mode, fills, identity, None, |step| {
        let Some(size) = plan::change_size(&step, index) else {
            return Ok(());
        };
        if batcher.starts_batch(size) && !batch.is_empty() && !closed {
            closed = !sink(std::mem::replace(
                &mut batch,
                Vec::with_capacity(CHANGE_BATCH_SIZE),
            ));
        }
        let pending = match step {
            Step::Create(entry) => Pending::Create(entry),
            Step::Modify {
                entry,
                stored,
                kind,
            } => Pending::Modify {
                entry,
                stored,
                kind,
            },
            Step::DeactivateAbsent(i) => Pending::Deactivate(i),
            Step::Unchanged | Step::AlreadyApplied | Step::Skip => return Ok(()),
        };
        batch.push(pending);
        Ok(())
    })
    .map_err(corrupt)?;
    if !batch.is_empty() && !closed {
        sink(batch);
    }
    Ok(())
}

/// A tenant's first import (an empty directory: every person of the snapshot is new):
/// in one pass over the snapshot, the plan's summary (as [`plan::summarize`] makes it
/// against an empty index) and the byte ranges of the snapshot that make each batch, cut
/// exactly as [`produce`] would cut them, without decoding or copying a record.
/// Protected rows inside a range create no one (the writer skips them, as [`produce`]
/// does).
fn cut_first_import(file: File) -> Result<(PlanSummary, Vec<Range<u64>>), StageError> {
    let mut reader = SnapshotReader::new(file);
    let mut batcher = plan::Batcher::default();
    let mut summary = PlanSummary::default();
    let mut ranges = Vec::new();
    // The open batch: where it starts, and where its last creation ends.
    let mut open: Option<u64> = None;
    let mut end = 0u64;
    loop {
        let before = reader.offset();
        let Some(entry) = reader.next_ref().map_err(corrupt)? else {
            break;
        };
        if entry.protected {
            continue;
        }
        summary.counts.add(ChangeKind::Created);
        let size = plan::creation_size(entry.encoded_len(), entry.email.len());
        if batcher.starts_batch(size) {
            if let Some(start) = open.take() {
                ranges.push(start..end);
            }
            open = Some(before);
        }
        end = reader.offset();
    }
    if let Some(start) = open {
        ranges.push(start..end);
    }
    summary.batches = batcher.batches();
    Ok((summary, ranges))
}

/// One batch as planned.
#[derive(Debug)]
enum Planned<T> {
    /// Changes, carried in the message.
    Changes(T),
    /// Creations by reference: this byte range of the snapshot.
    Slice(Range<u64>),
}

/// Decodes pending changes into full changes, reading the stored records of modified
/// people (for their changed fields) in one query.
async fn resolve<C: roster_shared::sea_orm::ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    index: &[IndexEntry],
    batch: Vec<Pending>,
) -> Result<Vec<Change>, StageError> {
    // By the stored email (a person moving to a new email is stored under the old one).
    let modified: Vec<&str> = batch
        .iter()
        .filter_map(|p| match p {
            Pending::Modify { stored, .. } => Some(&*index[*stored].email),
            _ => None,
        })
        .collect();
    let stored = if modified.is_empty() {
        Default::default()
    } else {
        db::fetch(conn, tenant, &modified).await?
    };
    batch
        .into_iter()
        .map(|p| {
            Ok(match p {
                Pending::Create(entry) => Change {
                    kind: ChangeKind::Created,
                    email: entry.email.clone(),
                    expected: None,
                    target: entry.state,
                    person: Some(entry.person().map_err(corrupt)?),
                    changed: vec![],
                    renamed_from: None,
                },
                Pending::Modify {
                    entry,
                    stored: i,
                    kind,
                } => {
                    let person = entry.person().map_err(corrupt)?;
                    let from = &*index[i].email;
                    // A rename's changed fields include `email`, old to new.
                    let changed = stored
                        .get(from)
                        .map(|old| changes::field_changes(old, &person))
                        .unwrap_or_default();
                    Change {
                        kind,
                        email: entry.email.clone(),
                        expected: Some(index[i].state),
                        target: entry.state,
                        person: Some(person),
                        changed,
                        renamed_from: (from != entry.email).then(|| from.to_owned()),
                    }
                }
                Pending::Deactivate(i) => {
                    let e = &index[i];
                    Change {
                        kind: ChangeKind::Deactivated,
                        email: e.email.to_string(),
                        expected: Some(e.state),
                        target: RowState {
                            hash: e.state.hash,
                            active: false,
                        },
                        person: None,
                        changed: vec![FieldChange {
                            field: "active".into(),
                            old: Some("true".into()),
                            new: Some("false".into()),
                        }],
                        renamed_from: None,
                    }
                }
            })
        })
        .collect()
}

/// The planned changes of a snapshot against an index, decoded batch by batch, in email
/// order. The merge runs on a blocking thread, at most two batches ahead.
/// With `by_reference`, against an empty directory (a first import) the batches are
/// snapshot ranges ([`produce_slices`]) instead.
struct Batches {
    index: Arc<Vec<IndexEntry>>,
    rx: mpsc::Receiver<Planned<Vec<Pending>>>,
    producer: Option<tokio::task::JoinHandle<Result<(), StageError>>>,
}

impl Batches {
    fn start(
        index: Arc<Vec<IndexEntry>>,
        file: File,
        mode: SyncMode,
        fills: Arc<Fills>,
        identity: Arc<Identity>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Planned<Vec<Pending>>>(2);
        let producer = {
            let index = index.clone();
            tokio::task::spawn_blocking(move || {
                produce(&index, file, mode, &fills, &identity, |batch| {
                    tx.blocking_send(Planned::Changes(batch)).is_ok()
                })
            })
        };
        Batches {
            index,
            rx,
            producer: Some(producer),
        }
    }

    /// The batches of a first import, cut already ([`cut_first_import`]).
    fn slices(ranges: Vec<Range<u64>>, index: Arc<Vec<IndexEntry>>) -> Self {
        let (tx, rx) = mpsc::channel(ranges.len().max(1));
        for range in ranges {
            tx.try_send(Planned::Slice(range))
                .expect("room for every range");
        }
        Batches {
            index,
            rx,
            producer: None,
        }
    }

    /// The next batch, `None` at the end.
    async fn next<C: roster_shared::sea_orm::ConnectionTrait>(
        &mut self,
        conn: &C,
        tenant: &TenantId,
    ) -> Result<Option<Planned<Vec<Change>>>, StageError> {
        match self.rx.recv().await {
            Some(Planned::Changes(pending)) => Ok(Some(Planned::Changes(
                resolve(conn, tenant, &self.index, pending).await?,
            ))),
            Some(Planned::Slice(range)) => Ok(Some(Planned::Slice(range))),
            None => {
                if let Some(producer) = self.producer.take() {
                    producer.await.map_err(join_failed)??;
                }
                Ok(None)
            }
        }
    }
}

async fn publish_batches(
    services: &Services,
    env: &Envelope<SnapshotParsed>,
    generation: i32,
    of: u32,
    mut batches: Batches,
) -> Result<u32, StageError> {
    let run = env.run_id.to_string();
    let mut n = 0u32;
    let mut waited = Instant::now();
    while let Some(planned) = batches.next(services.db.conn(), &env.tenant).await? {
        n += 1;
        let (changes, creates_from) = match planned {
            Planned::Changes(changes) => (changes, None),
            Planned::Slice(range) => (
                Vec::new(),
                Some(SnapshotSlice {
                    key: env.body.snapshot_key.clone(),
                    start: range.start,
                    end: range.end,
                }),
            ),
        };
        let produced_ms = waited.elapsed().as_millis() as u64;
        let out = Envelope::new(
            MessageId::derived(&[
                "changes.ready",
                &run,
                &generation.to_string(),
                &n.to_string(),
            ]),
            env.tenant.clone(),
            env.run_id,
            ChangesReady {
                generation: generation as u32,
                batch: n,
                of,
                changes,
                creates_from,
                related: None,
            },
        );
        // The generation rides in a header too, so a dead letter of this batch fails its
        // run only while the run is still at this generation. The batch itself rides
        // along for a writer in this process, which then need not decode it.
        let mut message = stage::message_carrying(out, None);
        message
            .headers
            .insert(header::GENERATION.into(), generation.to_string());
        let queued = Instant::now();
        services
            .transport
            .publish(Queue::Changes, vec![message])
            .await?;
        // Where planning spends its time: making a batch, or waiting for queue room.
        debug!(
            batch = n,
            produced_ms,
            queue_wait_ms = queued.elapsed().as_millis() as u64,
            "batch published"
        );
        waited = Instant::now();
    }
    Ok(n)
}

/// Reads a run's related records from the blob store.
async fn read_related(services: &Services, key: &str) -> Result<RelatedSnapshot, StageError> {
    let bytes = services.blobs.get_bytes(key).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| StageError::internal_from("reading a run's related records", e))
}

/// Plans `snapshot`'s related records against the tenant's stored ones; a contact
/// detail's person must be in `index` (the directory).
async fn plan_related<C: roster_shared::sea_orm::ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    snapshot: &RelatedSnapshot,
    index: &[IndexEntry],
) -> Result<RelatedPlan, StageError> {
    let stored = related::load(conn, tenant, snapshot).await?;
    let known = |person: &str| {
        index
            .binary_search_by(|e| e.email.as_bytes().cmp(person.as_bytes()))
            .is_ok()
    };
    Ok(related::plan(snapshot, &stored, known, || {
        uuid::Uuid::now_v7().to_string()
    }))
}

/// Publishes the related batch: batch `of` of `of`, the last of the generation.
async fn publish_related(
    services: &Services,
    env: &Envelope<SnapshotParsed>,
    generation: i32,
    of: u32,
    plan: RelatedPlan,
) -> Result<(), StageError> {
    let out = Envelope::new(
        MessageId::derived(&[
            "changes.ready",
            &env.run_id.to_string(),
            &generation.to_string(),
            &of.to_string(),
        ]),
        env.tenant.clone(),
        env.run_id,
        ChangesReady {
            generation: generation as u32,
            batch: of,
            of,
            changes: Vec::new(),
            creates_from: None,
            related: Some(plan),
        },
    );
    let mut message = stage::message_carrying(out, None);
    message
        .headers
        .insert(header::GENERATION.into(), generation.to_string());
    services
        .transport
        .publish(Queue::Changes, vec![message])
        .await?;
    Ok(())
}

/// Plans a dry run in the pipeline (an import API's sandbox or `dry_run`): the plan
/// `roster import --dry-run --dump` makes, its changes written to the run's changes blob,
/// its counts and planning-time row errors recorded, and the run moved to `planned`
/// (with the reason it would be held, if it would). Nothing else is written, and the
/// tenant's other runs neither wait for it nor it for them.
async fn plan_dry_run(
    services: &Services,
    config: &DifferConfig,
    run: &roster_shared::db::entity::run::Model,
    env: &Envelope<SnapshotParsed>,
) -> Result<(), StageError> {
    let started = Instant::now();
    let (db, tenant, run_id) = (&services.db, &env.tenant, env.run_id);
    let Some((plan, changes_key)) = record_changes(services, Some(config.brake), env).await? else {
        return Err(StageError::rejected(format!(
            "{}: {}",
            run.file_name, EMPTY_FULL_SNAPSHOT
        )));
    };
    let related_counts = env
        .body
        .related_key
        .as_ref()
        .map(|_| RelatedCounts::of(&plan.related.changes));
    let held = plan.held.map(|why| format!("would be held: {why}"));
    let moved = db::finish_dry_run(
        db,
        tenant,
        run_id,
        &db::DryRunOutcome {
            counts: plan.summary.counts,
            unchanged: plan.summary.unchanged,
            related: related_counts,
            errors: plan.errors.into_iter().chain(plan.related.errors).collect(),
            changes_key,
            held: held.clone(),
            held_by: plan.held_by.clone(),
            diff_ms: started.elapsed().as_millis() as i64,
        },
    )
    .await?;
    if moved {
        services.discard_snapshot(tenant, run_id).await;
    }
    info!(
        created = plan.summary.counts.created,
        updated = plan.summary.counts.updated,
        deactivated = plan.summary.counts.deactivated,
        reactivated = plan.summary.counts.reactivated,
        unchanged = plan.summary.unchanged,
        held = held.as_deref().unwrap_or(""),
        ms = started.elapsed().as_millis() as u64,
        "dry run planned"
    );
    Ok(())
}

/// Why a full snapshot with nobody in it is refused.
const EMPTY_FULL_SNAPSHOT: &str = "no usable people in the file; a full sync of it would deactivate everyone, so it was \
     refused";

/// Plans the run `env` announces without applying anything and stores its changes (people
/// then related records, JSON lines as `import --dry-run --dump` writes them) under the
/// run's changes key: what a dry run shows, and what a held run would do. Returns the
/// plan and the key, or `None` when the run would be refused (nothing stored). The
/// brakes are weighed with `brake` (a dry run's), or not at all (`None`: a held run's,
/// weighed already).
async fn record_changes(
    services: &Services,
    brake: Option<Brake>,
    env: &Envelope<SnapshotParsed>,
) -> Result<Option<(DryRun, String)>, StageError> {
    let (db, tenant, run_id, body) = (&services.db, &env.tenant, env.run_id, &env.body);
    let related = match &body.related_key {
        Some(key) => Some(read_related(services, key).await?),
        None => None,
    };
    let out = services.blobs.scratch_path("changes");
    let mut writer =
        std::io::BufWriter::new(File::create(&out).map_err(|e| StageError::Blob(e.into()))?);
    let mut write_error = None;
    let mut sink = |batch: Vec<Change>| {
        for change in batch {
            if let Err(e) = write_json_line(&mut writer, &change) {
                write_error.get_or_insert(e);
            }
        }
    };
    let key = &body.snapshot_key;
    let open = || async { Ok(services.blobs.open(key).await?) };
    let planned = plan_only(
        db,
        tenant,
        open,
        body.accepted,
        body.covered.as_ref(),
        body.mode,
        brake,
        Some(&mut sink),
        related.as_ref(),
        Lines::Stored(&services.blobs, &BlobStore::lines_key(tenant, run_id)),
    )
    .await;
    let written = planned.and_then(|plan| {
        for change in &plan.related.changes {
            write_json_line(&mut writer, change).map_err(|e| StageError::Blob(e.into()))?;
        }
        if let Some(e) = write_error {
            return Err(StageError::Blob(e.into()));
        }
        std::io::Write::flush(&mut writer).map_err(|e| StageError::Blob(e.into()))?;
        Ok(plan)
    });
    drop(writer);
    let plan = match written {
        Ok(plan) if plan.refused.is_none() => plan,
        Ok(_) => {
            let _ = std::fs::remove_file(&out);
            return Ok(None);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&out);
            return Err(e);
        }
    };
    let changes_key = BlobStore::changes_key(tenant, run_id);
    services.blobs.put_file(&changes_key, &out).await?;
    Ok(Some((plan, changes_key)))
}

/// Writes `value` as one JSON line.
fn write_json_line<W: std::io::Write, T: serde::Serialize>(
    out: &mut W,
    value: &T,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// What a dry run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRun {
    /// What would change.
    pub summary: PlanSummary,
    /// Why the run would be held, if it would.
    pub held: Option<String>,
    /// The brakes that would hold it.
    pub held_by: Vec<roster_shared::model::safety::BrakeName>,
    /// Why the run would be refused, if it would.
    pub refused: Option<String>,
    /// What would change of the related records (groups, memberships, contacts).
    pub related: RelatedPlan,
    /// Rows planning would leave out (an email taken by another person), with why.
    pub errors: Vec<roster_shared::model::envelope::RowError>,
}

/// Plans `snapshot` (a local snapshot file with `accepted` people, from a file whose
/// columns feed `covered`) against the tenant's directory without writing anything;
/// `changes` receives the planned changes in batches when given (for dumps).
#[allow(clippy::too_many_arguments)]
pub async fn dry_run(
    db: &Db,
    tenant: &TenantId,
    snapshot: &std::path::Path,
    accepted: u64,
    covered: Option<&Covered>,
    mode: SyncMode,
    brake: Brake,
    changes: Option<&mut (dyn FnMut(Vec<Change>) + Send)>,
    related: Option<&RelatedSnapshot>,
    lines: &[u32],
) -> Result<DryRun, StageError> {
    let open = || async { File::open(snapshot).map_err(|e| StageError::Blob(e.into())) };
    plan_only(
        db,
        tenant,
        open,
        accepted,
        covered,
        mode,
        Some(brake),
        changes,
        related,
        Lines::Known(lines),
    )
    .await
}

/// Where the lines of a snapshot's entries in the file are, for the row errors planning
/// makes ([`identity::name_lines`]).
#[derive(Debug, Clone, Copy)]
pub enum Lines<'a> {
    /// In the blob store under this key (`BlobStore::lines_key`; missing: unknown).
    Stored(&'a BlobStore, &'a str),
    /// In hand (the parser's `ParsedFile::lines`; empty: unknown).
    Known(&'a [u32]),
}

impl Lines<'_> {
    /// `refused` (row errors beside their rows' emails) with their lines set, the
    /// snapshot `open` opens read once to find them (only ever for refused rows).
    async fn name<F, Fut>(
        self,
        open: &F,
        refused: Vec<(String, roster_shared::model::envelope::RowError)>,
    ) -> Result<Vec<roster_shared::model::envelope::RowError>, StageError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<File, StageError>>,
    {
        let lines: Vec<u32> = match self {
            Lines::Stored(blobs, key) => match blobs.get_bytes(key).await {
                Ok(bytes) => bytes
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Err(roster_shared::blob::BlobError::NotFound(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            },
            Lines::Known(lines) => lines.to_vec(),
        };
        if lines.is_empty() {
            return Ok(refused.into_iter().map(|(_, e)| e).collect());
        }
        let file = open().await?;
        tokio::task::spawn_blocking(move || {
            identity::name_lines(refused, &mut SnapshotReader::new(file), &lines)
        })
        .await
        .map_err(join_failed)?
        .map_err(corrupt)
    }
}

/// [`dry_run`] on the snapshot `open` opens (twice when `changes` is given); `brake`
/// `None` when the caller weighed the brakes already (nothing is then said held).
#[allow(clippy::too_many_arguments)]
async fn plan_only<F, Fut>(
    db: &Db,
    tenant: &TenantId,
    open: F,
    accepted: u64,
    covered: Option<&Covered>,
    mode: SyncMode,
    brake: Option<Brake>,
    changes: Option<&mut (dyn FnMut(Vec<Change>) + Send)>,
    related: Option<&RelatedSnapshot>,
    lines: Lines<'_>,
) -> Result<DryRun, StageError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<File, StageError>>,
{
    let index = Arc::new(db::load_index(db, tenant, RunId::new()).await?);
    let refused = (mode == SyncMode::Full && accepted == 0).then(|| {
        "no usable people in the file; a full sync of it would deactivate everyone, so it \
         would be refused"
            .to_owned()
    });
    let (summary, counted) = if index.is_empty() {
        let summary = plan::summarize(
            &index,
            &mut SnapshotReader::new(open().await?),
            mode,
            &Fills::new(),
        )
        .map_err(corrupt)?;
        (summary, Counted::default())
    } else {
        summarize_filled(db, tenant, &index, &open, mode, covered, lines).await?
    };
    let Counted {
        fills,
        identity,
        errors,
    } = counted;
    let trips = match brake {
        Some(brake) => {
            check_brakes(
                db,
                tenant,
                brake,
                &index,
                &open,
                mode,
                &fills,
                summary.counts,
            )
            .await?
        }
        None => Vec::new(),
    };
    let held_by = trips.iter().map(|t| t.brake).collect();
    let held = (!trips.is_empty()).then(|| Brake::reason(&trips));
    if let Some(sink) = changes {
        let file = open().await?;
        let mut batches = Batches::start(index.clone(), file, mode, fills, identity);
        while let Some(planned) = batches.next(db.conn(), tenant).await? {
            if let Planned::Changes(batch) = planned {
                sink(batch);
            }
        }
    }
    let related = match related {
        Some(snapshot) => plan_related(db.conn(), tenant, snapshot, &index).await?,
        None => RelatedPlan::default(),
    };
    Ok(DryRun {
        summary,
        held,
        held_by,
        refused,
        related,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, Write};

    use roster_shared::model::person::{Field, Person};
    use roster_shared::model::snapshot::{encode_line, encode_protected};

    use super::*;

    /// A snapshot of `n` people, every seventh line a protected row, and some wide.
    fn snapshot(n: usize) -> (File, Vec<bool>) {
        let mut bytes = Vec::new();
        let mut protected = Vec::new();
        for i in 0..n {
            let email = format!("p{i:06}@x.com");
            if i % 7 == 3 {
                encode_protected(&email, &mut bytes);
                protected.push(true);
            } else {
                let mut p = Person::new(email);
                // Every tenth wide, so batches are cut by bytes as well as by count.
                let name = if i % 10 == 0 {
                    "w".repeat(10_000)
                } else {
                    "Ann".into()
                };
                p.set(Field::FirstName, &name);
                encode_line(&p, &mut bytes);
                protected.push(false);
            }
        }
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        file.rewind().unwrap();
        (file, protected)
    }

    #[test]
    fn a_first_import_is_cut_into_the_same_batches_by_reference() {
        let (file, protected) = snapshot(12_345);
        let planned = plan::summarize(
            &[],
            &mut SnapshotReader::new(file.try_clone().unwrap()),
            SyncMode::Full,
            &Fills::new(),
        )
        .unwrap();
        // (A clone shares the file's offset.)
        let mut file = file;
        file.rewind().unwrap();
        let (summary, ranges) = cut_first_import(file.try_clone().unwrap()).unwrap();
        assert_eq!(summary, planned, "the plan's own summary, in the same pass");
        assert_eq!(ranges.len() as u32, planned.batches);
        assert!(ranges.len() >= 3, "{} batches", ranges.len());
        file.rewind().unwrap();
        let delta = plan::summarize(
            &[],
            &mut SnapshotReader::new(file.try_clone().unwrap()),
            SyncMode::Delta,
            &Fills::new(),
        )
        .unwrap();
        assert_eq!(
            summary, delta,
            "a delta into an empty directory creates the same"
        );
        // Every person to create is in exactly one range, in order; no range holds more
        // than a batch; the ranges are whole lines.
        let mut bytes = Vec::new();
        let mut f = file;
        f.rewind().unwrap();
        std::io::Read::read_to_end(&mut f, &mut bytes).unwrap();
        let mut seen = Vec::new();
        for r in &ranges {
            let part = &bytes[r.start as usize..r.end as usize];
            assert!(r.start == 0 || bytes[r.start as usize - 1] == b'\n');
            assert!(part.ends_with(b"\n"));
            let mut reader = SnapshotReader::new(part);
            let mut in_batch = 0;
            while let Some(e) = reader.next_ref().unwrap() {
                if let Some(change) = e.creation().unwrap() {
                    assert_eq!(change.kind, ChangeKind::Created);
                    assert!(change.person.is_some());
                    seen.push(change.email);
                    in_batch += 1;
                }
            }
            assert!(in_batch <= CHANGE_BATCH_SIZE);
        }
        let expected: Vec<String> = (0..protected.len())
            .filter(|i| !protected[*i])
            .map(|i| format!("p{i:06}@x.com"))
            .collect();
        assert_eq!(summary.counts.created, expected.len() as u64);
        assert_eq!(seen, expected);
    }
}
