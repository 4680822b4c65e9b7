//! The queries only the differ runs: the tenant's directory as a compact index, the
//! stored records of changed people, the order of a tenant's runs, and the planning
//! generations of a run.

use std::collections::HashMap;

use chrono::Utc;
use roster_shared::db::entity::run;
use roster_shared::db::{COPY_SIGNATURE, Db, exec, people, raw, runs, tv};
use roster_shared::model::change::{ChangeCounts, RowState};
use roster_shared::model::envelope::RowError;
use roster_shared::model::envelope::SyncMode;
use roster_shared::model::ids::{MessageId, RunId, TenantId};
use roster_shared::model::person::Person;
use roster_shared::model::related::RelatedCounts;
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
/// This is the differ's hot read (a million rows for a large tenant). On PostgreSQL it is
/// one `COPY` in key order (one walk of the primary key: 1M people in ~0.5 s, where a
/// hundred pages of aggregated text took 1.4 s and a streamed query, decoding each row
/// into a result object, 1.0 s). On SQLite rows are
/// fetched in key-ordered pages, each page aggregated by the database into one text value
/// (`email TAB hash TAB active TAB changed-by-run`, one person per line): a row per person
/// would cost a thread hand-over each in sqlx's SQLite driver, twice the whole query.
pub async fn load_index(db: &Db, tenant: &TenantId, run: RunId) -> Result<Vec<IndexEntry>, DbErr> {
    let run = run.to_string();
    if db.backend() == DbBackend::Postgres {
        return load_index_copied(db, tenant, &run).await;
    }
    let sql = "SELECT count(*), max(email), group_concat(email || char(9) || row_hash \
               || char(9) || active || char(9) || (last_run_id = $3), char(10)) \
               FROM (SELECT email, row_hash, active, last_run_id FROM people \
               WHERE tenant_id = $1 AND email > $2 ORDER BY email LIMIT $4)";
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
    Ok(sorted(out))
}

/// [`load_index`] on PostgreSQL: one `COPY` of the tenant's rows in key order, in
/// PostgreSQL's binary format (no per-row result objects, no text to parse). `COPY`
/// takes no parameters: the tenant id (letters, digits, `.`, `_`, `-`) and the run id (a
/// UUID) are written into it as literals.
async fn load_index_copied(
    db: &Db,
    tenant: &TenantId,
    run: &str,
) -> Result<Vec<IndexEntry>, DbErr> {
    let sql = format!(
        "COPY (SELECT email, row_hash, active, last_run_id = {run} FROM people \
         WHERE tenant_id = {tenant} ORDER BY email) TO STDOUT (FORMAT binary)",
        run = literal(run),
        tenant = literal(tenant.as_str()),
    );
    let mut out = Vec::new();
    let mut reader = BinaryIndex::default();
    db.copy_out(&sql, |piece| reader.read(piece, &mut out))
        .await?;
    reader.finish()?;
    Ok(sorted(out))
}

/// `value` as an SQL string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Reads the index rows of [`load_index_copied`] from `COPY`'s binary output: a header,
/// then per row a field count and the fields (email, row hash, active, changed by the
/// run), each length-prefixed, then a trailer.
#[derive(Debug, Default)]
struct BinaryIndex {
    /// Bytes of an incomplete row (or header) carried to the next piece.
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
}

impl BinaryIndex {
    fn read(&mut self, piece: &[u8], out: &mut Vec<IndexEntry>) -> Result<(), DbErr> {
        let carried = !self.pending.is_empty();
        if carried {
            self.pending.extend_from_slice(piece);
        }
        let pending = std::mem::take(&mut self.pending);
        let bytes = if carried { &pending[..] } else { piece };
        let used = self.read_complete(bytes, out)?;
        self.pending = bytes[used..].to_vec();
        Ok(())
    }

    /// Reads every complete part of `bytes`; returns how many bytes that was.
    fn read_complete(&mut self, bytes: &[u8], out: &mut Vec<IndexEntry>) -> Result<usize, DbErr> {
        let bad = |what: &str| DbErr::Custom(format!("loading the directory index: {what}"));
        let mut at = 0usize;
        if !self.header_read {
            let fixed = COPY_SIGNATURE.len() + 8;
            let seen = bytes.len().min(COPY_SIGNATURE.len());
            if bytes[..seen] != COPY_SIGNATURE[..seen] {
                return Err(bad("not PostgreSQL's binary COPY output"));
            }
            if bytes.len() < fixed {
                return Ok(0);
            }
            let extension = be_i32(&bytes[fixed - 4..fixed]);
            let skip = fixed + usize::try_from(extension).map_err(|_| bad("a bad header"))?;
            if bytes.len() < skip {
                return Ok(0);
            }
            self.header_read = true;
            at = skip;
        }
        loop {
            let rest = &bytes[at..];
            if rest.len() < 2 || self.ended {
                return Ok(at);
            }
            let fields = i16::from_be_bytes([rest[0], rest[1]]);
            if fields == -1 {
                self.ended = true;
                return Ok(at + 2);
            }
            if fields != 4 {
                return Err(bad("a row of other columns"));
            }
            let mut cursor = 2usize;
            let mut values: [&[u8]; 4] = [&[]; 4];
            for value in &mut values {
                if rest.len() < cursor + 4 {
                    return Ok(at);
                }
                let len = be_i32(&rest[cursor..cursor + 4]);
                let len = usize::try_from(len).map_err(|_| bad("a NULL"))?;
                cursor += 4;
                if rest.len() < cursor + len {
                    return Ok(at);
                }
                *value = &rest[cursor..cursor + len];
                cursor += len;
            }
            let [email, hash, active, by_run] = values;
            let email = std::str::from_utf8(email).map_err(|_| bad("an email"))?;
            let hash: [u8; 8] = hash.try_into().map_err(|_| bad("a hash"))?;
            let (&[active], &[by_run]) = (active, by_run) else {
                return Err(bad("a flag"));
            };
            out.push(IndexEntry {
                email: email.into(),
                state: RowState {
                    hash: i64::from_be_bytes(hash),
                    active: active != 0,
                },
                changed_by_run: by_run != 0,
            });
            at += cursor;
        }
    }

    /// Checks that the output ended as `COPY`'s does.
    fn finish(&self) -> Result<(), DbErr> {
        if self.ended && self.pending.is_empty() {
            Ok(())
        } else {
            Err(DbErr::Custom(
                "loading the directory index: the COPY output ended early".to_owned(),
            ))
        }
    }
}

fn be_i32(bytes: &[u8]) -> i32 {
    i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// `index` in byte order of the emails (as the database gives it, unless its collation
/// says otherwise).
fn sorted(mut index: Vec<IndexEntry>) -> Vec<IndexEntry> {
    if !index.is_sorted_by(|a, b| a.email < b.email) {
        index.sort_unstable_by(|a, b| a.email.cmp(&b.email));
    }
    index
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
        // A dry run changes nothing, so nothing waits for it.
        .filter(run::Column::DryRun.eq(false))
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
            .filter(run::Column::DryRun.eq(false))
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
/// `diffed`, with the active people its plan started from (kept from the first planning:
/// a re-plan after a crash sees its own partial work). Returns false when a newer
/// generation or a final state overtook it.
#[allow(clippy::too_many_arguments)]
pub async fn set_plan(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    generation: i32,
    batches: u32,
    unchanged: u64,
    active: u64,
    diff_ms: i64,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let n = exec(
        db.conn(),
        raw(
            db.backend(),
            &format!(
                "UPDATE runs SET state = $8, batches_total = $1, unchanged = $2, \
                 diffed_at = $3, diff_ms = $4, updated_at = $3, \
                 active_before = COALESCE(active_before, $9) \
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
                (active as i64).into(),
            ],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// The tenant's directory version: the `seq` of its last applied run (0: none). A held
/// run remembers it ([`hold`]); an approval applies the held plan only while it is the
/// same.
pub async fn directory_base<C: ConnectionTrait>(conn: &C, tenant: &TenantId) -> Result<i64, DbErr> {
    let last = run::Entity::find()
        .filter(run::Column::TenantId.eq(tenant.as_str()))
        .filter(run::Column::State.eq(RunState::Applied))
        .filter(run::Column::DryRun.eq(false))
        .order_by_desc(run::Column::Seq)
        .one(conn)
        .await?;
    Ok(last.map_or(0, |r| r.seq))
}

/// The name of the newest file (by when it was produced) among the tenant's applied runs
/// that arrived before run `seq`, and when it was produced (`None`: no such run). A run
/// whose file is older arrived after a newer file was applied: it is `stale`. (Runs that
/// arrived after it and were applied while it waited, held or dead-lettered, do not make
/// it stale: an approval or a replay plans it against today's directory.)
pub async fn newest_applied_file<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    seq: i64,
) -> Result<Option<(String, chrono::DateTime<Utc>)>, DbErr> {
    let newest = run::Entity::find()
        .filter(run::Column::TenantId.eq(tenant.as_str()))
        .filter(run::Column::Seq.lt(seq))
        .filter(run::Column::State.eq(RunState::Applied))
        .filter(run::Column::DryRun.eq(false))
        .filter(run::Column::ProducedAt.is_not_null())
        .order_by_desc(run::Column::ProducedAt)
        .one(conn)
        .await?;
    Ok(newest.and_then(|r| Some((r.file_name, r.produced_at?))))
}

/// What the tenant's runs applied within the last `days` days did, after its last
/// approved run (an approval accepts what the directory had become): the brakes' window.
pub async fn window<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    days: u32,
    now: chrono::DateTime<Utc>,
) -> Result<crate::brake::Window, DbErr> {
    let since = now - chrono::Duration::days(i64::from(days));
    let applied = || {
        run::Entity::find()
            .filter(run::Column::TenantId.eq(tenant.as_str()))
            .filter(run::Column::State.eq(RunState::Applied))
            .filter(run::Column::DryRun.eq(false))
    };
    let approved = applied()
        .filter(run::Column::Approved.eq(true))
        .filter(run::Column::FinishedAt.gte(since))
        .order_by_desc(run::Column::Seq)
        .one(conn)
        .await?
        .map_or(0, |r| r.seq);
    let runs = applied()
        .filter(run::Column::FinishedAt.gte(since))
        .filter(run::Column::Seq.gt(approved))
        .order_by_asc(run::Column::Seq)
        .all(conn)
        .await?;
    Ok(crate::brake::Window {
        runs: runs.len() as u64,
        deactivated: runs.iter().map(|r| r.deactivated.max(0) as u64).sum(),
        // A first import (nobody active before it) starts no baseline.
        baseline: runs
            .iter()
            .filter_map(|r| r.active_before)
            .find(|a| *a > 0)
            .map(|a| a as u64),
    })
}

/// What [`hold`] records.
#[derive(Debug, Clone, Copy)]
pub struct Hold<'a> {
    /// The brakes that tripped.
    pub trips: &'a [crate::brake::Trip],
    /// The directory version the run was planned against ([`directory_base`]).
    pub base: i64,
    /// Active people then.
    pub active: u64,
    /// Put before the brakes' reasons (why it is held again, say).
    pub prefix: &'a str,
    /// Where what it would do is stored, for review.
    pub changes_key: Option<&'a str>,
}

/// Holds a run that brakes stopped: state `held` with the reason, the brakes' names,
/// the directory version it was planned against, the active people then and where its
/// change list is (its counts stay as they were: the writer adds them up when applied).
/// Clears an earlier approval (an approved run held again needs approving again). Returns whether this call moved it.
pub async fn hold<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    id: RunId,
    hold: &Hold<'_>,
) -> Result<bool, DbErr> {
    use roster_shared::sea_orm::sea_query::Expr;
    let Hold {
        trips,
        base,
        active,
        prefix,
        changes_key,
    } = *hold;
    let now = Utc::now();
    let names: Vec<&str> = trips.iter().map(|t| t.brake.name()).collect();
    let reason = format!("{prefix}{}", crate::brake::Brake::reason(trips));
    let moved = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(RunState::Held))
        .col_expr(run::Column::Reason, Expr::value(reason))
        .col_expr(
            run::Column::HeldBy,
            Expr::value(serde_json::to_string(&names).expect("names serialise")),
        )
        .col_expr(run::Column::HeldBase, Expr::value(base))
        .col_expr(
            run::Column::ChangesKey,
            Expr::value(changes_key.map(str::to_owned)),
        )
        .col_expr(run::Column::ActiveBefore, Expr::value(active as i64))
        .col_expr(run::Column::Approved, Expr::value(false))
        .col_expr(run::Column::FinishedAt, Expr::value(now))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .filter(run::Column::Id.eq(id.to_string()))
        .filter(run::Column::TenantId.eq(tenant.as_str()))
        .filter(run::Column::State.is_in(RunState::PLANNABLE))
        .exec(conn)
        .await?
        .rows_affected
        > 0;
    Ok(moved)
}

/// Records the row errors planning generation `generation` found (rows it left out, see
/// [`crate::identity`]) beside the parser's, in one transaction: replaces those an
/// earlier planning of the run recorded, and counts them among the run's rejected rows
/// in their place (so planning again never counts a row twice). Writes nothing for a
/// first planning that found none.
pub async fn set_plan_errors(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    generation: i32,
    errors: &[RowError],
) -> Result<(), DbErr> {
    use roster_shared::sea_orm::TransactionTrait;
    if errors.is_empty() && generation <= 1 {
        return Ok(());
    }
    let txn = db.conn().begin().await?;
    let removed = exec(
        &txn,
        raw(
            db.backend(),
            "DELETE FROM run_errors WHERE run_id = $1 AND tenant_id = $2 AND message LIKE $3",
            vec![
                id.to_string().into(),
                tv(tenant),
                format!("{}%", crate::identity::EMAIL_TAKEN).into(),
            ],
        ),
    )
    .await?;
    runs::insert_errors(&txn, tenant, id, errors).await?;
    exec(
        &txn,
        raw(
            db.backend(),
            "UPDATE runs SET rejected = rejected + $1 WHERE id = $2 AND tenant_id = $3",
            vec![
                (errors.len() as i64 - removed as i64).into(),
                id.to_string().into(),
                tv(tenant),
            ],
        ),
    )
    .await?;
    txn.commit().await
}

/// What [`finish_dry_run`] records.
#[derive(Debug, Clone)]
pub struct DryRunOutcome {
    /// People the run would create, update, deactivate, reactivate.
    pub counts: ChangeCounts,
    /// People it would leave as they are.
    pub unchanged: u64,
    /// What it would change of the related records, when its file had any.
    pub related: Option<RelatedCounts>,
    /// Rows that would fail at planning (contact details of people not in the directory).
    pub errors: Vec<RowError>,
    /// Where its changes are.
    pub changes_key: String,
    /// Why it would be held, if it would.
    pub held: Option<String>,
    /// The brakes that would hold it.
    pub held_by: Vec<roster_shared::model::safety::BrakeName>,
    /// Milliseconds planning took.
    pub diff_ms: i64,
}

/// Records a dry run's plan and moves it to `planned`, in one transaction with its
/// planning-time row errors. Returns false (and records nothing) when the run was no
/// longer plannable: a redelivery after it was recorded.
pub async fn finish_dry_run(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    outcome: &DryRunOutcome,
) -> Result<bool, DbErr> {
    use roster_shared::sea_orm::TransactionTrait;
    use roster_shared::sea_orm::sea_query::{Expr, ExprTrait};
    let txn = db.conn().begin().await?;
    let now = Utc::now();
    let c = &outcome.counts;
    let related = outcome
        .related
        .as_ref()
        .map(|r| serde_json::to_string(r).expect("counts serialise"));
    let moved = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(RunState::Planned))
        .col_expr(run::Column::Reason, Expr::value(outcome.held.clone()))
        .col_expr(
            run::Column::HeldBy,
            Expr::value(
                (!outcome.held_by.is_empty())
                    .then(|| serde_json::to_string(&outcome.held_by).expect("names serialise")),
            ),
        )
        .col_expr(run::Column::Created, Expr::value(c.created as i64))
        .col_expr(run::Column::Updated, Expr::value(c.updated as i64))
        .col_expr(run::Column::Deactivated, Expr::value(c.deactivated as i64))
        .col_expr(run::Column::Reactivated, Expr::value(c.reactivated as i64))
        .col_expr(
            run::Column::Unchanged,
            Expr::value(outcome.unchanged as i64),
        )
        .col_expr(run::Column::RelatedCounts, Expr::value(related))
        .col_expr(
            run::Column::Rejected,
            Expr::col(run::Column::Rejected).add(outcome.errors.len() as i64),
        )
        .col_expr(
            run::Column::ChangesKey,
            Expr::value(outcome.changes_key.clone()),
        )
        .col_expr(run::Column::BatchesTotal, Expr::value(0))
        .col_expr(run::Column::DiffMs, Expr::value(outcome.diff_ms))
        .col_expr(run::Column::DiffedAt, Expr::value(now))
        .col_expr(run::Column::FinishedAt, Expr::value(now))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .filter(run::Column::Id.eq(id.to_string()))
        .filter(run::Column::TenantId.eq(tenant.as_str()))
        .filter(run::Column::State.is_in(RunState::PLANNABLE))
        .exec(&txn)
        .await?
        .rows_affected
        > 0;
    if moved {
        runs::insert_errors(&txn, tenant, id, &outcome.errors).await?;
    }
    txn.commit().await?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use roster_shared::db::CopyWriter;

    use super::*;

    /// `COPY`'s binary output of `rows` (email, hash, active, changed by the run), with
    /// a header extension (which a reader must skip).
    fn copy_output(rows: &[(&str, i64, bool, bool)]) -> Vec<u8> {
        let mut out = CopyWriter::new(0);
        for (email, hash, active, by_run) in rows {
            out.tuple(4);
            out.text(Some(email));
            out.value(&hash.to_be_bytes());
            out.value(&[u8::from(*active)]);
            out.value(&[u8::from(*by_run)]);
        }
        let mut bytes = out.finish();
        let header = COPY_SIGNATURE.len() + 8;
        bytes[header - 4..header].copy_from_slice(&4i32.to_be_bytes());
        bytes.splice(header..header, *b"ext!");
        bytes
    }

    #[test]
    fn the_binary_index_reads_however_its_output_is_cut() {
        let rows = [
            ("a@x.com", -7, true, false),
            ("b\\'\t@x.com", i64::MAX, false, true),
            ("é@x.com", 0, true, true),
        ];
        let bytes = copy_output(&rows);
        let expected: Vec<IndexEntry> = rows
            .iter()
            .map(|(email, hash, active, by_run)| IndexEntry {
                email: (*email).into(),
                state: RowState {
                    hash: *hash,
                    active: *active,
                },
                changed_by_run: *by_run,
            })
            .collect();
        for piece in 1..=bytes.len() {
            let mut reader = BinaryIndex::default();
            let mut out = Vec::new();
            for chunk in bytes.chunks(piece) {
                reader.read(chunk, &mut out).unwrap();
            }
            reader.finish().unwrap();
            assert_eq!(out, expected, "in pieces of {piece} bytes");
        }
        // Cut short: an error, not a shorter index.
        let mut reader = BinaryIndex::default();
        let mut out = Vec::new();
        reader.read(&bytes[..bytes.len() - 5], &mut out).unwrap();
        assert!(reader.finish().is_err());
        // Something else entirely: an error.
        let mut reader = BinaryIndex::default();
        assert!(reader.read(b"email\thash\n.......", &mut out).is_err());
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(literal("acme"), "'acme'");
        assert_eq!(literal("o'neil"), "'o''neil'");
    }
}
