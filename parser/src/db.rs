//! The queries only the parser runs: recording a parsed run with its rejected rows.

use chrono::Utc;
use roster_shared::db::{Db, exec, raw, runs, tv};
use roster_shared::model::envelope::{RowError, SnapshotParsed};
use roster_shared::model::ids::{RunId, TenantId};
use roster_shared::model::run::RunState;
use roster_shared::sea_orm::{DbErr, TransactionTrait};

/// Which of `emails` are active people of the tenant's directory.
pub async fn active_people(
    db: &Db,
    tenant: &TenantId,
    emails: &[&str],
) -> Result<std::collections::HashSet<String>, DbErr> {
    let rows = roster_shared::db::people::select_by_email(
        db.conn(),
        tenant,
        emails,
        "p.email, p.active",
        false,
    )
    .await?;
    let mut out = std::collections::HashSet::new();
    for row in rows {
        if row.try_get_by_index::<bool>(1)? {
            out.insert(row.try_get_by_index::<String>(0)?);
        }
    }
    Ok(out)
}

/// What the parser found in a run's file, as recorded with the run.
#[derive(Debug, Clone, Copy)]
pub struct Parsed<'a> {
    /// The result announced to the differ.
    pub body: &'a SnapshotParsed,
    /// The rejected rows (and the notes of skipped ones) kept with the run.
    pub errors: &'a [RowError],
    /// Rows skipped on purpose, each with a note.
    pub skipped: u64,
    /// Milliseconds parsing took.
    pub parse_ms: i64,
    /// What shaped the parse ([`roster_shared::db::tenants::parse_config`]).
    pub parse_config: &'a str,
}

/// Records the parser's result and moves `fetched` to `parsed`, with the rejected rows,
/// in one transaction. Returns whether the run moved (false: parsed before).
pub async fn mark_parsed(
    db: &Db,
    tenant: &TenantId,
    id: RunId,
    parsed: &Parsed<'_>,
) -> Result<bool, DbErr> {
    let Parsed {
        body: parsed,
        errors,
        skipped,
        parse_ms,
        parse_config,
    } = *parsed;
    let txn = db.conn().begin().await?;
    let now = Utc::now();
    let n = exec(
        &txn,
        raw(
            db.backend(),
            "UPDATE runs SET state = $10, snapshot_key = $1, rejects_key = $2, \
             rows_read = $3, accepted = $4, rejected = $5, parsed_at = $6, parse_ms = $7, \
             updated_at = $6, parse_config = $12, skipped = $13, covered = $14, \
             mode = $15, related_key = $16 \
             WHERE id = $8 AND tenant_id = $9 AND state = $11",
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
                RunState::Parsed.into(),
                RunState::Fetched.into(),
                parse_config.into(),
                (skipped as i64).into(),
                parsed
                    .covered
                    .as_ref()
                    .map(|c| serde_json::to_string(c).expect("a list of names serialises"))
                    .into(),
                parsed.mode.into(),
                parsed.related_key.clone().into(),
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
    runs::insert_errors(&txn, tenant, id, errors).await?;
    txn.commit().await?;
    Ok(true)
}
