//! Sync runs: reading them, and the guarded state moves that more than one stage or
//! command makes. Every move is a conditional update (`... WHERE state IN (...)`), so a
//! redelivered message can never move a run backwards or twice. Moves only one stage
//! makes live in that stage (creating a run: the fetcher; recording a parse: the parser;
//! planning: the differ; adding applied counts: the writer).

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value,
};

use super::entity::{run, run_error};
use super::{Db, exec, raw, tv};
use crate::model::change::ChangeCounts;
use crate::model::envelope::{FileFetched, RowError, Severity, SnapshotParsed};
use crate::model::ids::{RunId, TenantId};
pub use crate::model::run::RunState;
use crate::transport::Stage;

/// `state IN (...)` for `list`, as SQL text (the names are Roster's own literals).
pub fn states_sql(list: &[RunState]) -> String {
    list.iter()
        .map(|s| format!("'{}'", s.name()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The run `id` of `tenant`.
pub async fn get(db: &Db, tenant: &TenantId, id: RunId) -> Result<Option<run::Model>, DbErr> {
    get_in(db.conn(), tenant, id).await
}

/// The run `id`, whichever tenant's it is (run ids are unique across tenants).
pub async fn find(db: &Db, id: RunId) -> Result<Option<run::Model>, DbErr> {
    run::Entity::find_by_id(id.to_string()).one(db.conn()).await
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
        mode: model.mode,
        generation: u32::try_from(model.generation).unwrap_or_default(),
        // Written by the parser from a value that serialises; unreadable only if edited
        // by hand, and then every field is the file's, as before `covered` existed.
        covered: model
            .covered
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok()),
        related_key: model.related_key.clone(),
    }
}

/// The `file.fetched` body a run was (or would be) announced with, rebuilt from its row:
/// for announcing it (the fetcher) or announcing it again (the supervisor).
pub fn fetched_body(model: &run::Model) -> FileFetched {
    FileFetched {
        source: model.source.clone(),
        blob_key: model.blob_key.clone(),
        sha256: model.sha256.clone(),
        size: model.size as u64,
        file_name: model.file_name.clone(),
        format: model.format,
        mode: model.mode,
        encoding: model.encoding.clone(),
        ignore_encoding: model.ignore_encoding,
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
        states_sql(from)
    );
    let n = exec(
        conn,
        raw(
            conn.get_database_backend(),
            &sql,
            vec![
                to.into(),
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

/// The states in which `stage` works on a run: a message of that stage can only fail a
/// run in one of them (a late copy must not fail a run gone on, nor a held one).
pub fn worked_on_by(stage: Stage) -> &'static [RunState] {
    match stage {
        Stage::Fetcher | Stage::Parser => &[RunState::Fetched],
        Stage::Differ => &RunState::PLANNABLE,
        Stage::Writer => &[RunState::Diffed, RunState::Applying],
    }
}

/// Marks a run `stage` gave up on as `state` (`Failed` or `Rejected`) with the reason, if
/// the run is still where that stage works on it and, for a writer's batch, still at the
/// batch's planning `generation`. Returns whether it moved.
pub async fn fail(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    stage: Stage,
    generation: Option<i32>,
    state: RunState,
    reason: &str,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let sql = format!(
        "UPDATE runs SET state = $1, reason = $2, updated_at = $3, finished_at = $3 \
         WHERE id = $4 AND tenant_id = $5 AND state IN ({}){}",
        states_sql(worked_on_by(stage)),
        if generation.is_some() {
            " AND generation = $6"
        } else {
            ""
        }
    );
    let mut values = vec![
        state.into(),
        reason.to_owned().into(),
        now.into(),
        id.to_string().into(),
        tv(tenant),
    ];
    values.extend(generation.map(Value::from));
    let n = exec(db.conn(), raw(db.backend(), &sql, values)).await?;
    Ok(n > 0)
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
            severity: Severity::from_name(&r.severity),
        })
        .collect())
}

/// Stores `errors` (row errors and notes) with the run through `conn`, 500 rows a
/// statement: the parser's, and the writer's found at planning.
pub async fn insert_errors<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    id: RunId,
    errors: &[RowError],
) -> Result<(), DbErr> {
    use sea_orm::ActiveValue::Set;
    for chunk in errors.chunks(500) {
        run_error::Entity::insert_many(chunk.iter().map(|e| run_error::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            run_id: Set(id.to_string()),
            line: Set(e.line.map(|l| l as i64)),
            column: Set(e.column.clone()),
            message: Set(e.message.clone()),
            severity: Set(e.severity.name().to_owned()),
            ..Default::default()
        }))
        .exec(conn)
        .await?;
    }
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
            "UPDATE runs SET state = $5, finished_at = $1, updated_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND generation = $4 \
             AND state IN ($6, $7) AND batches_total = \
             (SELECT COUNT(*) FROM run_batches b WHERE b.run_id = $2 AND b.generation = $4)",
            vec![
                now.into(),
                id.to_string().into(),
                tv(tenant),
                generation.into(),
                RunState::Applied.into(),
                RunState::Diffed.into(),
                RunState::Applying.into(),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// Marks run `id` of `tenant` as worked on now, while it is in one of the states stages
/// still work on ([`RunState::MOVING`]): the supervisor announces again only runs that
/// stop moving, so a long parse or plan is not started a second time beside itself.
/// Returns whether the run was moving.
pub async fn touch(db: &Db, tenant: &TenantId, id: RunId) -> Result<bool, DbErr> {
    let sql = format!(
        "UPDATE runs SET updated_at = $1 WHERE id = $2 AND tenant_id = $3 AND state IN ({})",
        states_sql(&RunState::MOVING)
    );
    let values = vec![Utc::now().into(), id.to_string().into(), tv(tenant)];
    Ok(exec(db.conn(), raw(db.backend(), &sql, values)).await? > 0)
}

/// Reopens a run that ended `failed` or `rejected` at state `to`, for a replayed message
/// to continue from there: clears its reason and end time. Returns whether it reopened.
pub async fn reopen(db: &Db, tenant: &TenantId, id: RunId, to: RunState) -> Result<bool, DbErr> {
    let n = exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE runs SET state = $1, reason = NULL, finished_at = NULL, updated_at = $2 \
             WHERE id = $3 AND tenant_id = $4 AND state IN ($5, $6)",
            vec![
                to.into(),
                Utc::now().into(),
                id.to_string().into(),
                tv(tenant),
                RunState::Failed.into(),
                RunState::Rejected.into(),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// Clears a held run for planning again (`held` to `parsed`, approved, `approved_at`
/// now, the hold's reason cleared: `held_by` keeps which brakes held it): the differ
/// applies the plan the operator reviewed while the directory is as it was when the run
/// was held, and plans (and brakes) afresh otherwise. Returns whether it was held.
pub async fn approve(db: &Db, tenant: &TenantId, id: RunId) -> Result<bool, DbErr> {
    let n = exec(
        db.conn(),
        raw(
            db.backend(),
            "UPDATE runs SET state = $5, approved = $1, finished_at = NULL, reason = NULL, \
             updated_at = $2, approved_at = $2 WHERE id = $3 AND tenant_id = $4 AND state = $6",
            vec![
                true.into(),
                Utc::now().into(),
                id.to_string().into(),
                tv(tenant),
                RunState::Parsed.into(),
                RunState::Held.into(),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// Drops a held run an operator rejected: `rejected`, with `why` as its reason (the
/// brakes that held it stay in `held_by`). Returns false when the run is not held.
pub async fn reject(db: &Db, tenant: &TenantId, id: RunId, why: &str) -> Result<bool, DbErr> {
    transition(
        db.conn(),
        tenant,
        id,
        &[RunState::Held],
        RunState::Rejected,
        Some(why),
    )
    .await
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
