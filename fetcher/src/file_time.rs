//! When a delivered file was produced, for ordering a tenant's runs: a timestamp its name
//! carries (a tenant's `safety.file_time`: a regex and a strftime format), or else the
//! time it was delivered. A file older than the last applied one is not applied over it
//! (the differ marks its run `stale`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use regex::Regex;
use roster_shared::model::safety::FileTime;

/// A tenant's file-time pattern, compiled.
#[derive(Debug, Clone)]
pub struct FileTimePattern {
    regex: Regex,
    format: String,
}

impl FileTimePattern {
    /// Compiles `spec`; the error says what is wrong with its regex or format.
    pub fn new(spec: &FileTime) -> Result<Self, String> {
        let regex = Regex::new(&spec.regex).map_err(|e| format!("regex: {e}"))?;
        if regex.captures_len() > 2 {
            return Err("regex: at most one capture group (the timestamp)".into());
        }
        if spec.format.trim().is_empty() || !spec.format.contains('%') {
            return Err(format!(
                "format: {:?} is no strftime format (like %Y%m%dT%H%M%S)",
                spec.format
            ));
        }
        Ok(FileTimePattern {
            regex,
            format: spec.format.clone(),
        })
    }

    /// The time `name` says its file was produced (`None`: the name carries none, or one
    /// the format does not read). A timestamp without an offset is UTC; a date alone is
    /// midnight UTC.
    pub fn read(&self, name: &str) -> Option<DateTime<Utc>> {
        let caps = self.regex.captures(name)?;
        let text = caps.get(1).or_else(|| caps.get(0))?.as_str();
        if let Ok(t) = DateTime::parse_from_str(text, &self.format) {
            return Some(t.with_timezone(&Utc));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(text, &self.format) {
            return Some(t.and_utc());
        }
        NaiveDate::parse_from_str(text, &self.format)
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(regex: &str, format: &str) -> FileTimePattern {
        FileTimePattern::new(&FileTime {
            regex: regex.into(),
            format: format.into(),
        })
        .unwrap()
    }

    #[test]
    fn names_give_their_times() {
        let p = pattern(r"export_(\d{8}T\d{6})", "%Y%m%dT%H%M%S");
        assert_eq!(
            p.read("export_20261130T081500.csv").unwrap().to_rfc3339(),
            "2026-11-30T08:15:00+00:00"
        );
        assert_eq!(p.read("export.csv"), None);
        let day = pattern(r"\d{4}-\d{2}-\d{2}", "%Y-%m-%d");
        assert_eq!(
            day.read("people 2026-11-29.csv").unwrap().to_rfc3339(),
            "2026-11-29T00:00:00+00:00"
        );
        // Matched but not a date: no time.
        assert_eq!(day.read("people 2026-13-45.csv"), None);
    }

    #[test]
    fn bad_patterns_are_refused() {
        let bad = |regex: &str, format: &str| {
            FileTimePattern::new(&FileTime {
                regex: regex.into(),
                format: format.into(),
            })
            .unwrap_err()
        };
        assert!(bad("(", "%Y").starts_with("regex:"));
        assert!(bad("(a)(b)", "%Y").contains("one capture group"));
        assert!(bad("a", "YYYY").starts_with("format:"));
    }
}
