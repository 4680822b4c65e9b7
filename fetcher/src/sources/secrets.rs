//! Secrets a source names: a password, a token or a header value, read at fetch time
//! from the environment variable or the file the tenants file names. The tenants file
//! and the database hold only those names. A [`Secret`] shows as `***` in `Debug` and
//! `Display`; only [`Secret::expose`] gives the value, for the one call that uses it,
//! and errors about a secret name where it was looked for, never what was found.

use std::fmt;
use std::path::Path;

use super::SourceError;

/// A secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one call that sends it. Never log or show it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The secret in environment variable `var`; `what` says whose it is (`acme/hr-sftp
/// password`) in the error when it is unset or empty.
pub fn from_env(var: &str, what: &str) -> Result<Secret, SourceError> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(Secret(value)),
        Ok(_) => Err(SourceError::Config(format!(
            "{what}: environment variable {var} is empty"
        ))),
        Err(std::env::VarError::NotPresent) => Err(SourceError::Config(format!(
            "{what}: environment variable {var} is not set"
        ))),
        Err(std::env::VarError::NotUnicode(_)) => Err(SourceError::Config(format!(
            "{what}: environment variable {var} is not valid UTF-8"
        ))),
    }
}

/// The secret in the file at `path` (one trailing line end removed); `what` says whose
/// it is in the error when the file cannot be read or is empty.
pub fn from_file(path: &Path, what: &str) -> Result<Secret, SourceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SourceError::Config(format!("{what}: cannot read {}: {e}", path.display())))?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err(SourceError::Config(format!(
            "{what}: {} is empty",
            path.display()
        )));
    }
    Ok(Secret(value.to_owned()))
}

/// The secret named by `env` or `file`, whichever is given (`None` if neither is).
pub fn named(
    env: Option<&str>,
    file: Option<&Path>,
    what: &str,
) -> Result<Option<Secret>, SourceError> {
    match (env, file) {
        (Some(var), _) => from_env(var, what).map(Some),
        (None, Some(path)) => from_file(path, what).map(Some),
        (None, None) => Ok(None),
    }
}

/// `text` with every occurrence of each secret replaced by `***` (for errors that quote
/// what a server or a tool said, which might echo a secret back).
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if !secret.0.is_empty() {
            out = out.replace(secret.expose(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(scrub("login hunter2 refused", &[&s]), "login *** refused");
    }

    #[test]
    fn errors_name_the_place_not_the_value() {
        let e = from_env("ROSTER_TEST_SURELY_UNSET_VAR", "acme/dmz token").unwrap_err();
        assert_eq!(
            e.to_string(),
            "acme/dmz token: environment variable ROSTER_TEST_SURELY_UNSET_VAR is not set"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(from_file(&file, "x").unwrap().expose(), "s3cret");
        std::fs::write(&file, "").unwrap();
        let e = from_file(&file, "acme/ftp password")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is empty") && !e.contains("s3cret"), "{e}");
    }
}
