//! Identifier newtypes: a tenant, a sync run, a message. Never bare strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string was refused as a [`TenantId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant id {value:?}: {why}")]
pub struct InvalidTenantId {
    /// The refused input.
    pub value: String,
    /// What rule it broke.
    pub why: &'static str,
}

/// A tenant (one organization whose directory Roster keeps).
///
/// Promise: 1 to 64 characters from `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
/// That makes it safe as a folder name (`inbox/<tenant>/`), a blob key segment and a
/// log field, so every use can trust it without escaping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Checks and wraps `value`.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidTenantId> {
        let value = value.into();
        let why = if value.is_empty() {
            Some("it is empty")
        } else if value.len() > 64 {
            Some("it is longer than 64 characters")
        } else if value.starts_with(['.', '-']) {
            Some("it starts with '.' or '-'")
        } else if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            Some("only letters, digits, '.', '_' and '-' are allowed")
        } else {
            None
        };
        match why {
            Some(why) => Err(InvalidTenantId { value, why }),
            None => Ok(Self(value)),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TenantId {
    type Err = InvalidTenantId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $new:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh id (UUID v7: sorts by creation time).
            pub fn $new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id derived from `parts`: the same parts always give the same id
            /// (UUID v5), which is what makes redelivered work recognisable.
            pub fn derived(parts: &[&str]) -> Self {
                Self(Uuid::new_v5(&ROSTER_NAMESPACE, parts.join("\u{1f}").as_bytes()))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

/// Namespace of every derived (v5) id Roster makes.
const ROSTER_NAMESPACE: Uuid = Uuid::from_u128(0x6f0d_4c1e_8b57_4a36_9f0c_52a1_d3e7_b801);

uuid_id!(
    /// One sync run: one delivered file (or web-service fetch) on its way through the stages.
    RunId,
    new
);
uuid_id!(
    /// One message on the transport; the idempotency key of the work it carries.
    MessageId,
    new
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_checked() {
        assert!(TenantId::new("acme").is_ok());
        assert!(TenantId::new("Acme_2.eu-west").is_ok());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new(".hidden").is_err());
        assert!(TenantId::new("a/b").is_err());
        assert!(TenantId::new("a b").is_err());
        assert!(TenantId::new("x".repeat(65)).is_err());
        let json: Result<TenantId, _> = serde_json::from_str("\"../etc\"");
        assert!(json.is_err());
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = MessageId::derived(&["run", "1"]);
        assert_eq!(a, MessageId::derived(&["run", "1"]));
        assert_ne!(a, MessageId::derived(&["run", "2"]));
        assert_ne!(a, MessageId::derived(&["run1", ""]));
    }
}
