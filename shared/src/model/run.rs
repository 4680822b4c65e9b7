//! The states of a sync run: one delivered file (or web-service fetch) on its way through
//! the stages. Every stage moves a run forward only from the states it expects, so a
//! redelivered message can never move a run backwards or twice.

crate::text_enum! {
    /// Where a run is.
    pub enum RunState as "run state" {
        /// The raw file is stored; waiting for the parser.
        Fetched = "fetched",
        /// The snapshot is stored; waiting for the differ.
        Parsed = "parsed",
        /// Changes are planned and being published.
        Diffed = "diffed",
        /// The writer is applying changes.
        Applying = "applying",
        /// Every change is applied. Final.
        Applied = "applied",
        /// Stopped by a safety brake; waits for an operator's approval.
        Held = "held",
        /// Gave up after retries or on a bug; the message is in a dead-letter queue. Final
        /// until replayed.
        Failed = "failed",
        /// The file was refused as a whole (encoding, missing key column, ...); nothing was
        /// written. Final until replayed.
        Rejected = "rejected",
        /// A later run of the tenant was applied first, so this one is not applied. Final.
        Superseded = "superseded",
        /// A dry run: its changes were planned and recorded (`runs.changes_key`), nothing
        /// was applied; `reason` says why it would have been held, if it would. Final.
        Planned = "planned",
        /// Its file was produced before the file of a run already applied: applying it
        /// would put older data over newer, so it is not applied. Final.
        Stale = "stale",
    }
}

impl RunState {
    /// The states a run is in while stages still work on it: not final, not held.
    pub const MOVING: [RunState; 4] = [
        RunState::Fetched,
        RunState::Parsed,
        RunState::Diffed,
        RunState::Applying,
    ];

    /// The states in which the differ may plan a run (again).
    pub const PLANNABLE: [RunState; 3] = [RunState::Parsed, RunState::Diffed, RunState::Applying];

    /// Whether nothing more happens to the run without an operator.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Applied
                | RunState::Failed
                | RunState::Rejected
                | RunState::Superseded
                | RunState::Planned
                | RunState::Stale
        )
    }

    /// Whether later runs of the tenant may go ahead of this one (it is final, or held
    /// for an operator, who should not block newer deliveries).
    pub fn lets_later_runs_pass(self) -> bool {
        self.is_final() || self == RunState::Held
    }

    /// Whether a waiting command may stop watching the run: it is final or held.
    pub fn is_settled(self) -> bool {
        self.lets_later_runs_pass()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_states_are_exactly_the_unsettled_ones() {
        for state in RunState::ALL {
            assert_eq!(
                RunState::MOVING.contains(state),
                !state.is_settled(),
                "{state}"
            );
        }
        assert!(
            RunState::PLANNABLE
                .iter()
                .all(|s| RunState::MOVING.contains(s))
        );
    }
}
