//! The comparison itself, free of I/O: a merge join of the stored index (sorted by email)
//! with a snapshot (sorted by email) that says, person by person, what must change.

use roster_shared::change::{ChangeCounts, ChangeKind, RowState};
use roster_shared::db::people::IndexEntry;
use roster_shared::envelope::SyncMode;
use roster_shared::snapshot::{SnapshotEntry, SnapshotError};

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

/// Walks `index` and `snapshot` together, calling `step` once per person in either.
pub fn merge(
    index: &[IndexEntry],
    snapshot: impl Iterator<Item = Result<SnapshotEntry, SnapshotError>>,
    mode: SyncMode,
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
    for entry in snapshot {
        let entry = entry?;
        while i < index.len() && *index[i].email < *entry.email {
            step(absent(i))?;
            i += 1;
        }
        let matched = i < index.len() && *index[i].email == *entry.email;
        let s = match (matched, entry.protected) {
            (_, true) => Step::Skip,
            (false, false) => Step::Create(entry),
            (true, false) => match kind_of(index[i].state, entry.state) {
                None if index[i].changed_by_run => Step::AlreadyApplied,
                None => Step::Unchanged,
                Some(kind) => Step::Modify {
                    entry,
                    stored: i,
                    kind,
                },
            },
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
pub fn summarize(
    index: &[IndexEntry],
    snapshot: impl Iterator<Item = Result<SnapshotEntry, SnapshotError>>,
    mode: SyncMode,
) -> Result<PlanSummary, SnapshotError> {
    let mut summary = PlanSummary::default();
    merge(index, snapshot, mode, |step| {
        match step {
            Step::Unchanged => summary.unchanged += 1,
            Step::Create(_) => summary.counts.add(ChangeKind::Created),
            Step::Modify { kind, .. } => summary.counts.add(kind),
            Step::DeactivateAbsent(_) => summary.counts.add(ChangeKind::Deactivated),
            Step::AlreadyApplied | Step::Skip => {}
        }
        Ok(())
    })?;
    Ok(summary)
}
