//! Secrets kept out of logs, errors and `Debug` output: connection URLs whose password is
//! shown as `***` wherever they are printed, and the redaction of a URL's password from
//! any text (an error message that quotes the URL, say).

use std::fmt;
use std::str::FromStr;

/// A connection URL that may hold a password (`postgres://user:pass@host/db`,
/// `amqp://user:pass@host/vhost`). `Debug` and `Display` show it with the password as
/// `***`; only [`SecretUrl::expose`] gives the real text, for the one call that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    /// The URL with its password, for connecting. Never log or show it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0, &self.0)
    }

    /// `text` (an error that may quote this URL) with the password replaced by `***`.
    pub fn redact_in(&self, text: &str) -> String {
        redact(text, &self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl FromStr for SecretUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretUrl::new(s))
    }
}

impl From<&str> for SecretUrl {
    fn from(s: &str) -> Self {
        SecretUrl::new(s)
    }
}

impl From<String> for SecretUrl {
    fn from(s: String) -> Self {
        SecretUrl::new(s)
    }
}

/// The password in `url`, whether in its user info (`user:pass@`) or as a `password=`
/// query parameter (as libpq-style URLs allow).
pub fn url_password(url: &str) -> Option<&str> {
    let in_userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw);
    let in_query = url
        .split_once('?')
        .and_then(|(_, query)| query.split('&').find_map(|kv| kv.strip_prefix("password=")));
    in_userinfo.or(in_query).filter(|pw| !pw.is_empty())
}

/// `text` with the password of `url` (if it has one) replaced by `***`.
pub fn redact(text: &str, url: &str) -> String {
    match url_password(url) {
        Some(pw) => text.replace(pw, "***"),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact(
                "failed: amqp://u:pw123@h/ refused pw123",
                "amqp://u:pw123@h/"
            ),
            "failed: amqp://u:***@h/ refused ***"
        );
        assert_eq!(redact("plain", "sqlite://x.db"), "plain");
        let query = "postgres:///roster?host=db&user=r&password=qs3cret&sslmode=require";
        assert_eq!(
            redact(query, query),
            "postgres:///roster?host=db&user=r&password=***&sslmode=require"
        );
        assert_eq!(url_password("postgres://db/x?user=u"), None);
    }

    #[test]
    fn secret_urls_never_print_their_password() {
        let url = SecretUrl::new("postgres://roster:s3cret@db:5432/r");
        assert_eq!(url.to_string(), "postgres://roster:***@db:5432/r");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.expose(), "postgres://roster:s3cret@db:5432/r");
        assert_eq!(
            SecretUrl::new("postgres:///r?host=db&password=pw9").redacted(),
            "postgres:///r?host=db&password=***"
        );
        assert_eq!(
            SecretUrl::new("postgres://db/r").redacted(),
            "postgres://db/r"
        );
    }
}
