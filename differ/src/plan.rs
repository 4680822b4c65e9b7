//! The comparison itself, free of I/O: a merge join of the stored index (sorted by email)
//! with a snapshot (sorted by email) that says, person by person, what must change.

use std::collections::HashMap;
use std::io::Read;

use roster_shared::model::change::{ChangeCounts, ChangeKind, RowState};
use roster_shared::model::envelope::SyncMode;
use roster_shared::model::snapshot::{SnapshotEntry, SnapshotError, SnapshotReader};
use roster_shared::{CHANGE_BATCH_BYTES, CHANGE_BATCH_SIZE};

use crate::db::IndexEntry;

/// What the comparison decided for one person.
#[derive(Debug, Clone)]
pub enum Step {
    /// In both, equal.
    Unchanged,
    /// In both, equal, and made so by this very run (an earlier planning of it was
    /// partly applied): not counted as unchanged.
    AlreadyApplied,
    /// Only in the snapshot.
    Create(SnapshotEntry),
    /// In both, different: `stored` is the index position.
    Modify {
        /// The new record.
        entry: SnapshotEntry,
        /// Index position of the stored person.
        stored: usize,
        /// Updated, deactivated or reactivated.
        kind: ChangeKind,
    },
    /// Stored and active, absent from a full snapshot: index position.
    DeactivateAbsent(usize),
    /// Nothing to do (a protected row, a stored person a delta leaves alone, an inactive
    /// person absent from a full snapshot).
    Skip,
}

/// What a plan adds up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanSummary {
    /// Changes by kind.
    pub counts: ChangeCounts,
    /// People in the snapshot needing no change.
    pub unchanged: u64,
    /// `changes.ready` batches the changes make (see [`Batcher`]).
    pub batches: u32,
}

/// Room for a change's framing beside its record (kind, states, field names).
const CHANGE_OVERHEAD: usize = 256;

/// About how many bytes the change a step makes takes in a `changes.ready` message
/// (`None`: the step changes nothing). Known without decoding any record: an update
/// carries the new record and the changed fields' old and new values, so twice the
/// record at most.
pub fn change_size(step: &Step, index: &[IndexEntry]) -> Option<usize> {
    Some(match step {
        Step::Create(entry) => creation_size(entry.encoded_len(), entry.email.len()),
        Step::Modify { entry, .. } => 2 * entry.encoded_len() + entry.email.len() + CHANGE_OVERHEAD,
        Step::DeactivateAbsent(i) => index[*i].email.len() + CHANGE_OVERHEAD,
        Step::Unchanged | Step::AlreadyApplied | Step::Skip => return None,
    })
}

/// [`change_size`] of the creation of a person whose record is `encoded_len` bytes and
/// email `email_len`.
pub fn creation_size(encoded_len: usize, email_len: usize) -> usize {
    encoded_len + email_len + CHANGE_OVERHEAD
}

/// Cuts changes into `changes.ready` batches of at most [`CHANGE_BATCH_SIZE`] changes
/// and, beyond the first change, about [`CHANGE_BATCH_BYTES`] bytes (a wide row must not
/// make a message the broker refuses). Both passes of a plan cut the same way, so the
/// number of batches is known before the first goes out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Batcher {
    count: usize,
    bytes: usize,
    batches: u32,
}

impl Batcher {
    /// Counts one change of `size` bytes; returns whether it starts a new batch.
    pub fn starts_batch(&mut self, size: usize) -> bool {
        let new = self.count == 0
            || self.count == CHANGE_BATCH_SIZE
            || self.bytes + size > CHANGE_BATCH_BYTES;
        if new {
            self.batches += 1;
            self.count = 0;
            self.bytes = 0;
        }
        self.count += 1;
        self.bytes += size;
        new
    }

    /// Batches started so far.
    pub fn batches(&self) -> u32 {
        self.batches
    }
}

fn kind_of(stored: RowState, new: RowState) -> Option<ChangeKind> {
    if stored == new {
        None
    } else if stored.active && !new.active {
        Some(ChangeKind::Deactivated)
    } else if !stored.active && new.active {
        Some(ChangeKind::Reactivated)
    } else {
        Some(ChangeKind::Updated)
    }
}

/// Snapshot entries completed with what their file left out, by email (see
/// [`roster_shared::model::envelope::Covered`]): compared and applied in place of the
/// entry read.
pub type Fills = HashMap<String, SnapshotEntry>;

/// Walks `index` and `snapshot` together, calling `step` once per person in either; a
/// stored person's entry is taken from `fills` when it is there.
pub fn merge<R: Read>(
    index: &[IndexEntry],
    snapshot: &mut SnapshotReader<R>,
    mode: SyncMode,
    fills: &Fills,
    mut step: impl FnMut(Step) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let absent = |i: usize| {
        if mode == SyncMode::Full && index[i].state.active {
            Step::DeactivateAbsent(i)
        } else {
            Step::Skip
        }
    };
    let mut i = 0;
    while let Some(entry) = snapshot.next_ref()? {
        while i < index.len() && *index[i].email < *entry.email {
            step(absent(i))?;
            i += 1;
        }
        let matched = i < index.len() && *index[i].email == *entry.email;
        // Only changes own their record; equal people cost a comparison.
        let s = match (matched, entry.protected) {
            (_, true) => Step::Skip,
            (false, false) => Step::Create(entry.to_owned()),
            (true, false) => {
                let filled = fills.get(entry.email);
                match kind_of(index[i].state, filled.map_or(entry.state, |f| f.state)) {
                    None if index[i].changed_by_run => Step::AlreadyApplied,
                    None => Step::Unchanged,
                    Some(kind) => Step::Modify {
                        entry: filled.cloned().unwrap_or_else(|| entry.to_owned()),
                        stored: i,
                        kind,
                    },
                }
            }
        };
        if matched {
            i += 1;
        }
        step(s)?;
    }
    while i < index.len() {
        step(absent(i))?;
        i += 1;
    }
    Ok(())
}

/// Counts what a plan would do, without decoding any record.
pub fn summarize<R: Read>(
    index: &[IndexEntry],
    snapshot: &mut SnapshotReader<R>,
    mode: SyncMode,
    fills: &Fills,
) -> Result<PlanSummary, SnapshotError> {
    Ok(summarize_keeping(index, snapshot, mode, fills, false)?.0)
}

/// [`summarize`], also keeping (with `keep`) the entries of the stored people it would
/// modify, in email order.
pub fn summarize_keeping<R: Read>(
    index: &[IndexEntry],
    snapshot: &mut SnapshotReader<R>,
    mode: SyncMode,
    fills: &Fills,
    keep: bool,
) -> Result<(PlanSummary, Vec<SnapshotEntry>), SnapshotError> {
    let mut summary = PlanSummary::default();
    let mut batcher = Batcher::default();
    let mut kept = Vec::new();
    merge(index, snapshot, mode, fills, |step| {
        if let Some(size) = change_size(&step, index) {
            batcher.starts_batch(size);
        }
        match step {
            Step::Unchanged => summary.unchanged += 1,
            Step::Create(_) => summary.counts.add(ChangeKind::Created),
            Step::Modify { kind, entry, .. } => {
                summary.counts.add(kind);
                if keep {
                    kept.push(entry);
                }
            }
            Step::DeactivateAbsent(_) => summary.counts.add(ChangeKind::Deactivated),
            Step::AlreadyApplied | Step::Skip => {}
        }
        Ok(())
    })?;
    summary.batches = batcher.batches();
    Ok((summary, kept))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use roster_shared::model::person::{Field, Person};
    use roster_shared::model::snapshot::{encode_line, encode_protected};

    use super::*;

    /// Stored people: email to (state, changed by this run).
    type Stored = BTreeMap<String, RowState>;

    fn person(email: &str, title: u8, active: bool) -> Person {
        let mut p = Person::new(email.to_owned());
        p.set(Field::JobTitle, &format!("t{title}"));
        p.active = active;
        p
    }

    fn index(stored: &Stored) -> Vec<IndexEntry> {
        stored
            .iter()
            .map(|(e, s)| IndexEntry {
                email: e.clone().into_boxed_str(),
                state: *s,
                changed_by_run: false,
            })
            .collect()
    }

    fn snapshot_bytes(snapshot: &BTreeMap<String, Option<(u8, bool)>>) -> Vec<u8> {
        let mut out = Vec::new();
        for (email, row) in snapshot {
            match row {
                Some((title, active)) => encode_line(&person(email, *title, *active), &mut out),
                None => encode_protected(email, &mut out),
            }
        }
        out
    }

    /// Applies the plan's steps to the stored states, as the writer would.
    fn apply(stored: &Stored, snapshot: &[u8], mode: SyncMode) -> Stored {
        let idx = index(stored);
        let mut out = stored.clone();
        merge(
            &idx,
            &mut SnapshotReader::new(snapshot),
            mode,
            &Fills::new(),
            |step| {
                match step {
                    Step::Create(e) | Step::Modify { entry: e, .. } => {
                        out.insert(e.email.clone(), e.state);
                    }
                    Step::DeactivateAbsent(i) => {
                        out.get_mut(&*idx[i].email).unwrap().active = false;
                    }
                    Step::Unchanged | Step::AlreadyApplied | Step::Skip => {}
                }
                Ok(())
            },
        )
        .unwrap();
        out
    }

    fn emails() -> impl Strategy<Value = String> {
        (0..12u8).prop_map(|n| format!("p{n:02}@x.com"))
    }

    fn stored() -> impl Strategy<Value = Stored> {
        prop::collection::btree_map(emails(), (0..3u8, any::<bool>()), 0..12).prop_map(|m| {
            m.into_iter()
                .map(|(e, (t, a))| {
                    let state = RowState::of(&person(&e, t, a));
                    (e, state)
                })
                .collect()
        })
    }

    fn snapshot() -> impl Strategy<Value = BTreeMap<String, Option<(u8, bool)>>> {
        prop::collection::btree_map(
            emails(),
            prop::option::weighted(0.85, (0..3u8, any::<bool>())),
            0..12,
        )
    }

    proptest! {
        #[test]
        fn full_plans_turn_the_directory_into_the_snapshot(stored in stored(), snap in snapshot()) {
            let bytes = snapshot_bytes(&snap);
            let after = apply(&stored, &bytes, SyncMode::Full);
            for (email, row) in &snap {
                match row {
                    Some((t, a)) => prop_assert_eq!(after[email], RowState::of(&person(email, *t, *a))),
                    // A protected row leaves the stored person (or no one) as it was.
                    None => prop_assert_eq!(after.get(email), stored.get(email)),
                }
            }
            for (email, state) in &stored {
                if !snap.contains_key(email) {
                    prop_assert_eq!(after[email], RowState { active: false, ..*state });
                }
            }
            prop_assert_eq!(after.len(), stored.keys().chain(snap.iter().filter(|(_, r)| r.is_some()).map(|(e, _)| e)).collect::<std::collections::BTreeSet<_>>().len());
            // Planning again against the result finds nothing left to do.
            let again = summarize(&index(&after), &mut SnapshotReader::new(&bytes[..]), SyncMode::Full, &Fills::new()).unwrap();
            prop_assert_eq!(again.counts.total(), 0);
        }

        #[test]
        fn delta_plans_touch_only_listed_people(stored in stored(), snap in snapshot()) {
            let bytes = snapshot_bytes(&snap);
            let after = apply(&stored, &bytes, SyncMode::Delta);
            for (email, state) in &stored {
                if !matches!(snap.get(email), Some(Some(_))) {
                    prop_assert_eq!(after[email], *state);
                }
            }
        }

        #[test]
        fn batches_hold_at_most_change_batch_size_changes(stored in stored(), snap in snapshot()) {
            let bytes = snapshot_bytes(&snap);
            let s = summarize(&index(&stored), &mut SnapshotReader::new(&bytes[..]), SyncMode::Full, &Fills::new()).unwrap();
            prop_assert_eq!(u64::from(s.batches), s.counts.total().div_ceil(CHANGE_BATCH_SIZE as u64));
        }

        #[test]
        fn summaries_count_what_the_steps_do(stored in stored(), snap in snapshot()) {
            let bytes = snapshot_bytes(&snap);
            let s = summarize(&index(&stored), &mut SnapshotReader::new(&bytes[..]), SyncMode::Full, &Fills::new()).unwrap();
            let listed = snap.values().filter(|r| r.is_some()).count() as u64;
            let created = snap.iter().filter(|(e, r)| r.is_some() && !stored.contains_key(*e)).count() as u64;
            let absent_active = stored.iter().filter(|(e, st)| st.active && !snap.contains_key(*e)).count() as u64;
            prop_assert_eq!(s.counts.created, created);
            // Every listed person is counted exactly once.
            let c = s.counts;
            prop_assert_eq!(
                c.created + c.updated + c.reactivated + (c.deactivated - absent_active) + s.unchanged,
                listed
            );
        }
    }
}
