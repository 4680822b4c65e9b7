//! Our SFTP server for tenants who push their files: OpenSSH's own `sshd` serving
//! `internal-sftp` only, configured from the push logins the tenants file declares.
//! Roster writes no SSH server; it renders sshd's configuration, keeps the system
//! accounts and jails in step with the tenants file, and runs sshd.
//!
//! Each tenant logs in with its tenant id as login name (a system user in the group
//! `roster-push`, no shell, no home) into a jail `<root>/<tenant>/` (`ChrootDirectory`,
//! root-owned as sshd demands) holding the folders it may write: `upload/` (full files)
//! and `delta/` (delta files), which the fetcher polls. No forwarding of any kind, no
//! terminal, no shell: `ForceCommand internal-sftp`. Only members of `roster-push` may
//! log in at all (`AllowGroups`), so no other system account is reachable through this
//! server. A tenant removed from the file has its account locked and its keys removed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail, ensure};
use roster_fetcher::sources::db::{self as sources_db, PushUser};
use roster_fetcher::sources::tenants::valid_login;
use roster_shared::db::Db;
use tokio::process::Command;
use tracing::{error, info, warn};

/// The system group of push logins.
pub const GROUP: &str = "roster-push";

/// Where and how the server runs.
#[derive(Debug, Clone)]
pub struct PushServer {
    /// `host:port` sshd listens on.
    pub addr: String,
    /// The folder holding one jail per tenant.
    pub root: PathBuf,
    /// The folder of the rendered configuration (and the host key).
    pub config_dir: PathBuf,
}

/// One push login as rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Login name (the tenant id).
    pub name: String,
    /// crypt(3) hash of its password, if it may log in with one.
    pub password_hash: Option<String>,
    /// Its public keys.
    pub keys: Vec<String>,
}

/// The logins the database declares, by name. A login whose name cannot be a system
/// user is an error (`tenants apply` refuses such files; this guards the database).
pub fn logins(users: &[PushUser]) -> anyhow::Result<Vec<Login>> {
    users
        .iter()
        .map(|u| {
            ensure!(
                valid_login(&u.tenant_id),
                "push login {:?} cannot be a system user name",
                u.tenant_id
            );
            Ok(Login {
                name: u.tenant_id.clone(),
                password_hash: u.password_hash.clone(),
                keys: sources_db::authorized_keys(u)?,
            })
        })
        .collect()
}

impl PushServer {
    /// The host key file.
    pub fn host_key(&self) -> PathBuf {
        self.config_dir.join("ssh_host_ed25519_key")
    }

    /// The rendered `sshd_config`.
    pub fn sshd_config_path(&self) -> PathBuf {
        self.config_dir.join("sshd_config")
    }

    /// sshd's configuration for this server.
    pub fn sshd_config(&self) -> String {
        let mut c = String::new();
        let dir = self.config_dir.display();
        let _ = writeln!(
            c,
            "# Rendered by `roster push-server`: edit the tenants file, not this."
        );
        let _ = writeln!(c, "ListenAddress {}", self.addr);
        let _ = writeln!(c, "HostKey {}", self.host_key().display());
        let _ = writeln!(c, "PidFile {dir}/sshd.pid");
        let _ = writeln!(c, "AuthorizedKeysFile {dir}/authorized_keys/%u");
        for line in [
            "AllowGroups roster-push",
            "PermitRootLogin no",
            "PasswordAuthentication yes",
            "PermitEmptyPasswords no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UsePAM yes",
            "StrictModes yes",
            "AllowTcpForwarding no",
            "AllowStreamLocalForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            "GatewayPorts no",
            "PermitTTY no",
            "PermitUserRC no",
            "PermitUserEnvironment no",
            "Banner none",
            "PrintMotd no",
            "MaxAuthTries 3",
            "LoginGraceTime 30",
            "ClientAliveInterval 30",
            "ClientAliveCountMax 4",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
        ] {
            let _ = writeln!(c, "{line}");
        }
        let _ = writeln!(c, "Match Group {GROUP}");
        let _ = writeln!(c, "    ChrootDirectory {}/%u", self.root.display());
        let _ = writeln!(c, "    ForceCommand internal-sftp -d /upload");
        c
    }

    /// Writes the configuration for `logins` into the config folder: `sshd_config`,
    /// `authorized_keys/<login>` (root-owned, read-only), and `users` (`login:hash`
    /// lines, the input of `chpasswd -e`, `*` where no password logs in). Makes the host
    /// key if there is none. Removes the key files of logins no longer declared.
    pub async fn render(&self, logins: &[Login]) -> anyhow::Result<()> {
        let keys_dir = self.config_dir.join("authorized_keys");
        std::fs::create_dir_all(&keys_dir)
            .with_context(|| format!("creating {}", keys_dir.display()))?;
        for dir in [&self.config_dir, &keys_dir] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        write_file(&self.sshd_config_path(), &self.sshd_config(), 0o644)?;
        let mut users = String::new();
        let mut wanted = Vec::new();
        for login in logins {
            let _ = writeln!(
                users,
                "{}:{}",
                login.name,
                login.password_hash.as_deref().unwrap_or("*")
            );
            let mut keys = login.keys.join("\n");
            keys.push('\n');
            write_file(&keys_dir.join(&login.name), &keys, 0o644)?;
            wanted.push(login.name.clone());
        }
        write_file(&self.config_dir.join("users"), &users, 0o600)?;
        for entry in std::fs::read_dir(&keys_dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !wanted.contains(&name) {
                std::fs::remove_file(entry.path())?;
            }
        }
        if !self.host_key().exists() {
            let out = Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "roster push-server",
                    "-f",
                ])
                .arg(self.host_key())
                .stdin(Stdio::null())
                .output()
                .await
                .context("running ssh-keygen for the host key")?;
            ensure!(
                out.status.success(),
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Brings the system accounts and jails in step with `logins`: creates missing
    /// accounts (group `roster-push`, no shell, no home), sets their password hashes,
    /// makes each jail (`<root>/<login>/` root-owned, `upload/` and `delta/` the login's),
    /// and locks the accounts of logins no longer declared. Never takes over an existing
    /// account that is not a push login: that login is left out (logged as an error) and
    /// the others are served (sshd lets only the group `roster-push` in).
    pub async fn sync_accounts(&self, logins: &[Login]) -> anyhow::Result<()> {
        if group_id(GROUP).await?.is_none() {
            run("groupadd", &["--system", GROUP]).await?;
        }
        let gid = group_id(GROUP)
            .await?
            .context("the group roster-push was not created")?;
        let accounts = accounts().await?;
        prepare_root_owned(&self.root, "ROSTER_PUSH_ROOT")?;
        for login in logins {
            match accounts.get(&login.name) {
                Some(&(_, account_gid)) if account_gid == gid => {
                    run("usermod", &["--unlock", "--expiredate", "", &login.name])
                        .await
                        .ok();
                }
                Some(_) => {
                    // One tenant named like a system account (`mail`, `backup`) must not
                    // stop every other tenant's pushes: it is left out, loudly.
                    error!(
                        login = %login.name,
                        "a system account of this name exists and is not a push login \
                         (group {GROUP}); Roster will not take it over: this tenant cannot \
                         push until its id changes"
                    );
                    continue;
                }
                None => {
                    run(
                        "useradd",
                        &[
                            "--system",
                            "--no-create-home",
                            "--home-dir",
                            "/",
                            "--shell",
                            "/usr/sbin/nologin",
                            "--gid",
                            GROUP,
                            &login.name,
                        ],
                    )
                    .await?;
                }
            }
            let line = format!(
                "{}:{}\n",
                login.name,
                login.password_hash.as_deref().unwrap_or("*")
            );
            run_with_input("chpasswd", &["-e"], &line).await?;
            self.make_jail(&login.name).await?;
        }
        for (name, &(_, account_gid)) in &accounts {
            if account_gid == gid && !logins.iter().any(|l| &l.name == name) {
                info!(login = %name, "locking a push login no longer in the tenants file");
                run("usermod", &["--lock", "--expiredate", "1", name]).await?;
            }
        }
        Ok(())
    }

    /// Makes `<root>/<login>/` (root:root 0755) with `upload/` and `delta/` owned by the
    /// login (0750, group roster-push).
    async fn make_jail(&self, login: &str) -> anyhow::Result<()> {
        let jail = self.root.join(login);
        std::fs::create_dir_all(&jail)?;
        chown(&jail, "root:root").await?;
        std::fs::set_permissions(&jail, std::fs::Permissions::from_mode(0o755))?;
        for sub in ["upload", "delta"] {
            let dir = jail.join(sub);
            std::fs::create_dir_all(&dir)?;
            chown(&dir, &format!("{login}:{GROUP}")).await?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750))?;
        }
        Ok(())
    }
}

/// Writes `text` to `path` with `mode`, replacing it whole (through a temporary file).
fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("roster-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Makes `dir` (0755) and checks what sshd demands of a jail (`ChrootDirectory`) and of
/// the folders holding authorized keys (`StrictModes`): every folder on the way
/// root-owned and writable by no one else. `setting` names what to change otherwise.
pub fn prepare_root_owned(dir: &Path, setting: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let mut at = PathBuf::from("/");
    for part in dir.components().skip(1) {
        at.push(part);
        let meta = std::fs::metadata(&at)?;
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            bail!(
                "{} must be owned by root and writable by no one else, as sshd demands of                  the folders above jails and keys (set {setting} to a folder whose every                  parent is)",
                at.display()
            );
        }
    }
    Ok(())
}

/// The id of group `name`, if it exists.
async fn group_id(name: &str) -> anyhow::Result<Option<u32>> {
    let out = Command::new("getent")
        .args(["group", name])
        .output()
        .await
        .context("running getent")?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok()))
}

/// Every system account: name to (uid, primary gid).
async fn accounts() -> anyhow::Result<BTreeMap<String, (u32, u32)>> {
    let out = Command::new("getent")
        .arg("passwd")
        .output()
        .await
        .context("running getent")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some((
                f.first()?.to_string(),
                (f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?),
            ))
        })
        .collect())
}

async fn chown(path: &Path, owner: &str) -> anyhow::Result<()> {
    let path = path.display().to_string();
    run("chown", &[owner, &path]).await
}

/// Runs a system tool, failing with what it said.
async fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    ensure!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Runs a system tool with `input` on its standard input (never on its command line),
/// failing with what it said.
async fn run_with_input(program: &str, args: &[&str], input: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(input.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    ensure!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Checks the rendered configuration with `sshd -t`.
pub async fn check_config(sshd: &Path, config: &Path) -> anyhow::Result<()> {
    let out = Command::new(sshd)
        .arg("-t")
        .arg("-f")
        .arg(config)
        .output()
        .await
        .with_context(|| format!("running {}", sshd.display()))?;
    ensure!(
        out.status.success(),
        "sshd refuses the rendered configuration {}: {}",
        config.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The declared push logins, read from `db`.
pub async fn declared(db: &Db) -> anyhow::Result<Vec<Login>> {
    logins(&sources_db::push_users(db).await?)
}

/// Warns about a reload that failed (sshd keeps its previous configuration).
pub fn reload_failed(e: &anyhow::Error) {
    warn!(error = %format!("{e:#}"), "cannot apply the changed push logins; sshd keeps the previous ones");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_allows_jailed_sftp_only() {
        let server = PushServer {
            addr: "127.0.0.1:2222".into(),
            root: "/srv/push".into(),
            config_dir: "/etc/roster/push".into(),
        };
        let c = server.sshd_config();
        for line in [
            "ListenAddress 127.0.0.1:2222",
            "AllowGroups roster-push",
            "PermitRootLogin no",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "PermitTTY no",
            "AuthorizedKeysFile /etc/roster/push/authorized_keys/%u",
            "Subsystem sftp internal-sftp",
            "    ChrootDirectory /srv/push/%u",
            "    ForceCommand internal-sftp -d /upload",
        ] {
            assert!(c.lines().any(|l| l == line), "missing {line:?} in\n{c}");
        }
    }
}
