//! A tenant's value rules (`mapping:` in the tenants file, beside its column mappings):
//! values rewritten before they are read (`status: {Left: inactive}`), and default values
//! for fields a row leaves empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::person::Field;

/// A header reduced to what identifies it: lower case, letters and digits only.
/// `"Email ID"`, `"email_id"` and `"E-mail-ID"` all become `emailid`.
pub fn normalize_header(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A value as value rules match it: trimmed, lower case.
pub fn value_key(value: &str) -> String {
    value.trim().to_lowercase()
}

/// What a tenant's values are rewritten to and defaulted with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueRules {
    /// Per column header or field name (`status`, `active`, `Organisation`): a value
    /// (matched whatever its case and surrounding spaces) to the value read instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    /// Per text field name: the value a row gets when it leaves the field empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaults: BTreeMap<String, String>,
}

impl ValueRules {
    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.defaults.is_empty()
    }

    /// What is wrong with the rules, each naming its key (`defaults.shoe_size: ...`).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, value) in &self.defaults {
            match Field::from_name(name) {
                Some(field) if Field::TEXT.contains(&field) => {
                    if value.trim().is_empty() {
                        problems.push(format!("defaults.{name}: a default cannot be empty"));
                    }
                }
                _ => problems.push(format!(
                    "defaults.{name}: not a text field; use one of {}",
                    Field::TEXT
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        for (key, map) in &self.values {
            if map.is_empty() {
                problems.push(format!("values.{key}: no values to rewrite"));
            }
        }
        problems
    }

    /// The value map of a column headed `header` that feeds the field named `feeds`
    /// (`None`: a name or extra attribute): the rules' entry for the header (whatever its
    /// case and punctuation), else for the field; keys as [`value_key`] makes them.
    pub fn map_for(&self, header: &str, feeds: Option<&str>) -> Option<BTreeMap<String, String>> {
        let header = normalize_header(header);
        let map = self
            .values
            .iter()
            .find(|(key, _)| normalize_header(key) == header)
            .or_else(|| {
                let field = feeds?;
                self.values.iter().find(|(key, _)| key.trim() == field)
            })?
            .1;
        Some(
            map.iter()
                .map(|(from, to)| (value_key(from), to.trim().to_owned()))
                .collect(),
        )
    }

    /// The defaults, by field (names [`ValueRules::problems`] refuses are left out).
    pub fn default_fields(&self) -> Vec<(Field, &str)> {
        self.defaults
            .iter()
            .filter_map(|(name, value)| {
                let field = Field::from_name(name)?;
                Field::TEXT
                    .contains(&field)
                    .then_some((field, value.trim()))
            })
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }
}
