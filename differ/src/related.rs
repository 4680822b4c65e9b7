//! Planning a run's related records (groups, memberships, contact details) against the
//! stored tables.
//!
//! - groups and memberships in the file are the whole of them: a new id is created, a
//!   changed name renamed (id and members stay), a missing one removed (its memberships
//!   first, even when the file has no memberships and leaves the others as they are);
//! - contact details replace, for each person the file names with integration-owned
//!   rows, that person's integration-owned details: a stored detail equal to a row
//!   stays (no change), the others go, new rows are added. Details added by hand
//!   (integration false) are never removed; a hand-added row equal to a stored detail
//!   adds nothing. A row with an `ID` updates that detail, whichever it is, if it is the
//!   same person's. Rows of one person need not be adjacent.
//! - a detail of a person not in the directory, or an `ID` no detail of that person
//!   has, fails alone with its line.

use std::collections::{BTreeMap, BTreeSet};

use roster_shared::db::related;
use roster_shared::error::StageError;
use roster_shared::model::envelope::RowError;
use roster_shared::model::ids::TenantId;
use roster_shared::model::related::{
    Contact, ContactRow, Group, MemberKind, Membership, RelatedChange, RelatedPlan, RelatedSnapshot,
};
use roster_shared::sea_orm::ConnectionTrait;

/// What is stored of the records a snapshot names.
#[derive(Debug, Default)]
pub struct Stored {
    /// Every group (when the snapshot has groups).
    pub groups: Vec<Group>,
    /// Every membership (when the snapshot has memberships).
    pub memberships: Vec<Membership>,
    /// The details of the persons the snapshot's contact rows name.
    pub contacts: BTreeMap<String, Vec<Contact>>,
}

/// Reads what is stored of the records `snapshot` names.
pub async fn load<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    snapshot: &RelatedSnapshot,
) -> Result<Stored, StageError> {
    let mut stored = Stored::default();
    if snapshot.groups.is_some() {
        stored.groups = related::groups(conn, tenant).await?;
    }
    if snapshot.memberships.is_some() || snapshot.groups.is_some() {
        stored.memberships = related::memberships(conn, tenant).await?;
    }
    if !snapshot.contacts.is_empty() {
        let persons: BTreeSet<&str> = snapshot
            .contacts
            .iter()
            .map(|r| r.person.as_str())
            .collect();
        let persons: Vec<&str> = persons.into_iter().collect();
        stored.contacts = related::contacts_of(conn, tenant, &persons).await?;
    }
    Ok(stored)
}

/// The plan of `snapshot` against `stored`; `known` says whether a person is in the
/// directory; `new_id` makes the id of a new contact detail.
pub fn plan(
    snapshot: &RelatedSnapshot,
    stored: &Stored,
    known: impl Fn(&str) -> bool,
    mut new_id: impl FnMut() -> String,
) -> RelatedPlan {
    let mut out = RelatedPlan::default();
    let mut removed_groups = Vec::new();
    if let Some(groups) = &snapshot.groups {
        let old: BTreeMap<&str, &Group> =
            stored.groups.iter().map(|g| (g.id.as_str(), g)).collect();
        let new: BTreeMap<&str, &Group> = groups.iter().map(|g| (g.id.as_str(), g)).collect();
        for (id, group) in &new {
            match old.get(id) {
                None => out.changes.push(RelatedChange::GroupCreated {
                    group: (*group).clone(),
                }),
                Some(was) if was.name != group.name => {
                    out.changes.push(RelatedChange::GroupRenamed {
                        id: (*id).to_owned(),
                        from: was.name.clone(),
                        to: group.name.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        for (id, group) in &old {
            if !new.contains_key(id) {
                removed_groups.push(RelatedChange::GroupRemoved {
                    group: (*group).clone(),
                });
            }
        }
    }
    if let Some(memberships) = &snapshot.memberships {
        let old: BTreeMap<_, &Membership> =
            stored.memberships.iter().map(|m| (m.key(), m)).collect();
        let new: BTreeMap<_, &Membership> = memberships.iter().map(|m| (m.key(), m)).collect();
        for (key, was) in &old {
            if !new.contains_key(key) {
                out.changes.push(RelatedChange::MembershipRemoved {
                    membership: (*was).clone(),
                });
            }
        }
        for (key, m) in &new {
            match old.get(key) {
                None => out.changes.push(RelatedChange::MembershipAdded {
                    membership: (*m).clone(),
                }),
                Some(was) if was.manager != m.manager => {
                    out.changes.push(RelatedChange::MembershipChanged {
                        membership: (*m).clone(),
                        was_manager: was.manager,
                    });
                }
                Some(_) => {}
            }
        }
    }
    if snapshot.memberships.is_none() {
        // No mappings: memberships stay, but those of a removed group go with it.
        let gone: BTreeSet<&str> = removed_groups
            .iter()
            .filter_map(|c| match c {
                RelatedChange::GroupRemoved { group } => Some(group.id.as_str()),
                _ => None,
            })
            .collect();
        for m in &stored.memberships {
            let subgroup_gone = m.kind == MemberKind::Group && gone.contains(m.member.as_str());
            if gone.contains(m.group.as_str()) || subgroup_gone {
                out.changes.push(RelatedChange::MembershipRemoved {
                    membership: m.clone(),
                });
            }
        }
    }
    // Memberships leave before their groups do.
    out.changes.append(&mut removed_groups);
    plan_contacts(snapshot, stored, &known, &mut new_id, &mut out);
    out
}

fn plan_contacts(
    snapshot: &RelatedSnapshot,
    stored: &Stored,
    known: &impl Fn(&str) -> bool,
    new_id: &mut impl FnMut() -> String,
    out: &mut RelatedPlan,
) {
    // Grouped by person, in file order within each.
    let mut by_person: BTreeMap<&str, Vec<&ContactRow>> = BTreeMap::new();
    for row in &snapshot.contacts {
        by_person.entry(&row.person).or_default().push(row);
    }
    let none = Vec::new();
    for (person, rows) in by_person {
        if !known(person) {
            for row in rows {
                out.errors.push(RowError::new(
                    Some(row.line),
                    Some("Person".into()),
                    format!("{person} is not in the directory: import the people file first"),
                ));
            }
            continue;
        }
        let details = stored.contacts.get(person).unwrap_or(&none);
        // Stored details a row accounts for (updated by ID, or equal to a row).
        let mut kept: BTreeSet<&str> = BTreeSet::new();
        let mut additions: Vec<&ContactRow> = Vec::new();
        for row in &rows {
            let Some(id) = &row.id else {
                additions.push(row);
                continue;
            };
            let Some(old) = details.iter().find(|d| &d.id == id) else {
                out.errors.push(RowError::new(
                    Some(row.line),
                    Some("ID".into()),
                    format!("{person} has no contact detail with ID {id}"),
                ));
                continue;
            };
            if !kept.insert(&old.id) {
                out.errors.push(RowError::new(
                    Some(row.line),
                    Some("ID".into()),
                    format!("contact detail {id} is updated by an earlier row already"),
                ));
                continue;
            }
            let new = Contact {
                id: id.clone(),
                person: person.to_owned(),
                content: row.content.clone(),
                integration: row.integration,
            };
            if &new != old {
                out.changes.push(RelatedChange::ContactUpdated {
                    old: Box::new(old.clone()),
                    new: Box::new(new),
                });
            }
        }
        for row in &additions {
            // An equal stored detail (not accounted for yet) is this row.
            let same = details.iter().find(|d| {
                !kept.contains(d.id.as_str())
                    && d.integration == row.integration
                    && d.content == row.content
            });
            match same {
                Some(d) => {
                    kept.insert(&d.id);
                }
                None => out.changes.push(RelatedChange::ContactAdded {
                    contact: Contact {
                        id: new_id(),
                        person: person.to_owned(),
                        content: row.content.clone(),
                        integration: row.integration,
                    },
                }),
            }
        }
        // Integration rows replace the integration-owned details the rows do not keep.
        if rows.iter().any(|r| r.integration) {
            for d in details {
                if d.integration && !kept.contains(d.id.as_str()) {
                    out.changes
                        .push(RelatedChange::ContactRemoved { contact: d.clone() });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use roster_shared::model::related::{ContactContent, RelatedCounts};

    use super::*;

    fn phone(uri: &str) -> ContactContent {
        ContactContent {
            protocol: Some("telephone".into()),
            uri: Some(uri.into()),
            ..ContactContent::default()
        }
    }

    fn row(line: u64, person: &str, uri: &str, integration: bool) -> ContactRow {
        ContactRow {
            line,
            id: None,
            person: person.into(),
            content: phone(uri),
            integration,
        }
    }

    fn stored(id: &str, person: &str, uri: &str, integration: bool) -> Contact {
        Contact {
            id: id.into(),
            person: person.into(),
            content: phone(uri),
            integration,
        }
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("new{n}")
        }
    }

    #[test]
    fn integration_rows_replace_integration_details_and_keep_manual_ones() {
        let snapshot = RelatedSnapshot {
            contacts: vec![
                row(2, "a@x.com", "111", true),
                row(3, "b@x.com", "999", true),
                // Not adjacent to a@x.com's first row: still a@x.com's.
                row(4, "a@x.com", "222", true),
            ],
            ..RelatedSnapshot::default()
        };
        let stored = Stored {
            contacts: BTreeMap::from([(
                "a@x.com".to_owned(),
                vec![
                    stored("s1", "a@x.com", "111", true),
                    stored("s2", "a@x.com", "000", true),
                    stored("m1", "a@x.com", "555", false),
                ],
            )]),
            ..Stored::default()
        };
        let plan = plan(&snapshot, &stored, |_| true, ids());
        assert!(plan.errors.is_empty());
        let mut summary: Vec<String> = plan
            .changes
            .iter()
            .map(|c| match c {
                RelatedChange::ContactAdded { contact } => {
                    format!(
                        "add {} {}",
                        contact.person,
                        contact.content.uri.as_deref().unwrap()
                    )
                }
                RelatedChange::ContactRemoved { contact } => format!("remove {}", contact.id),
                other => format!("{other:?}"),
            })
            .collect();
        summary.sort();
        assert_eq!(
            summary,
            ["add a@x.com 222", "add b@x.com 999", "remove s2"],
            "111 stays, 000 goes, the manual 555 stays, both of a@x.com's rows count"
        );
    }

    #[test]
    fn manual_rows_add_once_and_remove_nothing() {
        let snapshot = RelatedSnapshot {
            contacts: vec![
                row(2, "a@x.com", "555", false),
                row(3, "a@x.com", "666", false),
            ],
            ..RelatedSnapshot::default()
        };
        let stored = Stored {
            contacts: BTreeMap::from([(
                "a@x.com".to_owned(),
                vec![
                    stored("m1", "a@x.com", "555", false),
                    stored("s1", "a@x.com", "111", true),
                ],
            )]),
            ..Stored::default()
        };
        let plan = plan(&snapshot, &stored, |_| true, ids());
        assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
        assert!(
            matches!(&plan.changes[0], RelatedChange::ContactAdded { contact } if contact.content.uri.as_deref() == Some("666"))
        );
    }

    #[test]
    fn an_id_updates_that_detail_and_unknown_ids_and_people_fail_alone() {
        let mut by_id = row(2, "a@x.com", "777", true);
        by_id.id = Some("s1".into());
        let mut wrong = row(3, "a@x.com", "888", true);
        wrong.id = Some("other".into());
        let snapshot = RelatedSnapshot {
            contacts: vec![by_id, wrong, row(4, "ghost@x.com", "1", true)],
            ..RelatedSnapshot::default()
        };
        let stored = Stored {
            contacts: BTreeMap::from([(
                "a@x.com".to_owned(),
                vec![stored("s1", "a@x.com", "111", true)],
            )]),
            ..Stored::default()
        };
        let plan = plan(&snapshot, &stored, |p| p == "a@x.com", ids());
        assert_eq!(plan.changes.len(), 1);
        assert!(
            matches!(&plan.changes[0], RelatedChange::ContactUpdated { old, new } if old.id == "s1" && new.content.uri.as_deref() == Some("777"))
        );
        let lines: Vec<_> = plan.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [Some(3), Some(4)]);
    }

    #[test]
    fn a_renamed_group_keeps_its_id_and_members() {
        let g = |id: &str, name: &str| Group {
            id: id.into(),
            name: name.into(),
        };
        let m = |group: &str, member: &str, manager: bool| Membership {
            group: group.into(),
            kind: MemberKind::Person,
            member: member.into(),
            manager,
        };
        let snapshot = RelatedSnapshot {
            groups: Some(vec![g("1", "Sales EMEA"), g("3", "New")]),
            memberships: Some(vec![m("1", "a@x.com", true), m("3", "b@x.com", false)]),
            contacts: Vec::new(),
        };
        let stored = Stored {
            groups: vec![g("1", "Sales"), g("2", "Old")],
            memberships: vec![m("1", "a@x.com", false), m("2", "b@x.com", false)],
            ..Stored::default()
        };
        let plan = plan(&snapshot, &stored, |_| true, ids());
        let counts = RelatedCounts::of(&plan.changes);
        assert_eq!(
            (
                counts.groups_created,
                counts.groups_renamed,
                counts.groups_removed,
                counts.memberships_added,
                counts.memberships_removed,
                counts.memberships_changed
            ),
            (1, 1, 1, 1, 1, 1)
        );
        let removed_group = plan
            .changes
            .iter()
            .position(|c| matches!(c, RelatedChange::GroupRemoved { .. }))
            .unwrap();
        let removed_membership = plan
            .changes
            .iter()
            .position(|c| matches!(c, RelatedChange::MembershipRemoved { .. }))
            .unwrap();
        assert!(removed_membership < removed_group, "members leave first");

        // Without mappings, memberships stay but for those of the removed group.
        let snapshot = RelatedSnapshot {
            groups: Some(vec![g("1", "Sales")]),
            memberships: None,
            contacts: Vec::new(),
        };
        let kept = super::plan(&snapshot, &stored, |_| true, ids());
        let counts = RelatedCounts::of(&kept.changes);
        assert_eq!(
            (
                counts.groups_removed,
                counts.memberships_removed,
                kept.changes.len()
            ),
            (1, 1, 2),
            "{:?}",
            kept.changes
        );
    }
}
