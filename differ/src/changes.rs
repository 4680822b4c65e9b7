//! Which fields of a record a change touches, with their old and new values: what change
//! records and events carry so downstream systems need not diff themselves.

use std::collections::BTreeSet;

use roster_shared::model::change::FieldChange;
use roster_shared::model::record::{Record, RecordField};

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
    use roster_shared::model::person::{Field, Person};

    use super::*;

    #[test]
    fn changes_name_fields_and_extras() {
        let before = Person::new("a@x.com".into());
        let mut after = before.clone();
        after.set(Field::JobTitle, "Engineer");
        after.active = false;
        after.extra.insert("Source".into(), "AD".into());
        let names: Vec<_> = field_changes(&before, &after)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(names, ["job_title", "active", "extra.Source"]);
        let title = &field_changes(&before, &after)[0];
        assert_eq!(
            (title.old.as_deref(), title.new.as_deref()),
            (None, Some("Engineer"))
        );
    }
}
