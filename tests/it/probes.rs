//! The stage binaries as operators run them: readiness and liveness probes, waiting for
//! a schema that is not migrated yet, and a clean stop on SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::harness::{Install, tenant};

/// A free port on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` on `port`: the status code and body, or `None` if nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Some((code, body))
}

#[test]
fn a_stage_probes_ready_serves_and_stops_on_sigterm() {
    let mut i = Install::distributed();
    let port = free_port();
    // A second writer with its own probe address.
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = i.command("roster-writer");
    cmd.env("ROSTER_HEALTH_ADDR", &addr);
    i.kill_stage("writer");
    let child = cmd
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(i.path().join("writer.log")).unwrap())
        .spawn()
        .unwrap();
    i.adopt("writer", child);
    i.wait_until("/readyz to answer 200", Duration::from_secs(30), || {
        get(port, "/readyz").is_some_and(|(code, _)| code == 200)
    });
    assert_eq!(get(port, "/healthz").map(|(c, _)| c), Some(200));
    // It does the work.
    let t = tenant("probe");
    i.import_ok(&t, &i.file("p.csv", "Email\na@x.com\n"), &[]);
    // SIGTERM: it stops taking work and exits cleanly, promptly.
    assert_eq!(
        i.terminate("writer", Duration::from_secs(15)),
        0,
        "{}",
        i.stage_log("writer")
    );
}

#[test]
fn a_stage_waits_unready_until_the_schema_is_migrated() {
    let i = Install::distributed();
    // Another, empty database: not migrated.
    let db = format!(
        "roster_unmigrated_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let pg = crate::harness::pg_url();
    let status = std::process::Command::new("psql")
        .args([&pg, "-qc", &format!("CREATE DATABASE {db}")])
        .status()
        .unwrap();
    assert!(status.success());
    let url = format!("{}/{db}", &pg[..pg.rfind('/').unwrap()]);
    let port = free_port();
    let mut child = i
        .command("roster-parser")
        .env("ROSTER_DATABASE_URL", &url)
        .env("ROSTER_HEALTH_ADDR", format!("127.0.0.1:{port}"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    i.wait_until("/healthz to answer", Duration::from_secs(30), || {
        get(port, "/healthz").is_some()
    });
    let (code, body) = get(port, "/readyz").unwrap();
    assert_eq!(code, 503, "not ready before migration: {body}");
    assert!(body.contains("starting"), "{body}");
    // Migrated: it comes up on its own, no restart.
    let ran = i
        .command("roster")
        .env("ROSTER_DATABASE_URL", &url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(ran.status.success());
    i.wait_until(
        "/readyz to answer 200 after migrating",
        Duration::from_secs(30),
        || get(port, "/readyz").is_some_and(|(code, _)| code == 200),
    );
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::process::Command::new("psql")
        .args([&pg, "-qc", &format!("DROP DATABASE {db} WITH (FORCE)")])
        .status();
}
