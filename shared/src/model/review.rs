//! What a run would do, person by person and field by field, as a reviewer reads it: the
//! list `roster runs show RUN --changes`, `roster import --dry-run --changes` and the
//! import API's review show alike, in text or as JSON:
//!
//! `{"run", "state", "held_by": [brake names], "totals": {kind: n}, "changes": [{"email",
//! "kind", "fields": [{"field", "old", "new"}]}]}`.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::model::change::{Change, ChangeKind, FieldChange, field_changes};
use crate::model::person::Person;
use crate::model::safety::BrakeName;

/// One person's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewChange {
    /// The person (after the change, for a changed email).
    pub email: String,
    /// Created, updated, deactivated or reactivated.
    pub kind: ChangeKind,
    /// The fields that change, with their values before and after (`None`: empty). A
    /// creation lists every field it sets.
    pub fields: Vec<FieldChange>,
}

impl ReviewChange {
    /// The review of a planned change.
    pub fn of(change: &Change) -> Self {
        let fields = match (&change.person, change.kind) {
            (Some(person), ChangeKind::Created) => {
                field_changes(&Person::new(person.email.clone()), person)
            }
            _ => change.changed.clone(),
        };
        ReviewChange {
            email: change.email.clone(),
            kind: change.kind,
            fields,
        }
    }
}

/// The whole list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeList {
    /// The run (`None`: a dry run of a local file, which makes no run).
    pub run: Option<String>,
    /// The run's state (`planned` for a dry run).
    pub state: String,
    /// The brakes that hold it (or would).
    pub held_by: Vec<BrakeName>,
    /// Changes by kind: every kind, zero included.
    pub totals: BTreeMap<ChangeKind, u64>,
    /// Every change, in email order.
    pub changes: Vec<ReviewChange>,
}

impl ChangeList {
    /// An empty list for `run` in `state`.
    pub fn new(run: Option<String>, state: &str, held_by: Vec<BrakeName>) -> Self {
        ChangeList {
            run,
            state: state.to_owned(),
            held_by,
            totals: ChangeKind::ALL.iter().map(|k| (*k, 0)).collect(),
            changes: Vec::new(),
        }
    }

    /// Adds one change.
    pub fn push(&mut self, change: &Change) {
        *self.totals.entry(change.kind).or_default() += 1;
        self.changes.push(ReviewChange::of(change));
    }

    /// Writes the list for a person to read: a header, the totals, then each change with
    /// its fields (`old -> new`, `-` for empty).
    pub fn write_text<W: Write>(&self, out: &mut W) -> io::Result<()> {
        match &self.run {
            Some(run) => writeln!(out, "run {run}: {}", self.state)?,
            None => writeln!(out, "dry run: {}", self.state)?,
        }
        if !self.held_by.is_empty() {
            let names: Vec<&str> = self.held_by.iter().map(|b| b.name()).collect();
            writeln!(out, "held by: {}", names.join(", "))?;
        }
        let totals: Vec<String> = self
            .totals
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        writeln!(out, "totals: {}", totals.join(", "))?;
        for change in &self.changes {
            writeln!(out, "{:<12} {}", change.kind.name(), change.email)?;
            for f in &change.fields {
                writeln!(
                    out,
                    "    {}: {} -> {}",
                    f.field,
                    f.old.as_deref().unwrap_or("-"),
                    f.new.as_deref().unwrap_or("-")
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::change::RowState;
    use crate::model::person::Field;

    use super::*;

    #[test]
    fn creations_list_what_they_set_and_totals_count_every_kind() {
        let mut person = Person::new("a@x.com".into());
        person.set(Field::Department, "Sales");
        let created = Change {
            kind: ChangeKind::Created,
            email: "a@x.com".into(),
            expected: None,
            target: RowState::of(&person),
            person: Some(person),
            changed: vec![],
            renamed_from: None,
        };
        let mut list = ChangeList::new(Some("r1".into()), "held", vec![BrakeName::Deactivations]);
        list.push(&created);
        let json = serde_json::to_value(&list).unwrap();
        assert_eq!(json["held_by"], serde_json::json!(["deactivations"]));
        assert_eq!(
            json["totals"],
            serde_json::json!({"created": 1, "updated": 0, "deactivated": 0, "reactivated": 0})
        );
        assert_eq!(
            json["changes"][0]["fields"],
            serde_json::json!([{"field": "department", "old": null, "new": "Sales"}])
        );
        let mut text = Vec::new();
        list.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("department: - -> Sales"), "{text}");
    }
}
