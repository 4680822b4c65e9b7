//! The queries on sources and push users: declaring them from the tenants file, reading
//! them, and recording how each fetch went.

use chrono::{DateTime, Utc};
use roster_shared::db::Db;
use roster_shared::db::entity::{push_user, source};
use roster_shared::model::ids::TenantId;
use roster_shared::model::source::{FetchOutcome, SourceKind};
use roster_shared::sea_orm::sea_query::{Expr, OnConflict};
use roster_shared::sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

pub use roster_shared::db::entity::push_user::Model as PushUser;
pub use roster_shared::db::entity::source::Model as SourceRow;

/// One source as the tenants file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: SourceKind,
    /// Its settings as JSON.
    pub spec: String,
    /// Its schedule, as written.
    pub schedule: Option<String>,
}

/// What declaring sources changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Sources new or changed.
    pub upserted: u64,
    /// Sources disabled because they left the file.
    pub disabled: u64,
}

/// Declares `sources` for `tenant` through `conn`: new ones are added, changed ones
/// updated (and enabled again), and the tenant's sources not among them disabled (their
/// history kept). Creates the tenant if it is new.
pub async fn declare<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    sources: &[Declared],
) -> Result<Applied, DbErr> {
    let now = Utc::now();
    roster_shared::db::tenants::ensure(conn, tenant).await?;
    let existing = source::Entity::find()
        .filter(source::Column::TenantId.eq(tenant.as_str()))
        .all(conn)
        .await?;
    let mut applied = Applied::default();
    for d in sources {
        let old = existing.iter().find(|s| s.name == d.name);
        let unchanged = old.is_some_and(|s| {
            s.enabled && s.kind == d.kind && s.spec == d.spec && s.schedule == d.schedule
        });
        if unchanged {
            continue;
        }
        source::Entity::insert(source::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            name: Set(d.name.clone()),
            kind: Set(d.kind),
            spec: Set(d.spec.clone()),
            enabled: Set(true),
            schedule: Set(d.schedule.clone()),
            created_at: Set(now),
            updated_at: Set(now),
            last_attempt_at: Set(None),
            last_success_at: Set(None),
            last_outcome: Set(None),
            last_error: Set(None),
            last_runs: Set(0),
            failures: Set(0),
            failing: Set(false),
            next_attempt_at: Set(None),
            watermark: Set(None),
            full_at: Set(None),
        })
        .on_conflict(
            OnConflict::columns([source::Column::TenantId, source::Column::Name])
                .update_columns([
                    source::Column::Kind,
                    source::Column::Spec,
                    source::Column::Enabled,
                    source::Column::Schedule,
                    source::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        applied.upserted += 1;
    }
    for old in existing.iter().filter(|s| s.enabled) {
        if !sources.iter().any(|d| d.name == old.name) {
            disable(conn, tenant, &old.name, now).await?;
            applied.disabled += 1;
        }
    }
    Ok(applied)
}

/// Disables every source of `tenant` (a tenant removed from the file). Returns how many.
pub async fn disable_all<C: ConnectionTrait>(conn: &C, tenant: &TenantId) -> Result<u64, DbErr> {
    let result = source::Entity::update_many()
        .col_expr(source::Column::Enabled, Expr::value(false))
        .col_expr(source::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(source::Column::TenantId.eq(tenant.as_str()))
        .filter(source::Column::Enabled.eq(true))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

async fn disable<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    source::Entity::update_many()
        .col_expr(source::Column::Enabled, Expr::value(false))
        .col_expr(source::Column::UpdatedAt, Expr::value(now))
        .filter(source::Column::TenantId.eq(tenant.as_str()))
        .filter(source::Column::Name.eq(name))
        .exec(conn)
        .await?;
    Ok(())
}

/// The tenants that have sources or a push login declared (enabled or not), by id.
pub async fn tenants_declared(db: &Db) -> Result<Vec<String>, DbErr> {
    let mut ids: Vec<String> = source::Entity::find()
        .all(db.conn())
        .await?
        .into_iter()
        .map(|s| s.tenant_id)
        .chain(
            push_user::Entity::find()
                .all(db.conn())
                .await?
                .into_iter()
                .map(|p| p.tenant_id),
        )
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// One source of `tenant`, enabled or not.
pub async fn get(db: &Db, tenant: &TenantId, name: &str) -> Result<Option<SourceRow>, DbErr> {
    source::Entity::find_by_id((tenant.to_string(), name.to_owned()))
        .one(db.conn())
        .await
}

/// Every source of `tenant` (enabled or not), by name.
pub async fn list(db: &Db, tenant: &TenantId) -> Result<Vec<SourceRow>, DbErr> {
    source::Entity::find()
        .filter(source::Column::TenantId.eq(tenant.as_str()))
        .order_by_asc(source::Column::Name)
        .all(db.conn())
        .await
}

/// Every enabled source that has a schedule, of every tenant.
pub async fn scheduled(db: &Db) -> Result<Vec<SourceRow>, DbErr> {
    source::Entity::find()
        .filter(source::Column::Enabled.eq(true))
        .filter(source::Column::Schedule.is_not_null())
        .order_by_asc(source::Column::TenantId)
        .order_by_asc(source::Column::Name)
        .all(db.conn())
        .await
}

/// Records that a fetch of the source started at `at`.
pub async fn started(
    db: &Db,
    tenant: &TenantId,
    name: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    source::Entity::update_many()
        .col_expr(source::Column::LastAttemptAt, Expr::value(at))
        .filter(source::Column::TenantId.eq(tenant.as_str()))
        .filter(source::Column::Name.eq(name))
        .exec(db.conn())
        .await?;
    Ok(())
}

/// How a successful fetch went, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Success {
    /// When it started.
    pub started: DateTime<Utc>,
    /// Runs it started.
    pub runs: u64,
    /// Whether it was a full fetch of a web service (moves `full_at`).
    pub full: bool,
    /// The new watermark of a delta feed (the fetch's start), if it moves.
    pub watermark: Option<DateTime<Utc>>,
}

/// Records a successful fetch: outcome, runs, watermark; clears the failure count.
/// Returns whether the source had been failing (so its recovery can be announced).
pub async fn succeeded(
    db: &Db,
    tenant: &TenantId,
    name: &str,
    ok: &Success,
) -> Result<bool, DbErr> {
    let was_failing = get(db, tenant, name).await?.is_some_and(|s| s.failing);
    let outcome = if ok.runs > 0 {
        FetchOutcome::Fetched
    } else {
        FetchOutcome::NothingNew
    };
    let mut update = source::Entity::update_many()
        .col_expr(source::Column::LastSuccessAt, Expr::value(ok.started))
        .col_expr(source::Column::LastOutcome, Expr::value(outcome))
        .col_expr(
            source::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .col_expr(source::Column::LastRuns, Expr::value(ok.runs as i64))
        .col_expr(source::Column::Failures, Expr::value(0i64))
        .col_expr(source::Column::Failing, Expr::value(false))
        .col_expr(
            source::Column::NextAttemptAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    if let Some(mark) = ok.watermark {
        update = update.col_expr(source::Column::Watermark, Expr::value(mark));
    }
    if ok.full {
        update = update.col_expr(source::Column::FullAt, Expr::value(ok.started));
    }
    update
        .filter(source::Column::TenantId.eq(tenant.as_str()))
        .filter(source::Column::Name.eq(name))
        .exec(db.conn())
        .await?;
    Ok(was_failing)
}

/// Records a failed fetch: the (redacted) error, one more failure in a row, no
/// scheduled attempt before `retry_at`, and failing once `failing_after` failures came
/// in a row. Returns the failures in a row and whether the source just became failing.
pub async fn failed(
    db: &Db,
    tenant: &TenantId,
    name: &str,
    error: &str,
    retry_at: DateTime<Utc>,
    failing_after: u32,
) -> Result<(u64, bool), DbErr> {
    let Some(row) = get(db, tenant, name).await? else {
        return Ok((0, false));
    };
    let failures = u64::try_from(row.failures).unwrap_or(0) + 1;
    let failing = failures >= u64::from(failing_after.max(1));
    source::Entity::update_many()
        .col_expr(
            source::Column::LastOutcome,
            Expr::value(FetchOutcome::Failed),
        )
        .col_expr(source::Column::LastError, Expr::value(error.to_owned()))
        .col_expr(source::Column::LastRuns, Expr::value(0i64))
        .col_expr(source::Column::Failures, Expr::value(failures as i64))
        .col_expr(source::Column::Failing, Expr::value(failing))
        .col_expr(source::Column::NextAttemptAt, Expr::value(retry_at))
        .filter(source::Column::TenantId.eq(tenant.as_str()))
        .filter(source::Column::Name.eq(name))
        .exec(db.conn())
        .await?;
    Ok((failures, failing && !row.failing))
}

/// Declares `tenant`'s push login through `conn` (`None`: it has none; any old one is
/// removed). Returns whether anything changed.
pub async fn declare_push<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    push: Option<(Option<&str>, &[String])>,
) -> Result<bool, DbErr> {
    let old = push_user::Entity::find_by_id(tenant.to_string())
        .one(conn)
        .await?;
    let Some((hash, keys)) = push else {
        if old.is_some() {
            push_user::Entity::delete_by_id(tenant.to_string())
                .exec(conn)
                .await?;
            return Ok(true);
        }
        return Ok(false);
    };
    let keys_json = serde_json::to_string(keys).expect("a list of strings");
    if old
        .as_ref()
        .is_some_and(|o| o.password_hash.as_deref() == hash && o.authorized_keys == keys_json)
    {
        return Ok(false);
    }
    roster_shared::db::tenants::ensure(conn, tenant).await?;
    push_user::Entity::insert(push_user::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        password_hash: Set(hash.map(str::to_owned)),
        authorized_keys: Set(keys_json),
        updated_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(push_user::Column::TenantId)
            .update_columns([
                push_user::Column::PasswordHash,
                push_user::Column::AuthorizedKeys,
                push_user::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(true)
}

/// Every push login, by tenant.
pub async fn push_users(db: &Db) -> Result<Vec<PushUser>, DbErr> {
    push_user::Entity::find()
        .order_by_asc(push_user::Column::TenantId)
        .all(db.conn())
        .await
}

/// The public keys of a push login (an error if the stored list is not one).
pub fn authorized_keys(user: &PushUser) -> Result<Vec<String>, DbErr> {
    serde_json::from_str(&user.authorized_keys).map_err(|e| {
        DbErr::Type(format!(
            "column push_users.authorized_keys of {}: {e}",
            user.tenant_id
        ))
    })
}
