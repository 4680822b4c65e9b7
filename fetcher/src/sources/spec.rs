//! What a source is, as operators write it in the tenants file (YAML) and as it is stored
//! (JSON, in `sources.spec`): one flat set of keys, checked per kind. Unknown keys are
//! refused; secrets never appear, only where to find them (an environment variable or a
//! file).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use roster_shared::model::envelope::{Format, SyncMode};
pub use roster_shared::model::source::SourceKind;
use serde::{Deserialize, Serialize};

roster_shared::text_enum! {
    /// What happens to a remote file once taken.
    pub enum AfterFetch as "after_fetch" {
        /// Left where it is (known by name, size, time and content, never taken twice).
        Leave = "leave",
        /// Moved to `archive_path`.
        Archive = "archive",
        /// Deleted.
        Delete = "delete",
    }
}

roster_shared::text_enum! {
    /// What a web service answers.
    pub enum ResponseKind as "response" {
        /// JSON: `{"employees": [...]}` (or `users`, `data`, ...) or a bare list.
        Json = "json",
        /// SOAP 1.1 (`text/xml`, `SOAPAction` header).
        Soap11 = "soap11",
        /// SOAP 1.2 (`application/soap+xml; action=...`).
        Soap12 = "soap12",
    }
}

/// A length of time written as `30s`, `15m`, `6h`, `7d` (or any `humantime` form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(pub Duration);

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        humantime::parse_duration(s.trim())
            .map(Span)
            .map_err(|e| format!("{s:?} is not a length of time (30s, 15m, 6h, 7d): {e}"))
    }
}

impl From<Span> for String {
    fn from(s: Span) -> String {
        humantime::format_duration(s.0).to_string()
    }
}

/// When a source is fetched on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every so often, counted from the last fetch.
    Every(Duration),
    /// At the times a 5-field cron line names (UTC).
    Cron(String),
}

impl Schedule {
    /// The next time to fetch after a fetch at `last` (`None`: never fetched: now).
    pub fn next_after(
        &self,
        last: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let last = last?;
        match self {
            Schedule::Every(every) => {
                Some(last + chrono::Duration::from_std(*every).unwrap_or(chrono::Duration::MAX))
            }
            Schedule::Cron(line) => croner::Cron::from_str(line)
                .ok()?
                .find_next_occurrence(&last, false)
                .ok(),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.split_whitespace().count() == 5 {
            croner::Cron::from_str(s)
                .map_err(|e| format!("{s:?} is not a 5-field cron line: {e}"))?;
            return Ok(Schedule::Cron(s.to_owned()));
        }
        let every = humantime::parse_duration(s).map_err(|_| {
            format!("{s:?} is neither an interval (30s, 15m, 6h) nor a 5-field cron line")
        })?;
        if every < Duration::from_secs(1) {
            return Err(format!("{s:?}: an interval of at least 1s"));
        }
        Ok(Schedule::Every(every))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "{}", humantime::format_duration(*d)),
            Schedule::Cron(line) => f.write_str(line),
        }
    }
}

/// How a web service is authenticated: each secret named by an environment variable or
/// a file, never written here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// `Authorization: Bearer <token>`, the token in this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_env: Option<String>,
    /// HTTP basic authentication as this user (password in `password_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_user: Option<String>,
    /// The environment variable holding the basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A header to send (`X-Api-Key`), its value in `value_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The environment variable holding the header's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_env: Option<String>,
    /// A client certificate (PEM) for mutual TLS...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    /// ...and its private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
}

/// Delta queries: ask only for what changed since the last successful fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaSpec {
    /// The query parameter carrying the time (ISO 8601, UTC), e.g. `modifiedSince`.
    pub param: String,
    /// How far before the last fetch's start to ask from (changes are not always visible
    /// at once on the other side).
    #[serde(default = "default_overlap")]
    pub overlap: Span,
    /// A full fetch (no time, mode full) this often, so deletions are seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_every: Option<Span>,
}

fn default_overlap() -> Span {
    Span(Duration::from_secs(600))
}

/// Paging: how a web service is asked for batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSpec {
    /// Records per page, 50 to 5000.
    pub size: u32,
    /// Offset paging: the parameter carrying the offset...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_param: Option<String>,
    /// ...and the one carrying the page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_param: Option<String>,
    /// Page-number paging (from 1): the parameter carrying the page number...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_param: Option<String>,
    /// ...and the one carrying the page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_param: Option<String>,
    /// Token paging: the parameter carrying the next page's token...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_param: Option<String>,
    /// ...and where the answer holds it (a dotted path: `paging.next`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_path: Option<String>,
}

/// One source, as written in the tenants file. Which keys apply depends on `kind`
/// ([`SourceSpec::check`] says which are missing or misplaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// How it delivers.
    pub kind: SourceKind,

    // File servers (sftp, ftp, ftps).
    /// Server host name or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Server port (default: 22 for sftp, 21 for ftp and ftps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// The file holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// SFTP: the private key to log in with (`roster keys generate` makes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    /// SFTP: the server's host keys, OpenSSH `known_hosts` format (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    /// FTPS: the CA certificates (PEM) the server's certificate is checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The remote folder (or, for `inbox`, the local one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Which names to take (a glob, default `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// What happens to a taken file (default `leave`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_fetch: Option<AfterFetch>,
    /// Where `archive` moves taken files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_path: Option<String>,
    /// How long a file must keep its size and time to count as finished (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_after: Option<Span>,

    // Web services (http).
    /// The service's address (`https://...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What it answers (default `json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseKind>,
    /// SOAP: the request body template, with `{since}`, `{offset}`, `{limit}`, `{page}`
    /// and `{token}` filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_file: Option<PathBuf>,
    /// SOAP: the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soap_action: Option<String>,
    /// How to authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Delta queries (absent: every fetch is full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaSpec>,
    /// Paging (absent: one request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PageSpec>,
    /// Where the records are in each answer: a dotted path of keys (JSON: `data.employees`)
    /// or of element names (SOAP: `GetEmployeesResult.Employee`). Absent: a JSON answer's
    /// only list (bare, or under `employees`, `users`, `people`, `data`, `items`, `value`,
    /// `results` or `records`); in a SOAP body, the elements whose children are all text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_path: Option<String>,
    /// How long one request may take (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,

    // Every kind.
    /// Full snapshots or deltas (default `full`; a web service with `delta` decides per
    /// fetch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SyncMode>,
    /// Input format (default `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// The encoding of files without a byte-order mark, if not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Read a bundle's files without checking that they are UTF-8 with a byte-order
    /// mark (default: checked).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_encoding: bool,
    /// When to fetch on its own: an interval (`15m`) or a 5-field cron line; absent:
    /// only on demand (`roster fetch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// Keys of a source for file servers only, and for web services only.
const FILE_KEYS: [&str; 11] = [
    "host",
    "port",
    "user",
    "password_env",
    "password_file",
    "private_key_file",
    "known_hosts",
    "pattern",
    "after_fetch",
    "archive_path",
    "stable_after",
];
const HTTP_KEYS: [&str; 9] = [
    "url",
    "records_path",
    "response",
    "request_body_file",
    "soap_action",
    "auth",
    "delta",
    "page",
    "timeout",
];

impl SourceSpec {
    /// The keys that are set.
    fn set_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut add = |set: bool, key: &'static str| {
            if set {
                keys.push(key);
            }
        };
        add(self.host.is_some(), "host");
        add(self.port.is_some(), "port");
        add(self.user.is_some(), "user");
        add(self.password_env.is_some(), "password_env");
        add(self.password_file.is_some(), "password_file");
        add(self.private_key_file.is_some(), "private_key_file");
        add(self.known_hosts.is_some(), "known_hosts");
        add(self.ca_file.is_some(), "ca_file");
        add(self.path.is_some(), "path");
        add(self.pattern.is_some(), "pattern");
        add(self.after_fetch.is_some(), "after_fetch");
        add(self.archive_path.is_some(), "archive_path");
        add(self.stable_after.is_some(), "stable_after");
        add(self.url.is_some(), "url");
        add(self.response.is_some(), "response");
        add(self.request_body_file.is_some(), "request_body_file");
        add(self.soap_action.is_some(), "soap_action");
        add(self.auth.is_some(), "auth");
        add(self.delta.is_some(), "delta");
        add(self.page.is_some(), "page");
        add(self.records_path.is_some(), "records_path");
        add(self.timeout.is_some(), "timeout");
        keys
    }

    /// Checks that the keys fit the kind: the required ones present, none of another
    /// kind's, values in range. Each problem names its key (`at` is the source's path in
    /// the file, `tenants.acme.sources.hr-sftp`).
    pub fn check(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut need = |present: bool, key: &str| {
            if !present {
                problems.push(format!("{at}.{key}: required for kind {}", self.kind));
            }
        };
        let misplaced: &[&str] = match self.kind {
            SourceKind::Sftp | SourceKind::Ftp | SourceKind::Ftps => {
                need(self.host.is_some(), "host");
                need(self.user.is_some(), "user");
                need(self.path.is_some(), "path");
                &HTTP_KEYS
            }
            SourceKind::Http => {
                need(self.url.is_some(), "url");
                &FILE_KEYS
            }
            SourceKind::Inbox => {
                need(self.path.is_some(), "path");
                &[
                    "host",
                    "port",
                    "user",
                    "password_env",
                    "password_file",
                    "private_key_file",
                    "known_hosts",
                    "ca_file",
                    "url",
                    "response",
                    "request_body_file",
                    "soap_action",
                    "auth",
                    "delta",
                    "page",
                    "records_path",
                    "timeout",
                ]
            }
        };
        for key in self.set_keys() {
            if misplaced.contains(&key) {
                problems.push(format!("{at}.{key}: does not apply to kind {}", self.kind));
            }
        }
        match self.kind {
            SourceKind::Sftp => {
                if self.ca_file.is_some() {
                    problems.push(format!("{at}.ca_file: applies to kinds ftps and http"));
                }
                if self.known_hosts.is_none() {
                    problems.push(format!(
                        "{at}.known_hosts: required for kind sftp (the server's host keys, \
                         OpenSSH known_hosts format)"
                    ));
                }
                let secrets = [
                    self.password_env.is_some(),
                    self.password_file.is_some(),
                    self.private_key_file.is_some(),
                ];
                if secrets.iter().filter(|s| **s).count() != 1 {
                    problems.push(format!(
                        "{at}: give exactly one of password_env, password_file, private_key_file"
                    ));
                }
            }
            SourceKind::Ftp | SourceKind::Ftps => {
                if self.private_key_file.is_some() || self.known_hosts.is_some() {
                    problems.push(format!(
                        "{at}: private_key_file and known_hosts are for kind sftp"
                    ));
                }
                if self.password_env.is_some() == self.password_file.is_some() {
                    problems.push(format!(
                        "{at}: give exactly one of password_env, password_file"
                    ));
                }
                if self.kind == SourceKind::Ftp && self.ca_file.is_some() {
                    problems.push(format!("{at}.ca_file: applies to kind ftps"));
                }
            }
            SourceKind::Http => {
                let soap = matches!(
                    self.response,
                    Some(ResponseKind::Soap11 | ResponseKind::Soap12)
                );
                if soap && self.request_body_file.is_none() {
                    problems.push(format!(
                        "{at}.request_body_file: required for a SOAP service"
                    ));
                }
                if !soap && (self.request_body_file.is_some() || self.soap_action.is_some()) {
                    problems.push(format!(
                        "{at}: request_body_file and soap_action are for response soap11 or soap12"
                    ));
                }
                if let Some(page) = &self.page {
                    problems.extend(check_page(page, &format!("{at}.page")));
                }
                if let Some(auth) = &self.auth {
                    problems.extend(check_auth(auth, &format!("{at}.auth")));
                }
                if let Some(url) = &self.url
                    && let Err(e) = url::Url::parse(url)
                {
                    problems.push(format!("{at}.url: {url:?} is not a URL: {e}"));
                }
            }
            SourceKind::Inbox => {}
        }
        if let Some(host) = &self.host
            && !valid_host(host)
        {
            problems.push(format!(
                "{at}.host: {host:?} is not a host name or an IP address"
            ));
        }
        if let Some(user) = &self.user
            && (user.is_empty() || user.starts_with('-') || user.contains(['@', ' ', '\n', '\0']))
        {
            problems.push(format!("{at}.user: {user:?} is not a login name"));
        }
        if self.after_fetch == Some(AfterFetch::Archive) && self.archive_path.is_none() {
            problems.push(format!(
                "{at}.archive_path: required with after_fetch: archive"
            ));
        }
        if let Some(pattern) = &self.pattern
            && let Err(e) = glob::Pattern::new(pattern)
        {
            problems.push(format!("{at}.pattern: {pattern:?} is not a glob: {e}"));
        }
        if let Some(schedule) = &self.schedule
            && let Err(e) = schedule.parse::<Schedule>()
        {
            problems.push(format!("{at}.schedule: {e}"));
        }
        problems
    }

    /// When it is fetched on its own (`None`: on demand only).
    pub fn schedule(&self) -> Option<Schedule> {
        self.schedule.as_deref().and_then(|s| s.parse().ok())
    }
}

/// Whether `host` is a host name, an IPv4 address or an IPv6 address (never something a
/// command line would read as an option).
fn valid_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !bare.is_empty()
        && bare.len() <= 253
        && !bare.starts_with(['-', '.'])
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn check_page(page: &PageSpec, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !(50..=5000).contains(&page.size) {
        problems.push(format!(
            "{at}.size: {} is not between 50 and 5000",
            page.size
        ));
    }
    let styles = [
        page.offset_param.is_some() || page.limit_param.is_some(),
        page.page_param.is_some() || page.size_param.is_some(),
        page.token_param.is_some() || page.token_path.is_some(),
    ];
    if styles.iter().filter(|s| **s).count() != 1 {
        problems.push(format!(
            "{at}: give one way of paging: offset_param and limit_param, page_param and \
             size_param, or token_param and token_path"
        ));
    }
    let pairs = [
        (
            &page.offset_param,
            &page.limit_param,
            "offset_param",
            "limit_param",
        ),
        (
            &page.page_param,
            &page.size_param,
            "page_param",
            "size_param",
        ),
        (
            &page.token_param,
            &page.token_path,
            "token_param",
            "token_path",
        ),
    ];
    for (a, b, an, bn) in pairs {
        if a.is_some() != b.is_some() {
            problems.push(format!("{at}: {an} and {bn} go together"));
        }
    }
    problems
}

fn check_auth(auth: &AuthSpec, at: &str) -> Vec<String> {
    let ways = [
        auth.bearer_env.is_some(),
        auth.basic_user.is_some() || auth.password_env.is_some(),
        auth.header.is_some() || auth.value_env.is_some(),
        auth.client_cert_file.is_some() || auth.client_key_file.is_some(),
    ];
    let mut problems = Vec::new();
    if ways.iter().filter(|w| **w).count() != 1 {
        problems.push(format!(
            "{at}: give one way of authenticating: bearer_env; basic_user and password_env; \
             header and value_env; or client_cert_file and client_key_file"
        ));
    }
    let pairs = [
        (
            auth.basic_user.is_some(),
            auth.password_env.is_some(),
            "basic_user",
            "password_env",
        ),
        (
            auth.header.is_some(),
            auth.value_env.is_some(),
            "header",
            "value_env",
        ),
        (
            auth.client_cert_file.is_some(),
            auth.client_key_file.is_some(),
            "client_cert_file",
            "client_key_file",
        ),
    ];
    for (a, b, an, bn) in pairs {
        if a != b {
            problems.push(format!("{at}: {an} and {bn} go together"));
        }
    }
    problems
}
