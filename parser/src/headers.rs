//! Which column (or JSON key) feeds which canonical field: the built-in aliases, the
//! tenant's own mappings on top, and the checks that a file's header makes sense.

use std::collections::HashMap;

use roster_shared::model::envelope::Covered;
use roster_shared::model::person::{Field, MappingTarget};

use crate::error::{Column, RejectReason};

/// What one column is used for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// A canonical field.
    Field(Field),
    /// A full name: split into first and last name (unless those have columns of their
    /// own) and kept as the display name (unless that has a column of its own).
    Name,
    /// `Disabled`: a true value makes the person inactive (the opposite of `Active`).
    Disabled,
    /// Active Directory's `userAccountControl` flags: ACCOUNTDISABLE (0x2) set makes the
    /// person inactive.
    AccountControl,
    /// The manager: an email, or (in an Active Directory export) a distinguished name
    /// resolved to that person's email from the same file.
    Manager,
    /// The row's own distinguished name (Active Directory), which managers refer to.
    Dn,
    /// An extra attribute under this key.
    Extra(String),
    /// Not used (a column without a header).
    Ignore,
}

pub use roster_shared::model::mapping::normalize_header;

/// The built-in aliases beyond each field's own name (which always matches), as
/// normalised headers.
const ALIASES: &[(Field, &[&str])] = &[
    (
        Field::Email,
        &[
            "email",
            "emailid",
            "primaryemail",
            "mail",
            "emailaddress",
            "primaryemailaddress",
            "workemail",
            "workemailaddress",
            "businessemail",
            "useremail",
        ],
    ),
    (
        Field::EmployeeId,
        &[
            "employeeid",
            "employeenumber",
            "employeeno",
            "empid",
            "empno",
            "staffid",
            "staffnumber",
            "personnelnumber",
        ],
    ),
    (
        Field::FirstName,
        &["firstname", "givenname", "first", "fname", "forename"],
    ),
    (
        Field::LastName,
        &["lastname", "surname", "sn", "familyname", "last", "lname"],
    ),
    (Field::DisplayName, &["displayname", "fullname"]),
    (
        Field::JobTitle,
        &[
            "jobtitle",
            "designation",
            "title",
            "position",
            "jobposition",
        ],
    ),
    (Field::Department, &["department", "dept", "departmentname"]),
    (
        Field::Phone,
        &[
            "phone",
            "phonenumber",
            "phoneno",
            "telephone",
            "telephonenumber",
            "tel",
            "mobile",
            "mobilephone",
            "mobilenumber",
            "workphone",
            "businessphone",
            "officephone",
        ],
    ),
    (
        Field::Active,
        &[
            "active",
            "status",
            "enabled",
            "isactive",
            "activestatus",
            "accountstatus",
            "accountenabled",
        ],
    ),
    (
        Field::Group,
        &[
            "group",
            "groupname",
            "office",
            "officename",
            "physicaldeliveryofficename",
        ],
    ),
    (
        Field::Organization,
        &[
            "organization",
            "organisation",
            "company",
            "companyname",
            "org",
        ],
    ),
    (Field::Site, &["site", "sitename"]),
    (Field::Location, &["location", "locationname"]),
    (
        Field::Locale,
        &["locale", "language", "preferredlanguage", "lang"],
    ),
    (Field::TimeZone, &["timezone", "tz"]),
    (
        Field::ManagerEmail,
        &[
            "manageremail",
            "manageremailid",
            "manageremailaddress",
            "managermail",
        ],
    ),
];

impl Role {
    /// The name of the field the role feeds (`None`: a name, extra attribute, ...): the
    /// key a value rule for it has (`active`, `organization`).
    pub fn feeds(&self) -> Option<&'static str> {
        match self {
            Role::Field(field) => Some(field.name()),
            Role::Disabled | Role::AccountControl => Some(Field::Active.name()),
            Role::Manager => Some(Field::ManagerEmail.name()),
            _ => None,
        }
    }

    /// What the column is read as, in words: `email`, `name (first, last and display
    /// name)`, `extra attribute "Source"`, `ignored`, ...
    pub fn describe(&self) -> String {
        match self {
            Role::Field(field) => field.name().to_owned(),
            Role::Name => "name (split into first and last name, kept as display name)".into(),
            Role::Disabled => "active (a true value makes the person inactive)".into(),
            Role::AccountControl => "active (userAccountControl: 0x2 set is inactive)".into(),
            Role::Manager => "manager_email (an email, or a distinguished name in the file)".into(),
            Role::Dn => "the person's distinguished name (for managers given by name)".into(),
            Role::Extra(key) => format!("extra attribute {key:?}"),
            Role::Ignore => "ignored".into(),
        }
    }
}

/// What a role feeds, for finding two columns that feed the same thing: the activity
/// roles all feed `active`, the manager roles `manager_email`.
fn target(role: &Role) -> Option<Role> {
    match role {
        Role::Disabled | Role::AccountControl => Some(Role::Field(Field::Active)),
        Role::Manager => Some(Role::Field(Field::ManagerEmail)),
        Role::Ignore => None,
        other => Some(other.clone()),
    }
}

/// Headers (normalised) that mark a file as an Active Directory export: `Get-ADUser |
/// Export-Csv` always writes the first ones, `csvde` writes `DN`.
const AD_MARKERS: &[&str] = &[
    "distinguishedname",
    "dn",
    "samaccountname",
    "useraccountcontrol",
    "objectguid",
    "userprincipalname",
];

/// Active Directory attributes that say nothing about the person and change on their
/// own (logons, password and replication bookkeeping, PowerShell's own properties): kept
/// as extra attributes they would make every person look changed on every sync, so an
/// Active Directory export drops them.
const AD_IGNORED: &[&str] = &[
    "objectguid",
    "sid",
    "objectsid",
    "objectclass",
    "objectcategory",
    "whencreated",
    "whenchanged",
    "created",
    "modified",
    "createtimestamp",
    "modifytimestamp",
    "usncreated",
    "usnchanged",
    "lastlogon",
    "lastlogondate",
    "lastlogontimestamp",
    "lastlogoff",
    "logoncount",
    "badlogoncount",
    "badpwdcount",
    "badpasswordtime",
    "lastbadpasswordattempt",
    "pwdlastset",
    "passwordlastset",
    "passwordexpired",
    "passwordneverexpires",
    "passwordnotrequired",
    "cannotchangepassword",
    "accountexpires",
    "accountexpirationdate",
    "accountlockouttime",
    "lockouttime",
    "lockedout",
    "dscorepropagationdata",
    "instancetype",
    "iscriticalsystemobject",
    "samaccounttype",
    "primarygroupid",
    "primarygroup",
    "codepage",
    "countrycode",
    "ntsecuritydescriptor",
    "protectedfromaccidentaldeletion",
    "propertynames",
    "addedproperties",
    "removedproperties",
    "modifiedproperties",
    "propertycount",
    "memberof",
    "sidhistory",
    "msdsuseraccountcontrolcomputed",
    "msdsuserpasswordexpirytimecomputed",
    "msdssupportedencryptiontypes",
    "certificates",
    "usercertificate",
    "thumbnailphoto",
    "cn",
    "canonicalname",
];

/// Whether a header row (as written) is that of an Active Directory export.
pub fn is_ad_export(headers: &[&str]) -> bool {
    headers
        .iter()
        .any(|h| AD_MARKERS.contains(&normalize_header(h).as_str()))
}

/// What columns of `roles` feed: a stored person's other fields are left as stored.
/// A name feeds the first, last and display names; activity is not a text field (a
/// person in a file is active unless a column says otherwise).
pub fn covered<'a>(roles: impl IntoIterator<Item = &'a Role>) -> Covered {
    let mut covered = Covered::default();
    let add = |name: &str, to: &mut Vec<String>| {
        if !to.iter().any(|n| n == name) {
            to.push(name.to_owned());
        }
    };
    for role in roles {
        match role {
            Role::Field(field) if Field::TEXT.contains(field) => {
                add(field.name(), &mut covered.fields);
            }
            Role::Name => {
                for field in [Field::FirstName, Field::LastName, Field::DisplayName] {
                    add(field.name(), &mut covered.fields);
                }
            }
            Role::Manager => add(Field::ManagerEmail.name(), &mut covered.fields),
            Role::Extra(key) => add(key, &mut covered.extras),
            _ => {}
        }
    }
    covered
}

/// Header names accepted for `field`, as people write them (for error messages).
pub fn spelled_aliases(field: Field) -> &'static str {
    match field {
        Field::Email => "Email, Email ID, Primary Email, mail, EmailAddress",
        _ => "",
    }
}

/// Resolves headers to roles: the tenant's mappings first, then the built-in aliases,
/// then `Name`, then an extra attribute.
#[derive(Debug, Clone, Default)]
pub struct HeaderMap {
    tenant: HashMap<String, Role>,
}

impl HeaderMap {
    /// A resolver with the tenant's own mappings (normalised header, target).
    /// A mapping to `extra` keeps the column as an extra attribute; to `ignore` drops it.
    pub fn new(tenant: &[(String, MappingTarget)]) -> Self {
        let tenant = tenant
            .iter()
            .map(|(header, target)| {
                let role = match target {
                    MappingTarget::Extra => Role::Extra(header.clone()),
                    MappingTarget::Ignore => Role::Ignore,
                    MappingTarget::Name => Role::Name,
                    MappingTarget::Field(field) => Role::Field(*field),
                };
                (normalize_header(header), role)
            })
            .collect();
        HeaderMap { tenant }
    }

    /// The role of a column headed `header` in a file that is not an Active Directory
    /// export.
    pub fn role(&self, header: &str) -> Role {
        self.role_in(header, false)
    }

    /// The role of a column headed `header`; `ad`: in an Active Directory export.
    pub fn role_in(&self, header: &str, ad: bool) -> Role {
        self.explain(header, ad).0
    }

    /// [`HeaderMap::role_in`], with what decided it, in words (`the tenant's mapping`,
    /// `a built-in alias`, ...), for `roster mapping check`.
    pub fn explain(&self, header: &str, ad: bool) -> (Role, &'static str) {
        let trimmed = header.trim();
        let key = normalize_header(trimmed);
        if key.is_empty() {
            return (Role::Ignore, "no header");
        }
        if let Some(role) = self.tenant.get(&key) {
            let role = match role {
                Role::Extra(_) => Role::Extra(trimmed.to_owned()),
                other => other.clone(),
            };
            return (role, "the tenant's mapping");
        }
        let builtin = "a built-in alias";
        match key.as_str() {
            "disabled" | "isdisabled" | "accountdisabled" => return (Role::Disabled, builtin),
            "manager" => return (Role::Manager, builtin),
            "useraccountcontrol" if ad => return (Role::AccountControl, "Active Directory"),
            "distinguishedname" | "dn" if ad => return (Role::Dn, "Active Directory"),
            _ if ad && AD_IGNORED.contains(&key.as_str()) => {
                return (Role::Ignore, "Active Directory bookkeeping");
            }
            _ => {}
        }
        if let Some(field) = Field::ALL
            .iter()
            .find(|f| normalize_header(f.name()) == key)
        {
            return (Role::Field(*field), "the field's own name");
        }
        for (field, aliases) in ALIASES {
            if aliases.contains(&key.as_str()) {
                return (Role::Field(*field), builtin);
            }
        }
        if key == "name" {
            return (Role::Name, builtin);
        }
        (Role::Extra(trimmed.to_owned()), "no field claims it")
    }

    /// Roles for a whole header row, checked: there must be an email column, and no two
    /// columns may feed the same field. The error says which columns and what to do.
    ///
    /// A reject file sent back ([`crate::rejects::is_reject_file`]) has its last two
    /// columns, `line` and `error`, ignored.
    ///
    /// An Active Directory export ([`is_ad_export`]) is read with its own rules: it
    /// names one attribute several ways (`EmailAddress` and `mail`, `OfficePhone` and
    /// `telephoneNumber`, `Enabled` and `userAccountControl`), so columns may feed the
    /// same field and the first one with a value wins; its bookkeeping attributes are
    /// dropped; `DistinguishedName` (or `csvde`'s `DN`) and `userAccountControl` are read.
    pub fn roles(&self, headers: &[&str]) -> Result<Vec<Role>, RejectReason> {
        let ad = is_ad_export(headers);
        let mut roles: Vec<Role> = headers.iter().map(|h| self.role_in(h, ad)).collect();
        if crate::rejects::is_reject_file(headers) {
            // A reject file sent back: its `line` and `error` are Roster's, not data.
            let n = roles.len();
            roles[n - 2..].fill(Role::Ignore);
        }
        let mut seen: HashMap<Role, usize> = HashMap::new();
        for (i, role) in roles.iter().enumerate() {
            let Some(target) = target(role) else {
                continue;
            };
            if ad && !matches!(target, Role::Extra(_)) {
                continue;
            }
            if let Some(first) = seen.insert(target.clone(), i) {
                let what = match target {
                    Role::Field(f) => f.name().to_owned(),
                    Role::Name => "name".to_owned(),
                    Role::Extra(_) => format!("extra attribute {:?}", headers[i].trim()),
                    _ => format!("{role:?}"),
                };
                return Err(RejectReason::SameTarget {
                    first: Column {
                        index: first + 1,
                        header: headers[first].trim().to_owned(),
                    },
                    second: Column {
                        index: i + 1,
                        header: headers[i].trim().to_owned(),
                    },
                    target: what,
                });
            }
        }
        if !roles.contains(&Role::Field(Field::Email)) {
            return Err(RejectReason::NoEmailColumn {
                expected: spelled_aliases(Field::Email),
                found: headers.iter().map(|h| h.trim().to_owned()).collect(),
            });
        }
        Ok(roles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(h: &str) -> Role {
        HeaderMap::default().role(h)
    }

    #[test]
    fn every_documented_alias_resolves() {
        for h in [
            "Email",
            "Email ID",
            "Primary Email",
            "mail",
            "EmailAddress",
            "E-mail",
        ] {
            assert_eq!(role(h), Role::Field(Field::Email), "{h}");
        }
        for h in ["Designation", "Title", "Job Title"] {
            assert_eq!(role(h), Role::Field(Field::JobTitle), "{h}");
        }
        for h in ["Status", "Active", "Enabled"] {
            assert_eq!(role(h), Role::Field(Field::Active), "{h}");
        }
        for h in ["Group", "Office"] {
            assert_eq!(role(h), Role::Field(Field::Group), "{h}");
        }
        assert_eq!(role("Name"), Role::Name);
        assert_eq!(role("Time Zone"), Role::Field(Field::TimeZone));
        assert_eq!(role("Source"), Role::Extra("Source".into()));
        assert_eq!(role("  "), Role::Ignore);
        // The directory's own headers read back.
        for f in Field::ALL {
            assert_eq!(role(f.name()), Role::Field(*f), "{f}");
        }
    }

    #[test]
    fn tenant_mappings_come_first() {
        let map = HeaderMap::new(&[
            ("Courriel".into(), MappingTarget::Field(Field::Email)),
            ("Title".into(), MappingTarget::Extra),
        ]);
        assert_eq!(map.role("courriel"), Role::Field(Field::Email));
        assert_eq!(map.role("Title"), Role::Extra("Title".into()));
    }

    #[test]
    fn what_columns_cover() {
        let map = HeaderMap::default();
        let roles = map
            .roles(&["Email", "Name", "Status", "Manager", "Source", "Office"])
            .unwrap();
        let c = covered(&roles);
        assert_eq!(
            c.fields,
            [
                "first_name",
                "last_name",
                "display_name",
                "manager_email",
                "group"
            ]
        );
        assert_eq!(c.extras, ["Source"]);
    }

    #[test]
    fn header_rows_are_checked() {
        let map = HeaderMap::default();
        let err = map.roles(&["Name", "Phone"]).unwrap_err().to_string();
        assert!(
            err.contains("no email column") && err.contains("Name, Phone"),
            "{err}"
        );
        let err = map.roles(&["Email", "Name", "mail"]).unwrap_err();
        assert!(
            matches!(&err, RejectReason::SameTarget { first, second, .. }
                if first.index == 1 && second.index == 3 && second.header == "mail"),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(
            err.contains("columns 1 (\"Email\") and 3 (\"mail\")"),
            "{err}"
        );
        assert!(map.roles(&["Email", "", ""]).is_ok());
    }
}
