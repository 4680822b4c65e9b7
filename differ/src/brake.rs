//! The mass-deactivation brake: a run that would deactivate too many people (a full
//! snapshot missing them, or a delta marking them inactive) is held for an operator
//! instead of applied (a truncated export must not empty a directory).

use clap::Args;

/// Default of `ROSTER_MAX_DEACTIVATE_PERCENT`.
pub const DEFAULT_PERCENT: u32 = 10;
/// Default of `ROSTER_MAX_DEACTIVATE`.
pub const DEFAULT_MAX: u64 = 500;
/// Default of `ROSTER_DEACTIVATE_FLOOR`.
pub const DEFAULT_FLOOR: u64 = 10;

/// The brake's settings (the differ's, and every command that plans in its own process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct BrakeSettings {
    /// Mass-deactivation brake: a run deactivating more than this percentage of the
    /// active people is held for approval...
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

    /// ...but a run deactivating at most this many is never held.
    #[arg(long, env = "ROSTER_DEACTIVATE_FLOOR", default_value_t = DEFAULT_FLOOR)]
    pub deactivate_floor: u64,
}

impl Default for BrakeSettings {
    fn default() -> Self {
        BrakeSettings {
            max_deactivate_percent: DEFAULT_PERCENT,
            max_deactivate: DEFAULT_MAX,
            deactivate_floor: DEFAULT_FLOOR,
        }
    }
}

impl BrakeSettings {
    /// The brake these settings describe.
    pub fn brake(&self) -> Brake {
        Brake {
            percent: self.max_deactivate_percent,
            max: self.max_deactivate,
            floor: self.deactivate_floor,
        }
    }
}

/// The limits. A run is held when it deactivates more than
/// `max(floor, min(percent% of active, max))` people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brake {
    /// Percentage of the active people.
    pub percent: u32,
    /// Absolute number.
    pub max: u64,
    /// Deactivations at or under this never hold a run (small directories would
    /// otherwise hold on every leaver).
    pub floor: u64,
}

impl Brake {
    /// The most deactivations allowed out of `active` active people.
    pub fn limit(&self, active: u64) -> u64 {
        let pct = active.saturating_mul(u64::from(self.percent)) / 100;
        pct.min(self.max).max(self.floor)
    }

    /// Why a run deactivating `deactivations` of `active` people must be held, if it must.
    pub fn check(&self, deactivations: u64, active: u64) -> Option<String> {
        let limit = self.limit(active);
        (deactivations > limit).then(|| {
            format!(
                "mass-deactivation brake: would deactivate {deactivations} of {active} active \
                 people (limit {limit}); approve with `roster approve`"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let b = Brake {
            percent: 10,
            max: 500,
            floor: 10,
        };
        assert_eq!(b.limit(3), 10, "floor for tiny directories");
        assert_eq!(b.limit(1_000), 100);
        assert_eq!(b.limit(100_000), 500);
        assert!(b.check(100, 1_000).is_none());
        assert!(b.check(101, 1_000).is_some());
        assert!(b.check(501, 100_000).is_some());
        assert_eq!(
            BrakeSettings::default().brake(),
            Brake {
                percent: 10,
                max: 500,
                floor: 10
            }
        );
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
    }
}
