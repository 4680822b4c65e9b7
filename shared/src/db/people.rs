//! The directory table `people`, derived from the person's field table
//! ([`crate::model::person`]): its columns, a stored row read back as a [`Person`], the
//! directory export's query, and adding the column of a newly declared field (the
//! writer's upsert derives its statement from [`columns`] too). Rows are deactivated,
//! never deleted.
//!
//! Besides one column per field the table has `tenant_id` (with `email`, the key),
//! `extra` (a JSON object of extra attributes, absent when there are none), `row_hash`
//! ([`Person::content_hash`]), `last_run_id` (the run that last changed the row),
//! `created_at`, `updated_at` and `deactivated_at`.

use std::collections::BTreeMap;

use futures::{Stream, StreamExt};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, StreamTrait, Value};

use super::{Db, raw, tv};
use crate::model::ids::TenantId;
use crate::model::person::{Field, Person};

/// The table's name.
pub const TABLE: &str = "people";

/// The columns beside the fields' own, in [`columns`] order after the fields.
pub const BOOKKEEPING: [&str; 7] = [
    "tenant_id",
    "extra",
    "row_hash",
    "last_run_id",
    "created_at",
    "updated_at",
    "deactivated_at",
];

/// Every column a person is written to: the fields' columns in table order, then
/// [`BOOKKEEPING`].
pub fn columns() -> Vec<&'static str> {
    Field::ALL
        .iter()
        .map(|f| f.column())
        .chain(BOOKKEEPING)
        .collect()
}

/// The select list that [`from_row`] reads: every field's column and `extra`, each
/// qualified by `alias` (`p.email`, ...).
pub fn select_list(alias: &str) -> String {
    Field::ALL
        .iter()
        .map(|f| f.column())
        .chain(["extra"])
        .map(|c| format!("{alias}.{}", quote(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored row (selected with [`select_list`]) as a [`Person`].
pub fn from_row(row: &QueryResult) -> Result<Person, DbErr> {
    let mut person = Person::new(row.try_get_by::<String, _>(Field::Email.column())?);
    person.active = row.try_get_by(Field::Active.column())?;
    for field in Field::TEXT {
        person.put(*field, row.try_get_by(field.column())?);
    }
    let extra: Option<String> = row.try_get_by("extra")?;
    if let Some(extra) = extra {
        person.extra = serde_json::from_str::<BTreeMap<String, String>>(&extra).map_err(|e| {
            DbErr::Type(format!(
                "column extra of {}: not a JSON object of text: {e}",
                person.email
            ))
        })?;
    }
    Ok(person)
}

/// The rows of the tenant's people among `emails`, selecting `columns` (qualified by the
/// alias `p`); with `lock`, locked for update on PostgreSQL (SQLite's writer lock is
/// taken by the transaction's first write).
///
/// On PostgreSQL each email is one unique-index probe (equality on the whole primary
/// key), whatever the statistics say: a tenant growing from nothing within one run is
/// believed tiny, and an IN list or join is then planned as a scan of all its people.
/// SQLite takes IN lists of 500.
pub async fn select_by_email<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    emails: &[&str],
    columns: &str,
    lock: bool,
) -> Result<Vec<QueryResult>, DbErr> {
    let backend = conn.get_database_backend();
    if backend == DbBackend::Postgres {
        let keys: Vec<String> = emails.iter().map(|e| (*e).to_owned()).collect();
        let sql = format!(
            "SELECT {columns} FROM unnest($2::text[]) AS k(email) CROSS JOIN LATERAL \
             (SELECT * FROM {TABLE} WHERE tenant_id = $1 AND email = k.email{}) p",
            if lock { " FOR UPDATE" } else { "" }
        );
        return conn
            .query_all_raw(raw(backend, &sql, vec![tv(tenant), keys.into()]))
            .await;
    }
    let mut rows = Vec::with_capacity(emails.len());
    for chunk in emails.chunks(500) {
        let mut values: Vec<Value> = vec![tv(tenant)];
        values.extend(chunk.iter().map(|e| Value::from(*e)));
        let sql = format!(
            "SELECT {columns} FROM {TABLE} p WHERE p.tenant_id = $1 AND p.email IN ({})",
            placeholders(2, chunk.len())
        );
        rows.extend(conn.query_all_raw(raw(backend, &sql, values)).await?);
    }
    Ok(rows)
}

/// `count` numbered placeholders from `$first`, comma-separated (`$2,$3,$4`).
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A column name quoted for SQL (every column name here is one of the table's literals).
pub fn quote(column: &str) -> String {
    format!("\"{column}\"")
}

/// The tenant's people sorted by email (byte order); only active ones unless `all`.
pub async fn directory<'a>(
    db: &'a Db,
    tenant: &TenantId,
    all: bool,
) -> Result<impl Stream<Item = Result<Person, DbErr>> + 'a, DbErr> {
    let sql = format!(
        "SELECT {} FROM {TABLE} p WHERE p.tenant_id = $1 {} ORDER BY p.email",
        select_list("p"),
        if all { "" } else { "AND p.active = $2" }
    );
    let mut values = vec![tv(tenant)];
    if !all {
        values.push(true.into());
    }
    let rows = db
        .conn()
        .stream_raw(raw(db.backend(), &sql, values))
        .await?;
    Ok(rows.map(|row| row.and_then(|r| from_row(&r))))
}

/// The field columns the `people` table lacks (fields declared since it was created);
/// none while the table itself does not exist yet (creating it is the migrations' work).
pub async fn missing_columns(db: &Db) -> Result<Vec<&'static str>, DbErr> {
    let sql = match db.backend() {
        DbBackend::Postgres => {
            "SELECT column_name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'people'"
        }
        _ => "SELECT name FROM pragma_table_info('people')",
    };
    let rows = db
        .conn()
        .query_all_raw(raw(db.backend(), sql, vec![]))
        .await?;
    let have: Vec<String> = rows
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    if have.is_empty() {
        return Ok(Vec::new());
    }
    Ok(Field::TEXT
        .iter()
        .map(|f| f.column())
        .filter(|c| !have.iter().any(|h| h == c))
        .collect())
}

/// Adds a nullable text column for every field the table lacks.
pub async fn add_missing_columns(db: &Db) -> Result<(), DbErr> {
    for column in missing_columns(db).await? {
        db.conn()
            .execute_unprepared(&format!(
                "ALTER TABLE {TABLE} ADD COLUMN {} TEXT",
                quote(column)
            ))
            .await?;
        tracing::info!(column, "added a column for a new field");
    }
    Ok(())
}

/// Counts the tenant's people: (active, all).
pub async fn count<C: ConnectionTrait>(conn: &C, tenant: &TenantId) -> Result<(u64, u64), DbErr> {
    let row = conn
        .query_one_raw(raw(
            conn.get_database_backend(),
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
