//! SFTP pull with `openssh-sftp-client` over the system OpenSSH client: Roster starts
//! `ssh -s <host> sftp` itself and speaks SFTP over its pipes, so every login and host
//! key check is OpenSSH's own.
//!
//! - Host keys are always checked against the source's `known_hosts`
//!   (`StrictHostKeyChecking=yes`, no other known-hosts file, no user configuration): an
//!   unknown or changed key fails the fetch with a message naming host, port and the
//!   fingerprint of the key the server showed.
//! - A password is handed to `ssh` through `SSH_ASKPASS` (a helper script in a private
//!   temporary folder that prints it from its environment), never on a command line or
//!   in a file. A key logs in with `IdentitiesOnly`, no agent.
//! - Every request has a deadline (connecting and the SFTP handshake included: a stuck
//!   server cannot hang a fetch).
//!
//! [`generate_key`] makes the ed25519 key pair `roster keys generate` hands out.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use futures::StreamExt;
use openssh_sftp_client::{Sftp, SftpOptions};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tracing::debug;

use super::files::{FileServer, MAX_LISTED, RemoteFile};
use super::secrets::{self, Secret};
use super::spec::SourceSpec;
use super::{SourceError, within};

/// How long connecting, logging in and the SFTP handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request (a listing, one read, a rename) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes asked for per read.
const READ_SIZE: u32 = 256 * 1024;

/// The environment variable the askpass helper prints.
const ASKPASS_VAR: &str = "ROSTER_ASKPASS_SECRET";

/// A logged-in SFTP session.
pub struct SftpServer {
    sftp: Sftp,
    child: Child,
    what: String,
    /// Keeps the askpass helper's folder until the session ends.
    _askpass: Option<tempfile::TempDir>,
}

/// Where the server is and who logs in, for messages.
struct Target {
    host: String,
    port: u16,
    user: String,
}

/// Connects and logs in to the source's SFTP server (see the module documentation).
/// `what` names the source in errors (`acme/hr-sftp`).
pub async fn connect(spec: &SourceSpec, what: &str) -> Result<Box<dyn FileServer>, SourceError> {
    let target = Target {
        host: spec
            .host
            .clone()
            .ok_or_else(|| SourceError::Config(format!("{what}: no host")))?,
        port: spec.port.unwrap_or(22),
        user: spec
            .user
            .clone()
            .ok_or_else(|| SourceError::Config(format!("{what}: no user")))?,
    };
    let known_hosts = spec
        .known_hosts
        .as_deref()
        .ok_or_else(|| SourceError::Config(format!("{what}: no known_hosts")))?;
    if !known_hosts.is_file() {
        return Err(SourceError::Config(format!(
            "{what}: known_hosts {} is not a readable file",
            known_hosts.display()
        )));
    }
    let password = secrets::named(
        spec.password_env.as_deref(),
        spec.password_file.as_deref(),
        &format!("{what} password"),
    )?;
    let mut command = ssh_command(&target, known_hosts);
    let askpass = match (&password, &spec.private_key_file) {
        (Some(password), _) => Some(password_login(&mut command, password, what)?),
        (None, Some(key)) => {
            if !key.is_file() {
                return Err(SourceError::Config(format!(
                    "{what}: private_key_file {} is not a readable file",
                    key.display()
                )));
            }
            command
                .arg("-i")
                .arg(key)
                .args(["-o", "IdentitiesOnly=yes"])
                .args(["-o", "PreferredAuthentications=publickey"])
                .args(["-o", "PasswordAuthentication=no"])
                .args(["-o", "KbdInteractiveAuthentication=no"])
                .args(["-o", "BatchMode=yes"]);
            None
        }
        (None, None) => {
            return Err(SourceError::Config(format!(
                "{what}: neither a password nor a private key"
            )));
        }
    };
    command.arg("-s").arg(&target.host).arg("sftp");
    let mut child = command.spawn().map_err(|e| {
        SourceError::Config(format!(
            "{what}: cannot start ssh (is openssh-client installed?): {e}"
        ))
    })?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let said = Arc::new(Mutex::new(String::new()));
    let collector = {
        let said = Arc::clone(&said);
        tokio::spawn(async move {
            let mut stderr = stderr;
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
            *said.lock().expect("not poisoned") = String::from_utf8_lossy(&buf).into_owned();
        })
    };
    let started = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Sftp::new(stdin, stdout, SftpOptions::default()),
    )
    .await;
    match started {
        Ok(Ok(sftp)) => Ok(Box::new(SftpServer {
            sftp,
            child,
            what: what.to_owned(),
            _askpass: askpass,
        })),
        outcome => {
            let timed_out = outcome.is_err();
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), collector).await;
            let stderr = said.lock().expect("not poisoned").clone();
            let stderr = match &password {
                Some(p) => secrets::scrub(&stderr, &[p]),
                None => stderr,
            };
            Err(login_error(what, &target, known_hosts, &stderr, timed_out).await)
        }
    }
}

/// The `ssh` command for `target`, checking host keys against `known_hosts` only.
fn ssh_command(target: &Target, known_hosts: &Path) -> Command {
    let mut command = Command::new("ssh");
    command
        .args(["-F", "/dev/null"])
        .arg("-p")
        .arg(target.port.to_string())
        .arg("-l")
        .arg(&target.user)
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "UpdateHostKeys=no"])
        .args(["-o", "ConnectTimeout=15"])
        .args(["-o", "ServerAliveInterval=15"])
        .args(["-o", "ServerAliveCountMax=4"])
        .args(["-o", "NumberOfPasswordPrompts=1"])
        .args(["-o", "IdentityAgent=none"])
        .args(["-o", "ForwardAgent=no"])
        .args(["-o", "ForwardX11=no"])
        .args(["-o", "ClearAllForwardings=yes"])
        .args(["-o", "LogLevel=ERROR"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove(ASKPASS_VAR)
        .kill_on_drop(true);
    command
}

/// Sets `command` up to log in with `password` through an askpass helper; returns the
/// helper's folder (removed when dropped).
fn password_login(
    command: &mut Command,
    password: &Secret,
    what: &str,
) -> Result<tempfile::TempDir, SourceError> {
    let dir = tempfile::Builder::new()
        .prefix("roster-askpass-")
        .tempdir()
        .map_err(|e| SourceError::local("creating the askpass folder", &e))?;
    let script = dir.path().join("askpass");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' \"${ASKPASS_VAR}\"\n"),
    )
    .and_then(|()| std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)))
    .map_err(|e| SourceError::local("writing the askpass helper", &e))?;
    if password.expose().contains(['\n', '\r']) {
        return Err(SourceError::Config(format!(
            "{what}: the password holds a line break"
        )));
    }
    command
        .args([
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ])
        .args(["-o", "PubkeyAuthentication=no"])
        .args(["-o", "BatchMode=no"])
        .env("SSH_ASKPASS", &script)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env(ASKPASS_VAR, password.expose());
    Ok(dir)
}

/// Why logging in failed, from what `ssh` said: a host key problem names the key the
/// server showed; a refused login names host, port and user.
async fn login_error(
    what: &str,
    target: &Target,
    known_hosts: &Path,
    stderr: &str,
    timed_out: bool,
) -> SourceError {
    let at = format!("{}:{}", target.host, target.port);
    let said = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("@@@") && !l.starts_with("Please contact"))
        .collect::<Vec<_>>()
        .join(" ");
    if stderr.contains("Host key verification failed")
        || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || stderr.contains("host key is known")
    {
        let shown = match host_key_fingerprints(&target.host, target.port).await {
            Ok(prints) if !prints.is_empty() => prints.join(", "),
            Ok(_) => "no key could be read".to_owned(),
            Err(e) => format!("its key could not be read: {e}"),
        };
        let changed = stderr.contains("HAS CHANGED") || stderr.contains("Offending");
        return SourceError::Connect(format!(
            "{what}: the host key of {at} is {} {}: the server shows {shown}; if the server's \
             key really changed, put its new key there (ssh-keyscan -p {} {})",
            if changed { "not the one in" } else { "not in" },
            known_hosts.display(),
            target.port,
            target.host,
        ));
    }
    if stderr.contains("Permission denied") || stderr.contains("Too many authentication failures") {
        return SourceError::Connect(format!(
            "{what}: login to {at} as {} refused (wrong password or key)",
            target.user
        ));
    }
    if timed_out {
        return SourceError::Timeout(format!(
            "{what}: no SFTP session with {at} within {}s {said}",
            CONNECT_TIMEOUT.as_secs()
        ));
    }
    SourceError::Connect(format!(
        "{what}: cannot open an SFTP session with {at} as {}: {}",
        target.user,
        if said.is_empty() {
            "ssh ended without saying why".to_owned()
        } else {
            said
        }
    ))
}

/// The fingerprints (`ED25519 SHA256:...`) of the host keys `host:port` shows.
pub async fn host_key_fingerprints(host: &str, port: u16) -> Result<Vec<String>, String> {
    let scan = tokio::time::timeout(
        Duration::from_secs(15),
        Command::new("ssh-keyscan")
            .args(["-T", "10", "-p"])
            .arg(port.to_string())
            .arg(host)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| "ssh-keyscan took too long".to_owned())?
    .map_err(|e| format!("cannot run ssh-keyscan: {e}"))?;
    let mut keygen = Command::new("ssh-keygen")
        .args(["-l", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
    let mut stdin = keygen.stdin.take().expect("piped");
    stdin
        .write_all(&scan.stdout)
        .await
        .map_err(|e| e.to_string())?;
    drop(stdin);
    let out = keygen.wait_with_output().await.map_err(|e| e.to_string())?;
    // "256 SHA256:abc... [127.0.0.1]:2222 (ED25519)"
    let prints = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let print = fields.get(1)?;
            let kind = fields.last()?.trim_matches(['(', ')']);
            Some(format!("{kind} {print}"))
        })
        .collect();
    Ok(prints)
}

/// Makes an ed25519 key pair with `ssh-keygen`: the private key at `path` (mode 0600,
/// no passphrase), the public key at `path.pub`. Refuses to overwrite an existing key.
/// Returns the public key line to hand to the customer.
pub async fn generate_key(path: &Path, comment: &str) -> Result<String, SourceError> {
    if path.exists() {
        return Err(SourceError::Config(format!(
            "{} exists; remove it first to replace the key (the customer must then be given \
             the new public key)",
            path.display()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| SourceError::Config(format!("cannot create {}: {e}", dir.display())))?;
    }
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| SourceError::Config(format!("cannot run ssh-keygen: {e}")))?;
    if !out.status.success() {
        return Err(SourceError::Config(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| SourceError::Config(format!("{}: {e}", path.display())))?;
    let public: PathBuf = format!("{}.pub", path.display()).into();
    let line = std::fs::read_to_string(&public)
        .map_err(|e| SourceError::Config(format!("{}: {e}", public.display())))?;
    Ok(line.trim().to_owned())
}

impl SftpServer {
    fn failed(&self, doing: &str, path: &str, e: &openssh_sftp_client::Error) -> SourceError {
        SourceError::Protocol(format!("{}: {doing} {path}: {e}", self.what))
    }

    fn late(&self, doing: &str, path: &str) -> impl FnOnce() -> String {
        let what = format!("{}: {doing} {path}", self.what);
        move || what
    }
}

#[async_trait]
impl FileServer for SftpServer {
    async fn list(&mut self, dir: &str) -> Result<Vec<RemoteFile>, SourceError> {
        let late = self.late("listing", dir);
        within(REQUEST_TIMEOUT, late, async {
            let mut fs = self.sftp.fs();
            let handle = fs
                .open_dir(dir)
                .await
                .map_err(|e| self.failed("cannot list", dir, &e))?;
            let entries = handle.read_dir();
            tokio::pin!(entries);
            let mut out = Vec::new();
            while let Some(entry) = entries.next().await {
                let entry = entry.map_err(|e| self.failed("cannot list", dir, &e))?;
                let meta = entry.metadata();
                let is_file = entry.file_type().is_some_and(|t| t.is_file());
                let Some(name) = entry.filename().to_str() else {
                    continue;
                };
                if !is_file || name == "." || name == ".." {
                    continue;
                }
                if out.len() == MAX_LISTED {
                    return Err(SourceError::Protocol(format!(
                        "{}: more than {MAX_LISTED} files in {dir}",
                        self.what
                    )));
                }
                out.push(RemoteFile {
                    name: name.to_owned(),
                    size: meta.len().unwrap_or(0),
                    modified_ms: meta.modified().map_or(0, |t| {
                        i64::try_from(t.as_duration().as_millis()).unwrap_or(i64::MAX)
                    }),
                    change: None,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn download(
        &mut self,
        path: &str,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<u64, SourceError> {
        let mut file = within(REQUEST_TIMEOUT, self.late("opening", path), async {
            self.sftp
                .open(path)
                .await
                .map_err(|e| self.failed("cannot open", path, &e))
        })
        .await?;
        let mut total = 0u64;
        loop {
            let chunk = within(REQUEST_TIMEOUT, self.late("reading", path), async {
                file.read(READ_SIZE, BytesMut::with_capacity(READ_SIZE as usize))
                    .await
                    .map_err(|e| self.failed("cannot read", path, &e))
            })
            .await?;
            let Some(bytes) = chunk else { break };
            out.write_all(&bytes)
                .await
                .map_err(|e| SourceError::Protocol(format!("{}: {path}: {e}", self.what)))?;
            total += bytes.len() as u64;
        }
        out.flush()
            .await
            .map_err(|e| SourceError::Protocol(format!("{}: {path}: {e}", self.what)))?;
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, file.close()).await;
        debug!(source = %self.what, path, bytes = total, "downloaded");
        Ok(total)
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<(), SourceError> {
        within(REQUEST_TIMEOUT, self.late("moving", from), async {
            let mut fs = self.sftp.fs();
            if let Some((dir, _)) = to.rsplit_once('/')
                && !dir.is_empty()
            {
                // The archive folder may not exist yet; an error here shows in the rename.
                let _ = fs.create_dir(dir).await;
            }
            fs.rename(from, to)
                .await
                .map_err(|e| self.failed("cannot move", &format!("{from} to {to}"), &e))
        })
        .await
    }

    async fn delete(&mut self, path: &str) -> Result<(), SourceError> {
        within(REQUEST_TIMEOUT, self.late("deleting", path), async {
            self.sftp
                .fs()
                .remove_file(path)
                .await
                .map_err(|e| self.failed("cannot delete", path, &e))
        })
        .await
    }

    async fn close(self: Box<Self>) -> Result<(), SourceError> {
        let SftpServer {
            sftp, mut child, ..
        } = *self;
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, sftp.close()).await;
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
        Ok(())
    }
}
