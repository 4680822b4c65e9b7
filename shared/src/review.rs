//! The change list of a run, read back from what the differ stored: a dry run's plan, or
//! what a held run would do (`runs.changes_key`, JSON lines of changes). The command line
//! and the import API show it alike ([`ChangeList`]).

use crate::blob::{BlobError, BlobStore};
use crate::db::entity::run;
use crate::model::change::Change;
use crate::model::review::ChangeList;
use crate::model::run::RunState;
use crate::model::safety::BrakeName;

/// Why a run has no change list to show.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Only held runs and dry runs keep what they would do.
    #[error("run {run} is {state}: only held runs and dry runs keep a list of what they would do")]
    NoPlan {
        /// The run.
        run: String,
        /// Its state.
        state: RunState,
    },
    /// The stored list could not be read.
    #[error("reading the changes of run {run}: {source}")]
    Blob {
        /// The run.
        run: String,
        /// What went wrong.
        source: BlobError,
    },
    /// A line of the stored list is not a change nor a related change.
    #[error("the changes of run {run} are damaged at line {line}: {message}")]
    Damaged {
        /// The run.
        run: String,
        /// The line (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The brakes that hold (or would hold) `run`.
pub fn held_by(run: &run::Model) -> Vec<BrakeName> {
    run.held_by
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

/// The change list of `run`: people's changes in email order (related records' changes,
/// stored beside them, are counted in the run's summary, not listed here).
pub async fn change_list(blobs: &BlobStore, run: &run::Model) -> Result<ChangeList, ReviewError> {
    let (Some(key), RunState::Held | RunState::Planned) = (&run.changes_key, run.state) else {
        return Err(ReviewError::NoPlan {
            run: run.id.clone(),
            state: run.state,
        });
    };
    let bytes = blobs
        .get_bytes(key)
        .await
        .map_err(|source| ReviewError::Blob {
            run: run.id.clone(),
            source,
        })?;
    let mut list = ChangeList::new(Some(run.id.clone()), run.state.name(), held_by(run));
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| ReviewError::Damaged {
                run: run.id.clone(),
                line: n + 1,
                message: e.to_string(),
            })?;
        // Related changes (groups, memberships, contacts) are tagged `change`.
        if value.get("change").is_some() {
            continue;
        }
        let change: Change = serde_json::from_value(value).map_err(|e| ReviewError::Damaged {
            run: run.id.clone(),
            line: n + 1,
            message: e.to_string(),
        })?;
        list.push(&change);
    }
    Ok(list)
}
