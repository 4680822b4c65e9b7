//! The comparison itself, free of I/O: a merge join of the stored index (sorted by email)
//! with a snapshot (sorted by email) that says, person by person, what must change.

use std::collections::HashMap;
use std::io::Read;

use roster_shared::model::change::{ChangeCounts, ChangeKind, RowState};
use roster_shared::model::envelope::SyncMode;
use roster_shared::model::snapshot::{SnapshotEntry, SnapshotError, SnapshotReader};
use roster_shared::{CHANGE_BATCH_BYTES, CHANGE_BATCH_SIZE};

use crate::db::IndexEntry;
use crate::identity::{Candidates, Identity};

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
    /// In both, different: `stored` is the index position. Where the stored person's
    /// email is not the entry's, the person moves to the entry's email (a rename, see
    /// [`crate::identity`]).
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
    step: impl FnMut(Step) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    merge_with(
        index,
        snapshot,
        mode,
        fills,
        &Identity::default(),
        None,
        step,
    )
}

/// [`merge`] with the renames and refusals of `identity`: a would-be creation whose
/// email a stored person moves to is a [`Step::Modify`] of that person (whose old email
/// is then skipped, not deactivated), a refused row is skipped, and so is a stored
/// person `identity` keeps. With `listed`, marks the index positions the snapshot lists.
pub fn merge_with<R: Read>(
    index: &[IndexEntry],
    snapshot: &mut SnapshotReader<R>,
    mode: SyncMode,
    fills: &Fills,
    identity: &Identity,
    mut listed: Option<&mut [bool]>,
    mut step: impl FnMut(Step) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let absent = |i: usize| {
        if mode == SyncMode::Full && index[i].state.active && !identity.keeps(i) {
            Step::DeactivateAbsent(i)
        } else {
            Step::Skip
        }
    };
    let modify = |entry: &roster_shared::model::snapshot::EntryRef<'_>, i: usize| {
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
            (false, false) => match identity.renamed_to(entry.email) {
                Some(from) => modify(&entry, from),
                None => Step::Create(entry.to_owned()),
            },
            (true, false) if identity.refuses(entry.email) => Step::Skip,
            (true, false) => modify(&entry, i),
        };
        if matched {
            if let Some(listed) = listed.as_deref_mut() {
                listed[i] = true;
            }
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
    count(
        index,
        snapshot,
        mode,
        fills,
        &Identity::default(),
        keep,
        None,
    )
}

/// [`summarize_keeping`] with the renames and refusals of `identity` ([`merge_with`]);
/// with `candidates`, also noting what [`crate::identity::resolve`] looks at: the
/// would-be creations and the changes of active people that carry an employee id, and
/// who is listed (only the employee id of those rows is read).
pub fn count<R: Read>(
    index: &[IndexEntry],
    snapshot: &mut SnapshotReader<R>,
    mode: SyncMode,
    fills: &Fills,
    identity: &Identity,
    keep: bool,
    mut candidates: Option<&mut Candidates>,
) -> Result<(PlanSummary, Vec<SnapshotEntry>), SnapshotError> {
    let mut summary = PlanSummary::default();
    let mut batcher = Batcher::default();
    let mut kept = Vec::new();
    let mut listed = candidates
        .as_deref_mut()
        .map(|c| std::mem::take(&mut c.listed));
    merge_with(
        index,
        snapshot,
        mode,
        fills,
        identity,
        listed.as_deref_mut(),
        |step| {
            if let Some(size) = change_size(&step, index) {
                batcher.starts_batch(size);
            }
            match step {
                Step::Unchanged => summary.unchanged += 1,
                Step::Create(entry) => {
                    summary.counts.add(ChangeKind::Created);
                    if let Some(c) = candidates.as_deref_mut()
                        && let Some(id) = entry.first_text()
                    {
                        c.creations.push((entry.email.into(), id.into()));
                    }
                }
                Step::Modify {
                    kind,
                    entry,
                    stored,
                } => {
                    summary.counts.add(kind);
                    if let Some(c) = candidates.as_deref_mut()
                        && index[stored].state.active
                        && let Some(id) = entry.first_text()
                    {
                        c.changed.push((entry.email.as_str().into(), id.into()));
                    }
                    if keep {
                        kept.push(entry);
                    }
                }
                Step::DeactivateAbsent(_) => summary.counts.add(ChangeKind::Deactivated),
                Step::AlreadyApplied | Step::Skip => {}
            }
            Ok(())
        },
    )?;
    if let (Some(c), Some(listed)) = (candidates, listed) {
        c.listed = listed;
    }
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
    use crate::identity::{Candidates, Identity};

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
        apply_with(stored, snapshot, mode, &Identity::default())
    }

    /// [`apply`] with renames and refusals.
    fn apply_with(stored: &Stored, snapshot: &[u8], mode: SyncMode, identity: &Identity) -> Stored {
        let idx = index(stored);
        let mut out = stored.clone();
        merge_with(
            &idx,
            &mut SnapshotReader::new(snapshot),
            mode,
            &Fills::new(),
            identity,
            None,
            |step| {
                match step {
                    Step::Modify {
                        entry: e, stored, ..
                    } => {
                        // A rename moves the stored row.
                        out.remove(&*idx[stored].email);
                        out.insert(e.email.clone(), e.state);
                    }
                    Step::Create(e) => {
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

    /// A stored person absent from the snapshot and a would-be creation, when both exist
    /// (`pick` chooses among them): the rename identity continuity would find.
    fn a_rename(
        stored: &Stored,
        snap: &BTreeMap<String, Option<(u8, bool)>>,
        pick: usize,
    ) -> Option<(String, String, usize)> {
        let gone: Vec<&String> = stored.keys().filter(|e| !snap.contains_key(*e)).collect();
        let new: Vec<&String> = snap
            .iter()
            .filter(|(e, r)| r.is_some() && !stored.contains_key(*e))
            .map(|(e, _)| e)
            .collect();
        let (old, new) = (
            gone.get(pick % gone.len().max(1))?,
            new.get(pick % new.len().max(1))?,
        );
        let at = stored.keys().position(|e| e == *old)?;
        Some(((*old).clone(), (*new).clone(), at))
    }

    #[test]
    fn a_rename_is_one_change_of_the_stored_row() {
        let mut stored = Stored::new();
        stored.insert("a@x.com".into(), RowState::of(&person("a@x.com", 1, true)));
        stored.insert("c@x.com".into(), RowState::of(&person("c@x.com", 1, true)));
        let mut snap = BTreeMap::new();
        snap.insert("b@x.com".to_owned(), Some((1, true)));
        snap.insert("c@x.com".to_owned(), Some((1, true)));
        let bytes = snapshot_bytes(&snap);
        let idx = index(&stored);
        let mut identity = Identity::default();
        identity.rename("b@x.com", 0);
        for mode in [SyncMode::Full, SyncMode::Delta] {
            let mut steps = Vec::new();
            merge_with(
                &idx,
                &mut SnapshotReader::new(&bytes[..]),
                mode,
                &Fills::new(),
                &identity,
                None,
                |s| {
                    steps.push(s);
                    Ok(())
                },
            )
            .unwrap();
            let changes: Vec<_> = steps
                .iter()
                .filter(|s| change_size(s, &idx).is_some())
                .collect();
            assert_eq!(changes.len(), 1, "{mode:?}: {steps:?}");
            assert!(
                matches!(changes[0], Step::Modify { entry, stored: 0, kind: ChangeKind::Updated } if entry.email == "b@x.com"),
                "{changes:?}"
            );
        }
        // Without it: a deactivation and a creation.
        let s = summarize(
            &idx,
            &mut SnapshotReader::new(&bytes[..]),
            SyncMode::Full,
            &Fills::new(),
        )
        .unwrap();
        assert_eq!((s.counts.created, s.counts.deactivated), (1, 1));
        let (s, _) = count(
            &idx,
            &mut SnapshotReader::new(&bytes[..]),
            SyncMode::Full,
            &Fills::new(),
            &identity,
            false,
            None,
        )
        .unwrap();
        assert_eq!(
            (s.counts.created, s.counts.updated, s.counts.deactivated),
            (0, 1, 0)
        );
        // A refused row is left alone, and so is the person it would have moved.
        let mut refusing = Identity::default();
        refusing.refuse("c@x.com", 0);
        let (s, _) = count(
            &idx,
            &mut SnapshotReader::new(&bytes[..]),
            SyncMode::Full,
            &Fills::new(),
            &refusing,
            false,
            None,
        )
        .unwrap();
        assert_eq!(
            (
                s.counts.created,
                s.counts.updated,
                s.counts.deactivated,
                s.unchanged
            ),
            (1, 0, 0, 0)
        );
    }

    #[test]
    fn candidates_are_creations_and_changes_carrying_an_employee_id() {
        let mut stored = Stored::new();
        stored.insert("a@x.com".into(), RowState::of(&person("a@x.com", 1, true)));
        stored.insert("c@x.com".into(), RowState::of(&person("c@x.com", 1, true)));
        stored.insert("d@x.com".into(), RowState::of(&person("d@x.com", 1, false)));
        let with_id = |email: &str, id: &str| {
            let mut p = person(email, 2, true);
            p.set(Field::EmployeeId, id);
            p
        };
        let mut bytes = Vec::new();
        encode_line(&with_id("b@x.com", "7"), &mut bytes);
        encode_line(&with_id("c@x.com", "8"), &mut bytes);
        encode_line(&with_id("d@x.com", "9"), &mut bytes);
        encode_line(&person("e@x.com", 1, true), &mut bytes);
        let idx = index(&stored);
        let mut c = Candidates::new(idx.len());
        count(
            &idx,
            &mut SnapshotReader::new(&bytes[..]),
            SyncMode::Full,
            &Fills::new(),
            &Identity::default(),
            false,
            Some(&mut c),
        )
        .unwrap();
        assert_eq!(c.creations, vec![("b@x.com".into(), "7".into())]);
        // d is inactive: no one's email to take.
        assert_eq!(c.changed, vec![("c@x.com".into(), "8".into())]);
        assert_eq!(c.listed, vec![false, true, true]);
    }

    proptest! {
        #[test]
        fn renames_keep_the_plan_whole(stored in stored(), snap in snapshot(), pick in 0..12usize, full in any::<bool>()) {
            let Some((old, new, at)) = a_rename(&stored, &snap, pick) else { return Ok(()) };
            let mode = if full { SyncMode::Full } else { SyncMode::Delta };
            let bytes = snapshot_bytes(&snap);
            let mut identity = Identity::default();
            identity.rename(&new, at);
            let plain = apply(&stored, &bytes, mode);
            let after = apply_with(&stored, &bytes, mode, &identity);
            // The same directory, but the old email moved instead of kept beside.
            let mut expected = plain.clone();
            expected.remove(&old);
            prop_assert_eq!(&after, &expected);
            // No creation, no deactivation of the old email, in the same batches
            // whichever pass counts them.
            let idx = index(&stored);
            let (with, _) = count(&idx, &mut SnapshotReader::new(&bytes[..]), mode, &Fills::new(), &identity, false, None).unwrap();
            let without = summarize(&idx, &mut SnapshotReader::new(&bytes[..]), mode, &Fills::new()).unwrap();
            prop_assert_eq!(with.counts.created + 1, without.counts.created);
            let was_active = stored[&old].active;
            // The creation became the rename's change; the deactivation is gone.
            prop_assert_eq!(with.counts.total() + u64::from(was_active && full), without.counts.total());
            let mut produced = 0u32;
            let mut batcher = Batcher::default();
            merge_with(&idx, &mut SnapshotReader::new(&bytes[..]), mode, &Fills::new(), &identity, None, |s| {
                if let Some(size) = change_size(&s, &idx) { produced += u32::from(batcher.starts_batch(size)); }
                Ok(())
            }).unwrap();
            prop_assert_eq!(produced, with.batches);
            // Planning again against the result finds nothing left to do.
            if full {
                let again = summarize(&index(&after), &mut SnapshotReader::new(&bytes[..]), SyncMode::Full, &Fills::new()).unwrap();
                prop_assert_eq!(again.counts.total(), 0);
            }
        }

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
