//! Real OpenSSH for the SFTP tests: a customer's SFTP server (`sshd` on a free loopback
//! port, its own host key and configuration in a temporary folder), system users with
//! passwords or keys, and the `sftp` client a customer pushes files with. Everything is
//! removed when the guards drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A free TCP port on loopback (nothing listens on it when this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `program` with `args`, panicking with what it said if it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A random lowercase name with `prefix`, usable as a login and a tenant id.
pub fn login(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let letters: String = id
        .bytes()
        .take(8)
        .map(|b| char::from(b'a' + b % 26))
        .collect();
    format!("{prefix}{letters}")
}

/// A system user that exists until dropped.
pub struct SystemUser {
    /// Login name.
    pub name: String,
    /// Its home folder (owned by it).
    pub home: PathBuf,
    _dir: TempDir,
}

impl SystemUser {
    /// Creates user `name` with a fresh home folder and `password` (if any).
    pub fn new(prefix: &str, password: Option<&str>) -> SystemUser {
        let name = login(prefix);
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join(&name);
        std::fs::create_dir_all(&home).unwrap();
        run(
            "useradd",
            &["-M", "-d", home.to_str().unwrap(), "-s", "/bin/sh", &name],
        );
        run("chown", &[&format!("{name}:"), home.to_str().unwrap()]);
        if let Some(password) = password {
            let mut child = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            writeln!(child.stdin.take().unwrap(), "{name}:{password}").unwrap();
            assert!(child.wait().unwrap().success());
        }
        SystemUser {
            name,
            home,
            _dir: dir,
        }
    }

    /// Writes a file in the user's home (owned by the user), with `mtime` if given.
    pub fn file(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.home.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        run(
            "chown",
            &[
                "-R",
                &format!("{}:", self.name),
                self.home.to_str().unwrap(),
            ],
        );
        path
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// Deletes system users by name when dropped (the push server creates them).
pub struct UsersToRemove(pub Vec<String>);

impl Drop for UsersToRemove {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("userdel").arg(name).output();
        }
    }
}

/// A customer's SFTP server: sshd on a free loopback port.
pub struct Sshd {
    /// Its port.
    pub port: u16,
    dir: TempDir,
    child: Child,
}

impl Sshd {
    /// Starts sshd serving SFTP (password and key logins; public keys of user `u` in
    /// `<dir>/keys/u`).
    pub fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let key = dir.path().join("host_key");
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()],
        );
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {pid}\n\
                 AuthorizedKeysFile {keys}/%u\nPasswordAuthentication yes\n\
                 KbdInteractiveAuthentication no\nUsePAM yes\nStrictModes no\n\
                 Subsystem sftp internal-sftp\nLogLevel VERBOSE\n",
                key = key.display(),
                pid = dir.path().join("sshd.pid").display(),
                keys = dir.path().join("keys").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd starts (apt-get install openssh-server)");
        wait_for_port(port);
        Sshd { port, dir, child }
    }

    /// Lets `user` log in with the public key `line`.
    pub fn authorize(&self, user: &str, line: &str) {
        std::fs::write(self.dir.path().join("keys").join(user), format!("{line}\n")).unwrap();
    }

    /// A `known_hosts` file holding this server's real host key.
    pub fn known_hosts(&self) -> PathBuf {
        known_hosts_for(self.port, &self.dir.path().join("known_hosts"))
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something listens on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing listens on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes to `path` a `known_hosts` file with the host keys 127.0.0.1:`port` shows.
pub fn known_hosts_for(port: u16, path: &Path) -> PathBuf {
    let scanned = run(
        "ssh-keyscan",
        &[
            "-T",
            "10",
            "-t",
            "ed25519",
            "-p",
            &port.to_string(),
            "127.0.0.1",
        ],
    );
    assert!(!scanned.trim().is_empty(), "ssh-keyscan saw no key");
    std::fs::write(path, scanned).unwrap();
    path.to_path_buf()
}

/// The SHA256 fingerprint of the key line(s) in `known_hosts`.
pub fn fingerprint(known_hosts: &Path) -> String {
    let out = run("ssh-keygen", &["-l", "-f", known_hosts.to_str().unwrap()]);
    out.split_whitespace().nth(1).unwrap().to_owned()
}

/// How the `sftp` client logs in.
pub enum Auth<'a> {
    /// With this password (handed over through `SSH_ASKPASS`).
    Password(&'a str),
    /// With this private key file.
    Key(&'a Path),
}

/// Runs the real `sftp` client as `user` against 127.0.0.1:`port` with the batch
/// `commands` (one per line; a leading `-` lets a command fail). Returns (success,
/// stdout + stderr).
pub fn sftp(
    port: u16,
    user: &str,
    auth: Auth<'_>,
    known_hosts: &Path,
    commands: &str,
) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("batch");
    std::fs::write(&batch, commands).unwrap();
    let mut cmd = Command::new("sftp");
    cmd.args(["-F", "/dev/null"])
        .args(["-P", &port.to_string()])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "IdentityAgent=none"]);
    match auth {
        Auth::Password(password) => {
            let askpass = dir.path().join("askpass");
            std::fs::write(
                &askpass,
                "#!/bin/sh\nprintf '%s\\n' \"$TEST_SFTP_PASSWORD\"\n",
            )
            .unwrap();
            run("chmod", &["700", askpass.to_str().unwrap()]);
            cmd.args(["-o", "BatchMode=no"])
                .args(["-o", "PubkeyAuthentication=no"])
                .args(["-o", "PreferredAuthentications=password"])
                .args(["-o", "NumberOfPasswordPrompts=1"])
                .env("SSH_ASKPASS", &askpass)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0")
                .env("TEST_SFTP_PASSWORD", password);
        }
        Auth::Key(key) => {
            cmd.arg("-i")
                .arg(key)
                .args(["-o", "IdentitiesOnly=yes"])
                .args(["-o", "PasswordAuthentication=no"]);
        }
    }
    // `-b` turns BatchMode on unless an earlier `-o BatchMode=no` said otherwise: last.
    let out = cmd
        .arg("-b")
        .arg(&batch)
        .arg(format!("{user}@127.0.0.1"))
        .stdin(Stdio::null())
        .output()
        .expect("sftp runs (apt-get install openssh-client)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
