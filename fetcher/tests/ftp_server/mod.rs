//! Test FTP servers on loopback: a real vsftpd per test ([`Vsftpd`]), run in the
//! foreground with its own configuration, system user, ports and (for FTPS) certificates,
//! all removed when the test ends; and a scripted server ([`scripted`]) for what vsftpd
//! does not do (`MLSD`).

#![allow(dead_code)]

pub mod scripted;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roster_fetcher::sources::SourceSpec;

/// How the test server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain FTP.
    Plain,
    /// Explicit FTPS only (logins and data must use TLS), with vsftpd's
    /// `require_ssl_reuse` as given.
    Tls {
        /// vsftpd `require_ssl_reuse` (its default is YES).
        require_reuse: bool,
        /// The subjectAltName of the server certificate (`IP:127.0.0.1`).
        san: &'static str,
    },
}

/// Explicit FTPS as vsftpd does it by default (session reuse required), with a
/// certificate for 127.0.0.1.
pub const TLS: Mode = Mode::Tls {
    require_reuse: true,
    san: "IP:127.0.0.1",
};

/// A vsftpd serving one fresh system user on 127.0.0.1; stopped, and its user removed,
/// on drop.
pub struct Vsftpd {
    /// The control port.
    pub port: u16,
    /// The login.
    pub user: String,
    /// Its password.
    pub password: String,
    /// A file holding the password (what a source's `password_file` names).
    pub password_file: PathBuf,
    /// The user's home, the server's `/` for them (chroot).
    pub home: PathBuf,
    /// The CA that signed the server's certificate (FTPS).
    pub ca: PathBuf,
    /// A CA that signed nothing the server shows (FTPS).
    pub other_ca: PathBuf,
    /// The server's log (`log_ftp_protocol`).
    pub log: PathBuf,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// The vsftpd configuration for `server` (`tls`: the TLS lines, or nothing).
fn config(server: &Vsftpd, pasv_min: u16, pasv_max: u16, tls: &str) -> String {
    format!(
        "listen=YES\n\
         listen_ipv6=NO\n\
         listen_address=127.0.0.1\n\
         listen_port={port}\n\
         background=NO\n\
         ftpd_banner=roster test server {user}\n\
         anonymous_enable=NO\n\
         local_enable=YES\n\
         write_enable=YES\n\
         local_umask=022\n\
         chroot_local_user=YES\n\
         allow_writeable_chroot=YES\n\
         pam_service_name=vsftpd\n\
         secure_chroot_dir=/var/run/vsftpd/empty\n\
         seccomp_sandbox=NO\n\
         isolate=NO\n\
         isolate_network=NO\n\
         pasv_enable=YES\n\
         pasv_min_port={pasv_min}\n\
         pasv_max_port={pasv_max}\n\
         port_enable=NO\n\
         ascii_download_enable=YES\n\
         use_localtime=NO\n\
         xferlog_enable=YES\n\
         xferlog_std_format=NO\n\
         log_ftp_protocol=YES\n\
         vsftpd_log_file={log}\n\
         {tls}",
        port = server.port,
        user = server.user,
        log = server.log.display(),
    )
}

/// Runs a command, panicking with its output if it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that edits /etc/passwd, retrying while another test holds its lock.
fn run_locked(make: impl Fn() -> Command) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..50 {
        let out = make()
            .output()
            .map_err(|e| format!("cannot run {:?}: {e}", make()))?;
        if out.status.success() {
            return Ok(());
        }
        last = format!(
            "{:?}: {}{}",
            make(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// `n` random lowercase letters.
fn letters(n: usize) -> String {
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(n)
        .map(|b| char::from(b'a' + b % 26))
        .collect()
}

/// A free port on 127.0.0.1 (free when asked).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A run of `n` ports from a random start, all free when asked.
fn free_range(n: u16) -> (u16, u16) {
    loop {
        let start = 20_000
            + u16::from_le_bytes([
                uuid::Uuid::new_v4().as_bytes()[0],
                uuid::Uuid::new_v4().as_bytes()[1],
            ]) % 40_000;
        let end = start + n - 1;
        if (start..=end).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return (start, end);
        }
    }
}

/// Makes a CA (`name.pem`, `name.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    run(Command::new("openssl")
        .current_dir(dir)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ])
        .args(["-subj", &format!("/CN=Roster test {name}")])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
}

/// Makes `server.pem` and `server.key` in `dir`, signed by the CA `ca`, for `san`.
fn make_server_cert(dir: &Path, ca: &str, san: &str) {
    std::fs::write(
        dir.join("server.ext"),
        format!(
            "subjectAltName={san}\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    run(Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
        ])
        .args(["-out", "server.csr", "-subj", "/CN=roster test server"]));
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-req", "-in", "server.csr", "-days", "2"])
        .args(["-CA", &format!("{ca}.pem"), "-CAkey", &format!("{ca}.key")])
        .args([
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ]));
}

impl Vsftpd {
    /// Starts a vsftpd in `mode` for a new user with an empty home.
    pub fn start(mode: Mode) -> Vsftpd {
        std::fs::create_dir_all("/var/run/vsftpd/empty").unwrap();
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("chmod").arg("755").arg(dir.path()));
        let user = format!("rftp{}", letters(6));
        let password = format!("Pw-{}-{}", letters(8), letters(8));
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        run_locked(|| {
            let mut c = Command::new("useradd");
            c.args(["-M", "-s", "/bin/sh", "-d"]).arg(&home).arg(&user);
            c
        })
        .expect("useradd");
        // From here on, dropping `server` (a panic included) removes the user.
        let mut server = Vsftpd {
            port: 0,
            user: user.clone(),
            password: password.clone(),
            password_file: dir.path().join("password"),
            home: home.clone(),
            ca: dir.path().join("ca.pem"),
            other_ca: dir.path().join("other-ca.pem"),
            log: dir.path().join("vsftpd.log"),
            child: None,
            dir,
        };
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        chpasswd
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{user}:{password}\n").as_bytes())
            .unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd failed");
        run(Command::new("chown").arg(&user).arg(&home));
        std::fs::write(&server.password_file, format!("{password}\n")).unwrap();

        let dir = server.dir.path().to_owned();
        let tls = match mode {
            Mode::Plain => String::new(),
            Mode::Tls { require_reuse, san } => {
                make_ca(&dir, "ca");
                make_ca(&dir, "other-ca");
                make_server_cert(&dir, "ca", san);
                let yes = |b: bool| if b { "YES" } else { "NO" };
                format!(
                    "ssl_enable=YES\n\
                     rsa_cert_file={cert}\n\
                     rsa_private_key_file={key}\n\
                     allow_anon_ssl=NO\n\
                     force_local_logins_ssl=YES\n\
                     force_local_data_ssl=YES\n\
                     ssl_tlsv1=YES\n\
                     ssl_sslv2=NO\n\
                     ssl_sslv3=NO\n\
                     ssl_ciphers=HIGH\n\
                     require_ssl_reuse={reuse}\n",
                    cert = dir.join("server.pem").display(),
                    key = dir.join("server.key").display(),
                    reuse = yes(require_reuse),
                )
            }
        };
        let conf = dir.join("vsftpd.conf");
        let mut last_failure = String::new();
        for _ in 0..5 {
            server.port = free_port();
            let (pasv_min, pasv_max) = free_range(8);
            std::fs::write(&conf, config(&server, pasv_min, pasv_max, &tls)).unwrap();
            let output = std::fs::File::create(dir.join("vsftpd.out")).unwrap();
            server.child = Some(
                Command::new("/usr/sbin/vsftpd")
                    .arg(&conf)
                    .stdin(Stdio::null())
                    .stdout(output.try_clone().unwrap())
                    .stderr(output)
                    .process_group(0)
                    .spawn()
                    .expect("cannot start /usr/sbin/vsftpd"),
            );
            match server.wait_ready() {
                Ok(()) => return server,
                Err(why) => {
                    last_failure = why;
                    server.stop();
                }
            }
        }
        panic!("vsftpd did not start: {last_failure}");
    }

    /// Waits until the server greets on its port with its own banner.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let child = self.child.as_mut().expect("started");
            if let Ok(Some(status)) = child.try_wait() {
                let out =
                    std::fs::read_to_string(self.dir.path().join("vsftpd.out")).unwrap_or_default();
                return Err(format!("vsftpd exited ({status}): {out}"));
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut greeting = String::new();
                let _ = BufReader::new(&stream).read_line(&mut greeting);
                if greeting.starts_with("220") && greeting.contains(&self.user) {
                    return Ok(());
                }
                return Err(format!("another server on port {}: {greeting}", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("vsftpd did not listen within 10 s".into())
    }

    /// Kills the server and every session it started (its process group), and reaps it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A source of `kind` (`ftp` or `ftps`) for this server's user, listing `path`.
    pub fn spec(&self, kind: &str, path: &str) -> SourceSpec {
        let mut spec = serde_json::json!({
            "kind": kind,
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "password_file": self.password_file,
            "path": path,
        });
        if kind == "ftps" {
            spec["ca_file"] = serde_json::json!(self.ca);
        }
        serde_json::from_value(spec).unwrap()
    }

    /// A file holding `text`, in the server's folder (not served).
    pub fn local_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes `content` at `rel` under the user's home (folders made as needed), owned by
    /// the user, modified at `mtime` (seconds since the epoch).
    pub fn put(&self, rel: &str, content: &[u8], mtime: i64) -> PathBuf {
        let path = self.home.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        run(Command::new("touch")
            .arg("-d")
            .arg(format!("@{mtime}"))
            .arg(&path));
        run(Command::new("chown")
            .arg("-R")
            .arg(&self.user)
            .arg(&self.home));
        path
    }

    /// Makes a folder under the user's home.
    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.home.join(rel)).unwrap();
        run(Command::new("chown")
            .arg("-R")
            .arg(&self.user)
            .arg(&self.home));
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Vsftpd {
    fn drop(&mut self) {
        self.stop();
        let user = self.user.clone();
        let removed = run_locked(|| {
            let mut c = Command::new("userdel");
            c.args(["-f", &user]);
            c
        });
        if let Err(e) = removed {
            eprintln!("could not remove test user {user}: {e}");
        }
    }
}
