//! The parser's input rules: how a raw value becomes a stored one. Emails are the key
//! (trimmed, lower-cased, checked), statuses are read from the many ways sources write
//! them, full names are split, and text values are trimmed with empty meaning absent.

/// A trimmed value, or `None` when nothing is left.
pub fn clean(value: &str) -> Option<String> {
    let t = value.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// Why a value is not a usable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing there.
    #[error("missing email")]
    Missing,
    /// Something there, but not an address.
    #[error("{value:?} is not an email address: {why}")]
    Invalid {
        /// The value as given.
        value: String,
        /// Which rule it broke.
        why: String,
    },
}

/// Normalises an email address to Roster's key form: trimmed and lower-cased.
///
/// Accepts what RFC 5322 calls an address (`local@domain`, checked by the
/// `email_address` crate), without display text or a domain literal, whose domain has at
/// least one inner dot, at most 254 bytes in all: strict enough to catch a name, a DN or a
/// spreadsheet formula (`=HYPERLINK(...)@x.com`) in the email column.
pub fn normalize_email(value: &str) -> Result<String, EmailError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(EmailError::Missing);
    }
    let invalid = |why: &str| EmailError::Invalid {
        value: v.to_owned(),
        why: why.to_owned(),
    };
    if v.len() > 254 {
        return Err(invalid("longer than 254 characters"));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains whitespace"));
    }
    let Some((local, domain)) = v.split_once('@') else {
        return Err(invalid("no '@'"));
    };
    if domain.contains('@') {
        return Err(invalid("more than one '@'"));
    }
    if local.is_empty() || local.len() > 64 {
        return Err(invalid("the part before '@' is empty or too long"));
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err(invalid("the domain needs a dot inside it"));
    }
    let strict = email_address::Options {
        minimum_sub_domains: 2,
        allow_domain_literal: false,
        allow_display_text: false,
        allow_long_local_parts: false,
    };
    if let Err(e) = email_address::EmailAddress::parse_with_options(v, strict) {
        return Err(invalid(&e.to_string()));
    }
    Ok(v.to_lowercase())
}

/// Why a status value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a status; use active/inactive, true/false, yes/no, 1/0 or enabled/disabled"
)]
pub struct StatusError {
    /// The value as given.
    pub value: String,
}

/// Reads an active-status value. Empty means active (a listed person is present).
///
/// Active: `active`, `enabled`, `true`, `yes`, `y`, `t`, `1`.
/// Inactive: `inactive`, `disabled`, `false`, `no`, `n`, `f`, `0`, `terminated`, `left`,
/// `deactivated`, `suspended`. Case does not matter.
pub fn parse_active(value: &str) -> Result<bool, StatusError> {
    let v = value.trim().to_ascii_lowercase();
    match v.as_str() {
        "" | "active" | "enabled" | "true" | "yes" | "y" | "t" | "1" => Ok(true),
        "inactive" | "disabled" | "false" | "no" | "n" | "f" | "0" | "terminated" | "left"
        | "deactivated" | "suspended" => Ok(false),
        _ => Err(StatusError {
            value: value.trim().to_owned(),
        }),
    }
}

/// Splits a full name into first and last name.
///
/// `"Last, First"` splits at the comma; otherwise the first word is the first name and the
/// rest the last name (`"Jan van der Berg"` gives `Jan` / `van der Berg`). One word is a
/// first name alone.
pub fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    if let Some((last, first)) = name.split_once(',') {
        return (clean(first), clean(last));
    }
    match name.split_once(char::is_whitespace) {
        Some((first, rest)) => (clean(first), clean(rest)),
        None => (clean(name), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Frank.Williams@Widget.COM ").unwrap(),
            "frank.williams@widget.com"
        );
        assert_eq!(normalize_email(" "), Err(EmailError::Missing));
        for bad in [
            "frank",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "@widget.com",
            "a@.com",
            "a@com.",
            "=HYPERLINK(\"http://evil.example\")@x.com",
            "a(b)@x.com",
            "Frank <frank@x.com>",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn status_values() {
        for v in ["active", "Active", "TRUE", "1", "yes", "Enabled", ""] {
            assert_eq!(parse_active(v), Ok(true), "{v}");
        }
        for v in ["inactive", "false", "0", "No", "disabled", "Terminated"] {
            assert_eq!(parse_active(v), Ok(false), "{v}");
        }
        assert!(parse_active("maybe").is_err());
    }

    #[test]
    fn names_split() {
        assert_eq!(
            split_name("Amit Kumar"),
            (Some("Amit".into()), Some("Kumar".into()))
        );
        assert_eq!(
            split_name("Lefèvre, Pierre"),
            (Some("Pierre".into()), Some("Lefèvre".into()))
        );
        assert_eq!(
            split_name("Jan van der Berg"),
            (Some("Jan".into()), Some("van der Berg".into()))
        );
        assert_eq!(split_name("Cher"), (Some("Cher".into()), None));
    }
}
