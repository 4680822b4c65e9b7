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

/// The passwords in `url` as they may appear in text: the one in its user info
/// (`user:pass@`) and any `password=` query parameter (libpq-style URLs allow one), each
/// as written and, when it differs, percent-decoded.
///
/// The user info is everything between `://` and the last `@`, however the password is
/// spelled: a `/`, `?`, `#` or `@` in it (unencoded) would make a URL parser end the
/// authority early and miss it. The query is read with the `url` crate.
pub fn url_passwords(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        found.push(password.to_owned());
    }
    // As written in the query, and as the `url` crate reads it (decoded).
    if let Some((_, query)) = url.split_once('?') {
        let query = query.split('#').next().unwrap_or(query);
        found.extend(
            query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("password="))
                .map(str::to_owned),
        );
    }
    if let Ok(parsed) = url::Url::parse(url) {
        found.extend(
            parsed
                .query_pairs()
                .filter(|(k, _)| k == "password")
                .map(|(_, v)| v.into_owned()),
        );
    }
    let decoded: Vec<String> = found
        .iter()
        .filter_map(|p| {
            let d = url::form_urlencoded::parse(format!("x={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())?;
            (d != *p).then_some(d)
        })
        .collect();
    found.extend(decoded);
    found.retain(|p| !p.is_empty());
    // Longest first, so a password containing another is replaced whole.
    found.sort_by_key(|p| std::cmp::Reverse(p.len()));
    found.dedup();
    found
}

/// `text` with the passwords of `url` (if it has any) replaced by `***`.
pub fn redact(text: &str, url: &str) -> String {
    url_passwords(url)
        .iter()
        .fold(text.to_owned(), |out, pw| out.replace(pw.as_str(), "***"))
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
        assert!(url_passwords("postgres://db/x?user=u").is_empty());
    }

    #[test]
    fn passwords_with_url_delimiters_are_redacted_too() {
        for url in [
            "postgres://roster:pa/ss@db:5432/r",
            "postgres://roster:pa?ss@db:5432/r",
            "postgres://roster:pa#ss@db:5432/r",
            "amqp://roster:p@ss:w/rd@mq:5672/%2f",
            "postgres://roster:123/x@db/r",
        ] {
            let shown = SecretUrl::new(url).to_string();
            assert!(shown.starts_with(url.split(':').next().unwrap()), "{shown}");
            for secret in ["pa/ss", "pa?ss", "pa#ss", "p@ss:w/rd", "123/x"] {
                if url.contains(secret) {
                    assert!(!shown.contains(secret), "{url} shown as {shown}");
                }
            }
            assert!(shown.contains("roster:***@"), "{url} shown as {shown}");
        }
        // Percent-encoded: hidden both as written and decoded (as a driver may echo it).
        let url = "postgres://roster:s%2Fcret@db/r";
        assert_eq!(
            redact("auth failed for s/cret (s%2Fcret)", url),
            "auth failed for *** (***)"
        );
        let query = "postgres:///r?host=db&password=p%40ss";
        assert_eq!(redact("p@ss and p%40ss", query), "*** and ***");
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
