//! The tables of related records: `directory_groups`, `group_members` and
//! `contact_details` (see the migration `m20261130_000010_related`). Reading them for the
//! differ, the directory export and the CLI, and applying planned
//! [`RelatedChange`]s, each only where the stored row is still what the plan saw.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Value};

use super::{exec, raw, tv};
use crate::model::ids::TenantId;
use crate::model::related::{
    Address, Contact, ContactContent, Group, MemberKind, Membership, RelatedChange,
};

/// The tenant's groups, by id.
pub async fn groups<C: ConnectionTrait>(conn: &C, tenant: &TenantId) -> Result<Vec<Group>, DbErr> {
    let rows = conn
        .query_all_raw(raw(
            conn.get_database_backend(),
            "SELECT id, name FROM directory_groups WHERE tenant_id = $1 ORDER BY id",
            vec![tv(tenant)],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Group {
                id: r.try_get_by("id")?,
                name: r.try_get_by("name")?,
            })
        })
        .collect()
}

/// The tenant's memberships, sorted by group, kind and member.
pub async fn memberships<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
) -> Result<Vec<Membership>, DbErr> {
    let rows = conn
        .query_all_raw(raw(
            conn.get_database_backend(),
            "SELECT group_id, member_kind, member, manager FROM group_members \
             WHERE tenant_id = $1 ORDER BY group_id, member_kind, member",
            vec![tv(tenant)],
        ))
        .await?;
    let mut out: Vec<Membership> = rows
        .iter()
        .map(|r| {
            Ok(Membership {
                group: r.try_get_by("group_id")?,
                kind: MemberKind::from_name(&r.try_get_by::<String, _>("member_kind")?),
                member: r.try_get_by("member")?,
                manager: r.try_get_by("manager")?,
            })
        })
        .collect::<Result<_, DbErr>>()?;
    // The database's collation may order otherwise than the differ's merge expects.
    out.sort();
    Ok(out)
}

const CONTACT_COLUMNS: &str = "id, person, protocol, label, uri, address_label, address, \
     address_city, address_state, address_zip, address_country, integration";

fn contact_from_row(r: &QueryResult) -> Result<Contact, DbErr> {
    let address = Address {
        label: r.try_get_by("address_label")?,
        address: r.try_get_by("address")?,
        city: r.try_get_by("address_city")?,
        state: r.try_get_by("address_state")?,
        zip: r.try_get_by("address_zip")?,
        country: r.try_get_by("address_country")?,
    };
    Ok(Contact {
        id: r.try_get_by("id")?,
        person: r.try_get_by("person")?,
        content: ContactContent {
            protocol: r.try_get_by("protocol")?,
            label: r.try_get_by("label")?,
            uri: r.try_get_by("uri")?,
            address: (!address.is_empty()).then_some(address),
        },
        integration: r.try_get_by("integration")?,
    })
}

/// The tenant's contact details, of one person or of everyone, by person then id.
pub async fn contacts<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    person: Option<&str>,
) -> Result<Vec<Contact>, DbErr> {
    let (filter, mut values) = (
        if person.is_some() {
            " AND person = $2"
        } else {
            ""
        },
        vec![tv(tenant)],
    );
    if let Some(p) = person {
        values.push(p.into());
    }
    let rows = conn
        .query_all_raw(raw(
            conn.get_database_backend(),
            &format!(
                "SELECT {CONTACT_COLUMNS} FROM contact_details WHERE tenant_id = $1{filter} \
                 ORDER BY person, id"
            ),
            values,
        ))
        .await?;
    rows.iter().map(contact_from_row).collect()
}

/// Persons named in one query, at most.
const PERSONS_AT_ONCE: usize = 500;

/// The contact details of `persons`, by person.
pub async fn contacts_of<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    persons: &[&str],
) -> Result<BTreeMap<String, Vec<Contact>>, DbErr> {
    let mut out: BTreeMap<String, Vec<Contact>> = BTreeMap::new();
    for chunk in persons.chunks(PERSONS_AT_ONCE) {
        let list = super::people::placeholders(2, chunk.len());
        let mut values = vec![tv(tenant)];
        values.extend(chunk.iter().map(|p| Value::from(*p)));
        let rows = conn
            .query_all_raw(raw(
                conn.get_database_backend(),
                &format!(
                    "SELECT {CONTACT_COLUMNS} FROM contact_details \
                     WHERE tenant_id = $1 AND person IN ({list}) ORDER BY person, id"
                ),
                values,
            ))
            .await?;
        for row in &rows {
            let contact = contact_from_row(row)?;
            out.entry(contact.person.clone()).or_default().push(contact);
        }
    }
    Ok(out)
}

/// One contact detail by id.
pub async fn contact<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<Contact>, DbErr> {
    let row = conn
        .query_one_raw(raw(
            conn.get_database_backend(),
            &format!(
                "SELECT {CONTACT_COLUMNS} FROM contact_details WHERE tenant_id = $1 AND id = $2"
            ),
            vec![tv(tenant), id.into()],
        ))
        .await?;
    row.as_ref().map(contact_from_row).transpose()
}

/// The contact's content columns and their values, in [`CONTACT_COLUMNS`] order after
/// `id` and `person`.
fn content_values(c: &Contact) -> [(&'static str, Value); 10] {
    let a = c.content.address.clone().unwrap_or_default();
    let text = |v: &Option<String>| Value::String(v.clone());
    [
        ("protocol", text(&c.content.protocol)),
        ("label", text(&c.content.label)),
        ("uri", text(&c.content.uri)),
        ("address_label", text(&a.label)),
        ("address", text(&a.address)),
        ("address_city", text(&a.city)),
        ("address_state", text(&a.state)),
        ("address_zip", text(&a.zip)),
        ("address_country", text(&a.country)),
        ("integration", c.integration.into()),
    ]
}

/// `column = $n` for a value that may be NULL, in the backend's null-safe equality.
fn same(backend: DbBackend, column: &str, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("{column} IS NOT DISTINCT FROM ${n}"),
        _ => format!("{column} IS ${n}"),
    }
}

/// Where the stored detail `c` still is exactly `c`: the condition from `$first` on, and
/// its values.
fn where_stored(backend: DbBackend, c: &Contact, first: usize) -> (String, Vec<Value>) {
    let mut conds = vec![format!("id = ${first}"), format!("person = ${}", first + 1)];
    let mut values: Vec<Value> = vec![c.id.clone().into(), c.person.clone().into()];
    for (i, (column, value)) in content_values(c).into_iter().enumerate() {
        conds.push(same(backend, column, first + 2 + i));
        values.push(value);
    }
    (conds.join(" AND "), values)
}

/// Stores a new contact detail. Returns false when its id is taken.
pub async fn insert_contact<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    c: &Contact,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let mut values = vec![tv(tenant), c.id.clone().into(), c.person.clone().into()];
    values.extend(content_values(c).into_iter().map(|(_, v)| v));
    values.push(now.into());
    let n = exec(
        conn,
        raw(
            conn.get_database_backend(),
            &format!(
                "INSERT INTO contact_details (tenant_id, {CONTACT_COLUMNS}, updated_at) VALUES \
                 ({}) ON CONFLICT (tenant_id, id) DO NOTHING",
                super::people::placeholders(1, 14)
            ),
            values,
        ),
    )
    .await?;
    Ok(n == 1)
}

/// Removes the detail `c` if it is stored exactly so. Returns whether it was.
pub async fn delete_contact<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    c: &Contact,
) -> Result<bool, DbErr> {
    let backend = conn.get_database_backend();
    let (cond, mut values) = where_stored(backend, c, 2);
    let mut all = vec![tv(tenant)];
    all.append(&mut values);
    let n = exec(
        conn,
        raw(
            backend,
            &format!("DELETE FROM contact_details WHERE tenant_id = $1 AND {cond}"),
            all,
        ),
    )
    .await?;
    Ok(n == 1)
}

/// Replaces the detail `old` by `new` (same id) if `old` is stored exactly so.
async fn update_contact<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    old: &Contact,
    new: &Contact,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let backend = conn.get_database_backend();
    let content = content_values(new);
    let sets: Vec<String> = content
        .iter()
        .enumerate()
        .map(|(i, (column, _))| format!("{column} = ${}", i + 1))
        .collect();
    let mut values: Vec<Value> = content.into_iter().map(|(_, v)| v).collect();
    values.push(now.into());
    values.push(tv(tenant));
    let (cond, mut old_values) = where_stored(backend, old, 13);
    values.append(&mut old_values);
    let n = exec(
        conn,
        raw(
            backend,
            &format!(
                "UPDATE contact_details SET {}, updated_at = $11 WHERE tenant_id = $12 AND {cond}",
                sets.join(", ")
            ),
            values,
        ),
    )
    .await?;
    Ok(n == 1)
}

/// Applies `changes` in order, each only where the stored row is what the plan saw.
/// Returns how many found the tables moved (then the caller rolls everything back and
/// plans again).
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    changes: &[RelatedChange],
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let mut conflicts = 0;
    for change in changes {
        let done = match change {
            RelatedChange::GroupCreated { group } => {
                exec(
                    conn,
                    raw(
                        backend,
                        "INSERT INTO directory_groups (tenant_id, id, name, updated_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, id) DO NOTHING",
                        vec![
                            tv(tenant),
                            group.id.clone().into(),
                            group.name.clone().into(),
                            now.into(),
                        ],
                    ),
                )
                .await?
                    == 1
            }
            RelatedChange::GroupRenamed { id, from, to } => {
                exec(
                    conn,
                    raw(
                        backend,
                        "UPDATE directory_groups SET name = $1, updated_at = $2 \
                         WHERE tenant_id = $3 AND id = $4 AND name = $5",
                        vec![
                            to.clone().into(),
                            now.into(),
                            tv(tenant),
                            id.clone().into(),
                            from.clone().into(),
                        ],
                    ),
                )
                .await?
                    == 1
            }
            RelatedChange::GroupRemoved { group } => {
                // Whatever memberships still name it go with it.
                exec(
                    conn,
                    raw(
                        backend,
                        "DELETE FROM group_members WHERE tenant_id = $1 AND (group_id = $2 \
                         OR (member_kind = 'group' AND member = $2))",
                        vec![tv(tenant), group.id.clone().into()],
                    ),
                )
                .await?;
                exec(
                    conn,
                    raw(
                        backend,
                        "DELETE FROM directory_groups WHERE tenant_id = $1 AND id = $2 \
                         AND name = $3",
                        vec![
                            tv(tenant),
                            group.id.clone().into(),
                            group.name.clone().into(),
                        ],
                    ),
                )
                .await?
                    == 1
            }
            RelatedChange::MembershipAdded { membership: m } => {
                exec(
                    conn,
                    raw(
                        backend,
                        "INSERT INTO group_members (tenant_id, group_id, member_kind, member, \
                         manager, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (tenant_id, group_id, member_kind, member) DO NOTHING",
                        vec![
                            tv(tenant),
                            m.group.clone().into(),
                            m.kind.name().into(),
                            m.member.clone().into(),
                            m.manager.into(),
                            now.into(),
                        ],
                    ),
                )
                .await?
                    == 1
            }
            RelatedChange::MembershipRemoved { membership: m } => {
                exec(
                    conn,
                    raw(
                        backend,
                        "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 \
                         AND member_kind = $3 AND member = $4 AND manager = $5",
                        vec![
                            tv(tenant),
                            m.group.clone().into(),
                            m.kind.name().into(),
                            m.member.clone().into(),
                            m.manager.into(),
                        ],
                    ),
                )
                .await?
                    == 1
            }
            RelatedChange::MembershipChanged {
                membership: m,
                was_manager,
            } => {
                exec(
                    conn,
                    raw(
                        backend,
                        "UPDATE group_members SET manager = $1, updated_at = $2 \
                         WHERE tenant_id = $3 AND group_id = $4 AND member_kind = $5 \
                         AND member = $6 AND manager = $7",
                        vec![
                            m.manager.into(),
                            now.into(),
                            tv(tenant),
                            m.group.clone().into(),
                            m.kind.name().into(),
                            m.member.clone().into(),
                            (*was_manager).into(),
                        ],
                    ),
                )
                .await?
                    == 1
            }
            RelatedChange::ContactAdded { contact } => {
                insert_contact(conn, tenant, contact, now).await?
            }
            RelatedChange::ContactUpdated { old, new } => {
                update_contact(conn, tenant, old, new, now).await?
            }
            RelatedChange::ContactRemoved { contact } => {
                delete_contact(conn, tenant, contact).await?
            }
        };
        if !done {
            conflicts += 1;
        }
    }
    Ok(conflicts)
}

/// Each person's groups (id, name, manager flag), for the directory export.
pub async fn groups_by_person<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
) -> Result<BTreeMap<String, Vec<(Group, bool)>>, DbErr> {
    let names: BTreeMap<String, String> = groups(conn, tenant)
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let mut out: BTreeMap<String, Vec<(Group, bool)>> = BTreeMap::new();
    for m in memberships(conn, tenant).await? {
        if m.kind != MemberKind::Person {
            continue;
        }
        let name = names.get(&m.group).cloned().unwrap_or_default();
        out.entry(m.member)
            .or_default()
            .push((Group { id: m.group, name }, m.manager));
    }
    Ok(out)
}
