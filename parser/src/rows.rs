//! One input row (a CSV record or a JSON object) to one [`Person`], or to the errors that
//! reject it alone.

use roster_shared::model::envelope::RowError;
use roster_shared::model::person::{Field, Person};

use crate::ParseLimits;
use crate::headers::Role;
use crate::rules::{EmailError, clean, normalize_email, parse_active, split_name};

/// What became of one row.
// One outcome per input row, consumed at once: boxing the person would cost an allocation
// per row for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// A usable person.
    Person(Person),
    /// Rejected alone. `email` is the row's key when it was readable, so the person can
    /// be protected from deactivation.
    Rejected {
        /// The normalised email, if the email itself was fine.
        email: Option<String>,
        /// Everything wrong with the row.
        errors: Vec<RowError>,
    },
    /// Nothing in it (every value empty); skipped.
    Blank,
}

/// Why `value` cannot be stored, if it cannot: a control character (other than tab and
/// line ends, which quoted values may hold), or more bytes than the limit.
fn unstorable(value: &str, limits: &ParseLimits) -> Option<String> {
    if value.len() > limits.max_cell_bytes {
        return Some(format!(
            "the value is {} KiB long, over the limit of {} KiB (ROSTER_MAX_CELL_BYTES)",
            value.len().div_ceil(1024),
            limits.max_cell_bytes / 1024
        ));
    }
    value
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        .map(|(at, c)| {
            format!(
                "the value holds a control character (U+{:04X}) at byte {}; remove it",
                u32::from(c),
                at + 1
            )
        })
}

/// Builds a person from `(role, column label, value)` triples of one row starting at
/// `line` (when the format has lines), within `limits`.
pub fn build<'a>(
    cells: impl IntoIterator<Item = (&'a Role, &'a str, &'a str)>,
    line: Option<u64>,
    limits: &ParseLimits,
) -> RowOutcome {
    let mut person = Person::new(String::new());
    let mut email: Option<(&str, &str)> = None;
    let mut name: Option<&str> = None;
    let mut errors = Vec::new();
    let mut blank = true;
    let mut row_bytes = 0usize;
    let mut error = |column: &str, message: String| {
        errors.push(RowError {
            line,
            column: Some(column.to_owned()),
            message,
        });
    };
    for (role, column, value) in cells {
        if !value.trim().is_empty() {
            blank = false;
        }
        row_bytes += value.len();
        if *role != Role::Field(Field::Email)
            && let Some(why) = unstorable(value, limits)
        {
            error(column, why);
            continue;
        }
        match role {
            Role::Field(Field::Email) => email = Some((column, value)),
            Role::Field(Field::Active) => match parse_active(value) {
                Ok(active) => person.active = active,
                Err(e) => error(column, e.to_string()),
            },
            Role::Field(Field::ManagerEmail) => match normalize_email(value) {
                Ok(m) => person.manager_email = Some(m),
                Err(EmailError::Missing) => {}
                Err(e) => error(column, format!("manager email: {e}")),
            },
            Role::Field(field) => person.set(*field, value),
            Role::Name => name = Some(value),
            Role::Extra(key) => {
                if let Some(v) = clean(value) {
                    person.extra.insert(key.clone(), v);
                }
            }
            Role::Ignore => {}
        }
    }
    if blank {
        return RowOutcome::Blank;
    }
    if let Some(name) = name {
        let (first, last) = split_name(name);
        if person.first_name.is_none() && person.last_name.is_none() {
            person.first_name = first;
            person.last_name = last;
        }
        if person.display_name.is_none() {
            person.display_name = clean(name);
        }
    }
    let key = match email {
        Some((column, value)) => match normalize_email(value) {
            Ok(e) => Some(e),
            Err(e) => {
                error(column, e.to_string());
                None
            }
        },
        None => {
            errors.push(RowError {
                line,
                column: None,
                message: EmailError::Missing.to_string(),
            });
            None
        }
    };
    if row_bytes > limits.max_row_bytes {
        errors.push(RowError {
            line,
            column: None,
            message: format!(
                "the row is {} KiB long, over the limit of {} KiB (ROSTER_MAX_ROW_BYTES)",
                row_bytes.div_ceil(1024),
                limits.max_row_bytes / 1024
            ),
        });
    }
    match key {
        Some(email) if errors.is_empty() => {
            person.email = email;
            RowOutcome::Person(person)
        }
        email => RowOutcome::Rejected { email, errors },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[(Role, &str)]) -> RowOutcome {
        let labelled: Vec<(Role, String, String)> = cells
            .iter()
            .map(|(r, v)| (r.clone(), format!("{r:?}"), v.to_string()))
            .collect();
        build(
            labelled.iter().map(|(r, c, v)| (r, c.as_str(), v.as_str())),
            Some(7),
            &ParseLimits::default(),
        )
    }

    #[test]
    fn name_is_split_and_kept_as_display_name() {
        let RowOutcome::Person(p) = row(&[
            (Role::Field(Field::Email), " AK@Veris.in "),
            (Role::Name, "Amit Kumar"),
            (Role::Field(Field::Active), "inactive"),
            (Role::Extra("Source".into()), "AD"),
        ]) else {
            panic!("rejected")
        };
        assert_eq!(p.email, "ak@veris.in");
        assert_eq!(p.first_name.as_deref(), Some("Amit"));
        assert_eq!(p.last_name.as_deref(), Some("Kumar"));
        assert_eq!(p.display_name.as_deref(), Some("Amit Kumar"));
        assert!(!p.active);
        assert_eq!(p.extra["Source"], "AD");
    }

    #[test]
    fn explicit_name_columns_win_over_name() {
        let RowOutcome::Person(p) = row(&[
            (Role::Field(Field::Email), "a@x.com"),
            (Role::Name, "Frank Williams"),
            (Role::Field(Field::FirstName), "Franklin"),
            (Role::Field(Field::LastName), "Williams-Jones"),
        ]) else {
            panic!("rejected")
        };
        assert_eq!(p.first_name.as_deref(), Some("Franklin"));
        assert_eq!(p.last_name.as_deref(), Some("Williams-Jones"));
    }

    #[test]
    fn bad_rows_say_which_column() {
        match row(&[
            (Role::Field(Field::Email), "a@x.com"),
            (Role::Field(Field::Active), "maybe"),
        ]) {
            RowOutcome::Rejected { email, errors } => {
                assert_eq!(email.as_deref(), Some("a@x.com"));
                assert_eq!(errors.len(), 1);
                assert_eq!(errors[0].line, Some(7));
                assert!(errors[0].message.contains("\"maybe\" is not a status"));
            }
            other => panic!("{other:?}"),
        }
        match row(&[(Role::Field(Field::Email), ""), (Role::Name, "X Y")]) {
            RowOutcome::Rejected { email, errors } => {
                assert_eq!(email, None);
                assert_eq!(errors[0].message, "missing email");
                assert!(errors[0].column.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            row(&[(Role::Field(Field::Email), " "), (Role::Name, "")]),
            RowOutcome::Blank
        );
    }
}
