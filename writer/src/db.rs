//! The queries only the writer runs: claiming a batch, reading the stored state of the
//! people a batch touches, the upsert and the deactivation, and adding a batch's counts
//! to its run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use roster_shared::db::{CopyWriter, Txn, exec, people, raw, tv};
use roster_shared::model::change::{ChangeCounts, RowState};
use roster_shared::model::ids::{RunId, TenantId};
use roster_shared::model::person::{Field, Person};
use roster_shared::model::record::{FieldKind, Record, RecordField};
use roster_shared::model::run::RunState;
use roster_shared::sea_orm::{ConnectionTrait, DbBackend, DbErr, SqlErr, Value};
use serde::ser::{Serialize, SerializeSeq, Serializer};

/// One batch of a run's planning generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchId {
    /// The run.
    pub run: RunId,
    /// Its planning generation.
    pub generation: i32,
    /// The batch number.
    pub batch: i32,
}

impl BatchId {
    /// The values naming this batch of `tenant` in `run_batches`: `run_id`, `generation`,
    /// `batch`, `tenant_id`, in that order.
    pub(crate) fn key(self, tenant: &TenantId) -> [Value; 4] {
        [
            self.run.to_string().into(),
            self.generation.into(),
            self.batch.into(),
            tv(tenant),
        ]
    }
}

/// Claims the batch in `run_batches` (through `conn`, the batch's transaction): its first
/// write, which also takes SQLite's write lock before anything is read. Returns false
/// when it was claimed before (a redelivery).
pub async fn claim_batch<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    id: BatchId,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let claimed = exec(
        conn,
        raw(
            conn.get_database_backend(),
            "INSERT INTO run_batches (run_id, generation, batch, tenant_id, applied_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            id.key(tenant).into_iter().chain([now.into()]).collect(),
        ),
    )
    .await?;
    Ok(claimed > 0)
}

/// Drops the batch's claim (through `conn`, the batch's transaction): a batch that met
/// stale rows is not done, so it must not count toward finishing its generation.
pub async fn release_batch<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    id: BatchId,
) -> Result<(), DbErr> {
    exec(
        conn,
        raw(
            conn.get_database_backend(),
            "DELETE FROM run_batches WHERE run_id = $1 AND generation = $2 AND batch = $3 \
             AND tenant_id = $4",
            id.key(tenant).to_vec(),
        ),
    )
    .await?;
    Ok(())
}

/// The stored state of each of `emails` (locked for update on PostgreSQL).
pub async fn stored_states<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    emails: &[&str],
) -> Result<HashMap<String, RowState>, DbErr> {
    let rows = people::select_by_email(conn, tenant, emails, "p.email, p.row_hash, p.active", true)
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get_by_index::<String>(0)?,
                RowState {
                    hash: row.try_get_by_index(1)?,
                    active: row.try_get_by_index(2)?,
                },
            ))
        })
        .collect()
}

/// Inserts `rows` or, for a known (tenant, email), replaces every column but
/// `created_at`; `deactivated_at` keeps the first moment of an inactive streak.
///
/// One statement whatever the number of rows: the rows travel as one JSON array of
/// arrays (the fields some person of the batch has, in table order, then `extra` if some
/// person has any, and the hash: see [`Rows::encode`]), which the database
/// unpacks itself (`jsonb_each` on SQLite, `jsonb_array_elements` on PostgreSQL: parsed
/// once into binary JSON, whose elements are then read by position), instead of a
/// parameter per value, each bound and checked on its own. (Binding 21 values a row to
/// a prepared multi-row insert was tried on SQLite: each value is copied three times on
/// its way through sea-orm and sqlx, which cost more than the unpacking.)
pub async fn upsert<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    rows: &[&Person],
    run: RunId,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    write_rows(
        conn,
        tenant,
        Rows::encode(rows)?,
        run,
        now,
        OnConflict::Replace,
    )
    .await?;
    Ok(())
}

/// Inserts `rows`, none of whose (tenant, email) should be stored yet; returns how many
/// it inserted: all of them, or fewer when some key is stored already. Then SQLite has
/// inserted the others (the stored rows are left alone), while on PostgreSQL the
/// statement failed as a whole (reported as 0 inserted) and left the transaction
/// unusable: call it inside a savepoint, and roll that back when fewer were inserted
/// than sent. As [`upsert`] otherwise.
///
/// On PostgreSQL the rows ([`Rows::encode_copy`]) are loaded with `COPY ... FROM STDIN
/// (FORMAT binary)` straight into the directory: no statement to plan, no JSON to parse,
/// each value taken as it is (a first import of a million people spent a fifth of all
/// its CPU time in PostgreSQL planning the JSON insert and parsing its JSON). A `COPY`
/// fails on a stored key as a plain insert does; `ON CONFLICT DO NOTHING` would insert
/// each row speculatively (a token, then a second WAL record confirming the row), a cost
/// paid by every row of a first import for a conflict that almost never comes.
pub async fn insert_new(
    conn: &Txn,
    tenant: &TenantId,
    rows: Rows,
    run: RunId,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let (len, present) = (rows.len, rows.present);
    let result = match rows.data {
        Encoded::Json(_) if conn.get_database_backend() == DbBackend::Postgres => {
            return Err(DbErr::Custom(
                "a creating batch on PostgreSQL must be encoded for COPY".to_owned(),
            ));
        }
        Encoded::Json(_) => {
            return write_rows(conn, tenant, rows, run, now, OnConflict::Keep).await;
        }
        Encoded::Copy(_) if len == 0 => return Ok(0),
        Encoded::Copy(data) => conn.copy_in(&copy_sql(present), &data).await,
    };
    match result {
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(0),
        loaded => loaded,
    }
}

/// People encoded for the inserts, ahead of the transaction that writes them: encoding
/// 5000 people takes milliseconds the transaction need not hold its lock for.
#[derive(Debug, Clone)]
pub struct Rows {
    data: Encoded,
    len: usize,
    present: Present,
}

/// How [`Rows`] are encoded.
#[derive(Debug, Clone)]
enum Encoded {
    /// A JSON array of arrays, for the insert statements ([`Rows::encode`]).
    Json(String),
    /// `COPY` binary input, complete with the bookkeeping columns ([`Rows::encode_copy`]).
    Copy(Vec<u8>),
}

impl Rows {
    /// Encodes `rows` for [`upsert`] (and [`insert_new`] on SQLite): of each person the
    /// fields some person of `rows` has, then `extra` if some person has any, then the
    /// content hash.
    pub fn encode(rows: &[&Person]) -> Result<Self, DbErr> {
        let present = Present::of(rows);
        let json = serde_json::to_string(&JsonRows(rows, present))
            .map_err(|e| DbErr::Custom(format!("encoding the rows: {e}")))?;
        Ok(Rows {
            data: Encoded::Json(json),
            len: rows.len(),
            present,
        })
    }

    /// Encodes `rows` as new people of `tenant` made by `run` at `now`, for
    /// [`insert_new`] on PostgreSQL: `COPY` binary input of the columns [`copy_sql`]
    /// names, one tuple per person.
    pub fn encode_copy(
        rows: &[&Person],
        tenant: &TenantId,
        run: RunId,
        now: DateTime<Utc>,
    ) -> Result<Self, DbErr> {
        let present = Present::of(rows);
        let columns = copy_columns(present).len();
        let columns = i16::try_from(columns)
            .map_err(|_| DbErr::Custom(format!("{columns} columns is too many to COPY")))?;
        let run = run.to_string();
        // Microseconds since 2000-01-01 UTC: PostgreSQL's binary timestamp.
        let pg_epoch = DateTime::<Utc>::from_timestamp(946_684_800, 0).expect("a valid time");
        let at = (now - pg_epoch)
            .num_microseconds()
            .ok_or_else(|| DbErr::Custom(format!("{now} is out of PostgreSQL's range")))?;
        let mut out = CopyWriter::new(rows.len() * 160);
        for p in rows {
            out.tuple(columns);
            for (i, field) in Field::ALL.iter().enumerate() {
                match field.spec().kind {
                    FieldKind::Key => out.text(Some(p.key())),
                    FieldKind::Active => out.value(&[u8::from(p.active())]),
                    FieldKind::Text if present.field(i) => out.text(p.text(*field)),
                    FieldKind::Text => {}
                }
            }
            out.text(Some(tenant.as_str()));
            if present.extra() {
                let extra = (!p.extra.is_empty())
                    .then(|| serde_json::to_string(&p.extra))
                    .transpose()
                    .map_err(|e| DbErr::Custom(format!("encoding the rows: {e}")))?;
                out.text(extra.as_deref());
            }
            out.value(&p.content_hash().to_be_bytes());
            out.text(Some(&run));
            out.value(&at.to_be_bytes());
            out.value(&at.to_be_bytes());
            if p.active() {
                out.null();
            } else {
                out.value(&at.to_be_bytes());
            }
        }
        Ok(Rows {
            data: Encoded::Copy(out.finish()),
            len: rows.len(),
            present,
        })
    }

    /// How many people.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The columns [`Rows::encode_copy`] writes for rows with the `present` parts, in its
/// order: the present fields in table order, then the bookkeeping columns (`extra` only
/// if present). A column left out is NULL.
fn copy_columns(present: Present) -> Vec<&'static str> {
    let fields = Field::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| present.field(*i))
        .map(|(_, f)| f.column());
    let bookkeeping = people::BOOKKEEPING
        .into_iter()
        .filter(move |c| *c != "extra" || present.extra());
    fields.chain(bookkeeping).collect()
}

/// The `COPY` of [`insert_new`] on PostgreSQL for rows with the `present` parts.
fn copy_sql(present: Present) -> String {
    let columns: Vec<String> = copy_columns(present)
        .into_iter()
        .map(people::quote)
        .collect();
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        people::TABLE,
        columns.join(", ")
    )
}

/// What the insert of [`write_rows`] does with a row whose key is stored already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OnConflict {
    /// Replace the stored row ([`upsert`]).
    Replace,
    /// Keep the stored row ([`insert_new`] on SQLite).
    Keep,
}

/// Runs the insert of `rows`; returns the rows the database reports written.
async fn write_rows<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    rows: Rows,
    run: RunId,
    now: DateTime<Utc>,
    on_conflict: OnConflict,
) -> Result<u64, DbErr> {
    if rows.is_empty() {
        return Ok(0);
    }
    let backend = conn.get_database_backend();
    let sql = upsert_sql(backend, on_conflict, rows.present);
    let Encoded::Json(json) = rows.data else {
        return Err(DbErr::Custom(
            "rows encoded for COPY given to an insert statement".to_owned(),
        ));
    };
    let values = vec![json.into(), tv(tenant), run.to_string().into(), now.into()];
    exec(conn, raw(backend, &sql, values)).await
}

/// Which parts of a batch's rows some person has: the text fields (bit `i` for
/// `Field::ALL[i]`; the key and the activity always) and `extra` ([`Present::EXTRA`]).
/// A column no person of the batch has is left out of the encoded rows and written as
/// NULL by the statement itself: fewer values to encode, and fewer for the database to
/// pick out of each row (SQLite walks a row from its start for each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Present(u64);

// Every field has its bit below `Present::EXTRA`.
const _: () = assert!(Field::ALL.len() < 63);

impl Present {
    /// The bit of `extra`.
    const EXTRA: u64 = 1 << 63;

    /// What some person of `rows` has.
    fn of(rows: &[&Person]) -> Self {
        let all = Self::EXTRA | ((1u64 << Field::ALL.len()) - 1);
        let mut bits = 0u64;
        for p in rows {
            for (i, field) in Field::ALL.iter().enumerate() {
                if field.spec().kind != FieldKind::Text || p.text(*field).is_some() {
                    bits |= 1 << i;
                }
            }
            if !p.extra.is_empty() {
                bits |= Self::EXTRA;
            }
            if bits == all {
                break;
            }
        }
        Present(bits)
    }

    /// Whether field number `i` (of `Field::ALL`) is in the rows.
    fn field(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }

    /// Whether `extra` is in the rows.
    fn extra(self) -> bool {
        self.0 & Self::EXTRA != 0
    }
}

/// The statement of [`write_rows`] for `backend` and rows with the `present` parts,
/// built once for each (a tenant's batches mostly share one).
fn upsert_sql(backend: DbBackend, on_conflict: OnConflict, present: Present) -> Arc<str> {
    type Key = (bool, OnConflict, Present);
    static BUILT: Mutex<Option<HashMap<Key, Arc<str>>>> = Mutex::new(None);
    let pg = backend == DbBackend::Postgres;
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    built
        .get_or_insert_with(HashMap::new)
        .entry((pg, on_conflict, present))
        .or_insert_with(|| build_upsert_sql(pg, on_conflict, present).into())
        .clone()
}

fn build_upsert_sql(pg: bool, on_conflict: OnConflict, present: Present) -> String {
    let mut next = 0usize;
    let mut at = |cast: &str| {
        let i = next;
        next += 1;
        if pg {
            format!("(j.value ->> {i}){cast}")
        } else {
            format!("j.value ->> {i}")
        }
    };
    let null = if pg { "NULL::text" } else { "NULL" };
    let mut select: Vec<String> = Vec::new();
    let mut active = String::new();
    for (i, field) in Field::ALL.iter().enumerate() {
        let expr = match field.spec().kind {
            FieldKind::Active => {
                active = at("::boolean");
                active.clone()
            }
            _ if present.field(i) => at(""),
            _ => null.to_owned(),
        };
        select.push(expr);
    }
    let extra = if present.extra() {
        at("")
    } else {
        null.to_owned()
    };
    // The bookkeeping columns, in `people::BOOKKEEPING` order.
    select.extend([
        "$2".to_owned(),
        extra,
        at("::bigint"),
        "$3".to_owned(),
        "$4".to_owned(),
        "$4".to_owned(),
        format!("CASE WHEN {active} THEN NULL ELSE $4 END"),
    ]);
    debug_assert_eq!(people::columns().len(), select.len());
    // (`WHERE true`: SQLite would read `ON` as the start of a join's constraint.)
    let source = if pg {
        "jsonb_array_elements($1::jsonb)"
    } else {
        "jsonb_each($1)"
    };
    let on_conflict = format!(
        " ON CONFLICT (tenant_id, email) DO {}",
        conflict_action(on_conflict)
    );
    format!(
        "INSERT INTO {table} ({columns}) SELECT {select} FROM {source} AS j WHERE \
         true{on_conflict}",
        table = people::TABLE,
        columns = column_list(),
        select = select.join(", "),
    )
}

/// The quoted column list of the inserts, in [`people::columns`] order.
fn column_list() -> String {
    people::columns()
        .iter()
        .map(|c| people::quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the inserts do for a stored key: nothing, or replace every column but the key
/// and `created_at`, keeping `deactivated_at` from the start of an inactive streak.
fn conflict_action(on_conflict: OnConflict) -> String {
    let table = people::TABLE;
    match on_conflict {
        OnConflict::Keep => "NOTHING".to_owned(),
        OnConflict::Replace => {
            let kept = [
                "tenant_id",
                Field::Email.column(),
                "created_at",
                "deactivated_at",
            ];
            let updates: Vec<String> = people::columns()
                .iter()
                .filter(|c| !kept.contains(c))
                .map(|c| format!("{0} = excluded.{0}", people::quote(c)))
                .collect();
            format!(
                "UPDATE SET {}, deactivated_at = CASE WHEN excluded.active THEN NULL \
                 WHEN {table}.active THEN excluded.deactivated_at \
                 ELSE {table}.deactivated_at END",
                updates.join(", ")
            )
        }
    }
}

/// People as the JSON array [`upsert`] sends: one array per person, its `present` fields
/// in table order (text or null; the activity as a boolean), then `extra` if present (a
/// JSON object as text, or null) and the content hash.
struct JsonRows<'a>(&'a [&'a Person], Present);

impl Serialize for JsonRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for p in self.0 {
            seq.serialize_element(&JsonRow(p, self.1))?;
        }
        seq.end()
    }
}

struct JsonRow<'a>(&'a Person, Present);

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (p, present) = (self.0, self.1);
        let mut seq = s.serialize_seq(None)?;
        for (i, field) in Field::ALL.iter().enumerate() {
            match field.spec().kind {
                FieldKind::Key => seq.serialize_element(p.key())?,
                FieldKind::Active => seq.serialize_element(&p.active())?,
                FieldKind::Text if present.field(i) => seq.serialize_element(&p.text(*field))?,
                FieldKind::Text => {}
            }
        }
        if present.extra() {
            let extra = (!p.extra.is_empty())
                .then(|| serde_json::to_string(&p.extra))
                .transpose()
                .map_err(serde::ser::Error::custom)?;
            seq.serialize_element(&extra)?;
        }
        seq.serialize_element(&p.content_hash())?;
        seq.end()
    }
}

/// Moves the stored person `from` to the email `to` (free, checked by the caller), with
/// what hangs off them: their group memberships and contact details follow. The row
/// keeps its `created_at`; its fields are written by the upsert that follows.
pub async fn rename<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    from: &str,
    to: &str,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let run = |sql: &str| {
        exec(
            conn,
            raw(
                backend,
                sql,
                vec![tv(tenant), from.to_owned().into(), to.to_owned().into()],
            ),
        )
    };
    run("UPDATE people SET email = $3 WHERE tenant_id = $1 AND email = $2").await?;
    // A membership the new email already has (a bundle's, naming someone not stored
    // yet) stays; the old email's duplicate of it goes.
    run(
        "DELETE FROM group_members WHERE tenant_id = $1 AND member_kind = 'person' \
         AND member = $2 AND group_id IN (SELECT group_id FROM group_members \
         WHERE tenant_id = $1 AND member_kind = 'person' AND member = $3)",
    )
    .await?;
    run("UPDATE group_members SET member = $3 WHERE tenant_id = $1 \
         AND member_kind = 'person' AND member = $2")
    .await?;
    run("UPDATE contact_details SET person = $3 WHERE tenant_id = $1 AND person = $2").await?;
    Ok(())
}

/// Marks `emails` inactive, as last changed by `run` at `now`.
pub async fn deactivate<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    emails: &[String],
    run: RunId,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    for chunk in emails.chunks(500) {
        let mut values: Vec<Value> =
            vec![false.into(), now.into(), run.to_string().into(), tv(tenant)];
        let keys = if backend == DbBackend::Postgres {
            // Probe by whole primary key (see `people::select_by_email`).
            values.push(chunk.to_vec().into());
            "(SELECT $4, k.email FROM unnest($5::text[]) AS k(email))".to_owned()
        } else {
            values.extend(chunk.iter().map(|e| Value::from(e.clone())));
            let rows: Vec<String> = (5..5 + chunk.len())
                .map(|i| format!("($4, ${i})"))
                .collect();
            format!("(VALUES {})", rows.join(","))
        };
        let sql = format!(
            "UPDATE people SET active = $1, deactivated_at = $2, updated_at = $2, \
             last_run_id = $3 WHERE (tenant_id, email) IN {keys}"
        );
        exec(conn, raw(backend, &sql, values)).await?;
    }
    Ok(())
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
             state = CASE WHEN state = $9 THEN $10 ELSE state END \
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
                RunState::Diffed.into(),
                RunState::Applying.into(),
            ],
        ),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_shared::db::Db;

    fn person(email: &str, fields: &[(Field, &str)], extra: &[(&str, &str)]) -> Person {
        let mut p = Person::new(email.to_owned());
        for (field, value) in fields {
            p.set(*field, value);
        }
        for (k, v) in extra {
            p.extra.insert((*k).to_owned(), (*v).to_owned());
        }
        p
    }

    /// The stored (first name, phone, extra, hash) of `email`.
    async fn stored(
        db: &Db,
        tenant: &TenantId,
        email: &str,
    ) -> (Option<String>, Option<String>, Option<String>, i64) {
        let rows = people::select_by_email(
            db.conn(),
            tenant,
            &[email],
            "p.first_name, p.phone, p.extra, p.row_hash",
            false,
        )
        .await
        .unwrap();
        let row = &rows[0];
        (
            row.try_get_by_index(0).unwrap(),
            row.try_get_by_index(1).unwrap(),
            row.try_get_by_index(2).unwrap(),
            row.try_get_by_index(3).unwrap(),
        )
    }

    #[tokio::test]
    async fn columns_no_person_of_a_batch_has_are_written_as_nulls() {
        let db = Db::connect(&"sqlite::memory:".into()).await.unwrap();
        db.migrate().await.unwrap();
        let tenant = TenantId::new("present-columns").unwrap();
        let (run, now) = (RunId::new(), Utc::now());
        // Only `a` has a first name and an extra attribute; nobody has a phone.
        let a = person(
            "a@x.test",
            &[(Field::FirstName, "Ann \"Q\" O'Neil \\ 😀")],
            &[("Badge", "7")],
        );
        let b = person("b@x.test", &[(Field::LastName, "Bo")], &[]);
        let rows = Rows::encode(&[&a, &b]).unwrap();
        let bit = |f: Field| Field::ALL.iter().position(|x| *x == f).unwrap();
        assert!(rows.present.field(bit(Field::FirstName)));
        assert!(rows.present.field(bit(Field::LastName)));
        assert!(!rows.present.field(bit(Field::Phone)) && rows.present.extra());
        let txn = db.begin_txn().await.unwrap();
        assert_eq!(insert_new(&txn, &tenant, rows, run, now).await.unwrap(), 2);
        txn.commit().await.unwrap();
        let (first, phone, extra, hash) = stored(&db, &tenant, "a@x.test").await;
        assert_eq!(first.as_deref(), Some("Ann \"Q\" O'Neil \\ 😀"));
        assert_eq!(phone, None);
        assert_eq!(extra.as_deref(), Some(r#"{"Badge":"7"}"#));
        assert_eq!(hash, a.content_hash());
        assert_eq!(stored(&db, &tenant, "b@x.test").await.0, None);

        // A batch where nobody has a first name or extra clears them; a phone now set.
        let a2 = person("a@x.test", &[(Field::Phone, "+1 555")], &[]);
        upsert(db.conn(), &tenant, &[&a2], run, now).await.unwrap();
        let (first, phone, extra, hash) = stored(&db, &tenant, "a@x.test").await;
        assert_eq!(
            (first, phone.as_deref(), extra),
            (None, Some("+1 555"), None)
        );
        assert_eq!(hash, a2.content_hash());
    }
}
