//! One input row (a CSV record or a JSON object) to one [`Person`], or to the errors that
//! reject it alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use roster_shared::model::envelope::{RowError, Severity};
use roster_shared::model::mapping::{ValueRules, value_key};
use roster_shared::model::person::{Field, Person};

use crate::ParseLimits;
use crate::ad::{DnMap, looks_like_dn};
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
    /// A usable person, with a note on something left out (a manager not in the file).
    Noted(Person, RowError),
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
    /// Skipped on purpose, with a note saying why (an Active Directory account without
    /// an email: a service account, not a person).
    Skipped(RowError),
}

/// Why `value` cannot be stored, if it cannot: a control character (other than tab and
/// line ends, which quoted values may hold), or more bytes than the limit.
pub(crate) fn unstorable(value: &str, limits: &ParseLimits) -> Option<String> {
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

/// The tenant's list of organizations (`organizations:` in the tenants file): a row
/// naming another one is rejected alone. Names match whatever their case and spaces,
/// and are stored as listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Organizations {
    by_key: HashMap<String, String>,
    listed: Vec<String>,
}

impl Organizations {
    /// The list `names` (empty names left out).
    pub fn new(names: &[String]) -> Self {
        let mut by_key = HashMap::new();
        let mut listed = Vec::new();
        for name in names {
            let name = name.trim();
            if !name.is_empty() && by_key.insert(key(name), name.to_owned()).is_none() {
                listed.push(name.to_owned());
            }
        }
        Organizations { by_key, listed }
    }

    /// The organization `value` names, as listed.
    pub fn find(&self, value: &str) -> Option<&str> {
        self.by_key.get(&key(value)).map(String::as_str)
    }

    /// The refusal of `value`, naming it and (some of) the list.
    fn unknown(&self, value: &str) -> String {
        const SHOWN: usize = 10;
        let mut known = self
            .listed
            .iter()
            .take(SHOWN)
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.listed.len() > SHOWN {
            known.push_str(&format!(" and {} more", self.listed.len() - SHOWN));
        }
        format!(
            "organization {:?} is not one of the tenant's organizations ({known}); fix the \
             name or add it to `organizations:` in the tenants file",
            value.trim()
        )
    }
}

/// An organization name as compared: lower case, runs of spaces as one.
fn key(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// What rows are read by, beyond their own cells.
#[derive(Debug, Clone, Default)]
pub struct RowRules {
    /// The install's input limits.
    pub limits: ParseLimits,
    /// The file is an Active Directory export: a row without an email is an account
    /// that is not a person (a service account) and is skipped with a note.
    pub ad: bool,
    /// The people of the file by distinguished name, for managers given as one.
    pub managers: Option<Arc<DnMap>>,
    /// The tenant's organizations, when it lists them.
    pub organizations: Option<Arc<Organizations>>,
    /// The tenant's value rules: values rewritten before they are read.
    pub values: Arc<ValueRules>,
    /// The tenant's defaults: the value of a text field a row leaves empty.
    pub defaults: Vec<(Field, String)>,
}

impl RowRules {
    /// The rules of a file read within `limits` for a tenant with `organizations` (none:
    /// any) and value rules `values`.
    pub fn new(limits: ParseLimits, organizations: &[String], values: &ValueRules) -> Self {
        RowRules {
            limits,
            ad: false,
            managers: None,
            organizations: (!organizations.is_empty())
                .then(|| Arc::new(Organizations::new(organizations))),
            defaults: values
                .default_fields()
                .into_iter()
                .map(|(f, v)| (f, v.to_owned()))
                .collect(),
            values: Arc::new(values.clone()),
        }
    }

    /// `value` of the column (or JSON key) `header` read as `role`, rewritten by the
    /// tenant's value rules when one matches it (whatever its case and spaces).
    pub fn rewrite(&self, header: &str, role: &Role, value: String) -> String {
        if self.values.values.is_empty() {
            return value;
        }
        self.values
            .map_for(header, role.feeds())
            .and_then(|map| map.get(&value_key(&value)).cloned())
            .unwrap_or(value)
    }

    /// The value maps of a header row's columns, for [`RowRules::rewrite_with`].
    pub fn maps(
        &self,
        headers: &[String],
        roles: &[Role],
    ) -> Vec<Option<BTreeMap<String, String>>> {
        headers
            .iter()
            .zip(roles)
            .map(|(h, r)| {
                if self.values.values.is_empty() {
                    None
                } else {
                    self.values.map_for(h, r.feeds())
                }
            })
            .collect()
    }
}

/// `value` rewritten by `map` (one of [`RowRules::maps`]) when it holds the value.
pub fn rewrite_with<'a>(map: Option<&'a BTreeMap<String, String>>, value: &'a str) -> &'a str {
    match map {
        Some(map) => map.get(&value_key(value)).map_or(value, String::as_str),
        None => value,
    }
}

/// Builds a person from `(role, column label, value)` triples of one row starting at
/// `line` (when the format has lines), by `rules`.
///
/// When several columns feed one field (only an Active Directory export allows that),
/// the first with a value wins.
pub fn build<'a>(
    cells: impl IntoIterator<Item = (&'a Role, &'a str, &'a str)>,
    line: Option<u64>,
    rules: &RowRules,
) -> RowOutcome {
    let limits = &rules.limits;
    let mut person = Person::new(String::new());
    let mut email: Option<(&str, &str)> = None;
    let mut name: Option<&str> = None;
    let mut dn: Option<&str> = None;
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut blank = true;
    let mut row_bytes = 0usize;
    // Fields already given a value by an earlier column, one bit each (no allocation:
    // this runs for every row).
    let mut filled = 0u32;
    let mut error = |column: &str, message: String| {
        errors.push(RowError {
            line,
            column: Some(column.to_owned()),
            message,
            severity: Severity::Error,
        });
    };
    for (role, column, value) in cells {
        let empty = value.trim().is_empty();
        if !empty {
            blank = false;
        }
        row_bytes += value.len();
        let feeds = match role {
            Role::Field(field) => Some(*field),
            Role::Disabled | Role::AccountControl => Some(Field::Active),
            Role::Manager => Some(Field::ManagerEmail),
            _ => None,
        };
        if let Some(field) = feeds {
            let bit = 1u32 << (field as u32);
            if filled & bit != 0 {
                continue;
            }
            if !empty {
                filled |= bit;
            } else if field == Field::Email && email.is_some() {
                continue;
            }
        }
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
            Role::Disabled if !empty => match parse_active(value) {
                // `Disabled: true` is inactive.
                Ok(disabled) => person.active = !disabled,
                Err(e) => error(column, e.to_string()),
            },
            Role::AccountControl if !empty => match value.trim().parse::<u32>() {
                Ok(flags) => person.active = flags & ACCOUNT_DISABLE == 0,
                Err(_) => error(
                    column,
                    format!(
                        "{:?} is not a userAccountControl value (a number, such as 512 or 514)",
                        value.trim()
                    ),
                ),
            },
            Role::Field(Field::ManagerEmail) => match normalize_email(value) {
                Ok(m) => person.manager_email = Some(m),
                Err(EmailError::Missing) => {}
                Err(e) => error(column, format!("manager email: {e}")),
            },
            Role::Manager if !empty => match manager(value, rules) {
                Ok(Some(m)) => person.manager_email = Some(m),
                Ok(None) => notes.push(RowError::note(
                    line,
                    Some(column.to_owned()),
                    format!(
                        "manager {:?} is not a person with an email in this file; the manager \
                         is left empty",
                        value.trim()
                    ),
                )),
                Err(why) => error(column, why),
            },
            Role::Field(Field::Organization) => match (&rules.organizations, empty) {
                (Some(list), false) => match list.find(value) {
                    Some(listed) => person.organization = Some(listed.to_owned()),
                    None => error(column, list.unknown(value)),
                },
                _ => person.set(Field::Organization, value),
            },
            Role::Field(field) => person.set(*field, value),
            Role::Name => name = Some(value),
            Role::Dn => dn = Some(value),
            Role::Extra(key) => {
                if let Some(v) = clean(value) {
                    person.extra.insert(key.clone(), v);
                }
            }
            Role::Disabled | Role::AccountControl | Role::Manager | Role::Ignore => {}
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
    for (field, value) in &rules.defaults {
        if person.text(*field).is_none() {
            person.set(*field, value);
        }
    }
    let key = match email {
        Some((column, value)) => match normalize_email(value) {
            Ok(e) => Some(e),
            Err(EmailError::Missing) if rules.ad => {
                let who = [name, person.display_name.as_deref(), dn]
                    .into_iter()
                    .flatten()
                    .map(str::trim)
                    .find(|n| !n.is_empty())
                    .map(|n| format!(" ({n:?})"))
                    .unwrap_or_default();
                return RowOutcome::Skipped(RowError::note(
                    line,
                    Some(column.to_owned()),
                    format!(
                        "skipped: an account without an email{who}, such as a service \
                         account, is not a person"
                    ),
                ));
            }
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
                severity: Severity::Error,
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
            severity: Severity::Error,
        });
    }
    match key {
        Some(email) if errors.is_empty() => {
            person.email = email;
            match notes.pop() {
                Some(note) => RowOutcome::Noted(person, note),
                None => RowOutcome::Person(person),
            }
        }
        email => RowOutcome::Rejected { email, errors },
    }
}

// `build` keeps one bit per field.
const _: () = assert!(Field::ALL.len() <= 32);

/// `userAccountControl`'s ACCOUNTDISABLE flag.
const ACCOUNT_DISABLE: u32 = 0x2;

/// The manager's email from a `Manager` cell: an email, or a distinguished name found in
/// the file (`Ok(None)` when it is not there). `Err` says what else the cell should be.
fn manager(value: &str, rules: &RowRules) -> Result<Option<String>, String> {
    if looks_like_dn(value) {
        return Ok(rules
            .managers
            .as_deref()
            .and_then(|m| m.email(value))
            .map(str::to_owned));
    }
    normalize_email(value).map(Some).map_err(|e| {
        format!(
            "manager {:?}: {e}; give the manager's email (or, in an Active Directory export, \
             their distinguished name)",
            value.trim()
        )
    })
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
            &RowRules::default(),
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
