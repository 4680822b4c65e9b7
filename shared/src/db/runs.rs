//! Sync runs: creation with a per-tenant sequence number, and the guarded state moves the
//! stages make. Every move is a conditional update (`... WHERE state IN (...)`), so a
//! redelivered message can never move a run backwards or twice.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, Value,
};
use serde::{Deserialize, Serialize};

use super::entity::{fetched_file, run, run_error};
use super::{Db, exec, raw, tv};
use crate::change::ChangeCounts;
use crate::envelope::{Format, RowError, SnapshotParsed, SyncMode};
use crate::ids::{RunId, TenantId};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// The raw file is stored; waiting for the parser.
    Fetched,
    /// The snapshot is stored; waiting for the differ.
    Parsed,
    /// Changes are planned and being published.
    Diffed,
    /// The writer is applying changes.
    Applying,
    /// Every change is applied. Final.
    Applied,
    /// Stopped by a safety brake; waits for an operator's approval.
    Held,
    /// Gave up after retries or on a bug; the message is in a dead-letter queue. Final
    /// until replayed.
    Failed,
    /// The file was refused as a whole (encoding, missing key column, ...); nothing was
    /// written. Final until replayed.
    Rejected,
    /// A later run of the tenant was applied first, so this one is not applied. Final.
    Superseded,
}

impl RunState {
    /// Every state.
    pub const ALL: [RunState; 9] = [
        RunState::Fetched,
        RunState::Parsed,
        RunState::Diffed,
        RunState::Applying,
        RunState::Applied,
        RunState::Held,
        RunState::Failed,
        RunState::Rejected,
        RunState::Superseded,
    ];

    /// The state's name as stored and printed.
    pub fn name(self) -> &'static str {
        match self {
            RunState::Fetched => "fetched",
            RunState::Parsed => "parsed",
            RunState::Diffed => "diffed",
            RunState::Applying => "applying",
            RunState::Applied => "applied",
            RunState::Held => "held",
            RunState::Failed => "failed",
            RunState::Rejected => "rejected",
            RunState::Superseded => "superseded",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether nothing more happens to the run without an operator.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Applied | RunState::Failed | RunState::Rejected | RunState::Superseded
        )
    }

    /// Whether later runs of the tenant may go ahead of this one (it is final, or held
    /// for an operator, who should not block newer deliveries).
    pub fn lets_later_runs_pass(self) -> bool {
        self.is_final() || self == RunState::Held
    }
}

/// Everything known about a run when the fetcher creates it.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Owner.
    pub tenant: TenantId,
    /// Its id.
    pub id: RunId,
    /// Source name.
    pub source: String,
    /// Original file name.
    pub file_name: String,
    /// Blob key of the raw bytes.
    pub blob_key: String,
    /// Hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Format hint.
    pub format: Format,
    /// Sync mode.
    pub mode: SyncMode,
    /// Encoding label for BOM-less files.
    pub encoding: Option<String>,
}

/// How a file was seen at its source, recorded so it is never taken twice.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Name at the source.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, milliseconds since the epoch.
    pub modified_ms: i64,
}

fn states(list: &[RunState]) -> String {
    list.iter()
        .map(|s| format!("'{}'", s.name()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The state of a stored run.
pub fn state_of(model: &run::Model) -> RunState {
    RunState::parse(&model.state).unwrap_or(RunState::Failed)
}

/// Creates a run in state `fetched` with the tenant's next sequence number (creating the
/// tenant on first sight), and records `source_file` as taken, in one transaction.
pub async fn create(
    db: &Db,
    new: &NewRun,
    source_file: Option<&SourceFile>,
) -> Result<run::Model, DbErr> {
    let txn = db.conn().begin().await?;
    let backend = db.backend();
    let now = Utc::now();
    exec(
        &txn,
        raw(
            backend,
            "INSERT INTO tenants (id, next_run_seq, created_at) VALUES ($1, 1, $2) \
             ON CONFLICT (id) DO NOTHING",
            vec![tv(&new.tenant), now.into()],
        ),
    )
    .await?;
    let row = txn
        .query_one_raw(raw(
            backend,
            "UPDATE tenants SET next_run_seq = next_run_seq + 1 WHERE id = $1 \
             RETURNING next_run_seq",
            vec![tv(&new.tenant)],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("tenant {}", new.tenant)))?;
    let seq: i64 = row.try_get_by_index::<i64>(0)? - 1;
    let model = run::ActiveModel {
        id: Set(new.id.to_string()),
        tenant_id: Set(new.tenant.to_string()),
        seq: Set(seq),
        source: Set(new.source.clone()),
        file_name: Set(new.file_name.clone()),
        blob_key: Set(new.blob_key.clone()),
        sha256: Set(new.sha256.clone()),
        size: Set(new.size as i64),
        format: Set(new.format.name().to_owned()),
        mode: Set(new.mode.name().to_owned()),
        encoding: Set(new.encoding.clone()),
        state: Set(RunState::Fetched.name().to_owned()),
        reason: Set(None),
        published: Set(false),
        approved: Set(false),
        rows_read: Set(0),
        accepted: Set(0),
        rejected: Set(0),
        created: Set(0),
        updated: Set(0),
        deactivated: Set(0),
        reactivated: Set(0),
        unchanged: Set(0),
        conflicts: Set(0),
        generation: Set(0),
        batches_total: Set(None),
        snapshot_key: Set(None),
        rejects_key: Set(None),
        fetched_at: Set(now),
        parsed_at: Set(None),
        diffed_at: Set(None),
        finished_at: Set(None),
        parse_ms: Set(None),
        diff_ms: Set(None),
        updated_at: Set(now),
    };
    run::Entity::insert(model.clone()).exec(&txn).await?;
    if let Some(file) = source_file {
        fetched_file::Entity::insert(fetched_file::ActiveModel {
            tenant_id: Set(new.tenant.to_string()),
            source: Set(new.source.clone()),
            name: Set(file.name.clone()),
            size: Set(file.size as i64),
            modified_ms: Set(file.modified_ms),
            sha256: Set(new.sha256.clone()),
            run_id: Set(new.id.to_string()),
            fetched_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    get(db, &new.tenant, new.id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("run {}", new.id)))
}

/// The run `id` of `tenant`.
pub async fn get(db: &Db, tenant: &TenantId, id: RunId) -> Result<Option<run::Model>, DbErr> {
    get_in(db.conn(), tenant, id).await
}

/// The run `id` of `tenant`, read through `conn` (a transaction, say).
pub async fn get_in<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    id: RunId,
) -> Result<Option<run::Model>, DbErr> {
    run::Entity::find_by_id(id.to_string())
        .filter(run::Column::TenantId.eq(tenant.as_str()))
        .one(conn)
        .await
}

/// The `snapshot.parsed` body a parsed run was (or would be) announced with, rebuilt from
/// the run's row: for announcing it again (redelivery, re-planning, approval, replay).
pub fn parsed_body(model: &run::Model) -> SnapshotParsed {
    SnapshotParsed {
        snapshot_key: model.snapshot_key.clone().unwrap_or_default(),
        rejects_key: model.rejects_key.clone().unwrap_or_default(),
        rows_read: model.rows_read as u64,
        accepted: model.accepted as u64,
        rejected: model.rejected as u64,
        mode: SyncMode::parse(&model.mode).unwrap_or_default(),
    }
}

/// The tenant's latest `limit` runs, newest first.
pub async fn list(db: &Db, tenant: &TenantId, limit: u64) -> Result<Vec<run::Model>, DbErr> {
    run::Entity::find()
        .filter(run::Column::TenantId.eq(tenant.as_str()))
        .order_by_desc(run::Column::Seq)
        .limit(limit)
        .all(db.conn())
        .await
}

/// Moves the run to `to` if it is in one of `from`; `reason` replaces the stored reason
/// when given, and a final `to` sets `finished_at`. Returns whether it moved.
pub async fn transition<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    id: RunId,
    from: &[RunState],
    to: RunState,
    reason: Option<&str>,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let finished: Value = if to.is_final() || to == RunState::Held {
        Some(now).into()
    } else {
        None::<chrono::DateTime<Utc>>.into()
    };
    let sql = format!(
        "UPDATE runs SET state = $1, reason = COALESCE($2, reason), updated_at = $3, \
         finished_at = $4 WHERE id = $5 AND tenant_id = $6 AND state IN ({})",
        states(from)
    );
    let n = exec(
        conn,
        raw(
            conn.get_database_backend(),
            &sql,
            vec![
                to.name().into(),
                reason.map(str::to_owned).into(),
                now.into(),
                finished,
                id.to_string().into(),
                tv(tenant),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// Marks a run that failed for good (`Failed` or `Rejected`) unless it already ended.
pub async fn fail(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    state: RunState,
    reason: &str,
) -> Result<bool, DbErr> {
    let open: Vec<RunState> = RunState::ALL
        .into_iter()
        .filter(|s| !s.is_final())
        .collect();
    transition(db.conn(), tenant, id, &open, state, Some(reason)).await
}

/// Records that the `file.fetched` message of the run went out.
pub async fn mark_published(db: &Db, tenant: &TenantId, id: RunId) -> Result<(), DbErr> {
    exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE runs SET published = $1 WHERE id = $2 AND tenant_id = $3",
            vec![true.into(), id.to_string().into(), tv(tenant)],
        ),
    )
    .await?;
    Ok(())
}

/// Records the parser's result and moves `fetched` to `parsed`, with the rejected rows,
/// in one transaction. Returns whether the run moved (false: parsed before).
pub async fn mark_parsed(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    parsed: &SnapshotParsed,
    errors: &[RowError],
    parse_ms: i64,
) -> Result<bool, DbErr> {
    let txn = db.conn().begin().await?;
    let now = Utc::now();
    let n = exec(
        &txn,
        raw(
            db.backend(),
            "UPDATE runs SET state = 'parsed', snapshot_key = $1, rejects_key = $2, \
             rows_read = $3, accepted = $4, rejected = $5, parsed_at = $6, parse_ms = $7, \
             updated_at = $6 WHERE id = $8 AND tenant_id = $9 AND state = 'fetched'",
            vec![
                parsed.snapshot_key.clone().into(),
                parsed.rejects_key.clone().into(),
                (parsed.rows_read as i64).into(),
                (parsed.accepted as i64).into(),
                (parsed.rejected as i64).into(),
                now.into(),
                parse_ms.into(),
                id.to_string().into(),
                tv(tenant),
            ],
        ),
    )
    .await?;
    if n == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    exec(
        &txn,
        raw(
            db.backend(),
            "DELETE FROM run_errors WHERE run_id = $1 AND tenant_id = $2",
            vec![id.to_string().into(), tv(tenant)],
        ),
    )
    .await?;
    for chunk in errors.chunks(500) {
        run_error::Entity::insert_many(chunk.iter().map(|e| run_error::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            run_id: Set(id.to_string()),
            line: Set(e.line.map(|l| l as i64)),
            column: Set(e.column.clone()),
            message: Set(e.message.clone()),
            ..Default::default()
        }))
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// The run's stored row errors, in file order, at most `limit`.
pub async fn errors(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    limit: u64,
) -> Result<Vec<RowError>, DbErr> {
    let rows = run_error::Entity::find()
        .filter(run_error::Column::TenantId.eq(tenant.as_str()))
        .filter(run_error::Column::RunId.eq(id.to_string()))
        .order_by_asc(run_error::Column::Id)
        .limit(limit)
        .all(db.conn())
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| RowError {
            line: r.line.map(|l| l as u64),
            column: r.column,
            message: r.message,
        })
        .collect())
}

/// The earliest run of the tenant before `seq` that later runs must wait for.
pub async fn blocking_predecessor(
    db: &Db,
    tenant: &TenantId,
    seq: i64,
) -> Result<Option<run::Model>, DbErr> {
    let passing: Vec<&str> = RunState::ALL
        .into_iter()
        .filter(|s| s.lets_later_runs_pass())
        .map(RunState::name)
        .collect();
    run::Entity::find()
        .filter(run::Column::TenantId.eq(tenant.as_str()))
        .filter(run::Column::Seq.lt(seq))
        .filter(run::Column::State.is_not_in(passing))
        .order_by_asc(run::Column::Seq)
        .one(db.conn())
        .await
}

/// A run of the tenant after `seq` that is applied or already being planned or applied,
/// if any: an earlier run must not be applied after (or alongside) it.
pub async fn later_started(
    db: &Db,
    tenant: &TenantId,
    seq: i64,
) -> Result<Option<run::Model>, DbErr> {
    use sea_orm::Condition;
    run::Entity::find()
        .filter(run::Column::TenantId.eq(tenant.as_str()))
        .filter(run::Column::Seq.gt(seq))
        .filter(
            Condition::any()
                .add(run::Column::State.eq(RunState::Applied.name()))
                .add(
                    Condition::all()
                        .add(run::Column::State.is_in([
                            RunState::Parsed.name(),
                            RunState::Diffed.name(),
                            RunState::Applying.name(),
                        ]))
                        .add(run::Column::Generation.gt(0)),
                ),
        )
        .order_by_desc(run::Column::Seq)
        .one(db.conn())
        .await
}

/// Unfinished runs of the tenant (not final, not held) that have not moved since
/// `before`, oldest first: their message may be gone (a process died holding it, an
/// in-memory queue went with its process, a write failed while dead-lettering).
pub async fn stalled(
    db: &Db,
    tenant: &TenantId,
    before: chrono::DateTime<Utc>,
) -> Result<Vec<run::Model>, DbErr> {
    run::Entity::find()
        .filter(run::Column::TenantId.eq(tenant.as_str()))
        .filter(run::Column::State.is_in([
            RunState::Fetched.name(),
            RunState::Parsed.name(),
            RunState::Diffed.name(),
            RunState::Applying.name(),
        ]))
        .filter(run::Column::UpdatedAt.lt(before))
        .order_by_asc(run::Column::Seq)
        .all(db.conn())
        .await
}

/// Records that the run was looked at (so a stalled run is re-announced once per period).
pub async fn touch(db: &Db, tenant: &TenantId, id: RunId) -> Result<(), DbErr> {
    exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE runs SET updated_at = $1 WHERE id = $2 AND tenant_id = $3",
            vec![Utc::now().into(), id.to_string().into(), tv(tenant)],
        ),
    )
    .await?;
    Ok(())
}

/// Starts a new planning generation for a run that is `parsed`, `diffed` or `applying`;
/// returns the new generation, or `None` if the run is in no state to be planned.
/// Batches of older generations are ignored by the writer from here on.
pub async fn begin_plan(db: &Db, tenant: &TenantId, id: RunId) -> Result<Option<i32>, DbErr> {
    let row = db
        .conn()
        .query_one_raw(raw(
            db.backend(),
            "UPDATE runs SET generation = generation + 1, updated_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND state IN ('parsed','diffed','applying') \
             RETURNING generation",
            vec![Utc::now().into(), id.to_string().into(), tv(tenant)],
        ))
        .await?;
    row.map(|r| r.try_get_by_index::<i32>(0)).transpose()
}

/// Records a finished plan of `batches` batches for `generation` and moves the run to
/// `diffed`. Returns false when a newer generation or a final state overtook it.
pub async fn set_plan(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    generation: i32,
    batches: u32,
    unchanged: u64,
    diff_ms: i64,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let n = exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE runs SET state = 'diffed', batches_total = $1, unchanged = $2, \
             diffed_at = $3, diff_ms = $4, updated_at = $3 \
             WHERE id = $5 AND tenant_id = $6 AND generation = $7 \
             AND state IN ('parsed','diffed','applying')",
            vec![
                (batches as i32).into(),
                (unchanged as i64).into(),
                now.into(),
                diff_ms.into(),
                id.to_string().into(),
                tv(tenant),
                generation.into(),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// Adds what one applied batch changed to the run's counts and marks it `applying`.
pub async fn add_applied<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    id: RunId,
    counts: &ChangeCounts,
    conflicts: u64,
) -> Result<(), DbErr> {
    exec(
        conn,
        raw(
            conn.get_database_backend(),
            "UPDATE runs SET created = created + $1, updated = updated + $2, \
             deactivated = deactivated + $3, reactivated = reactivated + $4, \
             conflicts = conflicts + $5, updated_at = $6, \
             state = CASE WHEN state = 'diffed' THEN 'applying' ELSE state END \
             WHERE id = $7 AND tenant_id = $8",
            vec![
                (counts.created as i64).into(),
                (counts.updated as i64).into(),
                (counts.deactivated as i64).into(),
                (counts.reactivated as i64).into(),
                (conflicts as i64).into(),
                Utc::now().into(),
                id.to_string().into(),
                tv(tenant),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// Moves the run to `applied` if every batch of `generation` is applied. Returns whether
/// this call finished it.
pub async fn finish_if_complete<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    id: RunId,
    generation: i32,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let n = exec(
        conn,
        raw(
            conn.get_database_backend(),
            "UPDATE runs SET state = 'applied', finished_at = $1, updated_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND generation = $4 \
             AND state IN ('diffed','applying') AND batches_total = \
             (SELECT COUNT(*) FROM run_batches b WHERE b.run_id = $2 AND b.generation = $4)",
            vec![
                now.into(),
                id.to_string().into(),
                tv(tenant),
                generation.into(),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// Reopens a run that ended `failed` or `rejected` at state `to`, for a replayed message
/// to continue from there: clears its reason and end time. Returns whether it reopened.
pub async fn reopen(db: &Db, tenant: &TenantId, id: RunId, to: RunState) -> Result<bool, DbErr> {
    let n = exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE runs SET state = $1, reason = NULL, finished_at = NULL, updated_at = $2 \
             WHERE id = $3 AND tenant_id = $4 AND state IN ('failed','rejected')",
            vec![
                to.name().into(),
                Utc::now().into(),
                id.to_string().into(),
                tv(tenant),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// Clears a held run for planning again (`held` to `parsed`, approved). Returns whether
/// it was held.
pub async fn approve(db: &Db, tenant: &TenantId, id: RunId) -> Result<bool, DbErr> {
    let n = exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE runs SET state = 'parsed', approved = $1, finished_at = NULL, \
             updated_at = $2 WHERE id = $3 AND tenant_id = $4 AND state = 'held'",
            vec![
                true.into(),
                Utc::now().into(),
                id.to_string().into(),
                tv(tenant),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// The run's change counts as stored.
pub fn counts(model: &run::Model) -> ChangeCounts {
    ChangeCounts {
        created: model.created as u64,
        updated: model.updated as u64,
        deactivated: model.deactivated as u64,
        reactivated: model.reactivated as u64,
    }
}
