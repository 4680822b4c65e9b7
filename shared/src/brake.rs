//! The mass-deactivation brake: a full snapshot that would deactivate too many people is
//! held for an operator instead of applied (a truncated export must not empty a directory).

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
    }
}
