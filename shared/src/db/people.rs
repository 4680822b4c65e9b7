//! The directory: reading people back as [`Person`] records, and the compact index
//! (key, hash, activity) the differ compares snapshots against.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder,
};

use super::entity::person;
use super::{Db, raw, tv};
use crate::change::RowState;
use crate::ids::{RunId, TenantId};
use crate::person::Person;

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

/// The stored people among `emails`, by email.
pub async fn fetch<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    emails: &[&str],
) -> Result<HashMap<String, Person>, DbErr> {
    let mut out = HashMap::with_capacity(emails.len());
    if conn.get_database_backend() == DbBackend::Postgres {
        // One unique-index probe per email (equality on the whole primary key), however
        // stale the statistics: see the writer's `stored_states`.
        let keys: Vec<String> = emails.iter().map(|e| (*e).to_owned()).collect();
        let rows = person::Entity::find()
            .from_raw_sql(raw(
                DbBackend::Postgres,
                "SELECT p.* FROM unnest($2::text[]) AS k(email) CROSS JOIN LATERAL \
                 (SELECT * FROM people WHERE tenant_id = $1 AND email = k.email) p",
                vec![tv(tenant), keys.into()],
            ))
            .all(conn)
            .await?;
        for row in rows {
            let p = to_person(row);
            out.insert(p.email.clone(), p);
        }
        return Ok(out);
    }
    for chunk in emails.chunks(500) {
        let rows = person::Entity::find()
            .filter(person::Column::TenantId.eq(tenant.as_str()))
            .filter(person::Column::Email.is_in(chunk.iter().copied()))
            .all(conn)
            .await?;
        for row in rows {
            let p = to_person(row);
            out.insert(p.email.clone(), p);
        }
    }
    Ok(out)
}

/// The tenant's people sorted by email (byte order); only active ones unless `all`.
pub async fn directory<'a>(
    db: &'a Db,
    tenant: &TenantId,
    all: bool,
) -> Result<impl Stream<Item = Result<Person, DbErr>> + 'a, DbErr> {
    let mut query = person::Entity::find().filter(person::Column::TenantId.eq(tenant.as_str()));
    if !all {
        query = query.filter(person::Column::Active.eq(true));
    }
    let stream = query
        .order_by_asc(person::Column::Email)
        .stream(db.conn())
        .await?;
    Ok(stream.map(|row| row.map(to_person)))
}

/// Counts the tenant's people: (active, all).
pub async fn count(db: &Db, tenant: &TenantId) -> Result<(u64, u64), DbErr> {
    let row = db
        .conn()
        .query_one_raw(raw(
            db.backend(),
            "SELECT COALESCE(SUM(CASE WHEN active THEN 1 ELSE 0 END), 0), COUNT(*) \
             FROM people WHERE tenant_id = $1",
            vec![tv(tenant)],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("count".into()))?;
    let active: i64 = row.try_get_by_index(0)?;
    let all: i64 = row.try_get_by_index(1)?;
    Ok((active as u64, all as u64))
}

/// A stored row as a [`Person`].
pub fn to_person(m: person::Model) -> Person {
    let extra: BTreeMap<String, String> = m
        .extra
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or_default();
    Person {
        email: m.email,
        employee_id: m.employee_id,
        first_name: m.first_name,
        last_name: m.last_name,
        display_name: m.display_name,
        job_title: m.job_title,
        department: m.department,
        phone: m.phone,
        active: m.active,
        group: m.group,
        organization: m.organization,
        site: m.site,
        location: m.location,
        locale: m.locale,
        time_zone: m.time_zone,
        manager_email: m.manager_email,
        extra,
    }
}

/// The row storing `p` for `tenant`, as last changed by `run` at `now`. `created_at` is
/// `now` (an upsert keeps the stored one); `deactivated_at` is `now` when inactive.
pub fn to_row(
    tenant: &TenantId,
    p: &Person,
    run: RunId,
    now: DateTime<Utc>,
) -> person::ActiveModel {
    person::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        email: Set(p.email.clone()),
        employee_id: Set(p.employee_id.clone()),
        first_name: Set(p.first_name.clone()),
        last_name: Set(p.last_name.clone()),
        display_name: Set(p.display_name.clone()),
        job_title: Set(p.job_title.clone()),
        department: Set(p.department.clone()),
        phone: Set(p.phone.clone()),
        active: Set(p.active),
        group: Set(p.group.clone()),
        organization: Set(p.organization.clone()),
        site: Set(p.site.clone()),
        location: Set(p.location.clone()),
        locale: Set(p.locale.clone()),
        time_zone: Set(p.time_zone.clone()),
        manager_email: Set(p.manager_email.clone()),
        extra: Set((!p.extra.is_empty())
            .then(|| serde_json::to_string(&p.extra).expect("a map of strings serialises"))),
        row_hash: Set(p.content_hash()),
        last_run_id: Set(run.to_string()),
        created_at: Set(now),
        updated_at: Set(now),
        deactivated_at: Set((!p.active).then_some(now)),
    }
}
