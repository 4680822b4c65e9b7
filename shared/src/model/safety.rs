//! A tenant's safety settings (`safety:` in the tenants file, stored as JSON in
//! `tenants.safety`): the thresholds of the brakes that hold a run for an operator, the
//! rolling window they count over, and how a file's name tells when it was produced.
//!
//! Every threshold is optional: an absent one takes the process default (the differ's
//! flags and environment, see `roster_differ::BrakeSettings`).

use serde::{Deserialize, Serialize};

crate::text_enum! {
    /// A brake: one reason a run is held.
    pub enum BrakeName as "brake" {
        /// Too many deactivations (this run's, plus those applied within the window).
        Deactivations = "deactivations",
        /// One attribute (department, group, organization, manager) changes for an
        /// unusual share of people in one run: a shifted column, most likely.
        AttributeChurn = "attribute_churn",
        /// The active population moves by more than a set share within the window.
        PopulationDrift = "population_drift",
    }
}

/// Brake thresholds a tenant sets over the defaults; `None`: the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrakeOverrides {
    /// Deactivations allowed, as a percentage of the active people (within the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deactivate_percent: Option<u32>,
    /// Deactivations allowed, as a number (within the window); the lower limit counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deactivate: Option<u64>,
    /// Deactivations never held, however small the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivate_floor: Option<u64>,
    /// The share of active people (percent) whose department, group, organization or
    /// manager may change in one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_churn_percent: Option<u32>,
    /// How far (percent) the active population may move within the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drift_percent: Option<u32>,
    /// Changes this small never trip the churn or drift brakes (small directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_floor: Option<u64>,
    /// The rolling window, in days, over which deactivations and drift are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
}

/// How a file's name carries the time the file was produced, for ordering a tenant's
/// runs: `regex`'s first capture group (or the whole match) read with `format`
/// (`chrono`'s strftime syntax; a format without a time of day means midnight UTC, one
/// without an offset means UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTime {
    /// Where the timestamp is in the name (`export_(\d{8}T\d{6})`).
    pub regex: String,
    /// How it is written (`%Y%m%dT%H%M%S`).
    pub format: String,
}

/// A tenant's safety settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Safety {
    /// Brake thresholds over the defaults.
    #[serde(default)]
    pub brakes: BrakeOverrides,
    /// The file-name timestamp; absent: a file is as old as its delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_time: Option<FileTime>,
}

impl Safety {
    /// Whether nothing is set (stored as `NULL`).
    pub fn is_default(&self) -> bool {
        *self == Safety::default()
    }

    /// What is wrong with the settings, each problem naming its key under `at`.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let b = &self.brakes;
        for (name, value) in [
            ("max_deactivate_percent", b.max_deactivate_percent),
            ("max_churn_percent", b.max_churn_percent),
            ("max_drift_percent", b.max_drift_percent),
        ] {
            if value.is_some_and(|v| v > 100) {
                problems.push(format!("{at}.brakes.{name}: a percentage of at most 100"));
            }
        }
        if b.window_days.is_some_and(|d| d == 0 || d > 366) {
            problems.push(format!("{at}.brakes.window_days: between 1 and 366 days"));
        }
        problems
    }
}
