//! The queries only the differ runs: the tenant's directory as a compact index, the
//! stored records of changed people, the order of a tenant's runs, and the planning
//! generations of a run.

use std::collections::HashMap;

use chrono::Utc;
use roster_shared::db::entity::run;
use roster_shared::db::{Db, exec, people, raw, runs, tv};
use roster_shared::model::change::RowState;
use roster_shared::model::envelope::SyncMode;
use roster_shared::model::ids::{MessageId, RunId, TenantId};
use roster_shared::model::person::Person;
use roster_shared::model::run::RunState;
use roster_shared::sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

/// One stored person as the differ needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The key.
    pub email: Box<str>,
    /// Stored hash and activity.
    pub state: RowState,
    /// Whether the run the index was loaded for made the row's last change.
    pub changed_by_run: bool,
}

/// People per page when loading an index.
const INDEX_PAGE: i64 = 10_000;

/// The tenant's whole directory as an index sorted by email (byte order). `run` marks
/// rows last changed by that run.
///
/// This is the differ's hot read (a million rows for a large tenant). Rows are fetched in
/// key-ordered pages, each page aggregated by the database into one text value
/// (`email TAB hash TAB active TAB changed-by-run`, one person per line): a row per person
/// would cost a thread hand-over each in sqlx's SQLite driver, twice the whole query.
pub async fn load_index(db: &Db, tenant: &TenantId, run: RunId) -> Result<Vec<IndexEntry>, DbErr> {
    let sql = match db.backend() {
        DbBackend::Postgres => {
            "SELECT count(*), max(email), string_agg(email || E'\\t' || row_hash::text || E'\\t' \
             || (CASE WHEN active THEN 1 ELSE 0 END)::text || E'\\t' \
             || (CASE WHEN last_run_id = $3 THEN 1 ELSE 0 END)::text, E'\\n' ORDER BY email) \
             FROM (SELECT email, row_hash, active, last_run_id FROM people \
             WHERE tenant_id = $1 AND email > $2 ORDER BY email LIMIT $4) page"
        }
        _ => {
            "SELECT count(*), max(email), group_concat(email || char(9) || row_hash || char(9) \
             || active || char(9) || (last_run_id = $3), char(10)) \
             FROM (SELECT email, row_hash, active, last_run_id FROM people \
             WHERE tenant_id = $1 AND email > $2 ORDER BY email LIMIT $4)"
        }
    };
    let run = run.to_string();
    let bad = |what: &str| DbErr::Custom(format!("loading the directory index: bad {what}"));
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let row = db
            .conn()
            .query_one_raw(raw(
                db.backend(),
                sql,
                vec![
                    tv(tenant),
                    after.clone().into(),
                    run.clone().into(),
                    INDEX_PAGE.into(),
                ],
            ))
            .await?
            .ok_or_else(|| bad("page"))?;
        let count: i64 = row.try_get_by_index(0)?;
        if count == 0 {
            break;
        }
        let body: String = row.try_get_by_index(2)?;
        for line in body.split('\n') {
            let mut parts = line.split('\t');
            let (Some(email), Some(hash), Some(active), Some(by_run)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("line"));
            };
            out.push(IndexEntry {
                email: email.into(),
                state: RowState {
                    hash: hash.parse().map_err(|_| bad("hash"))?,
                    active: active == "1",
                },
                changed_by_run: by_run == "1",
            });
        }
        after = row.try_get_by_index(1)?;
        if count < INDEX_PAGE {
            break;
        }
    }
    if !out.is_sorted_by(|a, b| a.email < b.email) {
        out.sort_unstable_by(|a, b| a.email.cmp(&b.email));
    }
    Ok(out)
}

/// The stored people among `emails`, by email (their old values, for the changed
/// fields of a change).
pub async fn fetch<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    emails: &[&str],
) -> Result<HashMap<String, Person>, DbErr> {
    let rows =
        people::select_by_email(conn, tenant, emails, &people::select_list("p"), false).await?;
    rows.iter()
        .map(|row| people::from_row(row).map(|p| (p.email.clone(), p)))
        .collect()
}

/// The earliest run of the tenant before `seq` that later runs must wait for.
pub async fn blocking_predecessor(
    db: &Db,
    tenant: &TenantId,
    seq: i64,
) -> Result<Option<run::Model>, DbErr> {
    let passing: Vec<RunState> = RunState::ALL
        .iter()
        .copied()
        .filter(|s| s.lets_later_runs_pass())
        .collect();
    run::Entity::find()
        .filter(run::Column::TenantId.eq(tenant.as_str()))
        .filter(run::Column::Seq.lt(seq))
        .filter(run::Column::State.is_not_in(passing))
        .order_by_asc(run::Column::Seq)
        .one(db.conn())
        .await
}

/// What later runs of a tenant mean for planning one of its runs.
#[derive(Debug, Clone)]
pub enum Later {
    /// Nothing stands in the way.
    Clear,
    /// A later full run is applied (or being planned or applied): its snapshot is the
    /// directory now, and an older full snapshot must not undo it.
    Supersedes(run::Model),
    /// A later run is being planned or applied: wait for it, then plan against the
    /// directory it leaves.
    InProgress(run::Model),
}

/// What the tenant's runs after `seq` mean for planning a run of `mode` (see [`Later`]):
/// only a full run is superseded, and only by a later full run; a delta (a replayed one,
/// say) is planned against the directory as it is by then.
pub async fn later_runs(
    db: &Db,
    tenant: &TenantId,
    seq: i64,
    mode: SyncMode,
) -> Result<Later, DbErr> {
    use roster_shared::sea_orm::Condition;
    let in_progress = Condition::all()
        .add(run::Column::State.is_in(RunState::PLANNABLE))
        .add(run::Column::Generation.gt(0));
    let later = || {
        run::Entity::find()
            .filter(run::Column::TenantId.eq(tenant.as_str()))
            .filter(run::Column::Seq.gt(seq))
            .order_by_desc(run::Column::Seq)
    };
    if mode == SyncMode::Full
        && let Some(full) = later()
            .filter(run::Column::Mode.eq(SyncMode::Full))
            .filter(
                Condition::any()
                    .add(run::Column::State.eq(RunState::Applied))
                    .add(in_progress.clone()),
            )
            .one(db.conn())
            .await?
    {
        return Ok(Later::Supersedes(full));
    }
    Ok(match later().filter(in_progress).one(db.conn()).await? {
        Some(run) => Later::InProgress(run),
        None => Later::Clear,
    })
}

/// Starts a new planning generation for a run that is `parsed`, `diffed` or `applying`,
/// on the announcement `message` made for generation `from`: if the run is still at
/// `from`, or `message` is the very one that started the current generation (redelivered
/// because its planner died mid-way). Returns the new generation, or `None` if the run is
/// in no state to be planned or the announcement is stale. Batches of older generations
/// are ignored by the writer from here on.
pub async fn begin_plan(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    from: i32,
    message: MessageId,
) -> Result<Option<i32>, DbErr> {
    let row = db
        .conn()
        .query_one_raw(raw(
            db.backend(),
            &format!(
                "UPDATE runs SET generation = generation + 1, plan_message_id = $5, \
                 updated_at = $1 WHERE id = $2 AND tenant_id = $3 \
                 AND (generation = $4 OR plan_message_id = $5) AND state IN ({}) \
                 RETURNING generation",
                runs::states_sql(&RunState::PLANNABLE)
            ),
            vec![
                Utc::now().into(),
                id.to_string().into(),
                tv(tenant),
                from.into(),
                message.to_string().into(),
            ],
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
            &format!(
                "UPDATE runs SET state = $8, batches_total = $1, unchanged = $2, \
                 diffed_at = $3, diff_ms = $4, updated_at = $3 \
                 WHERE id = $5 AND tenant_id = $6 AND generation = $7 AND state IN ({})",
                runs::states_sql(&RunState::PLANNABLE)
            ),
            vec![
                (batches as i32).into(),
                (unchanged as i64).into(),
                now.into(),
                diff_ms.into(),
                id.to_string().into(),
                tv(tenant),
                generation.into(),
                RunState::Diffed.into(),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}
