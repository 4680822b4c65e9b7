//! The import API of a running Roster (`roster serve` embedded and on the broker, and the
//! `roster-fetcher` stage process of a distributed install), driven over HTTP by curl as a
//! customer's integration would: uploads, status polling to every status, rejects, the
//! sandbox, every refusal with its code (storing nothing), tenants kept apart, TLS, the
//! OpenAPI document, and schemathesis run against that document.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Install, free_addr, tenant};

/// A people file as a spreadsheet saves "CSV UTF-8": a byte-order mark, CRLF, and one row
/// (line 5) that fails alone.
const PEOPLE: &str = "\u{feff}Primary Email,Name,Job Title\r\nann@x.com,Ann Lee,Engineer\r\n\
bo@x.com,Bo Chen,Designer\r\ncy@x.com,Cy Diaz,Analyst\r\nnot-an-email,Nobody,None\r\n";

/// What one HTTP exchange answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// A header's value (the last one of that name).
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .next_back()
    }

    /// Asserts a refusal: `status`, a JSON body with `code` and a message.
    fn refused(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
}

/// The import API of one install, as a client sees it.
struct Api {
    base: String,
    /// The CA to trust (TLS).
    cacert: Option<PathBuf>,
}

impl Api {
    fn curl(&self, args: &[&str]) -> Answer {
        let dir = tempfile::tempdir().unwrap();
        let (headers, body) = (dir.path().join("h"), dir.path().join("b"));
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "60", "-o"])
            .arg(&body)
            .arg("-D")
            .arg(&headers)
            .args(["-w", "%{http_code}"]);
        if let Some(ca) = &self.cacert {
            cmd.arg("--cacert").arg(ca);
        }
        let out = cmd.args(args).output().expect("curl runs");
        let status = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        Answer {
            status,
            headers: std::fs::read_to_string(&headers).unwrap_or_default(),
            body: std::fs::read(&body).unwrap_or_default(),
        }
    }

    fn post(&self, token: &str, path: &str) -> Answer {
        let url = format!("{}{path}", self.base);
        let auth = format!("Authorization: Bearer {token}");
        self.curl(&["-X", "POST", &url, "-H", &auth])
    }

    fn get(&self, token: Option<&str>, path: &str) -> Answer {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Authorization: Bearer {t}"));
        let mut args = vec![url.as_str()];
        if let Some(a) = &auth {
            args.extend(["-H", a]);
        }
        self.curl(&args)
    }

    /// `POST /v1/imports` with `files` as `file` parts and `fields` as text fields.
    fn upload(&self, token: &str, files: &[&Path], fields: &[(&str, &str)]) -> Answer {
        let url = format!("{}/v1/imports", self.base);
        let auth = format!("Authorization: Bearer {token}");
        let mut parts: Vec<String> = files
            .iter()
            .map(|f| format!("file=@{}", f.display()))
            .collect();
        parts.extend(fields.iter().map(|(k, v)| format!("{k}={v}")));
        let mut args = vec![url.as_str(), "-H", auth.as_str()];
        for p in &parts {
            args.extend(["-F", p]);
        }
        self.curl(&args)
    }

    /// Uploads and checks the answer is `202 queued` with its Location; returns the id.
    fn accepted(&self, token: &str, files: &[&Path], fields: &[(&str, &str)]) -> String {
        let a = self.upload(token, files, fields);
        assert_eq!(a.status, 202, "{}", a.text());
        let body = a.json();
        assert_eq!(body["status"], "queued", "{body}");
        let id = body["id"].as_str().expect("an id").to_owned();
        assert_eq!(a.header("location"), Some(format!("/v1/imports/{id}")));
        id
    }

    /// Polls the import until its status is one of `until`; returns the status body.
    fn wait(&self, token: &str, id: &str, until: &[&str]) -> Value {
        let start = Instant::now();
        loop {
            let a = self.get(Some(token), &format!("/v1/imports/{id}"));
            assert_eq!(a.status, 200, "{}", a.text());
            let body = a.json();
            if until.contains(&body["status"].as_str().unwrap_or_default()) {
                return body;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "import {id} never reached {until:?}: {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A fresh install of `backend` serving the API (with `extra` environment), and its API.
fn serving(backend: &str, extra: &[(&str, &str)]) -> (Install, Api) {
    let (install, base) = match backend {
        "embedded" => {
            let mut i = Install::embedded();
            for (k, v) in extra {
                i.set_env(k, v);
            }
            let base = i.serve_api();
            (i, base)
        }
        "served" => {
            let mut i = Install::on_broker(extra, "served");
            let base = i.serve_api();
            (i, base)
        }
        "distributed" => {
            let addr = free_addr();
            let mut env = extra.to_vec();
            env.push(("ROSTER_API_ADDR", &addr));
            let i = Install::distributed_with(&env);
            i.wait_for_port(&addr);
            (i, format!("http://{addr}"))
        }
        other => panic!("no backend {other}"),
    };
    (install, Api { base, cacert: None })
}

/// A token of tenant `t` made with `roster tokens create`.
fn token(i: &Install, t: &str, sandbox: bool) -> String {
    let mut args = vec!["tokens", "create", "--tenant", t, "--json"];
    if sandbox {
        args.push("--sandbox");
    }
    let ran = i.roster(&args);
    assert_eq!(ran.code, 0, "tokens create: {}", ran.stderr);
    ran.json()["token"].as_str().expect("a token").to_owned()
}

fn runs(i: &Install, t: &str) -> Vec<Value> {
    let ran = i.roster(&["runs", "--tenant", t, "--json"]);
    assert_eq!(ran.code, 0, "runs: {}", ran.stderr);
    ran.json().as_array().cloned().unwrap_or_default()
}

/// Files under `dir`, recursively (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Uploads go through, are polled to `done`, `held` and `rejected`, name their row errors
/// and rejected rows, bring bundles, and the sandbox (and `dry_run`) changes nothing.
pub fn uploads_are_imported_polled_and_tried_in_the_sandbox(backend: &str) {
    // Held when a run would deactivate more than half the people, however few.
    let (i, api) = serving(
        backend,
        &[
            ("ROSTER_DEACTIVATE_FLOOR", "0"),
            ("ROSTER_MAX_DEACTIVATE_PERCENT", "50"),
        ],
    );
    let t = tenant("api");
    let (live, sandbox) = (token(&i, &t, false), token(&i, &t, true));
    let people = i.file("people.csv", PEOPLE);
    let id = api.accepted(&live, &[&people], &[("type", "people"), ("mode", "full")]);
    let done = api.wait(&live, &id, &["done", "held", "rejected", "error"]);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["state"], "applied");
    assert_eq!(done["dry_run"], false);
    let c = &done["counts"];
    assert_eq!(
        (
            c["rows_read"].as_u64(),
            c["created"].as_u64(),
            c["rejected"].as_u64()
        ),
        (Some(4), Some(3), Some(1)),
        "{done}"
    );
    let error = &done["errors"][0];
    assert_eq!(error["line"], 5, "the editor's line of the bad row: {done}");
    assert_eq!(error["column"], "Primary Email");
    assert!(done["finished_at"].is_string() && done["created_at"].is_string());
    let rejects = api.get(Some(&live), &format!("/v1/imports/{id}/rejects"));
    assert_eq!(rejects.status, 200);
    assert!(
        rejects
            .header("content-type")
            .unwrap()
            .starts_with("text/csv")
    );
    let text = rejects.text();
    assert!(
        text.contains("not-an-email,Nobody,None") && !text.contains("ann@x.com"),
        "{text}"
    );
    // A live import's changes are not kept.
    api.get(Some(&live), &format!("/v1/imports/{id}/changes"))
        .refused(409, "not_a_dry_run");
    assert_eq!(i.emails(&t, false), ["ann@x.com", "bo@x.com", "cy@x.com"]);

    // The sandbox: Ann renamed, Cy gone; reported, listed, and nothing written.
    let tried = i.file(
        "tried.csv",
        "Primary Email,Name,Job Title\nann@x.com,Ann Park,Engineer\nbo@x.com,Bo Chen,Designer\n",
    );
    let before = i.directory_csv(&t, true);
    for (token, fields) in [(&sandbox, vec![]), (&live, vec![("dry_run", "true")])] {
        let id = api.accepted(token, &[&tried], &fields);
        let planned = api.wait(token, &id, &["done", "held", "rejected", "error"]);
        assert_eq!(planned["status"], "done", "{planned}");
        assert_eq!(
            (&planned["state"], &planned["dry_run"]),
            (&"planned".into(), &true.into())
        );
        let c = &planned["counts"];
        assert_eq!(
            (
                c["updated"].as_u64(),
                c["deactivated"].as_u64(),
                c["unchanged"].as_u64()
            ),
            (Some(1), Some(1), Some(1)),
            "{planned}"
        );
        let changes = api.get(Some(token), &format!("/v1/imports/{id}/changes"));
        assert_eq!(changes.status, 200, "{}", changes.text());
        let lines: Vec<Value> = changes
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kinds: Vec<(&str, &str)> = lines
            .iter()
            .map(|c| (c["kind"].as_str().unwrap(), c["email"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [("updated", "ann@x.com"), ("deactivated", "cy@x.com")]
        );
        let renamed = serde_json::json!({"field": "last_name", "old": "Lee", "new": "Park"});
        assert!(
            lines[0]["changed"].as_array().unwrap().contains(&renamed),
            "{}",
            lines[0]
        );
        // Its review is the list `roster import --dry-run --changes` makes of the file.
        let review = api.get(Some(token), &format!("/v1/imports/{id}/review"));
        assert_eq!(review.status, 200, "{}", review.text());
        let review = review.json();
        let local = i.roster(&[
            "import",
            "--tenant",
            &t,
            "--dry-run",
            "--changes",
            "--json",
            tried.to_str().unwrap(),
        ]);
        let local = local.json();
        for key in ["held_by", "totals", "changes"] {
            assert_eq!(review[key], local[key], "{key}: {review} vs {local}");
        }
        assert_eq!(review["totals"]["deactivated"], 1, "{review}");
        assert_eq!(i.directory_csv(&t, true), before, "a dry run wrote nothing");
    }
    // A live run would take the dry run's place in no way: the next live import still
    // plans against the directory as it is.
    let only_ann = i.file("only-ann.csv", "Primary Email,Name\nann@x.com,Ann Lee\n");
    let id = api.accepted(&live, &[&only_ann], &[]);
    let held = api.wait(&live, &id, &["done", "held", "rejected", "error"]);
    assert_eq!(
        (&held["status"], &held["state"]),
        (&"held".into(), &"held".into()),
        "{held}"
    );
    assert!(
        held["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{held}"
    );
    assert_eq!(
        i.emails(&t, false).len(),
        3,
        "a held import deactivates no one"
    );
    // Reviewed field by field, as `roster runs show --changes --json` lists it.
    let review = api.get(Some(&live), &format!("/v1/imports/{id}/review"));
    assert_eq!(review.status, 200, "{}", review.text());
    let review = review.json();
    assert_eq!(review["held_by"][0], "deactivations", "{review}");
    assert_eq!(review["totals"]["deactivated"], 2, "{review}");
    let cli = i
        .roster(&["runs", "show", &id, "--changes", "--json"])
        .json();
    assert_eq!(review, cli, "the API and the command line list the same");
    // The sandbox cannot see it, a live token can approve it once.
    api.post(&sandbox, &format!("/v1/imports/{id}/approve"))
        .refused(404, "not_found");
    let approved = api.post(&live, &format!("/v1/imports/{id}/approve"));
    assert_eq!(approved.status, 202, "{}", approved.text());
    let done = api.wait(&live, &id, &["done", "held", "rejected", "error"]);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counts"]["deactivated"], 2, "{done}");
    assert_eq!(i.emails(&t, false), ["ann@x.com"]);
    api.post(&live, &format!("/v1/imports/{id}/approve"))
        .refused(409, "not_held");
    // Another held one, rejected: nothing applied.
    let everyone = i.file(
        "everyone.csv",
        "Primary Email,Name\nann@x.com,Ann Lee\nbo@x.com,Bo Chen\ncy@x.com,Cy Diaz\n",
    );
    let back = api.accepted(&live, &[&everyone], &[]);
    let back = api.wait(&live, &back, &["done", "held", "rejected", "error"]);
    assert_eq!(back["status"], "done", "{back}");
    let id = api.accepted(&live, &[&only_ann], &[]);
    let held = api.wait(&live, &id, &["done", "held", "rejected", "error"]);
    assert_eq!(held["status"], "held", "{held}");
    let rejected = api.post(&live, &format!("/v1/imports/{id}/reject"));
    assert_eq!(rejected.status, 200, "{}", rejected.text());
    assert_eq!(
        (&rejected.json()["status"], &rejected.json()["state"]),
        (&"rejected".into(), &"rejected".into())
    );
    api.get(Some(&live), &format!("/v1/imports/{id}/review"))
        .refused(409, "no_changes");
    assert_eq!(
        i.emails(&t, false).len(),
        3,
        "a rejected import changes nothing"
    );

    // A file without an email column is refused as a whole.
    let nameless = i.file("names.csv", "Name,Title\nAnn,Engineer\n");
    let id = api.accepted(&live, &[&nameless], &[]);
    let rejected = api.wait(&live, &id, &["done", "held", "rejected", "error"]);
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert!(
        rejected["reason"]
            .as_str()
            .is_some_and(|r| r.contains("names.csv")),
        "{rejected}"
    );

    // A Windows export without a byte-order mark, in windows-1252, named so.
    let w = tenant("apilatin");
    let latin_token = token(&i, &w, false);
    let latin = i.file(
        "latin.csv",
        b"Primary Email;Name\r\npierre@widget.com;Pierre Lef\xe8vre\r\n".as_slice(),
    );
    let id = api.accepted(&latin_token, &[&latin], &[("encoding", "windows-1252")]);
    let done = api.wait(&latin_token, &id, &["done", "held", "rejected", "error"]);
    assert_eq!(done["status"], "done", "{done}");
    let people = i.directory(&w, false);
    assert_eq!(people[0]["last_name"], "Lefèvre", "{people:?}");

    // A bundle's three files in one upload.
    let b = tenant("apibundle");
    let bundle_token = token(&i, &b, false);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle");
    let files = ["users.csv", "groups.csv", "groups-mapping.csv"].map(|f| fixtures.join(f));
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let id = api.accepted(&bundle_token, &refs, &[("type", "bundle")]);
    let done = api.wait(&bundle_token, &id, &["done", "held", "rejected", "error"]);
    assert_eq!(done["status"], "done", "{done}");
    assert!(
        done["related"]["groups_created"].as_u64() > Some(0),
        "{done}"
    );
    let groups = i.roster(&["groups", "--tenant", &b, "--json"]).json();
    assert!(!groups.as_array().unwrap().is_empty(), "{groups}");
}

/// With the stages stopped and started, an import is seen `queued`, then `processing`;
/// one whose snapshot is lost ends `error` (distributed: the stages are processes).
#[test]
fn an_import_is_queued_then_processing_and_a_failed_one_is_an_error() {
    let (mut i, api) = serving(
        "distributed",
        &[("ROSTER_MAX_ATTEMPTS", "2"), ("ROSTER_RETRY_BASE_MS", "50")],
    );
    let t = tenant("apistates");
    let live = token(&i, &t, false);
    i.kill_stage("parser");
    i.kill_stage("differ");
    let people = i.file("people.csv", PEOPLE);
    let id = api.accepted(&live, &[&people], &[]);
    let queued = api.get(Some(&live), &format!("/v1/imports/{id}")).json();
    assert_eq!(
        (&queued["status"], &queued["state"]),
        (&"queued".into(), &"fetched".into())
    );
    // Not read yet: its rejects are not there to give.
    api.get(Some(&live), &format!("/v1/imports/{id}/rejects"))
        .refused(409, "not_ready");
    i.start_stage("parser");
    let processing = api.wait(&live, &id, &["processing"]);
    assert_eq!(processing["state"], "parsed");
    assert_eq!(processing["counts"]["rows_read"], 4);
    // The snapshot is lost before the differ reads it: it fails, and says so.
    let snapshots = Path::new(i.env("ROSTER_DATA_DIR").unwrap()).join("blobs/snapshots");
    let lost = files_under(&snapshots);
    assert_eq!(lost.len(), 1, "{lost:?}");
    std::fs::remove_file(&lost[0]).unwrap();
    i.start_stage("differ");
    let failed = api.wait(&live, &id, &["done", "held", "rejected", "error"]);
    assert_eq!(
        (&failed["status"], &failed["state"]),
        (&"error".into(), &"failed".into()),
        "{failed}"
    );
    assert!(
        failed["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{failed}"
    );
    assert!(i.emails(&t, false).is_empty());
}

/// Every refusal is a JSON error with its code and stores nothing: no run, no raw file,
/// nothing left in the scratch area.
#[test]
fn refusals_answer_json_with_a_code_and_store_nothing() {
    let (i, api) = serving("embedded", &[("ROSTER_MAX_FILE_BYTES", "4096")]);
    let t = tenant("apirefuse");
    let live = token(&i, &t, false);
    let people = i.file("people.csv", PEOPLE);
    let url = format!("{}/v1/imports", api.base);

    let none = api.curl(&[&url, "-F", &format!("file=@{}", people.display())]);
    none.refused(401, "missing_token");
    assert!(
        none.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    api.upload("not-a-token", &[&people], &[])
        .refused(401, "invalid_token");
    // The right id with another secret.
    let (id_part, _) = live.rsplit_once('_').unwrap();
    let forged = format!("{id_part}_{}", "0".repeat(64));
    api.upload(&forged, &[&people], &[])
        .refused(401, "invalid_token");
    let revoked = token(&i, &t, false);
    let revoked_id = revoked.split('_').nth(1).unwrap();
    assert_eq!(
        api.upload(&revoked, &[&people], &[("dry_run", "true")])
            .status,
        202
    );
    let ran = i.roster(&["tokens", "revoke", revoked_id]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    api.upload(&revoked, &[&people], &[])
        .refused(403, "token_revoked");
    api.get(
        Some(&revoked),
        "/v1/imports/00000000-0000-0000-0000-000000000000",
    )
    .refused(403, "token_revoked");
    let listed = i
        .roster(&["tokens", "list", "--tenant", &t, "--json"])
        .json();
    assert!(listed.to_string().contains("revoked_at"), "{listed}");
    assert!(
        !listed.to_string().contains(&live[20..]),
        "no secret is listed: {listed}"
    );
    assert_eq!(i.roster(&["tokens", "revoke", "0123456789abcdef"]).code, 2);

    // One upload (a dry run) so far; everything below must leave that as it is.
    let data = Path::new(i.env("ROSTER_DATA_DIR").unwrap());
    let stored_before = files_under(&data.join("blobs/raw"));
    let runs_before = runs(&i, &t);
    assert_eq!(runs_before.len(), 1);

    let big = i.file(
        "big.csv",
        format!("Primary Email,Name\n{}", "a@x.com,A\n".repeat(500)),
    );
    api.upload(&live, &[&big], &[]).refused(413, "too_large");
    let half = i.file(
        "half.csv",
        format!("Primary Email,Name\n{}", "b@x.com,B\n".repeat(250)),
    );
    let other_half = i.file(
        "other.csv",
        format!("Primary Email,Name\n{}", "c@x.com,C\n".repeat(250)),
    );
    api.upload(&live, &[&half, &other_half], &[("type", "bundle")])
        .refused(413, "too_large");
    let auth = format!("Authorization: Bearer {live}");
    api.curl(&[
        &url,
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
    ])
    .refused(415, "unsupported_media_type");
    let png = format!("file=@{};type=image/png", people.display());
    api.curl(&[&url, "-H", &auth, "-F", &png])
        .refused(415, "unsupported_media_type");
    let pdf = i.file("people.csv.pdf", "%PDF-1.7\n...");
    api.upload(&live, &[&pdf], &[])
        .refused(415, "unsupported_media_type");
    api.upload(&live, &[&people], &[("type", "xlsx")])
        .refused(422, "unknown_type");
    api.upload(&live, &[&people], &[("mode", "sometimes")])
        .refused(422, "invalid_field");
    api.upload(&live, &[&people], &[("dry_run", "maybe")])
        .refused(422, "invalid_field");
    api.upload(&live, &[&people], &[("colour", "blue")])
        .refused(422, "invalid_field");
    api.upload(&live, &[&people], &[("sync_manager_email", "admin")])
        .refused(422, "invalid_field");
    api.upload(&live, &[&people], &[("encoding", "klingon")])
        .refused(422, "invalid_field");
    api.upload(&live, &[], &[("type", "people")])
        .refused(422, "missing_file");
    api.upload(&live, &[&people, &half], &[("type", "people")])
        .refused(422, "too_many_files");
    // A body cut before its closing boundary.
    let cut = "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.csv\"\r\n\r\n\
               Primary Email\r\nann@x.com\r\n";
    api.curl(&[
        &url,
        "-H",
        &auth,
        "-H",
        "Content-Type: multipart/form-data; boundary=XYZ",
        "--data-binary",
        cut,
    ])
    .refused(422, "malformed_multipart");

    assert_eq!(runs(&i, &t), runs_before, "no refused upload made a run");
    assert_eq!(files_under(&data.join("blobs/raw")), stored_before);
    let scratch = files_under(&data.join("blobs/.scratch"));
    assert!(scratch.is_empty(), "left behind: {scratch:?}");
    assert!(i.emails(&t, true).is_empty());
}

/// A tenant's rate limit answers 429 with Retry-After, and the refused upload stores
/// nothing.
#[test]
fn over_the_rate_limit_is_429_with_retry_after() {
    let (i, api) = serving("embedded", &[("ROSTER_API_RATE_PER_MINUTE", "2")]);
    let t = tenant("apirate");
    let live = token(&i, &t, false);
    let unknown = "/v1/imports/00000000-0000-0000-0000-000000000000";
    api.get(Some(&live), unknown).refused(404, "not_found");
    api.get(Some(&live), unknown).refused(404, "not_found");
    let people = i.file("people.csv", PEOPLE);
    let limited = api.upload(&live, &[&people], &[]);
    limited.refused(429, "rate_limited");
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(runs(&i, &t).is_empty());
    // Another tenant has its own allowance.
    let other = tenant("apirate2");
    api.get(Some(&token(&i, &other, false)), unknown)
        .refused(404, "not_found");
}

/// One tenant's token can neither see nor fetch another's imports, and a sandbox token
/// sees only the dry runs.
#[test]
fn a_token_sees_only_its_own_tenants_imports() {
    let (i, api) = serving("embedded", &[]);
    let (a, b) = (tenant("apia"), tenant("apib"));
    let (a_live, a_sandbox, b_live) = (
        token(&i, &a, false),
        token(&i, &a, true),
        token(&i, &b, false),
    );
    let people = i.file("people.csv", PEOPLE);
    let live_id = api.accepted(&a_live, &[&people], &[]);
    let dry_id = api.accepted(&a_sandbox, &[&people], &[]);
    api.wait(&a_live, &live_id, &["done"]);
    let dry = api.wait(&a_live, &dry_id, &["done"]);
    assert_eq!(
        dry["dry_run"], true,
        "a live token sees its tenant's dry runs"
    );
    for id in [&live_id, &dry_id] {
        for path in ["", "/rejects", "/changes"] {
            api.get(Some(&b_live), &format!("/v1/imports/{id}{path}"))
                .refused(404, "not_found");
        }
    }
    for path in ["", "/rejects", "/changes"] {
        api.get(Some(&a_sandbox), &format!("/v1/imports/{live_id}{path}"))
            .refused(404, "not_found");
    }
    assert_eq!(
        api.get(Some(&a_sandbox), &format!("/v1/imports/{dry_id}"))
            .status,
        200
    );
    api.get(Some(&a_live), "/v1/imports/not-an-id")
        .refused(404, "not_found");
    assert!(i.emails(&b, true).is_empty());
    assert_eq!(i.emails(&a, true).len(), 3);
}

/// Over TLS (rustls, a certificate from `ROSTER_API_TLS_CERT`/`_KEY`) the API answers
/// as over plain HTTP, and serves the OpenAPI document kept in the repository.
#[test]
fn tls_serves_the_api_and_its_openapi_document() {
    let mut i = Install::embedded();
    let (cert, key) = (i.path().join("cert.pem"), i.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    i.set_env("ROSTER_API_TLS_CERT", cert.to_str().unwrap());
    i.set_env("ROSTER_API_TLS_KEY", key.to_str().unwrap());
    let plain = i.serve_api();
    let api = Api {
        base: plain.replace("http://", "https://"),
        cacert: Some(cert),
    };
    let served = api.get(None, "/v1/openapi.json");
    assert_eq!(served.status, 200, "{}", served.text());
    let kept: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        served.json(),
        kept,
        "the served document is the one in docs/openapi.json"
    );
    let t = tenant("apitls");
    let live = token(&i, &t, false);
    let id = api.accepted(&live, &[&i.file("people.csv", PEOPLE)], &[]);
    assert_eq!(api.wait(&live, &id, &["done"])["counts"]["created"], 3);
    // Plain HTTP to the TLS port gets no answer.
    let insecure = Api {
        base: plain,
        cacert: None,
    };
    assert_eq!(insecure.get(None, "/v1/openapi.json").status, 0);
}

/// schemathesis (`ROSTER_TEST_SCHEMATHESIS`, installed by `scripts/test.sh` from PyPI)
/// against the served document: no 5xx, every answer as the document says (status,
/// content type, headers, body schema), authentication enforced, uploads followed by their
/// links. Not checked: that every schema-valid upload is accepted, since a PNG is a
/// schema-valid binary that Roster refuses by its content (415).
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    let st = std::env::var("ROSTER_TEST_SCHEMATHESIS").unwrap_or_else(|_| "st".into());
    let (i, api) = serving("embedded", &[("ROSTER_API_RATE_PER_MINUTE", "1000000")]);
    let t = tenant("apifuzz");
    let live = token(&i, &t, false);
    let out = Command::new(&st)
        .arg("run")
        .arg(format!("{}/v1/openapi.json", api.base))
        .args(["-H", &format!("Authorization: Bearer {live}")])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", "40", "--workers", "2", "--seed", "1"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("schemathesis ({st}) runs: {e}; scripts/test.sh installs it and sets ROSTER_TEST_SCHEMATHESIS")
        });
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("Stateful"), "{report}");
    assert!(!i.logs().contains("panicked"), "{}", i.logs());
}

macro_rules! backends {
    ($($backend:ident),*) => {
        $(
            mod $backend {
                #[test]
                fn uploads_are_imported_polled_and_tried_in_the_sandbox() {
                    super::uploads_are_imported_polled_and_tried_in_the_sandbox(stringify!($backend));
                }
            }
        )*
    };
}

backends!(embedded, served, distributed);
