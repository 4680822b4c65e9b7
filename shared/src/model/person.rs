//! The canonical person record every source is mapped to: its one table of fields.
//!
//! The table below is the only place the person's fields are listed. The struct, the
//! [`Field`] enum, the database columns (`roster migrate` adds a new one), the upsert, the
//! directory export, the snapshot positions and the content hash all come from it. To add
//! a field, append a `Text` line at the end (the order of text fields is part of stored
//! hashes and snapshot lines; never reorder or remove one) and, if sources spell it in
//! other ways, give the parser aliases for it (`parser/src/headers.rs`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::model::record::{Record, RecordField};

crate::record! {
    /// One employee as Roster stores it, whatever shape it arrived in.
    ///
    /// Promises: `email` is normalised (trimmed and lower-cased by the parser); every
    /// optional field is either `None` or a trimmed, non-empty string (use
    /// [`Person::set`] to keep it so); `extra` holds the attributes no field claimed,
    /// keyed by their name at the source.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Person;

    /// The person's fields, in the order of the directory's CSV columns.
    pub enum Field;

    // Every text field of the first release counts in the hash even when absent.
    hashed when absent: 14;

    fields {
        /// The key: trimmed and lower-cased.
        Email email: Key = "email";
        /// The organization's own employee number, if it sends one.
        EmployeeId employee_id: Text = "employee_id";
        /// Given name.
        FirstName first_name: Text = "first_name";
        /// Family name.
        LastName last_name: Text = "last_name";
        /// Full name as the source writes it.
        DisplayName display_name: Text = "display_name";
        /// Designation or job title.
        JobTitle job_title: Text = "job_title";
        /// Department.
        Department department: Text = "department";
        /// Phone number, as given.
        Phone phone: Text = "phone";
        /// Whether the person still works there. Inactive people are kept, never deleted.
        Active active: Active = "active";
        /// Group: the office or location the person belongs to (stored as `group_name`,
        /// `group` being an SQL keyword).
        Group group: Text = "group_name";
        /// Organization (company or business unit).
        Organization organization: Text = "organization";
        /// Site (building or campus).
        Site site: Text = "site";
        /// Location within the site (room, floor).
        Location location: Text = "location";
        /// Locale or language, for example `en-US`.
        Locale locale: Text = "locale";
        /// Time zone name.
        TimeZone time_zone: Text = "time_zone";
        /// The manager's email, normalised like `email`.
        ManagerEmail manager_email: Text = "manager_email";
    }
}

/// What a tenant's column is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingTarget {
    /// A field of the person.
    Field(Field),
    /// A full name, split into first and last name.
    Name,
    /// Kept as an extra attribute under its own header.
    Extra,
    /// Dropped.
    Ignore,
}

/// A mapping target that is none of the names [`MappingTarget`] knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a field name; use one of {}, or name, extra, ignore",
    field_names()
)]
pub struct UnknownTarget {
    /// The refused name.
    pub value: String,
}

fn field_names() -> String {
    Field::ALL
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl MappingTarget {
    /// The target's name: a field name, `name`, `extra` or `ignore`.
    pub fn name(self) -> &'static str {
        match self {
            MappingTarget::Field(f) => f.name(),
            MappingTarget::Name => "name",
            MappingTarget::Extra => "extra",
            MappingTarget::Ignore => "ignore",
        }
    }
}

impl fmt::Display for MappingTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MappingTarget {
    type Err = UnknownTarget;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "name" => Ok(MappingTarget::Name),
            "extra" => Ok(MappingTarget::Extra),
            "ignore" => Ok(MappingTarget::Ignore),
            field => Field::from_name(field)
                .map(MappingTarget::Field)
                .ok_or_else(|| UnknownTarget {
                    value: s.to_owned(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A person with every field and an extra attribute set.
    fn full() -> Person {
        let mut p = Person::new("frank.williams@widget.com".into());
        for (i, field) in Field::TEXT.iter().enumerate() {
            p.set(*field, &format!("value {i}"));
        }
        p.extra.insert("Source".into(), "Active Directory".into());
        p
    }

    #[test]
    fn the_table_gives_names_columns_and_order() {
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(
            names.join(","),
            "email,employee_id,first_name,last_name,display_name,job_title,department,phone,\
             active,group,organization,site,location,locale,time_zone,manager_email"
        );
        assert_eq!(Field::TEXT.len(), 14);
        assert!(!Field::TEXT.contains(&Field::Email) && !Field::TEXT.contains(&Field::Active));
        assert_eq!(Field::Group.column(), "group_name");
        assert_eq!(Field::from_name("time_zone"), Some(Field::TimeZone));
        let p = full();
        assert_eq!(p.text(Field::Site), Some("value 9"));
        assert_eq!(p.site.as_deref(), Some("value 9"));
        assert_eq!(p.display(Field::Email), "frank.williams@widget.com");
        assert_eq!(p.display(Field::Active), "true");
    }

    /// Hashes are stored: a release that changed them would make every stored person
    /// look changed. These values were computed by the first release's hash.
    #[test]
    fn content_hashes_are_those_of_the_first_release() {
        assert_eq!(
            Person::new("a@x.com".into()).content_hash(),
            HASH_OF_A_BARE_PERSON
        );
        assert_eq!(full().content_hash(), HASH_OF_A_FULL_PERSON);
    }

    const HASH_OF_A_BARE_PERSON: i64 = -6_370_911_741_813_987_419;
    const HASH_OF_A_FULL_PERSON: i64 = 6_511_917_708_771_093_442;

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
            b.set(*field, "v");
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
    fn set_trims_and_empty_means_absent() {
        let mut p = Person::new("a@x.com".into());
        p.set(Field::JobTitle, "  Engineer ");
        assert_eq!(p.job_title.as_deref(), Some("Engineer"));
        p.set(Field::JobTitle, "   ");
        assert_eq!(p.job_title, None);
        p.set(Field::Email, "other@x.com");
        assert_eq!(p.email, "a@x.com", "the key has its own rules");
    }

    #[test]
    fn targets_by_name() {
        assert_eq!(
            "job_title".parse::<MappingTarget>(),
            Ok(MappingTarget::Field(Field::JobTitle))
        );
        assert_eq!("name".parse::<MappingTarget>(), Ok(MappingTarget::Name));
        let err = "shoe_size"
            .parse::<MappingTarget>()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("\"shoe_size\" is not a field name"),
            "{err}"
        );
        for target in Field::ALL.iter().map(|f| MappingTarget::Field(*f)) {
            assert_eq!(target.name().parse::<MappingTarget>(), Ok(target));
        }
    }
}
