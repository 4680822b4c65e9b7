//! The references between a file's rows: employee ids (each names one person, so a
//! second row with an employee id already on an earlier row is an error) and managers
//! (each should be a person of the directory, and no chain of managers may come back to
//! where it started).
//!
//! Memory: 24 bytes a row (hashes of the email and the manager, the row's number and
//! line), about 17 more a row carrying an employee id (its hash and its first row), the
//! text of each distinct manager, and, for files naming managers, 5 bytes a row while the
//! chains are walked: a million rows with employee ids cost about 60 MB beside the rows
//! themselves. The cycle check walks each chain once (O(rows)); files naming no manager
//! skip it.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroU64;

use roster_shared::model::envelope::RowError;
use roster_shared::model::person::Person;

/// How the message of a row in a manager cycle starts.
pub const MANAGER_CYCLE: &str = "manager cycle: ";

/// How the message of a row whose manager is not in the directory starts.
pub const UNKNOWN_MANAGER: &str = "manager not in the directory: ";

/// How the message of a row repeating an earlier row's employee id starts.
pub const DUPLICATE_EMPLOYEE_ID: &str = "duplicate employee id ";

/// `text` hashed, never 0 (so emails and managers hash alike, see [`manager_hash`]).
fn hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish().max(1)
}

/// A manager's email hashed as [`hash`] does (never 0, so an absent manager costs no
/// room).
fn manager_hash(text: &str) -> NonZeroU64 {
    NonZeroU64::new(hash(text)).unwrap_or(NonZeroU64::MIN)
}

/// One person row: who, whose report, where (24 bytes).
#[derive(Debug, Clone, Copy)]
struct Link {
    email: u64,
    manager: Option<NonZeroU64>,
    ordinal: u32,
    /// The row's line; 0 when unknown or past `u32::MAX`.
    line: u32,
}

impl Link {
    /// Where the row is, for messages: its line, else its record number.
    fn place(&self) -> String {
        if self.line > 0 {
            format!("line {}", self.line)
        } else {
            format!("record {}", self.ordinal + 1)
        }
    }

    /// The line for a row error (`None` when unknown).
    fn error_line(&self) -> Option<u64> {
        (self.line > 0).then_some(u64::from(self.line))
    }
}

/// No chain of managers goes on from here ([`Links::finish`]'s table).
const NO_MANAGER: u32 = u32::MAX;

/// A row whose manager is not among the file's people: resolved against the stored
/// directory (for a delta) or reported (see [`Links::finish`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownManager {
    /// The row's line (0 when unknown).
    pub line: u64,
    /// The manager it names.
    pub manager: String,
}

impl UnknownManager {
    /// The warning on its row: the row is applied, its manager named but not found.
    pub fn warning(&self) -> RowError {
        RowError::warning(
            (self.line > 0).then_some(self.line),
            Some("manager_email".to_owned()),
            format!(
                "{UNKNOWN_MANAGER}{} is not a person of the directory; the row was applied \
                 as it is",
                self.manager
            ),
        )
    }
}

/// Rows' links, gathered as they are read.
#[derive(Debug, Default)]
pub struct Links {
    people: Vec<Link>,
    /// Emails of rows rejected for their own reasons (present in the file all the same).
    rejected: HashSet<u64>,
    /// The text of each manager named.
    names: HashMap<NonZeroU64, Box<str>>,
    /// Each employee id's first row (its position in `people`).
    ids: HashMap<u64, u32>,
}

/// What [`Links::finish`] found.
#[derive(Debug, Default)]
pub struct Found {
    /// Rows rejected (by ordinal): those in a manager cycle.
    pub rejected: HashSet<u32>,
    /// Their errors, and the warnings of self-managers.
    pub errors: Vec<RowError>,
    /// Rows whose manager is not among the file's people.
    pub unknown: Vec<UnknownManager>,
}

impl Links {
    /// Whether `person`'s employee id is on an earlier row of another email (then
    /// [`Links::check`] gives the error rejecting it).
    pub fn would_repeat_id(&self, person: &Person) -> bool {
        person.employee_id.as_deref().is_some_and(|id| {
            self.ids
                .get(&hash(id))
                .is_some_and(|&first| self.people[first as usize].email != hash(&person.email))
        })
    }

    /// Checks `person` (row number `ordinal`, at `line`) against the rows before it: the
    /// error rejecting it when its employee id is on an earlier row of another email.
    pub fn check(&mut self, person: &Person, ordinal: u32, line: u64) -> Option<RowError> {
        let email = hash(&person.email);
        if let Some(id) = person.employee_id.as_deref() {
            match self.ids.get(&hash(id)).map(|&at| self.people[at as usize]) {
                // The same email twice is a duplicate email, reported as such.
                Some(first) if first.email != email => {
                    let where_first = first.place();
                    return Some(RowError::new(
                        (line > 0).then_some(line),
                        Some("employee_id".to_owned()),
                        format!(
                            "{DUPLICATE_EMPLOYEE_ID}{id} (on the row of {}): already on \
                             {where_first}, another person's; the first row was kept",
                            person.email
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    let at = u32::try_from(self.people.len()).unwrap_or(u32::MAX);
                    self.ids.insert(hash(id), at);
                }
            }
        }
        let manager = person.manager_email.as_deref().map(|m| {
            let h = manager_hash(m);
            self.names.entry(h).or_insert_with(|| m.into());
            h
        });
        self.people.push(Link {
            email,
            manager,
            ordinal,
            line: u32::try_from(line).unwrap_or(0),
        });
        None
    }

    /// Notes a rejected row's email: a person of the file all the same.
    pub fn rejected(&mut self, email: &str) {
        self.rejected.insert(hash(email));
    }

    /// Checks every row's manager: a manager not among the file's people is
    /// [`Found::unknown`]; a row managing itself gets a warning (the usual mark of the
    /// top of a hierarchy); rows whose chain of managers comes back to them are rejected,
    /// each with an error naming everyone in the cycle and their lines.
    pub fn finish(mut self) -> Found {
        let mut found = Found::default();
        if self.names.is_empty() {
            // No row names a manager: nothing to check.
            return found;
        }
        drop(std::mem::take(&mut self.ids));
        // The first row of each email is the person (as the snapshot keeps it).
        self.people.sort_unstable_by_key(|l| (l.email, l.ordinal));
        self.people.dedup_by_key(|l| l.email);
        let people = self.people;
        let at = |email: NonZeroU64| people.binary_search_by_key(&email.get(), |l| l.email).ok();
        let name = |h: NonZeroU64| self.names.get(&h).map_or("?", |n| &**n).to_owned();
        // A person's own name: the text the rows managed by them use, if any.
        let own_name = |l: &Link| NonZeroU64::new(l.email).map_or_else(|| "?".to_owned(), name);
        // Each person's manager's position, when in the file.
        let mut next: Vec<u32> = vec![NO_MANAGER; people.len()];
        for (i, l) in people.iter().enumerate() {
            let Some(m) = l.manager else { continue };
            if m.get() == l.email {
                found.errors.push(RowError::warning(
                    l.error_line(),
                    Some("manager_email".to_owned()),
                    format!(
                        "{} is their own manager; read as the top of the hierarchy",
                        name(m)
                    ),
                ));
                continue;
            }
            match at(m) {
                Some(j) => next[i] = u32::try_from(j).unwrap_or(NO_MANAGER),
                None if self.rejected.contains(&m.get()) => {}
                None => found.unknown.push(UnknownManager {
                    line: u64::from(l.line),
                    manager: name(m),
                }),
            }
        }
        // 0: not seen, 1: on the walk under way, 2: done.
        let mut state = vec![0u8; people.len()];
        let mut walk = Vec::new();
        for start in 0..people.len() {
            let mut i = start;
            walk.clear();
            while state[i] == 0 {
                state[i] = 1;
                walk.push(i);
                match next[i] {
                    NO_MANAGER => break,
                    j => i = j as usize,
                }
            }
            if state[i] == 1 && next[i] != NO_MANAGER {
                // Back on this walk: from `i` on, a cycle.
                let from = walk.iter().position(|&w| w == i).unwrap_or(0);
                let cycle = &walk[from..];
                let names: Vec<String> = cycle
                    .iter()
                    .map(|&c| format!("{} ({})", own_name(&people[c]), people[c].place()))
                    .collect();
                let text = format!("{} -> {}", names.join(" -> "), own_name(&people[cycle[0]]));
                for &c in cycle {
                    let l = &people[c];
                    found.rejected.insert(l.ordinal);
                    found.errors.push(RowError::new(
                        l.error_line(),
                        Some("manager_email".to_owned()),
                        format!(
                            "{MANAGER_CYCLE}{text}: the chain of managers comes back to {}; \
                             the row was rejected",
                            own_name(l)
                        ),
                    ));
                }
            }
            for &w in &walk {
                state[w] = 2;
            }
        }
        found
    }
}
