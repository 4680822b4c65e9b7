//! Sources declared in a tenants file and fetched from real servers on loopback: SFTP
//! pull from OpenSSH's sshd (password, generated key, changed host key, wrong password),
//! SFTP push through our own sshd (`roster push-server run`) with the real `sftp` client,
//! local folders, dry runs, schedules and leases. Each ends with the directory holding
//! exactly the right people, and no secret anywhere Roster writes.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Install, tenant};
use crate::ssh::{self, Auth, Sshd, SystemUser, UsersToRemove};

const PEOPLE: &str = "Email,Name,Status\nann@x.com,Ann,active\nbob@x.com,Bob,active\n";
const MORE_PEOPLE: &str = "Email,Name,Status\nann@x.com,Ann,active\ncy@x.com,Cy,active\n";

/// Applies the tenants file `yaml` (written in the install's folder); panics unless it
/// is applied.
fn apply(i: &Install, yaml: &str) {
    let file = i.file("tenants.yaml", yaml);
    let ran = i.roster(&["tenants", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "tenants apply: {}\n{}", ran.stderr, ran.stdout);
}

/// `roster fetch --json` with `env` added; (exit code, one summary per line, stderr).
fn fetch(
    i: &Install,
    t: &str,
    source: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, Vec<Value>, String) {
    let mut args = vec!["fetch", "--tenant", t, "--source", source, "--json"];
    args.extend_from_slice(extra);
    let out = i
        .command("roster")
        .args(&args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let summaries = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        summaries,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sources_list(i: &Install, t: &str) -> Vec<Value> {
    let ran = i.roster(&["sources", "list", "--tenant", t, "--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    ran.json().as_array().unwrap().clone()
}

fn sftp_source(
    user: &str,
    port: u16,
    auth: &str,
    known_hosts: &Path,
    path: &Path,
    extra: &str,
) -> String {
    format!(
        "        kind: sftp\n        host: 127.0.0.1\n        port: {port}\n        user: {user}\n\
         \x20       {auth}\n        known_hosts: {kh}\n        path: {path}\n        pattern: \"*.csv\"\n{extra}",
        kh = known_hosts.display(),
        path = path.display(),
    )
}

#[test]
fn sftp_pull_with_a_password_archives_what_it_took_and_leaks_nothing() {
    let i = Install::embedded();
    let t = tenant("acme");
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let user = SystemUser::new("rp", Some(&password));
    user.file("outgoing/people.csv", PEOPLE);
    user.file("outgoing/notes.txt", "not a csv");
    let server = Sshd::start();
    let kh = server.known_hosts();
    apply(
        &i,
        &format!(
            "tenants:\n  {t}:\n    sources:\n      hr:\n{}",
            sftp_source(
                &user.name,
                server.port,
                "password_env: ACME_SFTP_PASSWORD",
                &kh,
                &user.home.join("outgoing"),
                &format!(
                    "        after_fetch: archive\n        archive_path: {}\n        stable_after: 1s\n",
                    user.home.join("outgoing/done").display()
                ),
            )
        ),
    );
    let env = [("ACME_SFTP_PASSWORD", password.as_str())];
    let (code, runs, stderr) = fetch(&i, &t, "hr", &[], &env);
    assert_eq!(code, 0, "{stderr}\n{}", server.log());
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "applied");
    assert_eq!(runs[0]["file"], "people.csv");
    assert_eq!(i.emails(&t, false), ["ann@x.com", "bob@x.com"]);
    assert!(
        user.home.join("outgoing/done/people.csv").exists(),
        "archived"
    );
    assert!(!user.home.join("outgoing/people.csv").exists());

    // Nothing new: no run, exit 0.
    let (code, runs, stderr) = fetch(&i, &t, "hr", &[], &env);
    assert_eq!((code, runs.len()), (0, 0), "{stderr}");
    assert!(stderr.contains("nothing new"), "{stderr}");
    let listed = sources_list(&i, &t);
    assert_eq!(listed[0]["last_outcome"], "nothing-new");
    assert_eq!(listed[0]["kind"], "sftp");

    // A new delivery replaces the directory.
    user.file("outgoing/people-2.csv", MORE_PEOPLE);
    let (code, runs, stderr) = fetch(&i, &t, "hr", &[], &env);
    assert_eq!((code, runs.len()), (0, 1), "{stderr}");
    assert_eq!(i.emails(&t, false), ["ann@x.com", "cy@x.com"]);

    let text = i.roster(&["sources", "list", "--tenant", &t]).stdout;
    i.assert_no_secret(&password, &[&stderr, &text]);
}

#[test]
fn sftp_pull_with_a_generated_key() {
    let i = Install::embedded();
    let t = tenant("acme");
    let user = SystemUser::new("rk", None);
    user.file("out/people.csv", PEOPLE);
    let server = Sshd::start();
    let kh = server.known_hosts();
    let key = i.path().join("keys/acme_hr");
    apply(
        &i,
        &format!(
            "tenants:\n  {t}:\n    sources:\n      hr:\n{}",
            sftp_source(
                &user.name,
                server.port,
                &format!("private_key_file: {}", key.display()),
                &kh,
                &user.home.join("out"),
                "",
            )
        ),
    );
    let ran = i.roster(&["keys", "generate", "--tenant", &t, "--source", "hr"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let public = ran.stdout.trim();
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key is the owner's alone");
    // Generating again would orphan the key the customer has: refused.
    let again = i.roster(&["keys", "generate", "--tenant", &t, "--source", "hr"]);
    assert_ne!(again.code, 0);

    // Before the customer installs the key: refused. After: fetched.
    let (code, _, stderr) = fetch(&i, &t, "hr", &[], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("refused"), "{stderr}");
    server.authorize(&user.name, public);
    let (code, runs, stderr) = fetch(&i, &t, "hr", &[], &[]);
    assert_eq!((code, runs.len()), (0, 1), "{stderr}\n{}", server.log());
    assert_eq!(i.emails(&t, false), ["ann@x.com", "bob@x.com"]);
    let private = std::fs::read_to_string(&key).unwrap();
    let body = private.lines().nth(1).unwrap();
    i.assert_no_secret(body, &[&stderr]);
}

#[test]
fn sftp_refuses_a_changed_host_key_and_a_wrong_password() {
    let i = Install::embedded();
    let t = tenant("acme");
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let user = SystemUser::new("rh", Some(&password));
    user.file("out/people.csv", PEOPLE);
    let server = Sshd::start();
    let real = server.known_hosts();
    // known_hosts pinned to another server's key: the host key "changed".
    let other = Sshd::start();
    let pinned = i.path().join("pinned_known_hosts");
    let other_line = std::fs::read_to_string(other.known_hosts()).unwrap();
    std::fs::write(
        &pinned,
        other_line.replace(
            &format!("[127.0.0.1]:{}", other.port),
            &format!("[127.0.0.1]:{}", server.port),
        ),
    )
    .unwrap();
    apply(
        &i,
        &format!(
            "tenants:\n  {t}:\n    sources:\n      changed:\n{}      wrong:\n{}",
            sftp_source(
                &user.name,
                server.port,
                "password_env: PW",
                &pinned,
                &user.home.join("out"),
                ""
            ),
            sftp_source(
                &user.name,
                server.port,
                "password_env: WRONG_PW",
                &real,
                &user.home.join("out"),
                ""
            ),
        ),
    );
    let env = [("PW", password.as_str()), ("WRONG_PW", "not-the-password")];
    let (code, runs, stderr) = fetch(&i, &t, "changed", &[], &env);
    assert_eq!((code, runs.len()), (1, 0), "{stderr}");
    let real_print = ssh::fingerprint(&real);
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", server.port)) && stderr.contains(&real_print),
        "names host, port and the key the server shows ({real_print}): {stderr}"
    );
    assert!(stderr.contains("host key"), "{stderr}");

    let (code, runs, stderr_wrong) = fetch(&i, &t, "wrong", &[], &env);
    assert_eq!((code, runs.len()), (1, 0), "{stderr_wrong}");
    assert!(
        stderr_wrong.contains("refused") && stderr_wrong.contains(&user.name),
        "{stderr_wrong}"
    );
    assert!(i.emails(&t, true).is_empty(), "nothing imported");
    let listed = sources_list(&i, &t);
    for s in &listed {
        assert_eq!(s["last_outcome"], "failed", "{s}");
        assert_eq!(s["failures"], 1, "{s}");
    }
    i.assert_no_secret(&password, &[&stderr, &stderr_wrong]);
    i.assert_no_secret("not-the-password", &[&stderr_wrong]);
}

#[test]
fn a_dry_run_fetch_writes_nothing_anywhere() {
    let i = Install::embedded();
    let t = tenant("acme");
    let folder = i.path().join("drop");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("people.csv"), PEOPLE).unwrap();
    apply(
        &i,
        &format!(
            "tenants:\n  {t}:\n    sources:\n      drop:\n        kind: inbox\n        path: {}\n        after_fetch: delete\n        stable_after: 1s\n",
            folder.display()
        ),
    );
    let (code, runs, stderr) = fetch(&i, &t, "drop", &["--dry-run"], &[]);
    assert_eq!((code, runs.len()), (0, 1), "{stderr}");
    assert_eq!(runs[0]["status"], "dry_run", "{}", runs[0]);
    assert_eq!(runs[0]["created"], 2);
    assert!(folder.join("people.csv").exists(), "left on the server");
    let listed = sources_list(&i, &t);
    assert!(listed[0]["last_fetch"].is_null(), "{}", listed[0]);
    let ran = i.roster(&["runs", "--tenant", &t, "--json"]);
    assert_eq!(ran.json(), serde_json::json!([]));
    // The real fetch still takes it (the dry run recorded nothing as taken).
    let (code, runs, stderr) = fetch(&i, &t, "drop", &[], &[]);
    assert_eq!((code, runs.len()), (0, 1), "{stderr}");
    assert!(!folder.join("people.csv").exists(), "deleted once taken");
    assert_eq!(i.emails(&t, false), ["ann@x.com", "bob@x.com"]);
}

#[test]
fn the_tenants_file_is_checked_whole_and_removed_sources_are_disabled() {
    let i = Install::embedded();
    let t = tenant("acme");
    let bad = i.file(
        "bad.yaml",
        format!(
            "tenants:\n  {t}:\n    sources:\n      hr:\n        kind: sftp\n        host: h\n        user: u\n        path: /\n        password: hunter2\n      web:\n        kind: http\n        url: https://x.example/\n        page: {{size: 10, offset_param: o, limit_param: l}}\n"
        ),
    );
    let ran = i.roster(&["tenants", "apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains(&format!("tenants.{t}.sources.hr.password: unknown key")),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("hunter2"), "{}", ran.stderr);
    let ran = i.roster(&["tenants", "list", "--json"]);
    assert_eq!(ran.json(), serde_json::json!([]), "nothing applied");

    let folder = i.path().join("in");
    let two = format!(
        "tenants:\n  {t}:\n    sources:\n      a:\n        kind: inbox\n        path: {f}\n        schedule: 15m\n      b:\n        kind: inbox\n        path: {f}\n",
        f = folder.display()
    );
    apply(&i, &two);
    let listed = sources_list(&i, &t);
    let names: Vec<&str> = listed.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(listed[0]["schedule"], "15m");
    assert!(listed[1]["schedule"].is_null());
    let ran = i.roster(&["tenants", "list", "--json"]);
    assert_eq!(ran.json()[0]["tenant"], t.as_str());
    assert_eq!(ran.json()[0]["sources"], 2);

    // b leaves the file: disabled, kept; fetching it is refused.
    let one = two[..two.find("      b:").unwrap()].to_owned();
    apply(&i, &one);
    let listed = sources_list(&i, &t);
    assert_eq!(listed[1]["name"], "b");
    assert_eq!(listed[1]["enabled"], false);
    let (code, _, stderr) = fetch(&i, &t, "b", &[], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("disabled"), "{stderr}");
    // And it comes back when declared again.
    apply(&i, &two);
    assert_eq!(sources_list(&i, &t)[1]["enabled"], true);
}

#[test]
fn scheduled_sources_are_fetched_once_by_one_of_two_replicas_and_failures_back_off() {
    let i = Install::embedded();
    let t = tenant("acme");
    let folder = i.path().join("drop");
    std::fs::create_dir_all(&folder).unwrap();
    apply(
        &i,
        &format!(
            "tenants:\n  {t}:\n    sources:\n      drop:\n        kind: inbox\n        path: {}\n        schedule: 1s\n        stable_after: 1s\n      broken:\n        kind: inbox\n        path: {}\n        schedule: 1s\n",
            folder.display(),
            i.path().join("no-such-folder").display()
        ),
    );
    let env = [
        ("ROSTER_POLL_INTERVAL_MS", "200"),
        ("ROSTER_SOURCE_RETRY_SECS", "1"),
        ("ROSTER_SOURCE_FAILING_AFTER", "2"),
    ];
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(
            i.command("roster")
                .arg("serve")
                .envs(env.iter().copied())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let _stop = KillOnDrop(replicas);
    std::fs::write(folder.join("people.csv"), PEOPLE).unwrap();
    i.wait_until("the scheduled fetch", Duration::from_secs(60), || {
        i.emails(&t, false) == ["ann@x.com", "bob@x.com"]
    });
    i.wait_until(
        "the broken source to be failing",
        Duration::from_secs(60),
        || {
            let listed = sources_list(&i, &t);
            listed[0]["name"] == "broken" && listed[0]["failing"] == true
        },
    );
    // Let both replicas tick a few more times: the file is never taken twice.
    std::thread::sleep(Duration::from_secs(3));
    let ran = i.roster(&["runs", "--tenant", &t, "--json"]);
    assert_eq!(ran.json().as_array().unwrap().len(), 1, "{}", ran.stdout);
    let broken = &sources_list(&i, &t)[0];
    assert!(
        broken["last_error"]
            .as_str()
            .unwrap()
            .contains("no-such-folder"),
        "{broken}"
    );
}

struct KillOnDrop(Vec<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A folder for push jails: sshd demands that every folder above a jail be root-owned
/// and writable by no one else, which a temporary folder under /tmp is not.
fn jail_root() -> tempfile::TempDir {
    let base = Path::new("/var/lib/roster-tests");
    std::fs::create_dir_all(base).unwrap();
    ssh::run("chmod", &["755", base.to_str().unwrap()]);
    let dir = tempfile::Builder::new()
        .prefix("push-")
        .tempdir_in(base)
        .unwrap();
    ssh::run("chmod", &["755", dir.path().to_str().unwrap()]);
    dir
}

#[test]
fn tenants_push_through_our_sftp_server_with_a_password_or_a_key_each_in_its_own_jail() {
    let root = jail_root();
    let mut i = Install::embedded();
    let port = ssh::free_port();
    let (a, b) = (ssh::login("pa"), ssh::login("pb"));
    let _users = UsersToRemove(vec![a.clone(), b.clone()]);
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let hashed = {
        use std::io::Write;
        let mut child = i
            .command("roster")
            .args(["push-server", "hash-password"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let key = i.path().join("b_key");
    ssh::run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()],
    );
    let public = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    apply(
        &i,
        &format!(
            "tenants:\n  {a}:\n    push:\n      password_hash: \"{hashed}\"\n  {b}:\n    push:\n      authorized_keys: [\"{}\"]\n  daemon:\n    push:\n      password_hash: \"{hashed}\"\n",
            public.trim()
        ),
    );
    let push_root = root.path().join("push");
    let env = [
        ("ROSTER_PUSH_ROOT", push_root.to_str().unwrap().to_owned()),
        ("ROSTER_PUSH_ADDR", format!("127.0.0.1:{port}")),
        (
            "ROSTER_PUSH_CONFIG_DIR",
            root.path().join("config").display().to_string(),
        ),
        ("ROSTER_POLL_INTERVAL_MS", "200".to_owned()),
    ];
    for (name, args) in [
        ("push", vec!["push-server", "run"]),
        ("serve", vec!["serve"]),
    ] {
        let log = std::fs::File::create(i.path().join(format!("{name}.log"))).unwrap();
        let child = i
            .command("roster")
            .args(&args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        i.adopt(if name == "push" { "push" } else { "serve" }, child);
    }
    ssh::wait_for_port(port);
    let kh = ssh::known_hosts_for(port, &i.path().join("push_known_hosts"));
    let upload_a = i.file("a.csv", PEOPLE);
    let upload_b = i.file("b.csv", MORE_PEOPLE);

    let (ok, said) = ssh::sftp(
        port,
        &a,
        Auth::Password(&password),
        &kh,
        &format!("put {} /upload/people.csv\n", upload_a.display()),
    );
    assert!(ok, "password push: {said}\n{}", i.full_log("push"));
    let (ok, said) = ssh::sftp(
        port,
        &b,
        Auth::Key(&key),
        &kh,
        &format!("put {} /upload/people.csv\n", upload_b.display()),
    );
    assert!(ok, "key push: {said}\n{}", i.full_log("push"));
    i.wait_until("both pushes imported", Duration::from_secs(60), || {
        i.emails(&a, false) == ["ann@x.com", "bob@x.com"]
            && i.emails(&b, false) == ["ann@x.com", "cy@x.com"]
    });

    // A tenant named like a system account (Debian's `daemon`) is left out, not taken
    // over, and does not stop the others (above): its password does not let anyone in.
    let (ok, said) = ssh::sftp(port, "daemon", Auth::Password(&password), &kh, "ls /\n");
    assert!(!ok, "daemon logged in: {said}");
    let log = i.full_log("push");
    assert!(
        log.contains("daemon") && log.contains("will not take it over"),
        "{log}"
    );

    // A sees its jail only: no way up, no way into B's.
    let (_, listing) = ssh::sftp(
        port,
        &a,
        Auth::Password(&password),
        &kh,
        "ls -1 /\nls -1 /..\n",
    );
    assert!(
        listing.contains("upload") && listing.contains("delta"),
        "{listing}"
    );
    assert!(!listing.contains(&b), "{listing}");
    for attempt in [
        format!("ls /../{b}/upload\n"),
        format!(
            "get /../{b}/upload/people.csv {}\n",
            i.path().join("stolen").display()
        ),
        format!("put {} /../{b}/upload/evil.csv\n", upload_a.display()),
    ] {
        let (ok, said) = ssh::sftp(port, &a, Auth::Password(&password), &kh, &attempt);
        assert!(!ok, "{attempt} must fail: {said}");
    }
    assert!(!i.path().join("stolen").exists());
    assert!(!push_root.join(&b).join("upload/evil.csv").exists());
    // Wrong password and no shell.
    let (ok, _) = ssh::sftp(port, &a, Auth::Password("wrong"), &kh, "ls\n");
    assert!(!ok);
    let shell = std::process::Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-p",
            &port.to_string(),
            "-i",
            key.to_str().unwrap(),
        ])
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", kh.display()))
        .arg(format!("{b}@127.0.0.1"))
        .arg("id")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&shell.stdout).contains("uid="),
        "no command runs: {}",
        String::from_utf8_lossy(&shell.stdout)
    );

    // B leaves the file: its login stops working once the server reloads.
    apply(
        &i,
        &format!("tenants:\n  {a}:\n    push:\n      password_hash: \"{hashed}\"\n"),
    );
    // sshd re-executes itself to reload, refusing connections for a moment: B's login
    // counts as refused only between two of A's that work (the server was up).
    let a_works = || ssh::sftp(port, &a, Auth::Password(&password), &kh, "ls\n").0;
    i.wait_until("B's login to be refused", Duration::from_secs(30), || {
        a_works() && !ssh::sftp(port, &b, Auth::Key(&key), &kh, "ls\n").0 && a_works()
    });
    let _ = i.terminate("serve", Duration::from_secs(20));
    assert_eq!(i.terminate("push", Duration::from_secs(20)), 0);
    i.assert_no_secret(&password, &[]);
}

#[test]
fn a_source_being_fetched_elsewhere_is_not_fetched_twice() {
    let i = Install::embedded();
    let t = tenant("acme");
    let folder = i.path().join("drop");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("people.csv"), PEOPLE).unwrap();
    apply(
        &i,
        &format!(
            "tenants:\n  {t}:\n    sources:\n      drop:\n        kind: inbox\n        path: {}\n        stable_after: 0s\n",
            folder.display()
        ),
    );
    // Another replica holds the source's lease.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(roster_shared::db::Db::connect(
            &i.env("ROSTER_DATABASE_URL").unwrap().into(),
        ))
        .unwrap();
    let lease = roster_fetcher::sources::schedule::lease_name(&t, "drop");
    let held = rt.block_on(roster_shared::db::lease::acquire(
        &db,
        &lease,
        "another-replica",
        Duration::from_secs(60),
    ));
    assert!(held.unwrap());
    let (code, runs, stderr) = fetch(&i, &t, "drop", &[], &[]);
    assert_eq!((code, runs.len()), (1, 0), "{stderr}");
    assert!(
        stderr.contains("being fetched by another process"),
        "{stderr}"
    );
    rt.block_on(roster_shared::db::lease::release(
        &db,
        &lease,
        "another-replica",
    ))
    .unwrap();
    let (code, runs, stderr) = fetch(&i, &t, "drop", &[], &[]);
    assert_eq!((code, runs.len()), (0, 1), "{stderr}");
}
