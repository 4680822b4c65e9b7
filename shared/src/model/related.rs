//! Records that hang off people: groups, group memberships and contact details.
//!
//! A run may carry them beside its people (a three-file bundle brings groups and
//! memberships, a contact-details file brings contact details): the parser writes them to
//! the run's related blob as a [`RelatedSnapshot`], the differ compares it with the stored
//! tables and plans [`RelatedChange`]s, each naming the stored state it replaces, and the
//! writer applies them after the run's people, in one transaction, with their events.

use serde::{Deserialize, Serialize};

use crate::model::envelope::RowError;
use crate::model::ids::{MessageId, RunId, TenantId};

/// The names of a three-file bundle's files (`bundle:` in the tenants file), found in
/// any folder of the archive, matched without regard to case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BundleFiles {
    /// The people (default `users.csv`).
    pub users: String,
    /// The groups (default `groups.csv`).
    pub groups: String,
    /// Who belongs to which group (default `groups-mapping.csv`).
    pub mappings: String,
}

impl Default for BundleFiles {
    fn default() -> Self {
        BundleFiles {
            users: "users.csv".into(),
            groups: "groups.csv".into(),
            mappings: "groups-mapping.csv".into(),
        }
    }
}

impl BundleFiles {
    /// What is wrong with the names (empty, or two alike), for the tenants file's check.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let names = [
            ("users", &self.users),
            ("groups", &self.groups),
            ("mappings", &self.mappings),
        ];
        let mut out = Vec::new();
        for (i, (key, name)) in names.iter().enumerate() {
            if name.trim().is_empty() || name.contains(['/', '\\']) {
                out.push(format!("{at}.{key}: a file name, without folders"));
            }
            if names[..i].iter().any(|(_, n)| n.eq_ignore_ascii_case(name)) {
                out.push(format!(
                    "{at}.{key}: {name:?} names another of the bundle's files too"
                ));
            }
        }
        out
    }
}

/// A group of a tenant: a stable id from the customer's system and a name. A changed
/// name is a rename: the id and the memberships stay.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Group {
    /// The customer's id of the group (never changes).
    pub id: String,
    /// Its name today.
    pub name: String,
}

/// What belongs to a group: a person or another group (a subgroup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberKind {
    /// A person, by email.
    Person,
    /// A subgroup, by group id.
    Group,
}

impl MemberKind {
    /// The name stored in the `member_kind` column.
    pub fn name(self) -> &'static str {
        match self {
            MemberKind::Person => "person",
            MemberKind::Group => "group",
        }
    }

    /// The kind stored as `name` (anything else is a person).
    pub fn from_name(name: &str) -> MemberKind {
        if name == "group" {
            MemberKind::Group
        } else {
            MemberKind::Person
        }
    }
}

/// One member of one group. Its key is (group, kind, member); the manager flag is its
/// only value (subgroups are never managers).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The group's id.
    pub group: String,
    /// A person or a subgroup.
    pub kind: MemberKind,
    /// The person's email, or the subgroup's id.
    pub member: String,
    /// Whether the person manages the group.
    #[serde(default)]
    pub manager: bool,
}

impl Membership {
    /// The key the differ and the writer match memberships by.
    pub fn key(&self) -> (&str, MemberKind, &str) {
        (&self.group, self.kind, &self.member)
    }
}

/// A postal address of a contact detail; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Address {
    /// What the address is (`home`, `work`).
    pub label: Option<String>,
    /// Street and number.
    pub address: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State or province.
    pub state: Option<String>,
    /// Postal code.
    pub zip: Option<String>,
    /// Country (as given, such as `FR`).
    pub country: Option<String>,
}

impl Address {
    /// Whether no part is given.
    pub fn is_empty(&self) -> bool {
        self == &Address::default()
    }
}

/// What a contact detail says: a way to reach a person (protocol, label, URI) and/or a
/// postal address. Two details with equal content are the same detail.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContactContent {
    /// `telephone`, `email`, `chat`, ...
    pub protocol: Option<String>,
    /// `mobile`, `work`, ...
    pub label: Option<String>,
    /// The number, address or handle.
    pub uri: Option<String>,
    /// The postal address, when the detail has one.
    pub address: Option<Address>,
}

impl ContactContent {
    /// Whether the detail says nothing at all.
    pub fn is_empty(&self) -> bool {
        self.protocol.is_none()
            && self.label.is_none()
            && self.uri.is_none()
            && self.address.as_ref().is_none_or(Address::is_empty)
    }
}

/// A stored contact detail of a person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Contact {
    /// Roster's id of the detail (an `ID` column updates the detail it names).
    pub id: String,
    /// The person's email.
    pub person: String,
    /// What the detail says.
    #[serde(flatten)]
    pub content: ContactContent,
    /// Owned by the integration (replaced by each file that lists the person), or added
    /// by hand (never removed by a file).
    pub integration: bool,
}

/// One row of a contact-details file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRow {
    /// Its line in the file (for errors).
    pub line: u64,
    /// The detail it updates (`ID`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The person's email (normalised).
    pub person: String,
    /// What the detail says.
    #[serde(flatten)]
    pub content: ContactContent,
    /// Owned by the integration.
    pub integration: bool,
}

/// The related records a run's file carries, beside its people: the run's related
/// blob. `None` lists are not in the file and leave their table as it is; a `Some` list
/// of groups or memberships is the whole of them (a missing one is removed). Contact
/// rows replace, per person they name, that person's integration-owned details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedSnapshot {
    /// Every group, sorted by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
    /// Every membership, sorted by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memberships: Option<Vec<Membership>>,
    /// Contact-detail rows, in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactRow>,
}

impl RelatedSnapshot {
    /// Whether it carries nothing.
    pub fn is_empty(&self) -> bool {
        self.groups.is_none() && self.memberships.is_none() && self.contacts.is_empty()
    }
}

/// One planned change of a related record, carrying the stored state it replaces, so
/// the writer can tell whether the tables moved since it was planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum RelatedChange {
    /// A new group.
    GroupCreated {
        /// The group.
        group: Group,
    },
    /// A group's name changed; its id and members stay.
    GroupRenamed {
        /// The group's id.
        id: String,
        /// Its stored name.
        from: String,
        /// Its new name.
        to: String,
    },
    /// A group is no longer in the bundle (its memberships are removed with it).
    GroupRemoved {
        /// The group as stored.
        group: Group,
    },
    /// A new member of a group.
    MembershipAdded {
        /// The membership.
        membership: Membership,
    },
    /// A member left a group.
    MembershipRemoved {
        /// The membership as stored.
        membership: Membership,
    },
    /// A member became or stopped being a manager of the group.
    MembershipChanged {
        /// The membership as it will be.
        membership: Membership,
        /// The stored manager flag.
        was_manager: bool,
    },
    /// A new contact detail.
    ContactAdded {
        /// The detail.
        contact: Contact,
    },
    /// A contact detail changed (by its `ID`).
    ContactUpdated {
        /// The detail as stored.
        old: Box<Contact>,
        /// The detail as it will be.
        new: Box<Contact>,
    },
    /// A contact detail owned by the integration is no longer in the file.
    ContactRemoved {
        /// The detail as stored.
        contact: Contact,
    },
}

impl RelatedChange {
    /// The event that announces the change (`group.created`, `membership.added`,
    /// `contact.changed`, ...).
    pub fn event_name(&self) -> &'static str {
        match self {
            RelatedChange::GroupCreated { .. } => "group.created",
            RelatedChange::GroupRenamed { .. } => "group.renamed",
            RelatedChange::GroupRemoved { .. } => "group.removed",
            RelatedChange::MembershipAdded { .. } => "membership.added",
            RelatedChange::MembershipRemoved { .. } => "membership.removed",
            RelatedChange::MembershipChanged { .. } => "membership.changed",
            RelatedChange::ContactAdded { .. }
            | RelatedChange::ContactUpdated { .. }
            | RelatedChange::ContactRemoved { .. } => "contact.changed",
        }
    }

    /// The person the change concerns, if it is about one.
    pub fn email(&self) -> Option<&str> {
        match self {
            RelatedChange::MembershipAdded { membership }
            | RelatedChange::MembershipRemoved { membership }
            | RelatedChange::MembershipChanged { membership, .. }
                if membership.kind == MemberKind::Person =>
            {
                Some(&membership.member)
            }
            RelatedChange::ContactAdded { contact } | RelatedChange::ContactRemoved { contact } => {
                Some(&contact.person)
            }
            RelatedChange::ContactUpdated { new, .. } => Some(&new.person),
            _ => None,
        }
    }

    /// What the change is about, as one stable string (for event ids).
    fn subject(&self) -> String {
        match self {
            RelatedChange::GroupCreated { group } | RelatedChange::GroupRemoved { group } => {
                group.id.clone()
            }
            RelatedChange::GroupRenamed { id, .. } => id.clone(),
            RelatedChange::MembershipAdded { membership }
            | RelatedChange::MembershipRemoved { membership }
            | RelatedChange::MembershipChanged { membership, .. } => format!(
                "{}\t{}\t{}",
                membership.group,
                membership.kind.name(),
                membership.member
            ),
            RelatedChange::ContactAdded { contact } | RelatedChange::ContactRemoved { contact } => {
                contact.id.clone()
            }
            RelatedChange::ContactUpdated { new, .. } => new.id.clone(),
        }
    }
}

/// How many related changes of each event a run planned or applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedCounts {
    /// Groups created.
    pub groups_created: u64,
    /// Groups renamed.
    pub groups_renamed: u64,
    /// Groups removed.
    pub groups_removed: u64,
    /// Memberships added.
    pub memberships_added: u64,
    /// Memberships removed.
    pub memberships_removed: u64,
    /// Manager flags changed.
    pub memberships_changed: u64,
    /// Contact details added, updated or removed.
    pub contacts_changed: u64,
}

impl RelatedCounts {
    /// The counts of `changes`.
    pub fn of(changes: &[RelatedChange]) -> RelatedCounts {
        let mut c = RelatedCounts::default();
        for change in changes {
            let n = match change {
                RelatedChange::GroupCreated { .. } => &mut c.groups_created,
                RelatedChange::GroupRenamed { .. } => &mut c.groups_renamed,
                RelatedChange::GroupRemoved { .. } => &mut c.groups_removed,
                RelatedChange::MembershipAdded { .. } => &mut c.memberships_added,
                RelatedChange::MembershipRemoved { .. } => &mut c.memberships_removed,
                RelatedChange::MembershipChanged { .. } => &mut c.memberships_changed,
                _ => &mut c.contacts_changed,
            };
            *n += 1;
        }
        c
    }

    /// Every change counted.
    pub fn total(&self) -> u64 {
        self.groups_created
            + self.groups_renamed
            + self.groups_removed
            + self.memberships_added
            + self.memberships_removed
            + self.memberships_changed
            + self.contacts_changed
    }
}

/// What the differ planned for a run's related records: the writer's last batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedPlan {
    /// The changes, in the order they apply (groups, then memberships, then contacts).
    pub changes: Vec<RelatedChange>,
    /// Rows of the run's file that failed at planning (a contact detail of a person not
    /// in the directory, an `ID` of another person's detail).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RowError>,
}

/// One event about a related record on the `roster.events` exchange (routing key
/// `<tenant>.<event>`, as for people).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedEvent {
    /// Stable id: the same change of the same run always has the same id.
    pub event_id: MessageId,
    /// `group.created`, `membership.added`, `contact.changed`, ...
    pub event: String,
    /// Whose directory.
    pub tenant: TenantId,
    /// The run that made the change.
    pub run_id: RunId,
    /// The person concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The change itself.
    #[serde(flatten)]
    pub change: RelatedChange,
    /// When it was stored.
    pub at: chrono::DateTime<chrono::Utc>,
}

impl RelatedEvent {
    /// The event announcing `change`, made in `run` of `tenant` at `at`.
    pub fn of(
        change: &RelatedChange,
        tenant: &TenantId,
        run: RunId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> RelatedEvent {
        let event = change.event_name();
        RelatedEvent {
            event_id: MessageId::derived(&[
                "event",
                tenant.as_str(),
                &run.to_string(),
                event,
                &change.subject(),
            ]),
            event: event.to_owned(),
            tenant: tenant.clone(),
            run_id: run,
            email: change.email().map(str::to_owned),
            change: change.clone(),
            at,
        }
    }
}

/// The body of a message of related events: the events of one name from one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedEventBatch {
    /// The event name all events here share.
    pub event: String,
    /// The events.
    pub events: Vec<RelatedEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_serialises_in_the_directory_shape() {
        let contact = Contact {
            id: "c1".into(),
            person: "a@x.com".into(),
            content: ContactContent {
                protocol: Some("telephone".into()),
                label: Some("work".into()),
                uri: Some("+33 1".into()),
                address: Some(Address {
                    city: Some("Paris".into()),
                    ..Address::default()
                }),
            },
            integration: true,
        };
        let json = serde_json::to_value(&contact).unwrap();
        assert_eq!(json["protocol"], "telephone");
        assert_eq!(json["address"]["city"], "Paris");
        assert!(json["address"]["zip"].is_null());
        assert_eq!(json["integration"], true);
        assert_eq!(serde_json::from_value::<Contact>(json).unwrap(), contact);
    }

    #[test]
    fn event_ids_are_stable_and_tell_changes_apart() {
        let tenant = TenantId::new("acme").unwrap();
        let run = RunId::new();
        let at = chrono::Utc::now();
        let created = RelatedChange::GroupCreated {
            group: Group {
                id: "g1".into(),
                name: "Sales".into(),
            },
        };
        let other = RelatedChange::GroupCreated {
            group: Group {
                id: "g2".into(),
                name: "Sales".into(),
            },
        };
        let a = RelatedEvent::of(&created, &tenant, run, at);
        assert_eq!(
            a.event_id,
            RelatedEvent::of(&created, &tenant, run, at).event_id
        );
        assert_ne!(
            a.event_id,
            RelatedEvent::of(&other, &tenant, run, at).event_id
        );
        assert_eq!(a.event, "group.created");
    }
}
