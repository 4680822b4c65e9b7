//! Web service pull: a JSON API (`GET`) or a SOAP 1.1 / 1.2 service (`POST`, [`soap`]),
//! asked page by page (by offset, page number or token), optionally only for what
//! changed since a time, every page's records written as they come into one JSON
//! document `{"employees": [...]}` that the parser reads like any JSON export.
//!
//! Promises: each request is bounded (10 s to connect, the source's `timeout` in all);
//! secrets (tokens, passwords, header values) are read from the environment at fetch
//! time and never appear in an error or a log, even when a server echoes them back;
//! TLS uses the process's rustls provider, the platform's roots plus the source's
//! `ca_file`, and the client certificate when one is given; a server that repeats a
//! page, never stops, or sends more than allowed fails the fetch; [`fetch`] returns
//! `Ok` only when every page arrived, and removes `out` otherwise.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};
use url::Url;

use super::SourceError;
use super::secrets::{self, Secret};
use super::soap::{self, Fill, SoapError, Version};
use super::spec::{PageSpec, ResponseKind, SourceSpec};

/// How long connecting to a web service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take when the source does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Keys of a JSON answer that may hold the records (matched ignoring case).
const LIST_KEYS: [&str; 8] = [
    "employees",
    "users",
    "people",
    "data",
    "items",
    "value",
    "results",
    "records",
];
/// How much of an error answer's body an error quotes.
const SNIPPET_CHARS: usize = 200;
/// How much of an error answer is read (for the snippet or the SOAP fault).
const ERROR_BODY_BYTES: u64 = 64 * 1024;

/// What one fetch from a web service brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFetched {
    /// Records in all pages.
    pub records: u64,
    /// Pages asked for (the last may be empty).
    pub pages: u32,
    /// Bytes written to `out`.
    pub bytes: u64,
}

/// Fetches every page of the source's web service, asking for changes since `since`
/// (`None`: everything), and writes all records as one JSON document
/// (`{"employees": [...]}`, one record a line, JSON records as they came, SOAP records
/// as flat objects of strings) to `out`. Fails, naming the page, on an HTTP error, a
/// SOAP fault, a timeout, a page repeating the previous one, more than
/// `max_rows / size` pages (plus one for the final empty page), or more than
/// `max_bytes` in all; on any failure `out` is removed. `what` (`tenant/source`)
/// begins every error message.
pub async fn fetch(
    spec: &SourceSpec,
    since: Option<DateTime<Utc>>,
    max_rows: u64,
    max_bytes: u64,
    out: &Path,
    what: &str,
) -> Result<HttpFetched, SourceError> {
    let result = fetch_into(spec, since, max_rows, max_bytes, out, what).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(out).await;
    }
    result
}

async fn fetch_into(
    spec: &SourceSpec,
    since: Option<DateTime<Utc>>,
    max_rows: u64,
    max_bytes: u64,
    out: &Path,
    what: &str,
) -> Result<HttpFetched, SourceError> {
    let paging = Paging::of(spec.page.as_ref(), what)?;
    let service = Service::new(spec, &paging, what).await?;
    let since = since.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    let max_pages = paging.size().map_or(1, |size| {
        max_rows.div_ceil(u64::from(size)).saturating_add(1)
    });
    let mut output = Output::create(out, max_bytes).await?;
    let mut cursor = Cursor {
        number: 1,
        offset: 0,
        token: None,
    };
    let mut previous: Option<[u8; 32]> = None;
    let mut pages = 0u32;
    loop {
        if u64::from(cursor.number) > max_pages {
            return Err(SourceError::Protocol(format!(
                "{what}: more than {max_pages} pages: the server seems to loop"
            )));
        }
        let label = cursor.label(&paging);
        let request = service.request(&paging, &cursor, since.as_deref())?;
        let body = super::within(
            service.timeout,
            || format!("{what}: {label}"),
            service.exchange(request, &label, max_bytes),
        )
        .await?;
        let page = service.read(&body, &label, &paging)?;
        drop(body);
        let (chunk, digest) = output.chunk(&page.records)?;
        if !page.records.is_empty() && previous == Some(digest) {
            return Err(SourceError::Protocol(format!(
                "{what}: {label}: the server repeated page {}",
                cursor.number - 1
            )));
        }
        previous = Some(digest);
        output
            .write(&chunk, page.records.len(), what, &label)
            .await?;
        pages = pages.saturating_add(1);
        tracing::debug!(source = what, page = %label, records = page.records.len(), "page fetched");
        let Some(size) = paging.size() else { break };
        let count = page.records.len() as u64;
        if let Paging::Token { .. } = paging {
            // A token says there is more, even after a short page (a service may cap
            // its pages below the size asked for); an empty page or no token ends it.
            match page.token {
                Some(token) if count > 0 => cursor.token = Some(token),
                _ => break,
            }
        } else if count < u64::from(size) {
            break;
        }
        cursor.number = cursor.number.saturating_add(1);
        cursor.offset += count;
    }
    let (records, bytes) = output.finish(what).await?;
    Ok(HttpFetched {
        records,
        pages,
        bytes,
    })
}

/// How pages are asked for.
#[derive(Debug)]
enum Paging {
    /// One request.
    None,
    /// `offset_param=0,size,2*size...&limit_param=size`.
    Offset {
        size: u32,
        offset_param: String,
        limit_param: String,
    },
    /// `page_param=1,2,...&size_param=size`.
    Page {
        size: u32,
        page_param: String,
        size_param: String,
    },
    /// First without a token, then `token_param=<token at token_path>`.
    Token {
        size: u32,
        token_param: String,
        token_path: String,
    },
}

impl Paging {
    fn of(page: Option<&PageSpec>, what: &str) -> Result<Paging, SourceError> {
        let Some(page) = page else {
            return Ok(Paging::None);
        };
        if page.size == 0 {
            return Err(SourceError::Config(format!(
                "{what}: page.size is 0 (give 50 to 5000)"
            )));
        }
        let size = page.size;
        match page {
            PageSpec {
                offset_param: Some(o),
                limit_param: Some(l),
                ..
            } => Ok(Paging::Offset {
                size,
                offset_param: o.clone(),
                limit_param: l.clone(),
            }),
            PageSpec {
                page_param: Some(p),
                size_param: Some(s),
                ..
            } => Ok(Paging::Page {
                size,
                page_param: p.clone(),
                size_param: s.clone(),
            }),
            PageSpec {
                token_param: Some(p),
                token_path: Some(t),
                ..
            } => Ok(Paging::Token {
                size,
                token_param: p.clone(),
                token_path: t.clone(),
            }),
            _ => Err(SourceError::Config(format!(
                "{what}: page: give offset_param and limit_param, page_param and size_param, \
                 or token_param and token_path"
            ))),
        }
    }

    fn size(&self) -> Option<u32> {
        match self {
            Paging::None => None,
            Paging::Offset { size, .. }
            | Paging::Page { size, .. }
            | Paging::Token { size, .. } => Some(*size),
        }
    }

    fn token_path(&self) -> Option<&str> {
        match self {
            Paging::Token { token_path, .. } => Some(token_path),
            _ => None,
        }
    }
}

/// Which page is asked for next.
#[derive(Debug)]
struct Cursor {
    /// From 1.
    number: u32,
    /// Records in the pages before.
    offset: u64,
    /// The token the previous answer gave.
    token: Option<String>,
}

impl Cursor {
    /// How errors name the page: `page 3 (offset 100)`, `page 3`.
    fn label(&self, paging: &Paging) -> String {
        match paging {
            Paging::Offset { .. } => format!("page {} (offset {})", self.number, self.offset),
            _ => format!("page {}", self.number),
        }
    }
}

/// What is asked and how.
enum Ask {
    Json,
    Soap {
        version: Version,
        template: String,
        action: Option<String>,
    },
}

/// A web service, set up for the fetch: client, address, authentication, secrets.
struct Service {
    what: String,
    client: reqwest::Client,
    url: Url,
    ask: Ask,
    delta_param: Option<String>,
    records_path: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    secrets: Vec<Secret>,
    timeout: Duration,
}

impl Service {
    async fn new(spec: &SourceSpec, paging: &Paging, what: &str) -> Result<Service, SourceError> {
        let config = |msg: String| SourceError::Config(format!("{what}: {msg}"));
        let url = spec.url.as_deref().ok_or_else(|| config("no url".into()))?;
        let url = Url::parse(url).map_err(|e| config(format!("url {url:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config(format!(
                "url: {} is not an http or https address",
                url.scheme()
            )));
        }
        let timeout = spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
        let ask = match soap_version(spec) {
            None => Ask::Json,
            Some(version) => {
                let template = read_template(spec, paging, what).await?;
                let action = spec.soap_action.clone();
                Ask::Soap {
                    version,
                    template,
                    action,
                }
            }
        };
        let mut service = Service {
            what: what.to_owned(),
            client: build_client(spec, timeout, what).await?,
            url,
            ask,
            delta_param: spec.delta.as_ref().map(|d| d.param.clone()),
            records_path: spec.records_path.clone(),
            headers: Vec::new(),
            secrets: Vec::new(),
            timeout,
        };
        service.authenticate(spec)?;
        Ok(service)
    }

    /// Reads the secrets the source's `auth` names into headers to send.
    fn authenticate(&mut self, spec: &SourceSpec) -> Result<(), SourceError> {
        let Some(auth) = &spec.auth else {
            return Ok(());
        };
        let what = self.what.clone();
        let invalid = |whose: &str| {
            SourceError::Config(format!(
                "{what}: the {whose} is not a valid HTTP header value"
            ))
        };
        if let Some(var) = &auth.bearer_env {
            let token = secrets::from_env(var, &format!("{what} bearer token"))?;
            let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
                .map_err(|_| invalid(&format!("bearer token in {var}")))?;
            value.set_sensitive(true);
            self.headers.push((AUTHORIZATION, value));
            self.secrets.push(token);
        }
        match (&auth.basic_user, &auth.password_env) {
            (Some(user), Some(var)) => {
                let password = secrets::from_env(var, &format!("{what} password"))?;
                let encoded =
                    Secret::new(base64(format!("{user}:{}", password.expose()).as_bytes()));
                let mut value = HeaderValue::try_from(format!("Basic {}", encoded.expose()))
                    .map_err(|_| invalid("basic credentials"))?;
                value.set_sensitive(true);
                self.headers.push((AUTHORIZATION, value));
                self.secrets.push(password);
                self.secrets.push(encoded);
            }
            (None, None) => {}
            _ => {
                return Err(SourceError::Config(format!(
                    "{what}: auth.basic_user and auth.password_env go together"
                )));
            }
        }
        match (&auth.header, &auth.value_env) {
            (Some(name), Some(var)) => {
                let header = HeaderName::try_from(name.as_str()).map_err(|_| {
                    SourceError::Config(format!(
                        "{what}: auth.header {name:?} is not a header name"
                    ))
                })?;
                let secret = secrets::from_env(var, &format!("{what} {name} header"))?;
                let mut value = HeaderValue::try_from(secret.expose())
                    .map_err(|_| invalid(&format!("{name} value in {var}")))?;
                value.set_sensitive(true);
                self.headers.push((header, value));
                self.secrets.push(secret);
            }
            (None, None) => {}
            _ => {
                return Err(SourceError::Config(format!(
                    "{what}: auth.header and auth.value_env go together"
                )));
            }
        }
        Ok(())
    }

    /// `text` with every secret of this source masked.
    fn scrub(&self, text: &str) -> String {
        let secrets: Vec<&Secret> = self.secrets.iter().collect();
        secrets::scrub(text, &secrets)
    }

    /// The request for the page at `cursor`.
    fn request(
        &self,
        paging: &Paging,
        cursor: &Cursor,
        since: Option<&str>,
    ) -> Result<RequestBuilder, SourceError> {
        let mut builder = match &self.ask {
            Ask::Json => {
                let mut url = self.url.clone();
                {
                    let mut query = url.query_pairs_mut();
                    if let (Some(param), Some(since)) = (&self.delta_param, since) {
                        query.append_pair(param, since);
                    }
                    match paging {
                        Paging::None => {}
                        Paging::Offset {
                            size,
                            offset_param,
                            limit_param,
                        } => {
                            query.append_pair(offset_param, &cursor.offset.to_string());
                            query.append_pair(limit_param, &size.to_string());
                        }
                        Paging::Page {
                            size,
                            page_param,
                            size_param,
                        } => {
                            query.append_pair(page_param, &cursor.number.to_string());
                            query.append_pair(size_param, &size.to_string());
                        }
                        Paging::Token { token_param, .. } => {
                            if let Some(token) = &cursor.token {
                                query.append_pair(token_param, token);
                            }
                        }
                    }
                }
                if url.query() == Some("") {
                    url.set_query(None);
                }
                self.client.get(url).header(ACCEPT, "application/json")
            }
            Ask::Soap {
                version,
                template,
                action,
            } => {
                let offset = cursor.offset.to_string();
                let limit = paging.size().map(|s| s.to_string()).unwrap_or_default();
                let page = cursor.number.to_string();
                let body = soap::fill_template(
                    template,
                    &Fill {
                        since: since.unwrap_or_default(),
                        offset: &offset,
                        limit: &limit,
                        page: &page,
                        token: cursor.token.as_deref().unwrap_or_default(),
                    },
                );
                let bad_action = || {
                    SourceError::Config(format!(
                        "{}: soap_action {action:?} cannot be sent in a header",
                        self.what
                    ))
                };
                let content_type = HeaderValue::try_from(version.content_type(action.as_deref()))
                    .map_err(|_| bad_action())?;
                let mut builder = self
                    .client
                    .post(self.url.clone())
                    .header(CONTENT_TYPE, content_type)
                    .body(body);
                if let Some(header) = version.soap_action_header(action.as_deref()) {
                    let value = HeaderValue::try_from(header).map_err(|_| bad_action())?;
                    builder = builder.header("SOAPAction", value);
                }
                builder
            }
        };
        for (name, value) in &self.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        Ok(builder)
    }

    /// Sends `request` and reads the whole answer (at most `max_bytes`); a status other
    /// than 2xx is an error quoting (scrubbed) the start of the answer or its SOAP fault.
    async fn exchange(
        &self,
        request: RequestBuilder,
        label: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SourceError> {
        let mut response = request
            .send()
            .await
            .map_err(|e| self.transport_error(&e, label, false))?;
        let status = response.status();
        let limit = if status.is_success() {
            max_bytes
        } else {
            ERROR_BODY_BYTES.min(max_bytes)
        };
        let mut body = Vec::new();
        let mut whole = true;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e, label, true))?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                whole = false;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(self.status_error(status, &body, label));
        }
        if !whole {
            return Err(SourceError::Protocol(format!(
                "{}: {label}: the answer is larger than {max_bytes} bytes \
                 (ROSTER_MAX_FILE_BYTES)",
                self.what
            )));
        }
        Ok(body)
    }

    fn transport_error(&self, e: &reqwest::Error, label: &str, reading: bool) -> SourceError {
        let what = &self.what;
        if e.is_timeout() && !e.is_connect() {
            return SourceError::Timeout(format!(
                "{what}: {label}: no answer within {}",
                humantime::format_duration(self.timeout)
            ));
        }
        let cause = self.scrub(&error_chain(e));
        if reading {
            return SourceError::Protocol(format!(
                "{what}: {label}: the answer broke off: {cause}"
            ));
        }
        let host = match (self.url.host_str(), self.url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => "the server".to_owned(),
        };
        SourceError::Connect(format!("{what}: {label}: cannot reach {host}: {cause}"))
    }

    fn status_error(&self, status: StatusCode, body: &[u8], label: &str) -> SourceError {
        let text = String::from_utf8_lossy(body);
        if let Ask::Soap { version, .. } = &self.ask
            && let Err(fault @ SoapError::Fault { .. }) =
                soap::read_answer(&text, *version, None, None)
        {
            return SourceError::Protocol(
                self.scrub(&format!("{}: {label}: HTTP {status}: {fault}", self.what)),
            );
        }
        let snippet = snippet(&self.scrub(&text));
        let snippet = if snippet.is_empty() {
            String::new()
        } else {
            format!(": {snippet}")
        };
        SourceError::Protocol(format!("{}: {label}: HTTP {status}{snippet}", self.what))
    }

    /// The records and next token in one answer.
    fn read(&self, body: &[u8], label: &str, paging: &Paging) -> Result<Page, SourceError> {
        let protocol = |msg: &str| {
            SourceError::Protocol(self.scrub(&format!("{}: {label}: {msg}", self.what)))
        };
        match &self.ask {
            Ask::Json => {
                let answer: Value = serde_json::from_slice(body)
                    .map_err(|e| protocol(&format!("the answer is not JSON: {e}")))?;
                let token = match paging.token_path() {
                    Some(path) => json_token(&answer, path).map_err(|m| protocol(&m))?,
                    None => None,
                };
                let records =
                    json_records(answer, self.records_path.as_deref()).map_err(|m| protocol(&m))?;
                Ok(Page { records, token })
            }
            Ask::Soap { version, .. } => {
                let text = std::str::from_utf8(body)
                    .map_err(|e| protocol(&format!("the answer is not UTF-8: {e}")))?;
                let answer = soap::read_answer(
                    text,
                    *version,
                    self.records_path.as_deref(),
                    paging.token_path(),
                )
                .map_err(|e| protocol(&e.to_string()))?;
                Ok(Page {
                    records: answer.records.into_iter().map(Value::Object).collect(),
                    token: answer.token,
                })
            }
        }
    }
}

/// One answer's content.
struct Page {
    records: Vec<Value>,
    token: Option<String>,
}

fn soap_version(spec: &SourceSpec) -> Option<Version> {
    match spec.response.unwrap_or(ResponseKind::Json) {
        ResponseKind::Json => None,
        ResponseKind::Soap11 => Some(Version::V11),
        ResponseKind::Soap12 => Some(Version::V12),
    }
}

/// The request body template, checked to hold the placeholders the source's paging and
/// delta need (without them every page, or every delta, would ask the same).
async fn read_template(
    spec: &SourceSpec,
    paging: &Paging,
    what: &str,
) -> Result<String, SourceError> {
    let path = spec.request_body_file.as_deref().ok_or_else(|| {
        SourceError::Config(format!(
            "{what}: request_body_file: required for a SOAP service"
        ))
    })?;
    let template = tokio::fs::read_to_string(path).await.map_err(|e| {
        SourceError::Config(format!("{what}: request_body_file {}: {e}", path.display()))
    })?;
    let lacks = |placeholder: &str, why: &str| {
        SourceError::Config(format!(
            "{what}: request_body_file {}: no {placeholder} placeholder ({why})",
            path.display()
        ))
    };
    match paging {
        Paging::None => {}
        Paging::Token { .. } => {
            if !template.contains("{token}") {
                return Err(lacks("{token}", "token paging needs it"));
            }
        }
        Paging::Offset { .. } | Paging::Page { .. } => {
            if !["{offset}", "{page}"].iter().any(|p| template.contains(p)) {
                return Err(lacks("{offset} or {page}", "paging needs one"));
            }
        }
    }
    if spec.delta.is_some() && !template.contains("{since}") {
        return Err(lacks("{since}", "delta queries need it"));
    }
    Ok(template)
}

/// The HTTP client: 10 s to connect, `timeout` per request, TLS by the process's rustls
/// provider with the platform's roots plus `ca_file`, and the client certificate.
async fn build_client(
    spec: &SourceSpec,
    timeout: Duration,
    what: &str,
) -> Result<reqwest::Client, SourceError> {
    // The process installs it at start; this only makes sure a client is never built
    // without one (reqwest would panic).
    roster_shared::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .tls_backend_rustls()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .redirect(same_origin_redirects())
        .user_agent(concat!("roster-fetcher/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &spec.ca_file {
        let pem = read_file(ca, "ca_file", what).await?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| SourceError::Config(format!("{what}: ca_file {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(SourceError::Config(format!(
                "{what}: ca_file {}: no certificate in it",
                ca.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(auth) = &spec.auth {
        match (&auth.client_cert_file, &auth.client_key_file) {
            (Some(cert), Some(key)) => {
                let cert_pem = read_file(cert, "client_cert_file", what).await?;
                let key_pem = read_file(key, "client_key_file", what).await?;
                let mut pem = pem_sections(&cert_pem, |label| label == "CERTIFICATE");
                pem.push_str(&pem_sections(&key_pem, |label| {
                    label.ends_with("PRIVATE KEY")
                }));
                let identity = reqwest::Identity::from_pem(pem.as_bytes()).map_err(|e| {
                    SourceError::Config(format!(
                        "{what}: client certificate {} with key {}: {}",
                        cert.display(),
                        key.display(),
                        error_chain(&e)
                    ))
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(SourceError::Config(format!(
                    "{what}: auth.client_cert_file and auth.client_key_file go together"
                )));
            }
        }
    }
    builder.build().map_err(|e| {
        SourceError::Config(format!(
            "{what}: cannot set up the HTTP client: {}",
            error_chain(&e)
        ))
    })
}

async fn read_file(path: &Path, key: &str, what: &str) -> Result<Vec<u8>, SourceError> {
    tokio::fs::read(path)
        .await
        .map_err(|e| SourceError::Config(format!("{what}: {key} {}: {e}", path.display())))
}

/// The PEM sections of `pem` whose label `keep` accepts, as PEM text (other sections,
/// such as `EC PARAMETERS`, and any text around them left out).
fn pem_sections(pem: &[u8], keep: impl Fn(&str) -> bool) -> String {
    let text = String::from_utf8_lossy(pem);
    let mut out = String::new();
    let mut inside: Option<bool> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            inside = Some(keep(label));
        }
        if inside == Some(true) {
            out.push_str(line);
            out.push('\n');
        }
        if line.starts_with("-----END ") {
            inside = None;
        }
    }
    out
}

/// An error and its causes, `: `-separated, without the request's URL.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cause = c.source();
    }
    if parts.is_empty() {
        return e.to_string();
    }
    parts.join(": ")
}

/// The start of an error answer, on one line.
fn snippet(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(SNIPPET_CHARS) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line,
    }
}

/// The records of a JSON answer: at `path` (dotted keys; `null` there is no records),
/// or the answer itself if it is a list, or its one list under a [`LIST_KEYS`] key.
fn json_records(answer: Value, path: Option<&str>) -> Result<Vec<Value>, String> {
    if let Some(path) = path {
        let mut at = answer;
        for key in path.split('.') {
            at = match at {
                Value::Object(mut map) => map
                    .remove(key)
                    .ok_or_else(|| format!("records_path {path}: no key {key:?} in the answer"))?,
                other => {
                    return Err(format!(
                        "records_path {path}: {key:?} is looked for in {}, not an object",
                        json_kind(&other)
                    ));
                }
            };
        }
        return match at {
            Value::Array(records) => Ok(records),
            Value::Null => Ok(Vec::new()),
            other => Err(format!(
                "records_path {path}: {} is not a list",
                json_kind(&other)
            )),
        };
    }
    match answer {
        Value::Array(records) => Ok(records),
        Value::Object(mut map) => {
            let mut keys: Vec<String> = map
                .iter()
                .filter(|(key, value)| {
                    value.is_array() && LIST_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
                })
                .map(|(key, _)| key.clone())
                .collect();
            keys.sort_unstable();
            match keys.as_slice() {
                [one] => match map.remove(one) {
                    Some(Value::Array(records)) => Ok(records),
                    _ => Err(format!("{one:?} vanished")),
                },
                [] => Err(format!(
                    "no list of records in the answer (a bare list, or one under {}): set \
                     records_path",
                    LIST_KEYS.join(", ")
                )),
                many => Err(format!(
                    "several lists of records in the answer ({}): set records_path",
                    many.join(", ")
                )),
            }
        }
        other => Err(format!(
            "the answer is {}, not a list or an object",
            json_kind(&other)
        )),
    }
}

/// The next page's token at `path` (dotted keys): absent, `null` or empty is none.
fn json_token(answer: &Value, path: &str) -> Result<Option<String>, String> {
    let mut at = answer;
    for key in path.split('.') {
        match at.get(key) {
            Some(next) => at = next,
            None => return Ok(None),
        }
    }
    match at {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(format!(
            "token_path {path}: {} is not a token",
            json_kind(other)
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Standard base64 with padding (for basic authentication).
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Redirects followed: at most [`MAX_REDIRECTS`], and only within the origin (scheme,
/// host and port) of the request. Credentials go with every request (a custom header
/// like `X-Api-Key` even across hosts), so a redirect elsewhere, or from HTTPS to HTTP,
/// is not followed: the fetch fails naming the 3xx status.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if same {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Redirects followed for one request, at most.
const MAX_REDIRECTS: usize = 5;

/// The output document, written as pages come: `{"employees":[` then one record a
/// line, then `]}`.
struct Output {
    file: BufWriter<tokio::fs::File>,
    written: u64,
    records: u64,
    max_bytes: u64,
}

const HEAD: &[u8] = b"{\"employees\":[\n";
const TAIL: &[u8] = b"\n]}\n";

impl Output {
    async fn create(path: &Path, max_bytes: u64) -> Result<Output, SourceError> {
        let file = tokio::fs::File::create(path)
            .await
            .map_err(|e| SourceError::local("creating the web service's file", &e))?;
        let mut output = Output {
            file: BufWriter::new(file),
            written: 0,
            records: 0,
            max_bytes,
        };
        output.put(HEAD).await?;
        Ok(output)
    }

    /// A page's records as they will be written (after the ones before), and a digest of
    /// the records alone (the same for the same records wherever they are written).
    fn chunk(&self, records: &[Value]) -> Result<(Vec<u8>, [u8; 32]), SourceError> {
        let mut chunk = Vec::new();
        let mut digest = Sha256::new();
        for (i, record) in records.iter().enumerate() {
            if self.records > 0 || i > 0 {
                chunk.extend_from_slice(b",\n");
            }
            let start = chunk.len();
            serde_json::to_writer(&mut chunk, record).map_err(|e| {
                SourceError::Stage(roster_shared::error::StageError::internal(format!(
                    "writing a record as JSON: {e}"
                )))
            })?;
            digest.update(&chunk[start..]);
            digest.update(b"\n");
        }
        Ok((chunk, digest.finalize().into()))
    }

    async fn write(
        &mut self,
        chunk: &[u8],
        records: usize,
        what: &str,
        label: &str,
    ) -> Result<(), SourceError> {
        if self.written + chunk.len() as u64 + TAIL.len() as u64 > self.max_bytes {
            return Err(SourceError::Protocol(format!(
                "{what}: {label}: more than {} bytes in all (ROSTER_MAX_FILE_BYTES)",
                self.max_bytes
            )));
        }
        self.put(chunk).await?;
        self.records += records as u64;
        Ok(())
    }

    async fn put(&mut self, bytes: &[u8]) -> Result<(), SourceError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| SourceError::local("writing the web service's file", &e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Closes the document; returns the records and bytes written.
    async fn finish(mut self, what: &str) -> Result<(u64, u64), SourceError> {
        if self.written + TAIL.len() as u64 > self.max_bytes {
            return Err(SourceError::Protocol(format!(
                "{what}: more than {} bytes in all (ROSTER_MAX_FILE_BYTES)",
                self.max_bytes
            )));
        }
        self.put(TAIL).await?;
        self.file
            .flush()
            .await
            .map_err(|e| SourceError::local("writing the web service's file", &e))?;
        self.file
            .get_ref()
            .sync_all()
            .await
            .map_err(|e| SourceError::local("writing the web service's file", &e))?;
        Ok((self.records, self.written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn json_records_are_found() {
        let list = json!([{"a": 1}]);
        assert_eq!(
            json_records(list.clone(), None).unwrap(),
            vec![json!({"a": 1})]
        );
        let under = json!({"total": 1, "Users": [{"a": 1}]});
        assert_eq!(json_records(under, None).unwrap(), vec![json!({"a": 1})]);
        let nested = json!({"data": {"employees": [{"a": 1}]}});
        assert_eq!(
            json_records(nested.clone(), Some("data.employees")).unwrap(),
            vec![json!({"a": 1})]
        );
        let e = json_records(nested, None).unwrap_err();
        assert!(e.contains("set records_path"), "{e}");
        let two = json!({"users": [], "items": []});
        let e = json_records(two, None).unwrap_err();
        assert!(e.contains("several lists") && e.contains("users"), "{e}");
        let e = json_records(json!({"data": []}), Some("data.x")).unwrap_err();
        assert!(e.contains("records_path data.x"), "{e}");
        assert!(
            json_records(json!({"d": null}), Some("d"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn json_tokens_are_found() {
        let answer = json!({"paging": {"next": "abc", "n": 7, "none": null, "empty": ""}});
        assert_eq!(
            json_token(&answer, "paging.next").unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(
            json_token(&answer, "paging.n").unwrap().as_deref(),
            Some("7")
        );
        assert_eq!(json_token(&answer, "paging.none").unwrap(), None);
        assert_eq!(json_token(&answer, "paging.empty").unwrap(), None);
        assert_eq!(json_token(&answer, "paging.missing").unwrap(), None);
        assert!(json_token(&answer, "paging").is_err());
    }

    #[test]
    fn snippets_are_short_and_on_one_line() {
        assert_eq!(snippet("  a\n b  "), "a b");
        let long = "é".repeat(500);
        let s = snippet(&long);
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 3);
    }

    #[test]
    fn pem_sections_keep_only_what_is_asked() {
        let pem = b"junk\n-----BEGIN EC PARAMETERS-----\nAA==\n-----END EC PARAMETERS-----\n\
                    -----BEGIN EC PRIVATE KEY-----\nBB==\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(
            pem_sections(pem, |l| l.ends_with("PRIVATE KEY")),
            "-----BEGIN EC PRIVATE KEY-----\nBB==\n-----END EC PRIVATE KEY-----\n"
        );
    }
}
