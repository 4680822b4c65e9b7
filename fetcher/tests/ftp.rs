//! FTP and explicit FTPS pull (`sources::ftp`) against a real vsftpd started by each test
//! on loopback (its own user, ports, configuration and certificates), and against a
//! scripted server for `MLSD`, which vsftpd does not speak. Run as root (the tests add
//! and remove system users).

mod ftp_server;

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use ftp_server::scripted::{Script, Scripted};
use ftp_server::{Mode, TLS, Vsftpd};
use roster_fetcher::sources::files::{FileServer, MAX_LISTED, RemoteFile};
use roster_fetcher::sources::{SourceError, SourceSpec, ftp};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;

/// How the sources are named in errors.
const WHAT: &str = "acme/hr-ftp";
/// 2024-01-02T03:04:05Z.
const T1: i64 = 1_704_164_645;
/// 2001-01-01T01:02:03Z.
const T2: i64 = 978_310_923;

fn init() {
    roster_shared::install_crypto_provider();
}

fn file(name: &str, size: usize, secs: i64) -> RemoteFile {
    RemoteFile {
        name: name.into(),
        size: size as u64,
        modified_ms: secs * 1000,
        change: None,
    }
}

fn by_name(mut files: Vec<RemoteFile>) -> Vec<RemoteFile> {
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

async fn connect(server: &Vsftpd, spec: &SourceSpec) -> Box<dyn FileServer> {
    match ftp::connect(spec, WHAT).await {
        Ok(s) => s,
        Err(e) => panic!("{e}\n--- vsftpd log ---\n{}", server.log()),
    }
}

async fn fetch(ftp: &mut dyn FileServer, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let n = ftp.download(path, &mut out).await.unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

/// Text with both line ends, so a transfer in ASCII type would change it.
const PEOPLE: &[u8] = b"email,first_name\r\nann@acme.test,Ann\nbob@acme.test,Bob\r\n";

/// Lists, downloads, archives into a new folder and deletes on `server` with a source
/// of `kind`, checking the server's disk after each step.
async fn list_download_archive_delete(server: &Vsftpd, kind: &str) {
    server.put("outgoing/people.csv", PEOPLE, T1);
    server.put("outgoing/old.csv", b"x\n", T2);
    server.put("outgoing/gone.csv", b"y\n", T1);
    server.put("outgoing/sub/inner.csv", b"z\n", T1);
    std::os::unix::fs::symlink("people.csv", server.home.join("outgoing/link.csv")).unwrap();
    let mut ftp = connect(server, &server.spec(kind, "/outgoing")).await;

    // Regular files directly in the folder, with exact sizes and UTC times.
    let expected = vec![
        file("gone.csv", 2, T1),
        file("old.csv", 2, T2),
        file("people.csv", PEOPLE.len(), T1),
    ];
    assert_eq!(by_name(ftp.list("/outgoing").await.unwrap()), expected);
    assert_eq!(by_name(ftp.list("outgoing").await.unwrap()), expected);

    // Byte-exact content (binary type), twice on the same session.
    assert_eq!(fetch(ftp.as_mut(), "/outgoing/people.csv").await, PEOPLE);
    assert_eq!(fetch(ftp.as_mut(), "/outgoing/old.csv").await, b"x\n");

    // Archive into a folder that does not exist yet, then into the one now made.
    ftp.rename("/outgoing/people.csv", "/outgoing/done/2024/people.csv")
        .await
        .unwrap();
    ftp.rename("/outgoing/old.csv", "/outgoing/done/2024/old.csv")
        .await
        .unwrap();
    let archived = server.home.join("outgoing/done/2024");
    assert_eq!(std::fs::read(archived.join("people.csv")).unwrap(), PEOPLE);
    assert!(archived.join("old.csv").is_file());
    assert!(!server.home.join("outgoing/people.csv").exists());
    assert!(!server.home.join("outgoing/old.csv").exists());
    let e = ftp
        .rename("/outgoing/missing.csv", "/outgoing/done/2024/missing.csv")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, SourceError::Protocol(m) if m.starts_with(WHAT) && m.contains("/outgoing/missing.csv")),
        "{e:?}"
    );

    // Delete; a second delete of the same file is an error naming it.
    ftp.delete("/outgoing/gone.csv").await.unwrap();
    assert!(!server.home.join("outgoing/gone.csv").exists());
    let e = ftp.delete("/outgoing/gone.csv").await.unwrap_err();
    assert!(
        matches!(&e, SourceError::Protocol(m) if m.starts_with(WHAT) && m.contains("deleting /outgoing/gone.csv") && m.contains("550")),
        "{e:?}"
    );

    // Only folders and a dangling link are left: nothing to list.
    assert_eq!(ftp.list("/outgoing").await.unwrap(), vec![]);
    ftp.close().await.unwrap();
}

#[tokio::test]
async fn ftp_lists_downloads_archives_and_deletes() {
    init();
    let server = Vsftpd::start(Mode::Plain);
    list_download_archive_delete(&server, "ftp").await;
}

#[tokio::test]
async fn ftps_lists_downloads_archives_and_deletes_with_session_reuse_required() {
    init();
    // vsftpd's default: every data connection must resume the control connection's TLS
    // session, else `522 SSL connection failed: session reuse required`.
    let server = Vsftpd::start(TLS);
    list_download_archive_delete(&server, "ftps").await;
    let log = server.log();
    assert!(!log.contains("522"), "{log}");
    // The server takes logins over TLS only, so the above was encrypted.
    let e = ftp::connect(&server.spec("ftp", "/outgoing"), WHAT)
        .await
        .err()
        .expect("a plain login to an FTPS-only server");
    assert!(
        matches!(&e, SourceError::Connect(m) if m.contains("refused") && m.contains("530")),
        "{e:?}"
    );
}

#[tokio::test]
async fn listed_times_are_the_files_modification_times_in_utc() {
    init();
    let server = Vsftpd::start(Mode::Plain);
    let times = [
        ("a.csv", 0_i64),
        ("b.csv", T2),
        ("c.csv", T1),
        ("d.csv", 1_782_864_000 + 86_399), // 2026-07-01T23:59:59Z, a summer date
        ("e.csv", 1_798_675_199),          // 2026-12-31T23:59:59Z, a winter one
    ];
    for (name, secs) in times {
        server.put(&format!("in/{name}"), name.as_bytes(), secs);
    }
    let mut ftp = connect(&server, &server.spec("ftp", "/in")).await;
    let listed = by_name(ftp.list("/in").await.unwrap());
    let expected: Vec<RemoteFile> = times.iter().map(|(n, s)| file(n, 5, *s)).collect();
    assert_eq!(listed, expected);
    for (name, secs) in times {
        let meta = std::fs::metadata(server.home.join("in").join(name)).unwrap();
        let mtime = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(mtime as i64, secs, "{name}");
    }
    ftp.close().await.unwrap();
}

/// 5 MiB of noise with line ends in it.
fn noise() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..5 * 1024 * 1024)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match i % 97 {
                0 => b'\n',
                1 => b'\r',
                _ => (x >> 24) as u8,
            }
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn five_megabytes(mode: Mode, kind: &str) {
    let server = Vsftpd::start(mode);
    let data = noise();
    let local = server.put("outgoing/big.csv", &data, T1);
    let mut ftp = connect(&server, &server.spec(kind, "/outgoing")).await;
    assert_eq!(
        ftp.list("/outgoing").await.unwrap(),
        vec![file("big.csv", data.len(), T1)]
    );
    let got = fetch(ftp.as_mut(), "/outgoing/big.csv").await;
    assert_eq!(got.len(), 5 * 1024 * 1024);
    assert_eq!(sha256(&got), sha256(&std::fs::read(local).unwrap()));
    ftp.close().await.unwrap();
}

#[tokio::test]
async fn ftp_downloads_5_mib_byte_exact() {
    init();
    five_megabytes(Mode::Plain, "ftp").await;
}

#[tokio::test]
async fn ftps_downloads_5_mib_byte_exact() {
    init();
    five_megabytes(TLS, "ftps").await;
}

/// A writer that refuses more than `limit` bytes, as the fetcher's size limit does.
struct Refusing {
    limit: usize,
    written: usize,
}

impl AsyncWrite for Refusing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.written + buf.len() > self.limit {
            return Poll::Ready(Err(std::io::Error::other("larger than the limit")));
        }
        self.written += buf.len();
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_download_the_writer_refuses_fails_and_the_session_goes_on() {
    init();
    let server = Vsftpd::start(TLS);
    server.put("outgoing/big.csv", &noise(), T1);
    let mut ftp = connect(&server, &server.spec("ftps", "/outgoing")).await;
    let mut out = Refusing {
        limit: 1024 * 1024,
        written: 0,
    };
    let e = ftp
        .download("/outgoing/big.csv", &mut out)
        .await
        .unwrap_err();
    // A failure on our side (the writer's), naming the source and the file.
    let message = e.to_string();
    assert!(
        message.contains(&format!(
            "{WHAT}: downloading /outgoing/big.csv: larger than the limit"
        )),
        "{e:?}"
    );
    // The session is still in step: what the pull does next (archive or delete) works.
    assert_eq!(ftp.list("/outgoing").await.unwrap().len(), 1);
    ftp.delete("/outgoing/big.csv").await.unwrap();
    assert!(!server.home.join("outgoing/big.csv").exists());
    ftp.close().await.unwrap();
}

#[tokio::test]
async fn missing_files_and_folders_are_errors_naming_them() {
    init();
    let server = Vsftpd::start(Mode::Plain);
    server.put("outgoing/a.csv", b"a\n", T1);
    let mut ftp = connect(&server, &server.spec("ftp", "/outgoing")).await;
    let e = ftp
        .download("/outgoing/nope.csv", &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, SourceError::Protocol(m) if m.starts_with(WHAT) && m.contains("/outgoing/nope.csv") && m.contains("550")),
        "{e:?}"
    );
    let e = ftp.list("/nowhere").await.unwrap_err();
    assert!(
        matches!(&e, SourceError::Protocol(m) if m.contains("listing /nowhere") && m.contains("no such folder")),
        "{e:?}"
    );
    // Still in step, and back in the login's folder (relative paths still work).
    server.mkdir("empty");
    assert_eq!(ftp.list("empty").await.unwrap(), vec![]);
    assert_eq!(
        ftp.list("outgoing").await.unwrap(),
        vec![file("a.csv", 2, T1)]
    );
    ftp.close().await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_is_a_connect_error_naming_host_port_and_user_not_the_password() {
    init();
    let server = Vsftpd::start(Mode::Plain);
    let wrong = "Wr0ng-Secret-2121";
    let mut spec = server.spec("ftp", "/outgoing");
    spec.password_file = Some(server.local_file("wrong-password", &format!("{wrong}\n")));
    let e = ftp::connect(&spec, WHAT)
        .await
        .err()
        .expect("a refused login");
    let SourceError::Connect(message) = &e else {
        panic!("not a Connect error: {e:?}");
    };
    assert!(
        message.starts_with(&format!(
            "{WHAT}: login to 127.0.0.1:{} as {} refused: 530",
            server.port, server.user
        )),
        "{message}"
    );
    assert!(!message.contains(wrong), "{message}");
    assert!(!format!("{e:?}").contains(wrong), "{e:?}");
}

#[tokio::test]
async fn ftps_refuses_a_certificate_from_another_ca() {
    init();
    let server = Vsftpd::start(TLS);
    let mut spec = server.spec("ftps", "/outgoing");
    spec.ca_file = Some(server.other_ca.clone());
    let e = ftp::connect(&spec, WHAT)
        .await
        .err()
        .expect("an untrusted certificate");
    let SourceError::Connect(message) = &e else {
        panic!("not a Connect error: {e:?}");
    };
    assert!(message.starts_with(WHAT), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port)),
        "{message}"
    );
    assert!(
        message.contains("certificate") && message.contains("not trusted"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "checked against the CA certificates in {}",
            server.other_ca.display()
        )),
        "{message}"
    );
    // The right CA is accepted by the same server.
    connect(&server, &server.spec("ftps", "/outgoing"))
        .await
        .close()
        .await
        .unwrap();
}

#[tokio::test]
async fn ftps_without_ca_file_checks_against_the_system_cas() {
    init();
    let server = Vsftpd::start(TLS);
    let mut spec = server.spec("ftps", "/outgoing");
    spec.ca_file = None;
    // The test CA is not one of the system's.
    let e = ftp::connect(&spec, WHAT)
        .await
        .err()
        .expect("a certificate from a private CA");
    assert!(
        matches!(&e, SourceError::Connect(m) if m.contains("not trusted (checked against the system's CA certificates)")),
        "{e:?}"
    );
}

#[tokio::test]
async fn ftps_refuses_a_certificate_for_another_address() {
    init();
    let server = Vsftpd::start(Mode::Tls {
        require_reuse: true,
        san: "IP:127.0.0.2",
    });
    let e = ftp::connect(&server.spec("ftps", "/outgoing"), WHAT)
        .await
        .err()
        .expect("a certificate for another address");
    assert!(
        matches!(&e, SourceError::Connect(m) if m.contains("certificate") && m.contains("not valid for 127.0.0.1")),
        "{e:?}"
    );
}

#[tokio::test]
async fn ftps_needs_a_readable_ca_file() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("pw");
    std::fs::write(&password, "pw").unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    for ca in [not_pem, dir.path().join("missing.pem")] {
        let spec: SourceSpec = serde_json::from_value(serde_json::json!({
            "kind": "ftps", "host": "127.0.0.1", "port": 9, "user": "u",
            "password_file": password, "ca_file": ca, "path": "/",
        }))
        .unwrap();
        let e = ftp::connect(&spec, WHAT)
            .await
            .err()
            .expect("a bad ca_file");
        assert!(
            matches!(&e, SourceError::Config(m) if m.starts_with(WHAT) && m.contains("ca_file")),
            "{e:?}"
        );
    }
}

fn password_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("pw");
    std::fs::write(&path, "secret\n").unwrap();
    path
}

#[tokio::test]
async fn mlsd_is_used_when_the_server_announces_it() {
    init();
    let server = Scripted::start(Script {
        mlsd: Some(vec![
            "type=cdir;modify=20240102030405; /out".into(),
            "type=pdir;modify=20240102030405; /".into(),
            "type=file;size=10;modify=20240102030405.678;UNIX.mode=0644; a b.csv".into(),
            "type=dir;modify=20240102030405; sub".into(),
            "type=OS.unix=slink:/etc/passwd;size=3;modify=20240102030405; l.csv".into(),
            "type=file;modify=20240102030406; nosize.csv".into(),
        ]),
        files: vec![("/out/nosize.csv".into(), 7, "20240102030406".into())],
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut ftp = ftp::connect(&server.spec(&password_file(dir.path())), WHAT)
        .await
        .unwrap();
    assert_eq!(
        by_name(ftp.list("/out").await.unwrap()),
        vec![
            RemoteFile {
                name: "a b.csv".into(),
                size: 10,
                modified_ms: T1 * 1000 + 678,
                change: None,
            },
            file("nosize.csv", 7, T1 + 1),
        ]
    );
    ftp.close().await.unwrap();
    let verbs = server.verbs();
    assert!(verbs.contains(&"MLSD".to_owned()), "{verbs:?}");
    assert!(!verbs.contains(&"LIST".to_owned()), "{verbs:?}");
    assert!(!verbs.contains(&"MDTM".to_owned()), "{verbs:?}");
    assert_eq!(
        verbs.iter().filter(|v| *v == "SIZE").count(),
        1,
        "{verbs:?}"
    );
    assert!(verbs.contains(&"PASV".to_owned()), "{verbs:?}");
    assert!(verbs.contains(&"TYPE".to_owned()), "{verbs:?}");
}

#[tokio::test]
async fn list_size_and_mdtm_are_used_when_mlsd_is_refused() {
    init();
    let server = Scripted::start(Script {
        mlsd: None,
        list: vec![
            "-rw-r--r--    1 1000     1000           10 Jan 02 03:04 a.csv".into(),
            "drwxr-xr-x    2 1000     1000         4096 Jan 02 03:04 sub".into(),
            "lrwxrwxrwx    1 1000     1000            5 Jan 02 03:04 l.csv -> a.csv".into(),
        ],
        files: vec![("/out/a.csv".into(), 10, "20240102030405".into())],
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut ftp = ftp::connect(&server.spec(&password_file(dir.path())), WHAT)
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(ftp.list("/out").await.unwrap(), vec![file("a.csv", 10, T1)]);
    }
    ftp.close().await.unwrap();
    let verbs = server.verbs();
    // MLSD was tried once, then LIST each time.
    assert_eq!(
        verbs.iter().filter(|v| *v == "MLSD").count(),
        1,
        "{verbs:?}"
    );
    assert_eq!(
        verbs.iter().filter(|v| *v == "LIST").count(),
        2,
        "{verbs:?}"
    );
    assert_eq!(
        verbs.iter().filter(|v| *v == "MDTM").count(),
        2,
        "{verbs:?}"
    );
}

#[tokio::test]
async fn a_folder_of_more_than_max_listed_entries_is_refused() {
    init();
    let lines = (0..=MAX_LISTED)
        .map(|i| format!("type=file;size=1;modify=20240102030405; f{i}.csv"))
        .collect();
    let server = Scripted::start(Script {
        mlsd: Some(lines),
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut ftp = ftp::connect(&server.spec(&password_file(dir.path())), WHAT)
        .await
        .unwrap();
    let e = ftp.list("/out").await.unwrap_err();
    assert!(
        matches!(&e, SourceError::Protocol(m) if m.contains(&format!("more than {MAX_LISTED}"))),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_refused_tls_session_reuse_says_so() {
    init();
    let server = Scripted::start(Script {
        mlsd: Some(vec!["type=file;size=1;modify=20240102030405; a.csv".into()]),
        listing_reply: Some("522 SSL connection failed: session reuse required".into()),
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut ftp = ftp::connect(&server.spec(&password_file(dir.path())), WHAT)
        .await
        .unwrap();
    let e = ftp.list("/out").await.unwrap_err();
    assert!(
        matches!(&e, SourceError::Protocol(m) if m.starts_with(WHAT)
            && m.contains("requires TLS session reuse on the data connection (vsftpd require_ssl_reuse)")
            && m.contains("522")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_password_the_server_echoes_is_blanked_out() {
    init();
    let server = Scripted::start(Script {
        refuse_login: true,
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let e = ftp::connect(&server.spec(&password_file(dir.path())), WHAT)
        .await
        .err()
        .expect("a refused login");
    let SourceError::Connect(message) = &e else {
        panic!("not a Connect error: {e:?}");
    };
    assert_eq!(
        message,
        &format!(
            "{WHAT}: login to 127.0.0.1:{} as tester refused: 530 Login incorrect for password ***",
            server.port
        )
    );
}
