//! Which fields of a record a change touches, with their old and new values: what change
//! records and events carry so downstream systems need not diff themselves.

pub use roster_shared::model::change::field_changes;

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
