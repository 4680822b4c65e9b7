//! The safety brakes: a run that looks like a broken export rather than real change is
//! held for an operator instead of applied. Three brakes, each with safe defaults that a
//! tenant may override (`safety.brakes` in the tenants file):
//!
//! - **deactivations**: more deactivations than `max(floor, min(percent% of the active
//!   people, max))`, counting this run's together with those applied within the rolling
//!   window (so twenty runs of 4% each are caught like one of 80%);
//! - **attribute churn**: one attribute (department, group, organization, manager)
//!   changes for more than a share of the active people in one run (a shifted column);
//! - **population drift**: the active population would move by more than a share of
//!   what it was at the start of the window.
//!
//! The window reaches back `window_days`, but never before the last run an operator
//! approved: an approval accepts what the directory had become.
//!
//! Every mode is checked: a delta marking everyone inactive deactivates as surely as a
//! full file missing everyone.

use clap::Args;
use roster_shared::model::person::Field;
use roster_shared::model::safety::{BrakeName, BrakeOverrides};
use serde::Serialize;

/// Default of `ROSTER_MAX_DEACTIVATE_PERCENT`.
pub const DEFAULT_PERCENT: u32 = 10;
/// Default of `ROSTER_MAX_DEACTIVATE`.
pub const DEFAULT_MAX: u64 = 500;
/// Default of `ROSTER_DEACTIVATE_FLOOR`.
pub const DEFAULT_FLOOR: u64 = 10;
/// Default of `ROSTER_MAX_CHURN_PERCENT`.
pub const DEFAULT_CHURN_PERCENT: u32 = 30;
/// Default of `ROSTER_MAX_DRIFT_PERCENT`.
pub const DEFAULT_DRIFT_PERCENT: u32 = 25;
/// Default of `ROSTER_BRAKE_CHANGE_FLOOR`.
pub const DEFAULT_CHANGE_FLOOR: u64 = 10;
/// Default of `ROSTER_BRAKE_WINDOW_DAYS`.
pub const DEFAULT_WINDOW_DAYS: u32 = 7;

/// The attributes whose churn the churn brake watches: a shifted column moves one of
/// these for nearly everyone.
pub const CHURN_FIELDS: [Field; 4] = [
    Field::Department,
    Field::Group,
    Field::Organization,
    Field::ManagerEmail,
];

/// The brakes' default settings (the differ's, and every command that plans in its own
/// process); a tenant's `safety.brakes` override them one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct BrakeSettings {
    /// Deactivation brake: runs deactivating more than this percentage of the active
    /// people (with the deactivations applied within the window) are held for approval...
    #[arg(
        long,
        env = "ROSTER_MAX_DEACTIVATE_PERCENT",
        default_value_t = DEFAULT_PERCENT,
        value_parser = clap::value_parser!(u32).range(0..=100)
    )]
    pub max_deactivate_percent: u32,

    /// ...or more than this many people, whichever limit is lower...
    #[arg(long, env = "ROSTER_MAX_DEACTIVATE", default_value_t = DEFAULT_MAX)]
    pub max_deactivate: u64,

    /// ...but deactivating at most this many is never held.
    #[arg(long, env = "ROSTER_DEACTIVATE_FLOOR", default_value_t = DEFAULT_FLOOR)]
    pub deactivate_floor: u64,

    /// Attribute churn brake: a run giving more than this percentage of the active people
    /// a new department, group, organization or manager (any one of them) is held.
    #[arg(
        long,
        env = "ROSTER_MAX_CHURN_PERCENT",
        default_value_t = DEFAULT_CHURN_PERCENT,
        value_parser = clap::value_parser!(u32).range(0..=100)
    )]
    pub max_churn_percent: u32,

    /// Population drift brake: a run moving the active population by more than this
    /// percentage of what it was at the start of the window is held.
    #[arg(
        long,
        env = "ROSTER_MAX_DRIFT_PERCENT",
        default_value_t = DEFAULT_DRIFT_PERCENT,
        value_parser = clap::value_parser!(u32).range(0..=100)
    )]
    pub max_drift_percent: u32,

    /// Churn or drift of at most this many people never holds a run (small directories).
    #[arg(long, env = "ROSTER_BRAKE_CHANGE_FLOOR", default_value_t = DEFAULT_CHANGE_FLOOR)]
    pub brake_change_floor: u64,

    /// The rolling window, in days, over which deactivations and drift add up.
    #[arg(
        long,
        env = "ROSTER_BRAKE_WINDOW_DAYS",
        default_value_t = DEFAULT_WINDOW_DAYS,
        value_parser = clap::value_parser!(u32).range(1..=366)
    )]
    pub brake_window_days: u32,
}

impl Default for BrakeSettings {
    fn default() -> Self {
        BrakeSettings {
            max_deactivate_percent: DEFAULT_PERCENT,
            max_deactivate: DEFAULT_MAX,
            deactivate_floor: DEFAULT_FLOOR,
            max_churn_percent: DEFAULT_CHURN_PERCENT,
            max_drift_percent: DEFAULT_DRIFT_PERCENT,
            brake_change_floor: DEFAULT_CHANGE_FLOOR,
            brake_window_days: DEFAULT_WINDOW_DAYS,
        }
    }
}

impl BrakeSettings {
    /// The brakes these settings describe.
    pub fn brake(&self) -> Brake {
        Brake {
            percent: self.max_deactivate_percent,
            max: self.max_deactivate,
            floor: self.deactivate_floor,
            churn_percent: self.max_churn_percent,
            drift_percent: self.max_drift_percent,
            change_floor: self.brake_change_floor,
            window_days: self.brake_window_days,
        }
    }
}

/// The limits in force for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Brake {
    /// Deactivations allowed, as a percentage of the active people.
    #[serde(rename = "max_deactivate_percent")]
    pub percent: u32,
    /// Deactivations allowed, as a number.
    #[serde(rename = "max_deactivate")]
    pub max: u64,
    /// Deactivations at or under this never hold a run (small directories would
    /// otherwise hold on every leaver).
    #[serde(rename = "deactivate_floor")]
    pub floor: u64,
    /// Share (percent) of the active people one attribute may change for in one run.
    #[serde(rename = "max_churn_percent")]
    pub churn_percent: u32,
    /// Share (percent) the active population may move within the window.
    #[serde(rename = "max_drift_percent")]
    pub drift_percent: u32,
    /// Churn or drift of at most this many people never holds a run.
    pub change_floor: u64,
    /// Days the window reaches back.
    pub window_days: u32,
}

impl Default for Brake {
    fn default() -> Self {
        BrakeSettings::default().brake()
    }
}

/// What the brakes look at for one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// Active people in the directory now.
    pub active: u64,
    /// What this run would do.
    pub counts: roster_shared::model::change::ChangeCounts,
    /// The runs applied within the window.
    pub window: Window,
    /// The attribute that changes for the most people in this run, with that number
    /// (`None` when not counted: too few changes to trip the churn brake).
    pub churn: Option<(Field, u64)>,
}

/// What the runs applied within the window did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// How many runs were applied within it.
    pub runs: u64,
    /// The people they deactivated.
    pub deactivated: u64,
    /// Active people before the first of them (`None`: no run in the window).
    pub baseline: Option<u64>,
}

/// One brake that trips, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    /// The brake.
    pub brake: BrakeName,
    /// What it saw, for the operator.
    pub reason: String,
}

/// How `approve` is spelled in a brake's reason.
const APPROVE_HINT: &str = "review with `roster runs show RUN --changes`, then `roster runs \
                            approve RUN` or `roster runs reject RUN`";

impl Brake {
    /// These limits with a tenant's overrides.
    pub fn with(self, o: &BrakeOverrides) -> Brake {
        Brake {
            percent: o.max_deactivate_percent.unwrap_or(self.percent),
            max: o.max_deactivate.unwrap_or(self.max),
            floor: o.deactivate_floor.unwrap_or(self.floor),
            churn_percent: o.max_churn_percent.unwrap_or(self.churn_percent),
            drift_percent: o.max_drift_percent.unwrap_or(self.drift_percent),
            change_floor: o.change_floor.unwrap_or(self.change_floor),
            window_days: o.window_days.unwrap_or(self.window_days),
        }
    }

    /// The most deactivations allowed out of `active` active people.
    pub fn limit(&self, active: u64) -> u64 {
        let pct = active.saturating_mul(u64::from(self.percent)) / 100;
        pct.min(self.max).max(self.floor)
    }

    /// The most people one attribute may change for, out of `active` active people.
    pub fn churn_limit(&self, active: u64) -> u64 {
        (active.saturating_mul(u64::from(self.churn_percent)) / 100).max(self.change_floor)
    }

    /// The most the active population may move from `baseline`.
    pub fn drift_limit(&self, baseline: u64) -> u64 {
        (baseline.saturating_mul(u64::from(self.drift_percent)) / 100).max(self.change_floor)
    }

    /// Why a run deactivating `deactivations` of `active` people must be held, if it must
    /// (this run alone; [`Brake::check_all`] adds the window).
    pub fn check(&self, deactivations: u64, active: u64) -> Option<String> {
        self.check_all(&Observed {
            active,
            counts: roster_shared::model::change::ChangeCounts {
                deactivated: deactivations,
                ..Default::default()
            },
            ..Default::default()
        })
        .into_iter()
        .next()
        .map(|t| t.reason)
    }

    /// Every brake the run trips (none: it may be applied). A first import (nobody
    /// active, nobody applied in the window) trips none.
    pub fn check_all(&self, o: &Observed) -> Vec<Trip> {
        let mut trips = Vec::new();
        // The population at the window's start (the most the leak counts against).
        let baseline = o.window.baseline.unwrap_or(o.active);
        let deactivated = o.counts.deactivated;
        let total = deactivated + o.window.deactivated;
        let limit = self.limit(baseline.max(o.active));
        if deactivated > 0 && total > limit {
            let earlier = if o.window.deactivated > 0 {
                format!(
                    ", {} more with the {} run(s) applied in the last {} days",
                    o.window.deactivated, o.window.runs, self.window_days
                )
            } else {
                String::new()
            };
            trips.push(Trip {
                brake: BrakeName::Deactivations,
                reason: format!(
                    "deactivation brake: would deactivate {deactivated} of {} active people\
                     {earlier} ({total} in all, limit {limit})",
                    o.active
                ),
            });
        }
        if let Some((field, n)) = o.churn {
            let limit = self.churn_limit(o.active);
            if o.active > 0 && n > limit {
                trips.push(Trip {
                    brake: BrakeName::AttributeChurn,
                    reason: format!(
                        "attribute churn brake: {n} of {} active people would get a new {} \
                         (limit {limit}, {}%): a shifted column?",
                        o.active,
                        field.name(),
                        self.churn_percent
                    ),
                });
            }
        }
        if baseline > 0 {
            let c = &o.counts;
            let after = (o.active + c.created + c.reactivated).saturating_sub(c.deactivated);
            let moved = after.abs_diff(baseline);
            let limit = self.drift_limit(baseline);
            let this_run = after.abs_diff(o.active);
            if this_run > 0 && moved > limit {
                trips.push(Trip {
                    brake: BrakeName::PopulationDrift,
                    reason: format!(
                        "population drift brake: the active people would go from {baseline} \
                         to {after} within {} days (limit {limit}, {}%)",
                        self.window_days, self.drift_percent
                    ),
                });
            }
        }
        trips
    }

    /// The reason recorded on a run held by `trips`: each brake's, then how to go on.
    pub fn reason(trips: &[Trip]) -> String {
        let mut out: Vec<&str> = trips.iter().map(|t| t.reason.as_str()).collect();
        out.push(APPROVE_HINT);
        out.join("; ")
    }

    /// Whether the churn brake could trip for a run whose changes touch `changed` people
    /// out of `active` (a bound: counting churn per attribute costs reading the stored
    /// records of everyone changed, so it is done only when it could matter).
    pub fn churn_possible(&self, changed: u64, active: u64) -> bool {
        active > 0 && changed > self.churn_limit(active)
    }
}

#[cfg(test)]
mod tests {
    use roster_shared::model::change::ChangeCounts;

    use super::*;

    fn brake() -> Brake {
        Brake::default()
    }

    #[test]
    fn limits() {
        let b = brake();
        assert_eq!(b.limit(3), 10, "floor for tiny directories");
        assert_eq!(b.limit(1_000), 100);
        assert_eq!(b.limit(100_000), 500);
        assert!(b.check(100, 1_000).is_none());
        assert!(b.check(101, 1_000).is_some());
        assert!(b.check(501, 100_000).is_some());
        assert_eq!((b.percent, b.max, b.floor), (10, 500, 10));
        assert_eq!(
            (b.churn_percent, b.drift_percent, b.window_days),
            (30, 25, 7)
        );
    }

    fn observed(active: u64, deactivated: u64) -> Observed {
        Observed {
            active,
            counts: ChangeCounts {
                deactivated,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(trips: &[Trip]) -> Vec<BrakeName> {
        trips.iter().map(|t| t.brake).collect()
    }

    #[test]
    fn a_slow_leak_adds_up_over_the_window() {
        let b = brake();
        // Run after run of 4%: alone each passes.
        let mut o = observed(960, 40);
        assert!(b.check_all(&o).is_empty());
        o.window = Window {
            runs: 1,
            deactivated: 40,
            baseline: Some(1_000),
        };
        o.active = 960;
        assert!(b.check_all(&o).is_empty(), "80 of 1000");
        o.window.deactivated = 80;
        o.window.runs = 2;
        let trips = b.check_all(&o);
        assert_eq!(names(&trips), [BrakeName::Deactivations], "{trips:?}");
        assert!(
            trips[0].reason.contains("120 in all"),
            "{}",
            trips[0].reason
        );
        // A run deactivating nobody never trips on what earlier runs did.
        o.counts.deactivated = 0;
        assert!(!names(&b.check_all(&o)).contains(&BrakeName::Deactivations));
    }

    #[test]
    fn churn_trips_over_its_share_and_names_the_field() {
        let b = brake();
        let mut o = observed(1_000, 0);
        o.churn = Some((Field::Department, 300));
        assert!(b.check_all(&o).is_empty());
        o.churn = Some((Field::Department, 301));
        let trips = b.check_all(&o);
        assert_eq!(names(&trips), [BrakeName::AttributeChurn]);
        assert!(
            trips[0].reason.contains("department"),
            "{}",
            trips[0].reason
        );
        assert!(b.churn_possible(301, 1_000) && !b.churn_possible(300, 1_000));
        // Tiny directories: under the floor never trips.
        let mut small = observed(12, 0);
        small.churn = Some((Field::Group, 10));
        assert!(b.check_all(&small).is_empty());
    }

    #[test]
    fn drift_counts_growth_and_shrinking_from_the_window_start() {
        let b = Brake {
            percent: 100,
            max: u64::MAX,
            ..brake()
        };
        let mut o = observed(1_000, 0);
        o.counts.created = 250;
        assert!(b.check_all(&o).is_empty(), "25% is the limit");
        o.counts.created = 251;
        assert_eq!(names(&b.check_all(&o)), [BrakeName::PopulationDrift]);
        // Shrinking across runs: 1000 at the window start, 800 now, 60 more to go.
        let mut o = observed(800, 60);
        o.window = Window {
            runs: 2,
            deactivated: 200,
            baseline: Some(1_000),
        };
        assert_eq!(names(&b.check_all(&o)), [BrakeName::PopulationDrift]);
        // A first import has no baseline to drift from.
        let mut first = observed(0, 0);
        first.counts.created = 5_000;
        assert!(b.check_all(&first).is_empty());
    }

    #[test]
    fn tenant_overrides_replace_defaults_one_by_one() {
        let o = BrakeOverrides {
            max_deactivate: Some(3),
            window_days: Some(30),
            ..Default::default()
        };
        let b = brake().with(&o);
        assert_eq!((b.max, b.window_days, b.percent), (3, 30, 10));
        assert_eq!(b.limit(1_000), 10, "the floor still counts");
    }

    #[test]
    fn a_percentage_over_100_is_refused_naming_the_setting() {
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            brake: BrakeSettings,
        }
        use clap::Parser;
        let err = Cli::try_parse_from(["x", "--max-deactivate-percent", "150"]).unwrap_err();
        assert!(
            err.to_string().contains("--max-deactivate-percent"),
            "{err}"
        );
        assert!(Cli::try_parse_from(["x", "--max-deactivate-percent", "100"]).is_ok());
        assert!(Cli::try_parse_from(["x", "--max-churn-percent", "101"]).is_err());
    }
}
