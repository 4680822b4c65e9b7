//! The canonical person record every source is mapped to, and the rules that make two
//! deliveries of the same person compare equal: key normalisation, value trimming and a
//! stable content hash.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

/// One employee as Roster stores it, whatever shape it arrived in.
///
/// Promises: `email` is normalised ([`normalize_email`]); every optional field is either
/// `None` or a trimmed, non-empty string (use [`Person::set`] or [`clean`] to keep it so);
/// `extra` holds the columns no canonical field claimed, keyed by their header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The key: trimmed and lower-cased.
    pub email: String,
    /// The organization's own employee number, if it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Full name as the source writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Designation or job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    /// Department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Phone number, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Whether the person still works there. Inactive people are kept, never deleted.
    pub active: bool,
    /// Group: the office or location the person belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Organization (company or business unit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Site (building or campus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Location within the site (room, floor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Locale or language, for example `en-US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Time zone name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The manager's email, normalised like `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_email: Option<String>,
    /// Every other column of the source, by its header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// The canonical fields, in the order of the directory's CSV columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// [`Person::email`]
    Email,
    /// [`Person::employee_id`]
    EmployeeId,
    /// [`Person::first_name`]
    FirstName,
    /// [`Person::last_name`]
    LastName,
    /// [`Person::display_name`]
    DisplayName,
    /// [`Person::job_title`]
    JobTitle,
    /// [`Person::department`]
    Department,
    /// [`Person::phone`]
    Phone,
    /// [`Person::active`]
    Active,
    /// [`Person::group`]
    Group,
    /// [`Person::organization`]
    Organization,
    /// [`Person::site`]
    Site,
    /// [`Person::location`]
    Location,
    /// [`Person::locale`]
    Locale,
    /// [`Person::time_zone`]
    TimeZone,
    /// [`Person::manager_email`]
    ManagerEmail,
}

impl Field {
    /// Every field, in directory column order.
    pub const ALL: [Field; 16] = [
        Field::Email,
        Field::EmployeeId,
        Field::FirstName,
        Field::LastName,
        Field::DisplayName,
        Field::JobTitle,
        Field::Department,
        Field::Phone,
        Field::Active,
        Field::Group,
        Field::Organization,
        Field::Site,
        Field::Location,
        Field::Locale,
        Field::TimeZone,
        Field::ManagerEmail,
    ];

    /// The optional text fields: everything but `email` and `active`.
    pub const TEXT: [Field; 14] = [
        Field::EmployeeId,
        Field::FirstName,
        Field::LastName,
        Field::DisplayName,
        Field::JobTitle,
        Field::Department,
        Field::Phone,
        Field::Group,
        Field::Organization,
        Field::Site,
        Field::Location,
        Field::Locale,
        Field::TimeZone,
        Field::ManagerEmail,
    ];

    /// The field's name: its directory CSV header and its name in change records.
    pub fn name(self) -> &'static str {
        match self {
            Field::Email => "email",
            Field::EmployeeId => "employee_id",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::DisplayName => "display_name",
            Field::JobTitle => "job_title",
            Field::Department => "department",
            Field::Phone => "phone",
            Field::Active => "active",
            Field::Group => "group",
            Field::Organization => "organization",
            Field::Site => "site",
            Field::Location => "location",
            Field::Locale => "locale",
            Field::TimeZone => "time_zone",
            Field::ManagerEmail => "manager_email",
        }
    }

    /// The field named `name` (as [`Field::name`] spells it).
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Person {
    /// An active person with only an email (already normalised by the caller).
    pub fn new(email: String) -> Self {
        Person {
            email,
            employee_id: None,
            first_name: None,
            last_name: None,
            display_name: None,
            job_title: None,
            department: None,
            phone: None,
            active: true,
            group: None,
            organization: None,
            site: None,
            location: None,
            locale: None,
            time_zone: None,
            manager_email: None,
            extra: BTreeMap::new(),
        }
    }

    fn slot(&mut self, field: Field) -> Option<&mut Option<String>> {
        Some(match field {
            Field::EmployeeId => &mut self.employee_id,
            Field::FirstName => &mut self.first_name,
            Field::LastName => &mut self.last_name,
            Field::DisplayName => &mut self.display_name,
            Field::JobTitle => &mut self.job_title,
            Field::Department => &mut self.department,
            Field::Phone => &mut self.phone,
            Field::Group => &mut self.group,
            Field::Organization => &mut self.organization,
            Field::Site => &mut self.site,
            Field::Location => &mut self.location,
            Field::Locale => &mut self.locale,
            Field::TimeZone => &mut self.time_zone,
            Field::ManagerEmail => &mut self.manager_email,
            Field::Email | Field::Active => return None,
        })
    }

    /// The value of a text field (`None` for `email` and `active`, which are not optional).
    pub fn text(&self, field: Field) -> Option<&str> {
        match field {
            Field::EmployeeId => self.employee_id.as_deref(),
            Field::FirstName => self.first_name.as_deref(),
            Field::LastName => self.last_name.as_deref(),
            Field::DisplayName => self.display_name.as_deref(),
            Field::JobTitle => self.job_title.as_deref(),
            Field::Department => self.department.as_deref(),
            Field::Phone => self.phone.as_deref(),
            Field::Group => self.group.as_deref(),
            Field::Organization => self.organization.as_deref(),
            Field::Site => self.site.as_deref(),
            Field::Location => self.location.as_deref(),
            Field::Locale => self.locale.as_deref(),
            Field::TimeZone => self.time_zone.as_deref(),
            Field::ManagerEmail => self.manager_email.as_deref(),
            Field::Email | Field::Active => None,
        }
    }

    /// Sets a text field to `value` exactly as given (already clean). Does nothing for
    /// `email` and `active`.
    pub(crate) fn put(&mut self, field: Field, value: Option<String>) {
        if let Some(slot) = self.slot(field) {
            *slot = value;
        }
    }

    /// Sets a text field to the trimmed `value` (empty means absent). Does nothing for
    /// `email` and `active`, which have their own parsers.
    pub fn set(&mut self, field: Field, value: &str) {
        if let Some(slot) = self.slot(field) {
            *slot = clean(value);
        }
    }

    /// The value of any field as text, the way the directory CSV prints it
    /// (`active` as `true`/`false`, an absent field as the empty string).
    pub fn display(&self, field: Field) -> &str {
        match field {
            Field::Email => &self.email,
            Field::Active => {
                if self.active {
                    "true"
                } else {
                    "false"
                }
            }
            other => self.text(other).unwrap_or(""),
        }
    }

    /// Hash of everything but `active`: two deliveries of the same person hash equal
    /// exactly when every field and extra attribute is equal.
    ///
    /// Promise: stable across releases and platforms (xxh3-64 over a length-prefixed
    /// encoding of the fields in [`Field::ALL`] order, then the extras sorted by key), so
    /// hashes stored in the database stay comparable. Activity is tracked beside the hash
    /// (see [`crate::change::RowState`]).
    pub fn content_hash(&self) -> i64 {
        let mut h = Xxh3::new();
        let mut put = |tag: u8, value: Option<&str>| {
            h.update(&[tag]);
            match value {
                Some(v) => {
                    h.update(&(v.len() as u32).to_le_bytes());
                    h.update(v.as_bytes());
                }
                None => h.update(&u32::MAX.to_le_bytes()),
            }
        };
        put(0, Some(&self.email));
        for (i, field) in Field::TEXT.into_iter().enumerate() {
            put(1 + i as u8, self.text(field));
        }
        for (key, value) in &self.extra {
            put(0xE0, Some(key));
            put(0xE1, Some(value));
        }
        h.digest() as i64
    }

    /// The fields (and extra attributes, as `extra.<name>`) whose values differ from
    /// `before`, with both values. `active` is included when it changed.
    pub fn changes_from(&self, before: &Person) -> Vec<crate::change::FieldChange> {
        use crate::change::FieldChange;
        let mut out = Vec::new();
        for field in Field::ALL {
            let (old, new) = (before.display(field), self.display(field));
            if old != new {
                out.push(FieldChange {
                    field: field.name().to_owned(),
                    old: clean(old),
                    new: clean(new),
                });
            }
        }
        let keys: std::collections::BTreeSet<&String> =
            before.extra.keys().chain(self.extra.keys()).collect();
        for key in keys {
            let (old, new) = (before.extra.get(key), self.extra.get(key));
            if old != new {
                out.push(FieldChange {
                    field: format!("extra.{key}"),
                    old: old.cloned(),
                    new: new.cloned(),
                });
            }
        }
        out
    }
}

/// A trimmed value, or `None` when nothing is left.
pub fn clean(value: &str) -> Option<String> {
    let t = value.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// Why a value is not a usable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing there.
    #[error("missing email")]
    Missing,
    /// Something there, but not an address.
    #[error("{value:?} is not an email address: {why}")]
    Invalid {
        /// The value as given.
        value: String,
        /// Which rule it broke.
        why: &'static str,
    },
}

/// Normalises an email address to Roster's key form: trimmed and lower-cased.
///
/// Accepts `local@domain` with one `@`, a non-empty local part of at most 64 bytes, a
/// domain with at least one inner dot, no whitespace or control characters and at most
/// 254 bytes in all. That is deliberately looser than RFC 5322 (directories hold odd but
/// working addresses) and strict enough to catch a name or a DN in the email column.
pub fn normalize_email(value: &str) -> Result<String, EmailError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(EmailError::Missing);
    }
    let invalid = |why| EmailError::Invalid {
        value: v.to_owned(),
        why,
    };
    if v.len() > 254 {
        return Err(invalid("longer than 254 characters"));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains whitespace"));
    }
    let Some((local, domain)) = v.split_once('@') else {
        return Err(invalid("no '@'"));
    };
    if domain.contains('@') {
        return Err(invalid("more than one '@'"));
    }
    if local.is_empty() || local.len() > 64 {
        return Err(invalid("the part before '@' is empty or too long"));
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err(invalid("the domain needs a dot inside it"));
    }
    Ok(v.to_lowercase())
}

/// Why a status value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a status; use active/inactive, true/false, yes/no, 1/0 or enabled/disabled"
)]
pub struct StatusError {
    /// The value as given.
    pub value: String,
}

/// Reads an active-status value. Empty means active (a listed person is present).
///
/// Active: `active`, `enabled`, `true`, `yes`, `y`, `t`, `1`.
/// Inactive: `inactive`, `disabled`, `false`, `no`, `n`, `f`, `0`, `terminated`, `left`,
/// `deactivated`, `suspended`. Case does not matter.
pub fn parse_active(value: &str) -> Result<bool, StatusError> {
    let v = value.trim().to_ascii_lowercase();
    match v.as_str() {
        "" | "active" | "enabled" | "true" | "yes" | "y" | "t" | "1" => Ok(true),
        "inactive" | "disabled" | "false" | "no" | "n" | "f" | "0" | "terminated" | "left"
        | "deactivated" | "suspended" => Ok(false),
        _ => Err(StatusError {
            value: value.trim().to_owned(),
        }),
    }
}

/// Splits a full name into first and last name.
///
/// `"Last, First"` splits at the comma; otherwise the first word is the first name and the
/// rest the last name (`"Jan van der Berg"` gives `Jan` / `van der Berg`). One word is a
/// first name alone.
pub fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    if let Some((last, first)) = name.split_once(',') {
        return (clean(first), clean(last));
    }
    match name.split_once(char::is_whitespace) {
        Some((first, rest)) => (clean(first), clean(rest)),
        None => (clean(name), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Frank.Williams@Widget.COM ").unwrap(),
            "frank.williams@widget.com"
        );
        assert_eq!(normalize_email(" "), Err(EmailError::Missing));
        for bad in [
            "frank",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "@widget.com",
            "a@.com",
            "a@com.",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn status_values() {
        for v in ["active", "Active", "TRUE", "1", "yes", "Enabled", ""] {
            assert_eq!(parse_active(v), Ok(true), "{v}");
        }
        for v in ["inactive", "false", "0", "No", "disabled", "Terminated"] {
            assert_eq!(parse_active(v), Ok(false), "{v}");
        }
        assert!(parse_active("maybe").is_err());
    }

    #[test]
    fn names_split() {
        assert_eq!(
            split_name("Amit Kumar"),
            (Some("Amit".into()), Some("Kumar".into()))
        );
        assert_eq!(
            split_name("Lefèvre, Pierre"),
            (Some("Pierre".into()), Some("Lefèvre".into()))
        );
        assert_eq!(
            split_name("Jan van der Berg"),
            (Some("Jan".into()), Some("van der Berg".into()))
        );
        assert_eq!(split_name("Cher"), (Some("Cher".into()), None));
    }

    #[test]
    fn content_hash_sees_every_field_but_active() {
        let mut a = Person::new("a@x.com".into());
        let base = a.content_hash();
        a.active = false;
        assert_eq!(
            a.content_hash(),
            base,
            "activity is tracked beside the hash"
        );
        for field in Field::TEXT {
            let mut b = a.clone();
            b.set(field, "v");
            assert_ne!(b.content_hash(), base, "{field} not hashed");
        }
        let mut c = a.clone();
        c.extra.insert("Source".into(), "AD".into());
        assert_ne!(c.content_hash(), base);
        // Moving a value between fields changes the hash too.
        let mut d = a.clone();
        d.set(Field::Site, "x");
        let mut e = a.clone();
        e.set(Field::Location, "x");
        assert_ne!(d.content_hash(), e.content_hash());
    }

    #[test]
    fn changes_name_fields_and_extras() {
        let before = Person::new("a@x.com".into());
        let mut after = before.clone();
        after.set(Field::JobTitle, "Engineer");
        after.active = false;
        after.extra.insert("Source".into(), "AD".into());
        let names: Vec<_> = after
            .changes_from(&before)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(names, ["job_title", "active", "extra.Source"]);
    }
}
