//! FTP and explicit FTPS pull (`suppaftp` on tokio, rustls with ring).
//!
//! - Kind `ftp` is plain FTP. Kind `ftps` is explicit FTPS: `AUTH TLS` on the control
//!   connection before the login, then `PBSZ 0` and `PROT P`, so the password, every
//!   listing and every file travel encrypted. The server's certificate is checked against
//!   the CA certificates (PEM) in the source's `ca_file`, or, without one, the system's
//!   (`rustls-native-certs`: `SSL_CERT_FILE`/`SSL_CERT_DIR`, else the platform store), and must name the
//!   host the source names (a name, or an IP address as a subjectAltName). Checking
//!   cannot be turned off.
//! - TLS session reuse: each data connection is opened with the same rustls client
//!   configuration, and so the same session cache, as the control connection, and resumes
//!   its session, which vsftpd demands by default (`require_ssl_reuse=YES`). A server that
//!   still refuses (`522 ... session reuse required`) fails the fetch with a message
//!   saying so.
//! - Passive mode always (`PASV`), and the data connection goes to the address of the
//!   control connection, whatever address the server's `227` reply names (servers behind
//!   NAT often name a private one; a hostile one could name any). Transfers are binary
//!   (`TYPE I`).
//! - Listings: `MLSD` when the server announces `MLST` in its `FEAT` reply (exact UTC
//!   times and file types); otherwise `LIST`, then `SIZE` and `MDTM` for each regular
//!   file (`MDTM` gives a time without a zone: read as UTC, as RFC 3659 says). Folders
//!   and links are skipped; more than [`MAX_LISTED`] entries fail the listing.
//! - Deadlines: connecting, TLS and the login together [`CONNECT_TIMEOUT`]; each command
//!   [`COMMAND_TIMEOUT`]; a transfer (listing or file) may take as long as it needs but
//!   fails after [`IDLE_TIMEOUT`] without a byte moving, so a large file on a slow line is
//!   fetched while a stalled server cannot hang a fetch.
//! - The password is read at connect time and sent once; texts the server sends back are
//!   quoted in errors with it blanked out.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream, AsyncRustlsStream};
use suppaftp::types::FileType;
use suppaftp::{FtpError, Status};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tracing::{debug, warn};

use super::files::{FileServer, MAX_LISTED, RemoteFile, join};
use super::secrets::{self, Secret};
use super::spec::{SourceKind, SourceSpec};
use super::{SourceError, within};

/// How long connecting, TLS and the login may take together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one command (opening a transfer, `SIZE`, `RNFR`/`RNTO`, `DELE`, closing a
/// transfer) may wait for its answer.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a transfer may go without a byte moving.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `QUIT` may take.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the reply a failed data connection leaves on the control one.
const RESYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest listing line taken (a longer one fails the listing).
const MAX_LINE: u64 = 16 * 1024;
/// Characters of a server's text quoted in an error, at most.
const MAX_QUOTED: usize = 300;
/// Bytes read per step of a download.
const CHUNK: usize = 64 * 1024;

/// A logged-in FTP or FTPS session.
pub struct FtpServer {
    ftp: AsyncRustlsFtpStream,
    /// The source, prefixing every error (`acme/hr-ftp`).
    what: String,
    /// `host:port`, for messages.
    at: String,
    password: Secret,
    /// Whether to list with `MLSD` (the server announced `MLST`, and has not refused it).
    mlsd: bool,
    /// The folder the login started in (`PWD`), if the server said.
    home: Option<String>,
}

/// Where the server is and who logs in.
struct Target {
    host: String,
    port: u16,
    user: String,
    /// `host:port` (`[::1]:21` for an IPv6 address).
    at: String,
    /// What the certificate is checked against, for messages (`the CA certificates in
    /// /etc/roster/acme-ca.pem`).
    trust: String,
}

/// Connects and logs in to the source's FTP server (kind `ftp`), or to its FTPS server
/// with explicit TLS (kind `ftps`, the certificate checked against `ca_file` or the
/// system's CA certificates), in passive mode and binary type. `what` names the source
/// in errors (`acme/hr-ftp`). Refused connections, logins and certificates are
/// [`SourceError::Connect`] errors naming `host:port` (and the user, for a login), never
/// the password.
pub async fn connect(spec: &SourceSpec, what: &str) -> Result<Box<dyn FileServer>, SourceError> {
    let tls = match spec.kind {
        SourceKind::Ftp => false,
        SourceKind::Ftps => true,
        other => {
            return Err(SourceError::Config(format!(
                "{what}: kind {other} is not served over FTP"
            )));
        }
    };
    let host = spec
        .host
        .clone()
        .ok_or_else(|| SourceError::Config(format!("{what}: no host")))?;
    let port = spec.port.unwrap_or(21);
    let user = spec
        .user
        .clone()
        .ok_or_else(|| SourceError::Config(format!("{what}: no user")))?;
    let password = secrets::named(
        spec.password_env.as_deref(),
        spec.password_file.as_deref(),
        &format!("{what} password"),
    )?
    .ok_or_else(|| {
        SourceError::Config(format!(
            "{what}: no password (password_env or password_file)"
        ))
    })?;
    let tls = if tls {
        Some(tls_config(spec.ca_file.as_deref(), what).await?)
    } else {
        None
    };
    let at = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let trust = match &spec.ca_file {
        Some(path) => format!("the CA certificates in {}", path.display()),
        None => "the system's CA certificates".to_owned(),
    };
    let target = Target {
        host,
        port,
        user,
        at,
        trust,
    };
    let label = format!(
        "{what}: connecting to {} and logging in as {}",
        target.at, target.user
    );
    let server = within(
        CONNECT_TIMEOUT,
        || label,
        open(&target, password, tls, what),
    )
    .await?;
    Ok(Box::new(server))
}

/// The TLS settings of an FTPS source: its CA certificates (or the system's), the process
/// crypto provider (ring if none is installed), session resumption on (rustls' default
/// in-memory cache, shared by the control and the data connections).
async fn tls_config(
    ca_file: Option<&Path>,
    what: &str,
) -> Result<Arc<rustls::ClientConfig>, SourceError> {
    let roots = match ca_file {
        Some(path) => {
            let pem = tokio::fs::read(path).await.map_err(|e| {
                SourceError::Config(format!(
                    "{what}: cannot read ca_file {}: {e}",
                    path.display()
                ))
            })?;
            roots_from_pem(&pem, &path.display().to_string())
                .map_err(|e| SourceError::Config(format!("{what}: ca_file {e}")))?
        }
        None => system_roots()
            .await
            .map_err(|e| SourceError::Config(format!("{what}: no ca_file, and {e}")))?,
    };
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Config(format!("{what}: TLS settings: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The CA certificates in a PEM text; `name` says where it came from in errors.
fn roots_from_pem(pem: &[u8], name: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("{name}: not a readable PEM file: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("{name}: holds a certificate that cannot be used as a CA: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{name}: holds no PEM certificate"));
    }
    Ok(roots)
}

/// The system's CA certificates (`rustls-native-certs`: `SSL_CERT_FILE` or
/// `SSL_CERT_DIR` if set, else the platform's store).
async fn system_roots() -> Result<RootCertStore, String> {
    let found = tokio::task::spawn_blocking(rustls_native_certs::load_native_certs)
        .await
        .map_err(|e| format!("reading the system's CA certificates: {e}"))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none installed".to_owned(), ToString::to_string);
        return Err(format!("no system CA certificates were found ({why})"));
    }
    Ok(roots)
}

/// Connects, secures (with `tls`) and logs in; no deadline of its own.
async fn open(
    target: &Target,
    password: Secret,
    tls: Option<Arc<rustls::ClientConfig>>,
    what: &str,
) -> Result<FtpServer, SourceError> {
    let at = &target.at;
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| SourceError::Connect(format!("{what}: cannot reach {at}: {e}")))?;
    let mut ftp = AsyncRustlsFtpStream::connect_with_stream(tcp)
        .await
        .map_err(|e| {
            SourceError::Connect(format!(
                "{what}: {at} did not greet as an FTP server: {}",
                describe(&e, &password)
            ))
        })?;
    ftp.set_mode(suppaftp::Mode::Passive);
    ftp.set_passive_nat_workaround(true);
    let secured = tls.is_some();
    if let Some(config) = tls {
        let connector = suppaftp::tokio_rustls::TlsConnector::from(config);
        ftp = ftp
            .into_secure(AsyncRustlsConnector::from(connector), &target.host)
            .await
            .map_err(|e| tls_refused(&e, target, &password, what))?;
    }
    match ftp.login(target.user.as_str(), password.expose()).await {
        Ok(()) => {}
        Err(FtpError::UnexpectedResponse(r)) => {
            return Err(SourceError::Connect(format!(
                "{what}: login to {at} as {} refused: {}",
                target.user,
                reply_text(&r, &password)
            )));
        }
        Err(e) => {
            return Err(SourceError::Connect(format!(
                "{what}: login to {at} as {} failed: {}",
                target.user,
                describe(&e, &password)
            )));
        }
    }
    ftp.transfer_type(FileType::Binary).await.map_err(|e| {
        SourceError::Protocol(format!(
            "{what}: {at} refused binary transfers (TYPE I): {}",
            describe(&e, &password)
        ))
    })?;
    let mlsd = match ftp.feat().await {
        Ok(features) => features.keys().any(|k| k.eq_ignore_ascii_case("MLST")),
        Err(e @ FtpError::ConnectionError(_)) => {
            return Err(SourceError::Connect(format!(
                "{what}: {at} closed the connection after the login: {}",
                describe(&e, &password)
            )));
        }
        Err(e) => {
            debug!(source = what, server = %at, error = %describe(&e, &password),
                "the FTP server answers no FEAT; listing with LIST");
            false
        }
    };
    let home = ftp.pwd().await.ok();
    debug!(source = what, server = %at, user = %target.user, tls = secured, mlsd,
        "logged in to the FTP server");
    Ok(FtpServer {
        ftp,
        what: what.to_owned(),
        at: at.clone(),
        password,
        mlsd,
        home,
    })
}

/// The error for a failed `AUTH TLS`, TLS handshake, `PBSZ` or `PROT`.
fn tls_refused(e: &FtpError, target: &Target, password: &Secret, what: &str) -> SourceError {
    let at = &target.at;
    match e {
        FtpError::UnexpectedResponse(r) => SourceError::Connect(format!(
            "{what}: {at} refused explicit TLS (AUTH TLS, PBSZ, PROT): {}",
            reply_text(r, password)
        )),
        FtpError::SecureError(text) if text.contains("not valid for name") => {
            SourceError::Connect(format!(
                "{what}: the TLS certificate of {at} is not valid for {}: {}",
                target.host,
                quote(text, password)
            ))
        }
        FtpError::SecureError(text) if text.contains("invalid peer certificate") => {
            SourceError::Connect(format!(
                "{what}: the TLS certificate of {at} was not trusted (checked against {}): {}",
                target.trust,
                quote(text, password)
            ))
        }
        other => SourceError::Connect(format!(
            "{what}: TLS with {at} failed: {}",
            describe(other, password)
        )),
    }
}

/// `text` on one line, control characters blanked, the password replaced by `***`, cut
/// to [`MAX_QUOTED`] characters (after the blanking, so no part of it can show).
fn quote(text: &str, password: &Secret) -> String {
    let one_line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let clean: String = one_line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let scrubbed = secrets::scrub(&clean, &[password]);
    let mut out: String = scrubbed.chars().take(MAX_QUOTED).collect();
    if scrubbed.chars().count() > MAX_QUOTED {
        out.push_str("...");
    }
    out
}

/// A server reply as quoted in errors: `550 Failed to open file.`
fn reply_text(r: &suppaftp::types::Response, password: &Secret) -> String {
    quote(&String::from_utf8_lossy(&r.body), password)
}

/// An FTP error as quoted in errors.
fn describe(e: &FtpError, password: &Secret) -> String {
    match e {
        FtpError::UnexpectedResponse(r) => reply_text(r, password),
        other => quote(&other.to_string(), password),
    }
}

/// Whether `e` is vsftpd's refusal of a data connection that did not resume the control
/// connection's TLS session (`522 SSL connection failed: session reuse required`).
fn reuse_refused(e: &FtpError) -> bool {
    match e {
        FtpError::UnexpectedResponse(r) => {
            let text = String::from_utf8_lossy(&r.body).to_ascii_lowercase();
            text.starts_with("522") && text.contains("reuse")
        }
        _ => false,
    }
}

/// Whether `e` says the server does not know a command.
fn not_understood(e: &FtpError) -> bool {
    matches!(e, FtpError::UnexpectedResponse(r)
        if matches!(r.body.get(..3), Some(b"500" | b"502" | b"504")))
}

/// Whether `e` is a `550` (no such file, or not allowed).
fn unavailable(e: &FtpError) -> bool {
    matches!(e, FtpError::UnexpectedResponse(r) if r.body.starts_with(b"550"))
}

/// Runs `work` under `limit`: `Err` on the deadline (a [`SourceError::Timeout`] naming
/// `label`), else what `work` gave.
async fn timed<T, E>(
    limit: Duration,
    label: String,
    work: impl Future<Output = Result<T, E>>,
) -> Result<Result<T, E>, SourceError> {
    within(limit, || label, async { Ok(work.await) }).await
}

/// An entry of a listing, as far as the listing tells.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    size: Option<u64>,
    modified_ms: Option<i64>,
}

/// A regular file in an `MLSD` line (`type=file;size=12;modify=20240102030405.123; a.csv`);
/// `None` for folders, links, other types and lines that do not parse.
fn parse_mlsd(line: &str) -> Option<Entry> {
    let (facts, name) = line.split_once(' ')?;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let mut file = false;
    let mut size = None;
    let mut modified_ms = None;
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (key, value) = fact.split_once('=')?;
        match key.to_ascii_lowercase().as_str() {
            "type" => file = value.eq_ignore_ascii_case("file"),
            "size" => size = value.parse().ok(),
            "modify" => modified_ms = parse_time(value),
            _ => {}
        }
    }
    file.then(|| Entry {
        name: name.to_owned(),
        size,
        modified_ms,
    })
}

/// An RFC 3659 time (`YYYYMMDDHHMMSS[.sss]`, UTC) in milliseconds since the epoch.
fn parse_time(value: &str) -> Option<i64> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let at = chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").ok()?;
    let digits: String = fraction.chars().take(3).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let ms = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10_i64.pow(3 - digits.len() as u32)
    };
    Some(at.and_utc().timestamp_millis() + ms)
}

/// The name of a regular file in a `LIST` line (Unix `ls -l` or DOS style); `None` for
/// folders, links and lines that are not entries (`total 12`).
fn parse_list(line: &str) -> Option<String> {
    let file = suppaftp::list::ListParser::parse_posix(line)
        .or_else(|_| suppaftp::list::ListParser::parse_dos(line))
        .ok()?;
    let name = file.name();
    (file.is_file() && !name.is_empty() && !name.contains('/')).then(|| name.to_owned())
}

/// The folders to create, outermost first, so that `path` can be made
/// (`done/2024/a.csv`: `done`, `done/2024`).
fn parents(path: &str) -> Vec<String> {
    let Some((dir, _)) = path.rsplit_once('/') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, c) in dir.char_indices() {
        if c == '/' && i > 0 {
            out.push(dir[..i].to_owned());
        }
    }
    if !dir.is_empty() {
        out.push(dir.to_owned());
    }
    out
}

impl FtpServer {
    /// `what: doing on host:port`, the label of a deadline.
    fn label(&self, doing: &str) -> String {
        format!("{}: {doing} on {}", self.what, self.at)
    }

    /// The error for `e`, met while `doing`.
    fn fail(&self, doing: &str, e: &FtpError) -> SourceError {
        if reuse_refused(e) {
            return SourceError::Protocol(format!(
                "{}: {doing}: the server requires TLS session reuse on the data connection \
                 (vsftpd require_ssl_reuse), which this client could not do ({})",
                self.what,
                describe(e, &self.password)
            ));
        }
        match e {
            FtpError::ConnectionError(io) => SourceError::Protocol(format!(
                "{}: {doing}: the connection to {} failed: {}",
                self.what,
                self.at,
                quote(&io.to_string(), &self.password)
            )),
            other => SourceError::Protocol(format!(
                "{}: {doing}: {}",
                self.what,
                describe(other, &self.password)
            )),
        }
    }

    /// The error for a data connection that could not be opened: the server may have
    /// left a final reply on the control connection (a `522` refusing the TLS session);
    /// it is read, so the next command is answered in order, and reported if it says more.
    async fn data_failed(&mut self, doing: &str, e: FtpError) -> SourceError {
        if !matches!(e, FtpError::SecureError(_) | FtpError::ConnectionError(_)) {
            return self.fail(doing, &e);
        }
        let pending = tokio::time::timeout(
            RESYNC_TIMEOUT,
            self.ftp
                .read_response_in(&[Status::ClosingDataConnection, Status::RequestedFileActionOk]),
        )
        .await;
        match pending {
            Ok(Err(reply)) if reuse_refused(&reply) => self.fail(doing, &reply),
            _ => self.fail(doing, &e),
        }
    }

    /// Opens the data connection for `command` (`MLSD dir`, `LIST dir`) and reads its
    /// lines, at most [`MAX_LISTED`] of at most [`MAX_LINE`] bytes each.
    async fn listing(&mut self, command: &str, doing: &str) -> Result<Vec<String>, FtpFailure> {
        let opened = timed(
            COMMAND_TIMEOUT,
            self.label(doing),
            self.ftp
                .custom_data_command(command, &[Status::AboutToSend, Status::AlreadyOpen]),
        )
        .await?;
        let stream = match opened {
            Ok((_, stream)) => stream,
            Err(e) if not_understood(&e) => return Err(FtpFailure::NotUnderstood(e)),
            Err(e) => return Err(FtpFailure::Done(self.data_failed(doing, e).await)),
        };
        let mut reader = BufReader::new(stream);
        let read = self.read_lines(&mut reader, doing).await;
        let finished = timed(
            COMMAND_TIMEOUT,
            self.label(doing),
            reader.into_inner().finish(),
        )
        .await;
        match (read, finished) {
            (Ok(lines), Ok(Ok(()))) => Ok(lines),
            (Ok(_), Ok(Err(e))) => Err(FtpFailure::Done(self.fail(doing, &e))),
            (Err(_), Ok(Err(e))) if reuse_refused(&e) => {
                Err(FtpFailure::Done(self.fail(doing, &e)))
            }
            (Err(e), _) | (Ok(_), Err(e)) => Err(FtpFailure::Done(e)),
        }
    }

    /// The lines of a listing's data connection (see [`FtpServer::listing`]).
    async fn read_lines(
        &self,
        reader: &mut BufReader<suppaftp::tokio::TransferStream<AsyncRustlsStream>>,
        doing: &str,
    ) -> Result<Vec<String>, SourceError> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = timed(
                IDLE_TIMEOUT,
                self.label(doing),
                (&mut *reader)
                    .take(MAX_LINE + 1)
                    .read_until(b'\n', &mut line),
            )
            .await?
            .map_err(|e| self.fail(doing, &FtpError::ConnectionError(e)))?;
            if n == 0 {
                return Ok(lines);
            }
            if line.len() as u64 > MAX_LINE {
                return Err(SourceError::Protocol(format!(
                    "{}: {doing}: a listing line longer than {MAX_LINE} bytes",
                    self.what
                )));
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            if lines.len() == MAX_LISTED {
                return Err(SourceError::Protocol(format!(
                    "{}: {doing}: more than {MAX_LISTED} entries in the folder",
                    self.what
                )));
            }
            match String::from_utf8(line) {
                Ok(text) => lines.push(text),
                Err(e) => {
                    warn!(source = %self.what, server = %self.at, line = %String::from_utf8_lossy(e.as_bytes()),
                        "skipping a listing entry whose name is not UTF-8");
                }
            }
        }
    }

    /// Fails if `dir` is not a folder the login can enter (`LIST` of a missing folder
    /// answers nothing on some servers, vsftpd among them, rather than an error), then
    /// goes back to the login's folder.
    async fn check_folder(&mut self, dir: &str, doing: &str) -> Result<(), SourceError> {
        let Some(home) = self.home.clone() else {
            return Ok(());
        };
        match timed(COMMAND_TIMEOUT, self.label(doing), self.ftp.cwd(dir)).await? {
            Ok(()) => {}
            Err(e) if unavailable(&e) => {
                return Err(SourceError::Protocol(format!(
                    "{}: {doing}: no such folder, or not allowed in ({})",
                    self.what,
                    describe(&e, &self.password)
                )));
            }
            Err(e) => return Err(self.fail(doing, &e)),
        }
        timed(COMMAND_TIMEOUT, self.label(doing), self.ftp.cwd(&home))
            .await?
            .map_err(|e| self.fail(doing, &e))
    }

    /// The size and time of `dir/name` by `SIZE` and `MDTM`; `None` if the file went away.
    async fn stat(&mut self, dir: &str, entry: Entry) -> Result<Option<RemoteFile>, SourceError> {
        let path = join(dir, &entry.name);
        let size = match entry.size {
            Some(size) => size,
            None => {
                let doing = format!("asking the size of {path} (SIZE)");
                match timed(COMMAND_TIMEOUT, self.label(&doing), self.ftp.size(&path)).await? {
                    Ok(size) => size as u64,
                    Err(e) if unavailable(&e) => return Ok(None),
                    Err(e) => return Err(self.fail(&doing, &e)),
                }
            }
        };
        let modified_ms = match entry.modified_ms {
            Some(ms) => ms,
            None => {
                let doing = format!("asking the modification time of {path} (MDTM)");
                match timed(COMMAND_TIMEOUT, self.label(&doing), self.ftp.mdtm(&path)).await? {
                    Ok(at) => at.and_utc().timestamp_millis(),
                    Err(e) if unavailable(&e) => return Ok(None),
                    Err(e) => return Err(self.fail(&doing, &e)),
                }
            }
        };
        Ok(Some(RemoteFile {
            name: entry.name,
            size,
            modified_ms,
            change: None,
        }))
    }
}

/// How a listing command failed.
enum FtpFailure {
    /// The server does not know the command (try another).
    NotUnderstood(FtpError),
    /// Any other failure, final.
    Done(SourceError),
}

impl From<SourceError> for FtpFailure {
    fn from(e: SourceError) -> Self {
        FtpFailure::Done(e)
    }
}

#[async_trait]
impl FileServer for FtpServer {
    async fn list(&mut self, dir: &str) -> Result<Vec<RemoteFile>, SourceError> {
        let doing = format!("listing {dir}");
        let mut entries = None;
        if self.mlsd {
            match self.listing(&format!("MLSD {dir}"), &doing).await {
                Ok(lines) => entries = Some(lines.iter().filter_map(|l| parse_mlsd(l)).collect()),
                Err(FtpFailure::NotUnderstood(e)) => {
                    warn!(source = %self.what, server = %self.at,
                        error = %describe(&e, &self.password),
                        "the FTP server announced MLST but refuses MLSD; listing with LIST");
                    self.mlsd = false;
                }
                Err(FtpFailure::Done(e)) => return Err(e),
            }
        }
        let entries: Vec<Entry> = match entries {
            Some(entries) => entries,
            None => match self.listing(&format!("LIST {dir}"), &doing).await {
                Ok(lines) if lines.is_empty() => {
                    self.check_folder(dir, &doing).await?;
                    Vec::new()
                }
                Ok(lines) => lines
                    .iter()
                    .filter_map(|l| parse_list(l))
                    .map(|name| Entry {
                        name,
                        size: None,
                        modified_ms: None,
                    })
                    .collect(),
                Err(FtpFailure::NotUnderstood(e)) => return Err(self.fail(&doing, &e)),
                Err(FtpFailure::Done(e)) => return Err(e),
            },
        };
        let mut files = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(file) = self.stat(dir, entry).await? {
                files.push(file);
            }
        }
        debug!(source = %self.what, server = %self.at, dir, files = files.len(), mlsd = self.mlsd,
            "listed an FTP folder");
        Ok(files)
    }

    async fn download(
        &mut self,
        path: &str,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<u64, SourceError> {
        let doing = format!("downloading {path}");
        let opened = timed(
            COMMAND_TIMEOUT,
            self.label(&doing),
            self.ftp.retr_as_stream(path),
        )
        .await?;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(e) => return Err(self.data_failed(&doing, e).await),
        };
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        let copied: Result<(), SourceError> = async {
            loop {
                let n = timed(IDLE_TIMEOUT, self.label(&doing), stream.read(&mut buf))
                    .await?
                    .map_err(|e| self.fail(&doing, &FtpError::ConnectionError(e)))?;
                if n == 0 {
                    return Ok(());
                }
                timed(
                    IDLE_TIMEOUT,
                    format!("{}: {doing}: writing it out", self.what),
                    out.write_all(&buf[..n]),
                )
                .await?
                .map_err(|e| SourceError::local(&format!("{}: {doing}", self.what), &e))?;
                total += n as u64;
            }
        }
        .await;
        let finished = timed(COMMAND_TIMEOUT, self.label(&doing), stream.finish()).await;
        match (copied, finished) {
            (Ok(()), Ok(Ok(()))) => {}
            (Ok(()), Ok(Err(e))) => return Err(self.fail(&doing, &e)),
            (Err(_), Ok(Err(e))) if reuse_refused(&e) => return Err(self.fail(&doing, &e)),
            (Err(e), _) | (Ok(()), Err(e)) => return Err(e),
        }
        timed(
            IDLE_TIMEOUT,
            format!("{}: {doing}: writing it out", self.what),
            out.flush(),
        )
        .await?
        .map_err(|e| SourceError::local(&format!("{}: {doing}", self.what), &e))?;
        debug!(source = %self.what, server = %self.at, path, bytes = total, "downloaded a file over FTP");
        Ok(total)
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<(), SourceError> {
        let doing = format!("moving {from} to {to}");
        let first = timed(
            COMMAND_TIMEOUT,
            self.label(&doing),
            self.ftp.rename(from, to),
        )
        .await?;
        let first = match first {
            Ok(()) => return Ok(()),
            Err(e @ FtpError::UnexpectedResponse(_)) if !parents(to).is_empty() => e,
            Err(e) => return Err(self.fail(&doing, &e)),
        };
        // Perhaps the target folder does not exist yet: make it (an existing folder
        // refuses MKD, which is fine) and try once more.
        for folder in parents(to) {
            let making = format!("creating {folder}");
            match timed(
                COMMAND_TIMEOUT,
                self.label(&making),
                self.ftp.mkdir(&folder),
            )
            .await?
            {
                Ok(()) => {
                    debug!(source = %self.what, server = %self.at, folder, "created an FTP folder");
                }
                Err(FtpError::UnexpectedResponse(_)) => {}
                Err(e) => return Err(self.fail(&making, &e)),
            }
        }
        match timed(
            COMMAND_TIMEOUT,
            self.label(&doing),
            self.ftp.rename(from, to),
        )
        .await?
        {
            Ok(()) => Ok(()),
            Err(FtpError::UnexpectedResponse(_)) => Err(self.fail(&doing, &first)),
            Err(e) => Err(self.fail(&doing, &e)),
        }
    }

    async fn delete(&mut self, path: &str) -> Result<(), SourceError> {
        let doing = format!("deleting {path}");
        timed(COMMAND_TIMEOUT, self.label(&doing), self.ftp.rm(path))
            .await?
            .map_err(|e| self.fail(&doing, &e))
    }

    async fn close(mut self: Box<Self>) -> Result<(), SourceError> {
        let doing = "logging out (QUIT)";
        timed(QUIT_TIMEOUT, self.label(doing), self.ftp.quit())
            .await?
            .map_err(|e| self.fail(doing, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlsd_lines_give_regular_files_with_exact_utc_times() {
        let e = parse_mlsd("type=file;size=1234;modify=20240102030405.678;UNIX.mode=0644; a b.csv")
            .unwrap();
        assert_eq!(e.name, "a b.csv");
        assert_eq!(e.size, Some(1234));
        assert_eq!(e.modified_ms, Some(1_704_164_645_678));
        let e = parse_mlsd("Type=File;Modify=20240102030405; x.csv").unwrap();
        assert_eq!((e.size, e.modified_ms), (None, Some(1_704_164_645_000)));
        assert_eq!(parse_time("20240102030405.5"), Some(1_704_164_645_500));
        for skipped in [
            "type=dir;modify=20240102030405; sub",
            "type=cdir;modify=20240102030405; .",
            "type=pdir;modify=20240102030405; ..",
            "type=OS.unix=slink:/etc/passwd;size=11; link.csv",
            "type=OS.unix=symlink; link2.csv",
            "no facts here",
            "type=file;size=1; ",
            "type=file;size=1; a/b.csv",
        ] {
            assert_eq!(parse_mlsd(skipped), None, "{skipped}");
        }
    }

    #[test]
    fn list_lines_give_regular_file_names_only() {
        assert_eq!(
            parse_list("-rw-r--r--    1 1000     1000         1234 Jan 02 03:04 people export.csv")
                .as_deref(),
            Some("people export.csv")
        );
        assert_eq!(
            parse_list("drwxr-xr-x    2 1000     1000         4096 Jan 02 03:04 done"),
            None
        );
        assert_eq!(
            parse_list(
                "lrwxrwxrwx    1 0        0              11 Jan 02 03:04 x.csv -> /etc/passwd"
            ),
            None
        );
        assert_eq!(parse_list("total 12"), None);
        assert_eq!(
            parse_list("01-02-24  03:04AM                 1234 dos.csv").as_deref(),
            Some("dos.csv")
        );
        assert_eq!(
            parse_list("01-02-24  03:04AM       <DIR>          folder"),
            None
        );
    }

    #[test]
    fn parents_are_created_outermost_first() {
        assert_eq!(parents("done/2024/a.csv"), ["done", "done/2024"]);
        assert_eq!(parents("/archive/a.csv"), ["/archive"]);
        assert_eq!(parents("/a.csv"), Vec::<String>::new());
        assert!(parents("a.csv").is_empty());
    }

    #[test]
    fn quoted_server_texts_never_show_the_password() {
        let pw = Secret::new("hunter2hunter2");
        // Cut before blanking, the first 7 characters of the password would show.
        let straddling = format!("530 {} hunter2hunter2", "x".repeat(MAX_QUOTED - 12));
        let q = quote(&straddling, &pw);
        assert!(!q.contains("hunter2") && q.ends_with(" ***"), "{q}");
        let long = quote(&"x".repeat(MAX_QUOTED * 2), &pw);
        assert_eq!(long.chars().count(), MAX_QUOTED + 3);
        assert!(long.ends_with("..."), "{long}");
        assert_eq!(
            quote("550 no\r\n550 such\tfile hunter2hunter2\r\n", &pw),
            "550 no 550 such file ***"
        );
    }

    #[test]
    fn session_reuse_refusals_are_recognised() {
        let reply = |text: &str| {
            FtpError::UnexpectedResponse(suppaftp::types::Response::new(
                Status::from(522),
                text.as_bytes().to_vec(),
            ))
        };
        assert!(reuse_refused(&reply(
            "522 SSL connection failed: session reuse required\r\n"
        )));
        assert!(!reuse_refused(&reply(
            "522 SSL connection failed; other\r\n"
        )));
        assert!(!reuse_refused(&reply("550 reuse\r\n")));
        assert!(not_understood(&reply("500 Unknown command.\r\n")));
        assert!(!not_understood(&reply("550 Failed.\r\n")));
    }

    #[test]
    fn ca_files_must_hold_certificates() {
        assert!(
            roots_from_pem(b"", "ca.pem")
                .unwrap_err()
                .contains("holds no PEM certificate")
        );
    }
}
