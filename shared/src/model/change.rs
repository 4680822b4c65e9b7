//! What the differ decides and the writer applies: one change per person, each naming the
//! stored state it expects to replace, so a stale or repeated change can be recognised.

use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;

use crate::model::person::Person;
use crate::model::record::{Record, RecordField};

/// The state of a stored person that a change is checked against: the content hash
/// ([`Person::content_hash`]) and the activity flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RowState {
    /// [`Person::content_hash`] of the row.
    pub hash: i64,
    /// Whether the row is active.
    pub active: bool,
}

impl RowState {
    /// The state `record` would have once stored.
    pub fn of<R: Record>(record: &R) -> Self {
        RowState {
            hash: record.content_hash(),
            active: record.active(),
        }
    }
}

crate::text_enum! {
    /// What kind of change a person goes through.
    pub enum ChangeKind as "change kind" {
        /// A person not stored before.
        Created = "created",
        /// A stored person whose fields changed; activity did not.
        Updated = "updated",
        /// An active person becomes inactive (fields may change too).
        Deactivated = "deactivated",
        /// An inactive person becomes active again (fields may change too).
        Reactivated = "reactivated",
    }
}

impl ChangeKind {
    /// The event announcing this kind of change (`employee.created`, ...); its routing
    /// key on the events exchange.
    pub fn event_name(self) -> &'static str {
        match self {
            ChangeKind::Created => "employee.created",
            ChangeKind::Updated => "employee.updated",
            ChangeKind::Deactivated => "employee.deactivated",
            ChangeKind::Reactivated => "employee.reactivated",
        }
    }
}

/// One field that changed, with its old and new values (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field's name ([`crate::model::person::Field::name`]) or `extra.<header>`.
    pub field: String,
    /// Value before.
    pub old: Option<String>,
    /// Value after.
    pub new: Option<String>,
}

/// One change to one person.
///
/// Promise: applying it is allowed only where the stored row is in state `expected`
/// (`None`: no row); a row already in state `target` means it was applied before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What happens to the person.
    pub kind: ChangeKind,
    /// The person's key.
    pub email: String,
    /// The stored state this change replaces; `None` for a creation.
    pub expected: Option<RowState>,
    /// The state after the change.
    pub target: RowState,
    /// The full record after the change; `None` for a deactivation of someone absent
    /// from a full snapshot, where only activity changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    /// The fields that changed (empty for creations and plain deactivations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<FieldChange>,
    /// The person's stored key before this change, when the change moves a stored person
    /// to a new email (same employee id): `expected` is then the state of the row stored
    /// under this old email, and `email` the key it moves to (`changed` names `email`).
    /// Absent from older messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
}

/// How a change meets the stored row it was planned against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applicability {
    /// The row is in the expected state: apply it.
    Apply,
    /// The row is already in the target state: applied before, nothing to do.
    AlreadyApplied,
    /// The row is in some other state: the change is stale and must be re-planned.
    Conflict,
}

impl Change {
    /// Compares the stored row's state (`None`: no row) with what this change expects.
    pub fn check(&self, stored: Option<RowState>) -> Applicability {
        if stored == self.expected {
            Applicability::Apply
        } else if stored == Some(self.target) {
            Applicability::AlreadyApplied
        } else {
            Applicability::Conflict
        }
    }
}

impl Change {
    /// [`Change::check`] against the stored rows, found by email with `stored`: a
    /// change that moves a person to a new email ([`Change::renamed_from`]) applies where
    /// the old row is in the expected state and the new email is free, and was applied
    /// before where the old row is gone and the new one is in the target state.
    pub fn check_with(&self, stored: impl Fn(&str) -> Option<RowState>) -> Applicability {
        let Some(old) = &self.renamed_from else {
            return self.check(stored(&self.email));
        };
        match (stored(old), stored(&self.email)) {
            (from, None) if from == self.expected => Applicability::Apply,
            (None, Some(now)) if now == self.target => Applicability::AlreadyApplied,
            _ => Applicability::Conflict,
        }
    }
}

/// Counts of each kind of change, as runs and summaries report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    /// People created.
    pub created: u64,
    /// People updated.
    pub updated: u64,
    /// People deactivated.
    pub deactivated: u64,
    /// People reactivated.
    pub reactivated: u64,
}

impl ChangeCounts {
    /// Adds one change of `kind`.
    pub fn add(&mut self, kind: ChangeKind) {
        *self.get_mut(kind) += 1;
    }

    /// The count for `kind`.
    pub fn get(&self, kind: ChangeKind) -> u64 {
        match kind {
            ChangeKind::Created => self.created,
            ChangeKind::Updated => self.updated,
            ChangeKind::Deactivated => self.deactivated,
            ChangeKind::Reactivated => self.reactivated,
        }
    }

    fn get_mut(&mut self, kind: ChangeKind) -> &mut u64 {
        match kind {
            ChangeKind::Created => &mut self.created,
            ChangeKind::Updated => &mut self.updated,
            ChangeKind::Deactivated => &mut self.deactivated,
            ChangeKind::Reactivated => &mut self.reactivated,
        }
    }

    /// All changes together.
    pub fn total(&self) -> u64 {
        self.created + self.updated + self.deactivated + self.reactivated
    }
}

/// The fields (and extra attributes, as `extra.<name>`) whose values differ between
/// `before` and `after`, with both values (`None`: absent). Activity is included when it
/// changed. Fields come in table order, then extras by name.
pub fn field_changes<R: Record>(before: &R, after: &R) -> Vec<FieldChange> {
    let present = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let mut out = Vec::new();
    for field in R::Field::ALL {
        let (old, new) = (before.display(*field), after.display(*field));
        if old != new {
            out.push(FieldChange {
                field: field.name().to_owned(),
                old: present(old),
                new: present(new),
            });
        }
    }
    let names: BTreeSet<&String> = before.extra().keys().chain(after.extra().keys()).collect();
    for name in names {
        let (old, new) = (before.extra().get(name), after.extra().get(name));
        if old != new {
            out.push(FieldChange {
                field: format!("extra.{name}"),
                old: old.cloned(),
                new: new.cloned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(hash: i64, active: bool) -> RowState {
        RowState { hash, active }
    }

    #[test]
    fn check_sorts_apply_already_and_conflict() {
        let update = Change {
            kind: ChangeKind::Updated,
            email: "a@x.com".into(),
            expected: Some(state(1, true)),
            target: state(2, true),
            person: None,
            changed: vec![],
            renamed_from: None,
        };
        assert_eq!(update.check(Some(state(1, true))), Applicability::Apply);
        assert_eq!(
            update.check(Some(state(2, true))),
            Applicability::AlreadyApplied
        );
        assert_eq!(update.check(Some(state(1, false))), Applicability::Conflict);
        assert_eq!(update.check(None), Applicability::Conflict);

        let create = Change {
            expected: None,
            kind: ChangeKind::Created,
            ..update
        };
        assert_eq!(create.check(None), Applicability::Apply);
        assert_eq!(
            create.check(Some(state(2, true))),
            Applicability::AlreadyApplied
        );
        assert_eq!(create.check(Some(state(3, true))), Applicability::Conflict);
    }

    #[test]
    fn a_rename_checks_the_old_row_and_the_new_email() {
        let rename = Change {
            kind: ChangeKind::Updated,
            email: "b@x.com".into(),
            expected: Some(state(1, true)),
            target: state(2, true),
            person: None,
            changed: vec![],
            renamed_from: Some("a@x.com".into()),
        };
        let rows = |a: Option<RowState>, b: Option<RowState>| {
            move |email: &str| if email == "a@x.com" { a } else { b }
        };
        assert_eq!(
            rename.check_with(rows(Some(state(1, true)), None)),
            Applicability::Apply
        );
        assert_eq!(
            rename.check_with(rows(None, Some(state(2, true)))),
            Applicability::AlreadyApplied
        );
        // The new email taken meanwhile, or the old row moved on: stale.
        assert_eq!(
            rename.check_with(rows(Some(state(1, true)), Some(state(5, true)))),
            Applicability::Conflict
        );
        assert_eq!(
            rename.check_with(rows(Some(state(3, true)), None)),
            Applicability::Conflict
        );
        assert_eq!(rename.check_with(rows(None, None)), Applicability::Conflict);
        // Without a rename, as `check`.
        let plain = Change {
            renamed_from: None,
            ..rename
        };
        assert_eq!(
            plain.check_with(rows(None, Some(state(1, true)))),
            Applicability::Apply
        );
    }
}
