//! The domain model: what Roster knows about people, runs and the messages between stages,
//! free of I/O. Nothing here touches a database, a broker, a file or the clock's effects
//! beyond reading it; everything in the rest of `shared` and in the stages builds on it.
//!
//! - [`ids`]: identifier newtypes (tenant, run, message);
//! - [`record`]: declaring a kind of record once (its fields, their storage and order);
//! - [`person`]: the person record, declared with [`record`];
//! - [`change`]: planned changes and the stored-state check that makes applying them safe;
//! - [`run`]: the states of a sync run;
//! - [`envelope`]: the messages stages hand each other;
//! - [`snapshot`]: the sorted snapshot file between parser and differ;
//! - [`related`]: groups, memberships and contact details, planned beside people;
//! - [`safety`]: a tenant's brake thresholds and file-time pattern;
//! - [`review`]: what a run would do, person by person, as a reviewer reads it.
//!
//! Closed sets (states, formats, modes, ...) are declared with [`text_enum!`]: each value
//! has one name, used alike in messages, the database and on the command line, and an
//! unknown name is an error that says what it is, never a default.

pub mod change;
pub mod envelope;
pub mod ids;
pub mod mapping;
pub mod person;
pub mod record;
pub mod related;
pub mod review;
pub mod run;
pub mod safety;
pub mod snapshot;
pub mod source;

/// A name that is none of a closed set's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of {}", expected.join(", "))]
pub struct UnknownName {
    /// What the set is (`run state`, `format`, ...).
    pub what: &'static str,
    /// The refused name.
    pub value: String,
    /// The names the set has.
    pub expected: Vec<&'static str>,
}

/// A closed set of named values, declared with [`text_enum!`].
pub trait ClosedSet: Copy + Send + Sync + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// The value's name.
    fn name(self) -> &'static str;
}

/// Declares a closed set of named values: the enum, its names, `ALL`, `Display`, `FromStr`
/// (an unknown name is an [`UnknownName`] error), serde as the name, and [`ClosedSet`].
///
/// ```
/// roster_shared::text_enum! {
///     /// A colour.
///     pub enum Colour as "colour" {
///         /// Red.
///         Red = "red",
///         /// Blue.
///         Blue = "blue",
///     }
/// }
/// assert_eq!("blue".parse::<Colour>().unwrap(), Colour::Blue);
/// assert!("green".parse::<Colour>().unwrap_err().to_string().contains("unknown colour"));
/// ```
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $Variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $Name {
            $( $(#[$vmeta])* $Variant, )+
        }

        impl $Name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$Name] = &[$($Name::$Variant),+];

            /// The value's name: as stored, sent in messages and written on the command line.
            pub const fn name(self) -> &'static str {
                match self {
                    $($Name::$Variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $Name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(self.name())
            }
        }

        impl $crate::model::ClosedSet for $Name {
            const ALL: &'static [Self] = $Name::ALL;
            fn name(self) -> &'static str {
                $Name::name(self)
            }
        }

        impl ::std::str::FromStr for $Name {
            type Err = $crate::model::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| $crate::model::UnknownName {
                        what: $what,
                        value: s.to_owned(),
                        expected: Self::ALL.iter().map(|v| v.name()).collect(),
                    })
            }
        }

        impl $crate::__private::serde::Serialize for $Name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $Name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let name = <::std::borrow::Cow<'de, str> as $crate::__private::serde::Deserialize>::deserialize(deserializer)?;
                name.parse().map_err(<D::Error as $crate::__private::serde::de::Error>::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    text_enum! {
        /// A test set.
        enum Mood as "mood" {
            /// Happy.
            Happy = "happy",
            /// Sad.
            Sad = "sad",
        }
    }

    /// The model stays free of I/O and of the runtime: it names nothing outside itself
    /// but the pure crates it builds on.
    #[test]
    fn the_model_depends_on_nothing_but_itself() {
        let sources = [
            ("mod.rs", include_str!("mod.rs")),
            ("change.rs", include_str!("change.rs")),
            ("envelope.rs", include_str!("envelope.rs")),
            ("ids.rs", include_str!("ids.rs")),
            ("person.rs", include_str!("person.rs")),
            ("record.rs", include_str!("record.rs")),
            ("related.rs", include_str!("related.rs")),
            ("review.rs", include_str!("review.rs")),
            ("run.rs", include_str!("run.rs")),
            ("safety.rs", include_str!("safety.rs")),
            ("snapshot.rs", include_str!("snapshot.rs")),
        ];
        let allowed = [
            "crate::model",
            "crate::record!",
            "crate::text_enum!",
            "crate::__private",
        ];
        let io = [
            "sea_orm",
            "tokio",
            "lapin",
            "object_store",
            "std::fs",
            "std::net",
        ];
        for (file, source) in sources {
            // The code, not its tests (nor this test's own strings).
            let source = source.split("#[cfg(test)]").next().unwrap_or(source);
            for (at, _) in source.match_indices("crate::") {
                let rest = &source[at..];
                assert!(
                    allowed.iter().any(|a| rest.starts_with(a)),
                    "model/{file} refers to {}",
                    &rest[..rest.len().min(40)]
                );
            }
            for name in io {
                assert!(
                    !source.contains(&format!("use {name}"))
                        && !source.contains(&format!("{name}::")),
                    "model/{file} uses {name}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for mood in Mood::ALL {
            assert_eq!(mood.name().parse::<Mood>().unwrap(), *mood);
            let json = serde_json::to_string(mood).unwrap();
            assert_eq!(serde_json::from_str::<Mood>(&json).unwrap(), *mood);
        }
        let err = "glum".parse::<Mood>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown mood \"glum\"; expected one of happy, sad"
        );
        assert!(serde_json::from_str::<Mood>("\"glum\"").is_err());
    }
}
