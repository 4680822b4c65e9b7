//! `roster push`, the customer-side sync tool, against the import API of a running
//! `roster serve` (embedded install): files checked locally, uploaded, imported; what it
//! prints and its exit codes. The tool runs with no `ROSTER_*` setting at all, as on a
//! customer's machine.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{Install, Ran, tenant};

/// A people file as a spreadsheet saves "CSV UTF-8": a byte-order mark and CRLF.
const PEOPLE: &str = "\u{feff}Primary Email,Name\r\nann@x.com,Ann Lee\r\nbo@x.com,Bo Chen\r\n\
cy@x.com,Cy Diaz\r\n";

/// A tenant's API token from `roster tokens create`.
fn token(i: &Install, t: &str, sandbox: bool) -> String {
    let mut args = vec!["tokens", "create", "--tenant", t, "--json"];
    if sandbox {
        args.push("--sandbox");
    }
    let ran = i.roster(&args);
    assert_eq!(ran.code, 0, "tokens create: {}", ran.stderr);
    let created = ran.json();
    assert_eq!(created["tenant"], t);
    assert_eq!(created["sandbox"], sandbox);
    created["token"]
        .as_str()
        .expect("a token in the answer")
        .to_owned()
}

/// A push folder of its own under the install's: `files` written in it, and a
/// `config.json` with `api_url`, the token (from `PUSH_TOKEN`) and `extra` keys.
fn push_folder(
    i: &Install,
    name: &str,
    api_url: &str,
    files: &[(&str, &[u8])],
    extra: &str,
) -> PathBuf {
    let dir = i.path().join("push").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, bytes) in files {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    let names: Vec<Value> = files.iter().map(|(f, _)| Value::from(*f)).collect();
    let mut config = serde_json::json!({
        "api_url": format!("{api_url}/"),
        "api_token_env": "PUSH_TOKEN",
        "files": names,
    });
    let extra: Value = serde_json::from_str(&format!("{{{extra}}}")).unwrap();
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    path
}

/// Runs `roster push --config <config> <flags>` with the token in `PUSH_TOKEN` and no
/// `ROSTER_*` variable (the tool needs none).
fn push(i: &Install, config: &Path, token: &str, flags: &[&str]) -> Ran {
    let mut cmd = i.command("roster");
    for (key, _) in std::env::vars() {
        if key.starts_with("ROSTER_") {
            cmd.env_remove(key);
        }
    }
    for key in ["ROSTER_DATABASE_URL", "ROSTER_DATA_DIR", "ROSTER_API_ADDR"] {
        cmd.env_remove(key);
    }
    let out = cmd
        .arg("push")
        .arg("--config")
        .arg(config)
        .args(flags)
        .env("PUSH_TOKEN", token)
        .current_dir(i.path())
        .output()
        .expect("roster push runs");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The one summary line on stdout.
fn summary(ran: &Ran) -> &str {
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one summary line:\n{}\nstderr:\n{}",
        ran.stdout,
        ran.stderr
    );
    lines[0]
}

/// The tenant's runs, as `roster runs --json` lists them.
fn runs(i: &Install, t: &str) -> Vec<Value> {
    let ran = i.roster(&["runs", "--tenant", t, "--json"]);
    assert_eq!(ran.code, 0, "runs: {}", ran.stderr);
    ran.json().as_array().expect("a JSON list").clone()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bundle")
            .join(name),
    )
    .unwrap()
}

#[test]
fn push_tool_imports_a_people_file() {
    let mut i = Install::embedded();
    let api = i.serve_api();
    let t = tenant("push");
    let token = token(&i, &t, false);
    let config = push_folder(
        &i,
        "people",
        &api,
        &[("people.csv", PEOPLE.as_bytes())],
        r#""type": "people", "mode": "full""#,
    );
    let ran = push(&i, &config, &token, &["--verbose"]);
    assert_eq!(ran.code, 0, "{}\n{}\n{}", ran.stdout, ran.stderr, i.logs());
    let line = summary(&ran);
    assert!(line.starts_with("import "), "{line}");
    assert!(line.contains(": done: 3 created, 0 updated"), "{line}");
    assert!(
        ran.stderr.contains("queued"),
        "verbose steps: {}",
        ran.stderr
    );
    assert_eq!(i.emails(&t, false), ["ann@x.com", "bo@x.com", "cy@x.com"]);
    i.assert_no_secret(&token, &[&ran.stdout, &ran.stderr]);
}

#[test]
fn push_tool_imports_a_bundles_three_files() {
    let mut i = Install::embedded();
    let api = i.serve_api();
    let t = tenant("push");
    let token = token(&i, &t, false);
    let (users, groups, mappings) = (
        fixture("users.csv"),
        fixture("groups.csv"),
        fixture("groups-mapping.csv"),
    );
    let config = push_folder(
        &i,
        "bundle",
        &api,
        &[
            ("users.csv", &users),
            ("groups.csv", &groups),
            ("groups-mapping.csv", &mappings),
        ],
        r#""type": "bundle", "InviteNewUsers": false, "SyncManagerEmail": "admin@widget.com""#,
    );
    let ran = push(&i, &config, &token, &[]);
    assert_eq!(ran.code, 0, "{}\n{}\n{}", ran.stdout, ran.stderr, i.logs());
    assert!(
        summary(&ran).contains(": done: 3 created"),
        "{}",
        ran.stdout
    );
    let listed = i.roster(&["groups", "--tenant", &t, "--json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let mut ids: Vec<String> = listed
        .json()
        .as_array()
        .expect("a JSON list")
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["g-emea", "g-eng", "g-sales"]);
}

#[test]
fn push_tool_dumps_the_request_and_sends_nothing() {
    let mut i = Install::embedded();
    let api = i.serve_api();
    let t = tenant("push");
    let token = token(&i, &t, false);
    let config = push_folder(
        &i,
        "dump",
        &api,
        &[("people.csv", PEOPLE.as_bytes())],
        r#""dry_run": false"#,
    );
    let ran = push(&i, &config, &token, &["--dump-request"]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    summary(&ran);
    let dump_path = config.parent().unwrap().join("dump.json");
    let text = std::fs::read_to_string(&dump_path).expect("dump.json beside the config");
    assert!(!text.contains(&token), "the token is in the dump: {text}");
    let dump: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dump["url"], format!("{api}/v1/imports"));
    assert_eq!(dump["headers"]["Authorization"], "Bearer <redacted>");
    assert_eq!(dump["files"][0]["file_name"], "people.csv");
    assert_eq!(dump["files"][0]["bytes"], PEOPLE.len());
    assert!(runs(&i, &t).is_empty(), "nothing imported");
    assert!(i.emails(&t, false).is_empty());
}

#[test]
fn push_tool_refuses_a_file_without_a_bom_unless_told_to_ignore_it() {
    let mut i = Install::embedded();
    let api = i.serve_api();
    let t = tenant("push");
    let token = token(&i, &t, false);
    let config = push_folder(
        &i,
        "no-bom",
        &api,
        &[(
            "people.csv",
            b"Primary Email,Name\r\nann@x.com,Ann Lee\r\nbo@x.com,Bo Chen\r\n",
        )],
        "",
    );
    let ran = push(&i, &config, &token, &[]);
    assert_eq!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains(
            "roster push: people.csv: line 1, column 1: not UTF-8 with a byte-order mark"
        ),
        "{}",
        ran.stderr
    );
    summary(&ran);
    assert!(runs(&i, &t).is_empty(), "nothing imported");

    let ran = push(&i, &config, &token, &["--ignore-encoding"]);
    assert_eq!(ran.code, 0, "{}\n{}\n{}", ran.stdout, ran.stderr, i.logs());
    assert!(
        summary(&ran).contains(": done: 2 created"),
        "{}",
        ran.stdout
    );
    assert_eq!(i.emails(&t, false), ["ann@x.com", "bo@x.com"]);
}

#[test]
fn push_tool_refuses_a_duplicate_email_naming_the_second_line() {
    let mut i = Install::embedded();
    let api = i.serve_api();
    let t = tenant("push");
    let token = token(&i, &t, false);
    let twice = "\u{feff}Primary Email,Name\r\nann@x.com,Ann Lee\r\nbo@x.com,Bo Chen\r\n\
                 ann@x.com,Ann Again\r\n";
    let config = push_folder(&i, "twice", &api, &[("people.csv", twice.as_bytes())], "");
    let ran = push(&i, &config, &token, &[]);
    assert_eq!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr
            .contains("roster push: people.csv: line 4, column 1: duplicate email ann@x.com"),
        "{}",
        ran.stderr
    );
    assert!(runs(&i, &t).is_empty(), "nothing imported");
}

#[test]
fn push_tool_with_a_sandbox_token_is_a_dry_run() {
    let mut i = Install::embedded();
    let api = i.serve_api();
    let t = tenant("push");
    let token = token(&i, &t, true);
    let config = push_folder(
        &i,
        "sandbox",
        &api,
        &[("people.csv", PEOPLE.as_bytes())],
        "",
    );
    let ran = push(&i, &config, &token, &[]);
    assert_eq!(ran.code, 0, "{}\n{}\n{}", ran.stdout, ran.stderr, i.logs());
    let line = summary(&ran);
    assert!(line.starts_with("dry run import "), "{line}");
    assert!(line.contains(": done: 3 created"), "{line}");
    assert!(i.emails(&t, false).is_empty(), "a sandbox changes nothing");
}

#[test]
fn push_tool_with_a_wrong_token_fails_without_showing_it() {
    let mut i = Install::embedded();
    let api = i.serve_api();
    let t = tenant("push");
    let _real = token(&i, &t, false);
    let wrong = "rst_wrong_token_0123456789abcdef";
    let config = push_folder(&i, "wrong", &api, &[("people.csv", PEOPLE.as_bytes())], "");
    let ran = push(&i, &config, wrong, &["--verbose"]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("roster push: "), "{}", ran.stderr);
    assert!(ran.stderr.contains("401"), "{}", ran.stderr);
    summary(&ran);
    assert!(!ran.stdout.contains(wrong), "{}", ran.stdout);
    assert!(!ran.stderr.contains(wrong), "{}", ran.stderr);
    assert!(runs(&i, &t).is_empty(), "nothing imported");
    assert!(i.emails(&t, false).is_empty());
}

#[test]
fn push_tool_exits_3_when_the_import_is_held_and_2_when_it_is_rejected() {
    let mut i = Install::embedded();
    // Held when a run would deactivate more than half the people, however few.
    i.set_env("ROSTER_DEACTIVATE_FLOOR", "0");
    i.set_env("ROSTER_MAX_DEACTIVATE_PERCENT", "50");
    let api = i.serve_api();
    let t = tenant("pushheld");
    let token = token(&i, &t, false);
    let all = push_folder(&i, "all", &api, &[("people.csv", PEOPLE.as_bytes())], "");
    assert_eq!(push(&i, &all, &token, &[]).code, 0);
    let one = "\u{feff}Primary Email,Name\r\nann@x.com,Ann Lee\r\n";
    let held = push_folder(&i, "one", &api, &[("people.csv", one.as_bytes())], "");
    let ran = push(&i, &held, &token, &[]);
    assert_eq!(ran.code, 3, "{}\n{}", ran.stdout, ran.stderr);
    assert!(summary(&ran).contains("held"), "{}", ran.stdout);
    assert_eq!(i.emails(&t, false).len(), 3, "held: no one deactivated");
    // Readable locally (an email column), refused by the server as a whole: a full file
    // with nobody usable in it.
    let nobody = "\u{feff}Primary Email,Name\r\nnot-an-email,Nobody\r\n";
    let rejected = push_folder(&i, "nobody", &api, &[("people.csv", nobody.as_bytes())], "");
    let ran = push(&i, &rejected, &token, &[]);
    assert_eq!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    assert!(summary(&ran).contains("rejected"), "{}", ran.stdout);
    assert_eq!(i.emails(&t, false).len(), 3);
}
