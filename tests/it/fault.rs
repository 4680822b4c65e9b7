//! Faults against the distributed install (four stage processes, RabbitMQ, PostgreSQL).
//! Each ends with the directory exactly equal to what the input says: no person lost,
//! none duplicated, every change applied once.
//!
//! Tests named `fault_*` stop shared services or kill processes; nextest runs each alone
//! (`.config/nextest.toml`). They must stay top-level functions for that filter to match.

use std::io::Read;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Install, tenant};

const HEADER: &str = "Email,Employee ID,First Name,Last Name,Title,Office";
const TITLES: [&str; 3] = ["Engineer", "Analyst", "Designer"];

/// `n` people; `version` changes every 7th person's title.
fn people(n: usize, version: usize) -> String {
    let mut out = String::with_capacity(n * 64);
    out.push_str(HEADER);
    out.push('\n');
    for i in 0..n {
        let title = TITLES[(i + version * usize::from(i % 7 == 0)) % 3];
        out.push_str(&format!(
            "p{i:06}@x.com,E{i},First{i},Last{i},{title},Office{}\n",
            i % 5
        ));
    }
    out
}

/// The directory CSV (`roster directory --all`) the input `people(n, version)` must give.
fn expected_directory(n: usize, version: usize) -> String {
    let mut out = String::from(
        "email,employee_id,first_name,last_name,display_name,job_title,department,phone,active,group,organization,site,location,locale,time_zone,manager_email\n",
    );
    for i in 0..n {
        let title = TITLES[(i + version * usize::from(i % 7 == 0)) % 3];
        out.push_str(&format!(
            "p{i:06}@x.com,E{i},First{i},Last{i},,{title},,,true,Office{},,,,,,\n",
            i % 5
        ));
    }
    out
}

fn runs(i: &Install, t: &str) -> Vec<Value> {
    let ran = i.roster(&["runs", "--tenant", t, "--json"]);
    if ran.code != 0 {
        return Vec::new(); // the database may be away
    }
    ran.json().as_array().cloned().unwrap_or_default()
}

/// The tenant's inbox folder of the install, made.
fn inbox(i: &Install, t: &str) -> std::path::PathBuf {
    let inbox = std::path::PathBuf::from(i.env("ROSTER_DATA_DIR").unwrap())
        .join("inbox")
        .join(t);
    std::fs::create_dir_all(&inbox).unwrap();
    inbox
}

fn finish(i: &Install, mut child: Child) -> Value {
    let status = wait_child(&mut child, Duration::from_secs(300));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        status,
        0,
        "import failed:\n{stdout}\n{stderr}\n{}",
        i.logs()
    );
    serde_json::from_str(&stdout).unwrap()
}

fn wait_child(child: &mut Child, timeout: Duration) -> i32 {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("timed out");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn shell(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ctl(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is set by scripts/test.sh"))
}

const N: usize = 100_000;

/// Imports N people, killing `stage` with SIGKILL once `when` holds for the run, and
/// restarting it.
fn killed_mid_run(stage: &'static str, when: impl Fn(&Value) -> bool) {
    let mut i = Install::distributed();
    let t = tenant("kill");
    let file = i.file("people.csv", people(N, 0));
    let child = i.spawn_roster(&["import", "--tenant", &t, "--json", file.to_str().unwrap()]);
    i.wait_until(
        &format!("the moment to kill the {stage}"),
        Duration::from_secs(300),
        || runs(&i, &t).first().is_some_and(&when),
    );
    i.kill_stage(stage);
    std::thread::sleep(Duration::from_millis(500));
    i.start_stage(stage);
    let summary = finish(&i, child);
    assert_eq!(summary["status"], "applied");
    assert_eq!(
        summary["created"], N as u64,
        "every person created exactly once"
    );
    assert_eq!(i.directory_csv(&t, true), expected_directory(N, 0));
    // The next delivery changes exactly what it says.
    let next = i.file("next.csv", people(N, 1));
    let s = i.import_ok(&t, &next, &[]);
    assert_eq!(s["updated"], N.div_ceil(7) as u64);
    assert_eq!(i.directory_csv(&t, true), expected_directory(N, 1));
}

#[test]
fn fault_writer_killed_mid_run() {
    killed_mid_run("writer", |r| {
        r["state"] == "applying" && r["created"].as_u64() > Some(5_000)
    });
}

#[test]
fn fault_parser_killed_mid_run() {
    killed_mid_run("parser", |r| r["state"] == "fetched");
}

#[test]
fn fault_differ_killed_mid_run() {
    killed_mid_run("differ", |r| {
        r["state"] == "diffed" || r["state"] == "applying"
    });
}

/// Imports N people into a distributed install, calling `fault` once the writer is
/// applying, and checks the run still ends exactly as the input says.
fn fault_while_applying(name: &str, fault: impl FnOnce()) {
    let i = Install::distributed();
    let t = tenant(name);
    let file = i.file("people.csv", people(N, 0));
    let child = i.spawn_roster(&["import", "--tenant", &t, "--json", file.to_str().unwrap()]);
    i.wait_until(
        "the writer to be applying",
        Duration::from_secs(300),
        || {
            runs(&i, &t)
                .first()
                .is_some_and(|r| r["state"] == "applying")
        },
    );
    fault();
    let summary = finish(&i, child);
    assert_eq!(summary["status"], "applied");
    assert_eq!(summary["created"], N as u64);
    assert_eq!(i.directory_csv(&t, true), expected_directory(N, 0));
}

#[test]
fn fault_broker_stopped_and_started_mid_run() {
    fault_while_applying("broker", || {
        let rabbit = ctl("ROSTER_TEST_RABBITMQ_CTL");
        shell(&format!("{rabbit} stop_app"));
        std::thread::sleep(Duration::from_secs(3));
        shell(&format!("{rabbit} start_app"));
    });
}

#[test]
fn fault_database_stopped_for_10s_mid_run() {
    fault_while_applying("pg", || {
        let pg = ctl("ROSTER_TEST_PG_CTL");
        let log = ctl("ROSTER_TEST_PG_LOG");
        shell(&format!("{pg} stop -m fast"));
        std::thread::sleep(Duration::from_secs(10));
        shell(&format!("{pg} start -w -l {log}"));
    });
}

/// A bundle zip and then a contact-details file dropped in a tenant's inbox are read as
/// what they are, in the order they arrived.
#[test]
fn a_bundle_zip_and_a_contact_file_dropped_in_an_inbox_are_applied() {
    let i = Install::distributed();
    let t = tenant("inbox");
    let inbox = inbox(&i, &t);
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let zip = i.path().join("export.zip");
    roster_parser::bundle::pack_folder(&fixtures.join("bundle"), &zip).unwrap();
    std::fs::copy(&zip, inbox.join("export.zip")).unwrap();
    i.wait_until("the bundle to be applied", Duration::from_secs(180), || {
        runs(&i, &t)
            .first()
            .is_some_and(|r| r["state"] == "applied")
    });
    std::fs::write(
        inbox.join("contacts.csv"),
        "Person,Contact Protocol,Contact URI,Integration\nbo.chen@widget.com,telephone,+1 555 0100,1\n",
    )
    .unwrap();
    i.wait_until(
        "the contacts to be applied",
        Duration::from_secs(180),
        || {
            let r = runs(&i, &t);
            r.len() == 2 && r[0]["state"] == "applied"
        },
    );
    let groups = i.roster(&["groups", "--tenant", &t, "--json"]).json();
    assert_eq!(groups.as_array().unwrap().len(), 3, "{groups:#}");
    let people = i
        .roster(&["directory", "--tenant", &t, "--format", "json"])
        .json();
    let bo = people
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["email"] == "bo.chen@widget.com")
        .unwrap();
    assert_eq!(bo["contacts"][0]["uri"], "+1 555 0100", "{bo:#}");
    assert_eq!(bo["groups"][0]["id"], "g-emea", "{bo:#}");
}

#[test]
fn the_same_file_delivered_twice_changes_nothing_the_second_time() {
    let i = Install::distributed();
    let t = tenant("inbox");
    let inbox = inbox(&i, &t);
    let content = people(2_000, 0);
    for (n, name) in ["monday.csv", "monday-again.csv"].iter().enumerate() {
        std::fs::write(inbox.join(name), &content).unwrap();
        i.wait_until(
            "the delivery to be applied",
            Duration::from_secs(180),
            || {
                let r = runs(&i, &t);
                r.len() == n + 1 && r[0]["state"] == "applied"
            },
        );
    }
    let r = runs(&i, &t);
    assert_eq!(
        (r[1]["created"].as_u64(), r[0]["created"].as_u64()),
        (Some(2_000), Some(0))
    );
    assert_eq!(r[0]["unchanged"], 2_000);
    assert_eq!(i.directory_csv(&t, true), expected_directory(2_000, 0));
    // Polling again takes neither file again: a later delivery is taken after at least
    // two more polls (a file must look the same twice), and it is the only new run.
    std::fs::write(inbox.join("tuesday.csv"), people(2_000, 1)).unwrap();
    i.wait_until(
        "the later delivery to be applied",
        Duration::from_secs(180),
        || {
            let r = runs(&i, &t);
            r.len() >= 3 && r[0]["state"] == "applied"
        },
    );
    let r = runs(&i, &t);
    assert_eq!(r.len(), 3, "{r:#?}");
    assert_eq!(r[0]["file"], "tuesday.csv");
}

#[test]
fn a_poison_file_is_dead_lettered_fixed_and_replayed_once() {
    let i = Install::distributed();
    let t = tenant("poison");
    i.import_ok(&t, &i.file("first.csv", people(50, 0)), &[]);
    let poison = people(50, 1).replacen("Email,", "Courriel,", 1);
    let (code, s) = i.import(&t, &i.file("poison.csv", &poison), &[]);
    assert_eq!((code, s["status"].as_str()), (2, Some("rejected")));

    let listed = i.roster(&["dlq", "list", "--tenant", &t, "--json"]).json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let dead = &listed[0];
    assert_eq!(dead["stage"], "parser");
    assert_eq!(dead["file_name"], "poison.csv");
    assert!(dead["reason"].as_str().unwrap().contains("no email column"));
    assert!(
        dead["attempts"].as_u64().is_some()
            && dead["first_failure"].is_string()
            && dead["last_failure"].is_string()
    );
    let id = dead["id"].as_str().unwrap();
    let shown = i.roster(&["dlq", "show", id, "--json"]).json();
    assert!(
        shown["raw_file"]["blob_key"]
            .as_str()
            .unwrap()
            .starts_with(&format!("raw/{t}/"))
    );

    // Fixed upstream: the tenant's column mapping is added. Then replayed, twice.
    assert_eq!(
        i.roster(&["mapping", "set", "--tenant", &t, "Courriel", "email"])
            .code,
        0
    );
    let replayed = i.roster(&["dlq", "replay", id, "--json"]);
    assert_eq!(replayed.code, 0, "{}\n{}", replayed.stdout, replayed.stderr);
    assert_eq!(replayed.json()[0]["state"], "applied");
    let again = i.roster(&["dlq", "replay", id, "--json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.json()[0]["state"],
        "applied",
        "already applied: nothing to replay"
    );
    let r = runs(&i, &t);
    assert_eq!(r[0]["file"], "poison.csv");
    assert_eq!(r[0]["updated"], 50_usize.div_ceil(7) as u64, "applied once");
    assert_eq!(i.directory_csv(&t, true), expected_directory(50, 1));
    assert!(
        i.roster(&["dlq", "list", "--tenant", &t, "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn two_tenants_syncing_at_once_never_see_each_other() {
    let i = Install::distributed();
    let (a, b) = (tenant("a"), tenant("b"));
    let fa = i.file("a.csv", people(20_000, 0));
    let fb = i.file("b.csv", people(15_000, 1));
    let ca = i.spawn_roster(&["import", "--tenant", &a, "--json", fa.to_str().unwrap()]);
    let cb = i.spawn_roster(&["import", "--tenant", &b, "--json", fb.to_str().unwrap()]);
    let (sa, sb) = (finish(&i, ca), finish(&i, cb));
    assert_eq!(
        (sa["created"].as_u64(), sb["created"].as_u64()),
        (Some(20_000), Some(15_000))
    );
    assert_eq!(i.directory_csv(&a, true), expected_directory(20_000, 0));
    assert_eq!(i.directory_csv(&b, true), expected_directory(15_000, 1));
}

/// A contact-details file delivered while the tenant's people file is still being
/// applied waits for it: its details are of people that file brings.
#[test]
fn contact_details_wait_for_the_people_file_before_them() {
    let i = Install::distributed();
    let t = tenant("order");
    let fp = i.file("people.csv", people(50_000, 0));
    let child = i.spawn_roster(&["import", "--tenant", &t, "--json", fp.to_str().unwrap()]);
    i.wait_until("the people run to exist", Duration::from_secs(120), || {
        !runs(&i, &t).is_empty()
    });
    let mut contacts = String::from("Person,Contact Protocol,Contact URI,Integration\n");
    let file = i.file("contacts.csv", "");
    for k in (0..50_000).step_by(2500) {
        contacts.push_str(&format!("p{k:06}@x.com,telephone,+1 555 {k:06},1\n"));
    }
    std::fs::write(&file, contacts).unwrap();
    let state = runs(&i, &t)[0]["state"].as_str().unwrap().to_owned();
    assert_ne!(
        state, "applied",
        "the people run must still be going for this to test"
    );
    let s = i.import_ok(&t, &file, &[]);
    assert_eq!(s["rejected"], 0, "every person known by then: {s:#}");
    assert_eq!(s["related"]["contacts_changed"], 20, "{s:#}");
    let people_run = finish(&i, child);
    assert_eq!(people_run["created"], 50_000);
}

#[test]
fn an_interrupted_embedded_import_does_not_block_its_tenant() {
    let i = Install::embedded();
    let t = tenant("ctrlc");
    let big = i.file("big.csv", people(N, 0));
    let mut child = i.spawn_roster(&["import", "--tenant", &t, "--json", big.to_str().unwrap()]);
    // Generous: on a loaded machine a debug build parses 100k rows slowly; only a hang
    // should fail here.
    i.wait_until("the big run to be parsed", Duration::from_secs(480), || {
        runs(&i, &t)
            .first()
            .is_some_and(|r| r["state"] != "fetched")
    });
    // Killed mid-run: its in-memory messages are gone with it.
    child.kill().unwrap();
    child.wait().unwrap();
    let r = runs(&i, &t);
    assert!(
        !["applied", "failed"].contains(&r[0]["state"].as_str().unwrap()),
        "{r:?}"
    );
    // The next import picks the stranded run up, then applies its own (a delta: the first
    // ten people, two of them with a new title).
    let small = i.file("small.csv", people(10, 1));
    let s = i.import_ok(&t, &small, &["--mode", "delta"]);
    assert_eq!(
        (s["updated"].as_u64(), s["unchanged"].as_u64()),
        (Some(2), Some(8))
    );
    let r = runs(&i, &t);
    assert_eq!(
        r[1]["state"], "applied",
        "the stranded run was finished: {r:?}"
    );
    assert_eq!(r[1]["created"], N as u64);
    let directory = i.directory(&t, false);
    assert_eq!(directory.len(), N);
    assert_eq!(directory[0]["job_title"], "Analyst");
}
