//! Identity continuity: a person whose email changed is the same person where an
//! employee id says so.
//!
//! Planning first counts the plan as usual, noting on the way the would-be creations
//! that carry an employee id, the changed rows of active people that carry one, and
//! which stored people the snapshot lists ([`Candidates`]). One indexed query for those
//! employee ids ([`resolve`]) then finds:
//! - **renames**: a would-be creation whose employee id belongs to exactly one stored
//!   person, stored under an email the snapshot does not list (absent from a full file,
//!   not in a delta). That person is moved to the new email (one change of the stored
//!   row: `email` changes, groups and contact details follow) instead of being
//!   deactivated while a new person is created;
//! - **collisions**: a row whose email belongs to an active stored person while its
//!   employee id belongs to another stored person the snapshot does not list (that
//!   person's email would move onto an email already taken). The row is left out, as a
//!   rejected row is (its email's person stays as stored), the other person is kept as
//!   stored too (a full run does not deactivate them), and the row gets an error naming
//!   both people.
//!
//! Both need a stored person the snapshot does not list, so there is no index on
//! employee ids (it cost every write of a person, BENCHMARKS.md): the lookups start from
//! the people left out. Costs: nothing beyond the plan's own pass unless some creation
//! or change carries an employee id and the snapshot leaves some stored person out (a
//! first import, or a full file listing everyone stored, never looks anything up).
//! Then, when few people are left out (at most 1 in [`BY_EMAIL_SHARE`], a full file's
//! leavers), their employee ids are read by email, the primary key, [`ID_CHUNK`] at a
//! time, and the search ends there unless a row carries one of them; otherwise (a delta
//! leaves nearly everyone out) and when it does, one pass over the tenant's people joined
//! to the employee ids asked for ([`holders`]; a million people: about 0.15 s on
//! PostgreSQL). The plan is counted again only when a rename or a collision was found.

use std::collections::{HashMap, HashSet};

use roster_shared::db::{raw, tv};
use roster_shared::model::envelope::RowError;
use roster_shared::model::ids::TenantId;
use roster_shared::sea_orm::{ConnectionTrait, DbBackend, DbErr, Value};
use tracing::info;

use crate::db::{self, IndexEntry};

/// What planning a snapshot noted for identity continuity (see the module's doc).
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// Would-be creations carrying an employee id: (email, employee id).
    pub creations: Vec<(Box<str>, Box<str>)>,
    /// Changed rows of active stored people carrying an employee id: (email, employee
    /// id).
    pub changed: Vec<(Box<str>, Box<str>)>,
    /// Whether the snapshot lists each stored person (by index position).
    pub listed: Vec<bool>,
}

impl Candidates {
    /// Nothing noted yet, for an index of `len` people.
    pub fn new(len: usize) -> Self {
        Candidates {
            listed: vec![false; len],
            ..Candidates::default()
        }
    }

    /// Whether there is nothing to look up.
    pub fn is_empty(&self) -> bool {
        self.creations.is_empty() && self.changed.is_empty()
    }
}

/// What identity continuity changes in a plan: who moves to a new email, which rows are
/// left out, and which stored people are kept as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// New email to the index position of the stored person moving to it.
    renames: HashMap<String, usize>,
    /// Index positions not to deactivate as absent: people moving away, people whose
    /// move was refused.
    kept: HashSet<usize>,
    /// Emails of rows left out (collisions).
    refused: HashSet<String>,
}

impl Identity {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.renames.is_empty() && self.kept.is_empty() && self.refused.is_empty()
    }

    /// The index position of the stored person moving to `email`, if one does.
    pub fn renamed_to(&self, email: &str) -> Option<usize> {
        self.renames.get(email).copied()
    }

    /// Whether the stored person at index position `i` must not be deactivated as
    /// absent.
    pub fn keeps(&self, i: usize) -> bool {
        self.kept.contains(&i)
    }

    /// Whether the row of `email` is left out.
    pub fn refuses(&self, email: &str) -> bool {
        self.refused.contains(email)
    }

    /// Moves the stored person at index position `stored` to `email` (for tests and
    /// [`resolve`]).
    pub fn rename(&mut self, email: &str, stored: usize) {
        self.renames.insert(email.to_owned(), stored);
        self.kept.insert(stored);
    }

    /// Leaves the row of `email` out and keeps the stored person at index position
    /// `other` as stored (for tests and [`resolve`]).
    pub fn refuse(&mut self, email: &str, other: usize) {
        self.refused.insert(email.to_owned());
        self.kept.insert(other);
    }

    /// How many people move to a new email.
    pub fn renames(&self) -> usize {
        self.renames.len()
    }
}

/// People read by email per query when reading the employee ids of those left out.
pub const ID_CHUNK: usize = 1000;

/// The employee ids of the people left out are read by email when they are at most one
/// in this many of the tenant's people; otherwise [`holders`] passes over them all.
/// (An index probe costs about as much as reading a few hundred rows in a pass.)
pub const BY_EMAIL_SHARE: usize = 256;

/// One stored person found by employee id.
#[derive(Debug, Clone)]
struct Holder {
    email: String,
}

/// The stored people of `tenant` holding each of `ids`, by employee id: one pass over
/// the tenant's people (PostgreSQL hash-joins them to the ids; SQLite builds a
/// temporary index of the ids), as no index serves employee ids.
async fn holders<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    ids: &[&str],
) -> Result<HashMap<String, Vec<Holder>>, DbErr> {
    let backend = conn.get_database_backend();
    let (sql, values) = if backend == DbBackend::Postgres {
        let keys: Vec<String> = ids.iter().map(|e| (*e).to_owned()).collect();
        (
            "SELECT p.email, p.employee_id FROM people p \
             JOIN unnest($2::text[]) AS k(id) ON p.employee_id = k.id \
             WHERE p.tenant_id = $1",
            vec![tv(tenant), keys.into()],
        )
    } else {
        let keys = serde_json::to_string(ids).map_err(|e| DbErr::Custom(e.to_string()))?;
        (
            "SELECT email, employee_id FROM people \
             WHERE tenant_id = $1 AND employee_id IN (SELECT value FROM json_each($2))",
            vec![tv(tenant), keys.into()],
        )
    };
    let mut out: HashMap<String, Vec<Holder>> = HashMap::new();
    for row in conn.query_all_raw(raw(backend, sql, values)).await? {
        let id: String = row.try_get_by_index(1)?;
        out.entry(id).or_default().push(Holder {
            email: row.try_get_by_index(0)?,
        });
    }
    Ok(out)
}

/// The employee ids the stored people `emails` of `tenant` hold, read by email (the
/// primary key), [`ID_CHUNK`] people per query.
async fn employee_ids_of<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    emails: &[&str],
) -> Result<HashSet<String>, DbErr> {
    let backend = conn.get_database_backend();
    let mut out = HashSet::new();
    for chunk in emails.chunks(ID_CHUNK) {
        let (sql, values) = if backend == DbBackend::Postgres {
            let keys: Vec<String> = chunk.iter().map(|e| (*e).to_owned()).collect();
            (
                "SELECT employee_id FROM people \
                 WHERE tenant_id = $1 AND email = ANY($2::text[]) AND employee_id IS NOT NULL"
                    .to_owned(),
                vec![tv(tenant), keys.into()],
            )
        } else {
            let mut values: Vec<Value> = vec![tv(tenant)];
            values.extend(chunk.iter().map(|e| Value::from(*e)));
            (
                format!(
                    "SELECT employee_id FROM people \
                     WHERE tenant_id = $1 AND email IN ({}) AND employee_id IS NOT NULL",
                    roster_shared::db::people::placeholders(2, chunk.len())
                ),
                values,
            )
        };
        for row in conn.query_all_raw(raw(backend, &sql, values)).await? {
            out.insert(row.try_get_by_index::<String>(0)?);
        }
    }
    Ok(out)
}

/// Where `email` is in `index`.
fn position(index: &[IndexEntry], email: &str) -> Option<usize> {
    index
        .binary_search_by(|e| e.email.as_bytes().cmp(email.as_bytes()))
        .ok()
}

/// Decides the renames and collisions `candidates` make against the tenant's stored
/// people (see the module's doc), with a row error for each collision beside the email
/// of its row (its line is the snapshot's to tell: [`name_lines`]).
pub async fn resolve<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    index: &[IndexEntry],
    candidates: &Candidates,
) -> Result<(Identity, Vec<(String, RowError)>), DbErr> {
    let mut identity = Identity::default();
    let mut errors = Vec::new();
    if candidates.is_empty() {
        return Ok((identity, errors));
    }
    // Renames and collisions both need a stored person the snapshot leaves out.
    let left_out = candidates.listed.iter().filter(|listed| !**listed).count();
    if left_out == 0 {
        return Ok((identity, errors));
    }
    let mut ids: Vec<&str> = candidates
        .creations
        .iter()
        .chain(&candidates.changed)
        .map(|(_, id)| &**id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if left_out <= index.len() / BY_EMAIL_SHARE {
        // Few left out: only the rows' employee ids one of them holds can matter.
        let emails: Vec<&str> = candidates
            .listed
            .iter()
            .zip(index)
            .filter(|(listed, _)| !**listed)
            .map(|(_, e)| &*e.email)
            .collect();
        let theirs = employee_ids_of(conn, tenant, &emails).await?;
        ids.retain(|id| theirs.contains(*id));
        if ids.is_empty() {
            return Ok((identity, errors));
        }
    }
    let holders = holders(conn, tenant, &ids).await?;
    // Stored people the snapshot does not list, holding `id`.
    let unlisted = |id: &str| -> Vec<(&Holder, usize)> {
        holders
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|h| position(index, &h.email).map(|i| (h, i)))
            .filter(|(_, i)| !candidates.listed[*i])
            .collect()
    };
    // An employee id on two rows of the snapshot names nobody for sure (the parser
    // refuses such files' later rows; this is the differ's own guard).
    let mut rows_per_id: HashMap<&str, usize> = HashMap::new();
    for (_, id) in candidates.creations.iter().chain(&candidates.changed) {
        *rows_per_id.entry(id).or_default() += 1;
    }
    let mut collisions: Vec<(&str, &str, String)> = Vec::new();
    for (email, id) in &candidates.changed {
        if holders
            .get(&**id)
            .is_some_and(|h| h.iter().any(|h| h.email == **email))
        {
            // The row's own stored person holds the id: no one else's.
            continue;
        }
        let others = unlisted(id);
        let Some((other, at)) = others.first() else {
            continue;
        };
        identity.refuse(email, *at);
        collisions.push((email, id, other.email.clone()));
    }
    for (email, id) in &candidates.creations {
        if rows_per_id.get(&**id) != Some(&1) {
            continue;
        }
        let held = holders.get(&**id).map_or(0, Vec::len);
        let others = unlisted(id);
        match others.as_slice() {
            // Exactly one stored person holds the id, and the snapshot leaves them out.
            [(_, at)] if held == 1 => identity.rename(email, *at),
            _ => {}
        }
    }
    if !collisions.is_empty() {
        // The active people whose emails the rows keep, with their employee ids.
        let emails: Vec<&str> = collisions.iter().map(|(e, _, _)| *e).collect();
        let stored = db::fetch(conn, tenant, &emails).await?;
        for (email, id, other) in collisions {
            let theirs = stored
                .get(email)
                .and_then(|p| p.employee_id.as_deref())
                .map_or_else(
                    || "no employee id".to_owned(),
                    |e| format!("employee id {e}"),
                );
            errors.push((
                email.to_owned(),
                RowError::new(
                    None,
                    Some("email".to_owned()),
                    format!(
                        "{EMAIL_TAKEN}{email} (employee id {id}) would move {other} (employee id \
                     {id}) to {email}, which is the email of the active person {email} \
                     ({theirs}); the row was left out and both people stay as they are"
                    ),
                ),
            ));
        }
    }
    if !identity.is_empty() {
        info!(
            renames = identity.renames(),
            collisions = errors.len(),
            "people found by employee id"
        );
    }
    Ok((identity, errors))
}

/// How the message of a row refused for taking another person's email starts.
pub const EMAIL_TAKEN: &str = "email taken: the row of ";

/// Sets the line of each refused row (`(email, error)`, from [`resolve`]) from the
/// snapshot `snapshot` and the lines of its entries `lines` (one per entry, in snapshot
/// order: `BlobStore::lines_key`; 0 or missing: unknown).
pub fn name_lines<R: std::io::Read>(
    refused: Vec<(String, RowError)>,
    snapshot: &mut roster_shared::model::snapshot::SnapshotReader<R>,
    lines: &[u32],
) -> Result<Vec<RowError>, roster_shared::model::snapshot::SnapshotError> {
    let mut wanted: HashMap<&str, u32> = refused.iter().map(|(e, _)| (e.as_str(), 0)).collect();
    let mut left = wanted.len();
    let mut at = 0usize;
    while left > 0
        && let Some(entry) = snapshot.next_ref()?
    {
        if let Some(line) = wanted.get_mut(entry.email)
            && *line == 0
        {
            *line = lines.get(at).copied().unwrap_or(0);
            left -= 1;
        }
        at += 1;
    }
    Ok(refused
        .iter()
        .map(|(email, error)| {
            let mut error = error.clone();
            if let Some(&line) = wanted.get(email.as_str())
                && line > 0
            {
                error.line = Some(u64::from(line));
            }
            error
        })
        .collect())
}
