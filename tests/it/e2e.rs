//! End-to-end cases through the `roster` command line, written once and run against every
//! backend (see the `backends!` list at the bottom).

use serde_json::Value;

use crate::harness::{Install, tenant};

const THREE: &str = "Email,Name,Title,Status,Office\n\
ak@veris.in,Amit Kumar,Software Engineer,active,HQ\n\
frank@widget.com,Frank Williams,Sales Executive,active,Chicago\n\
pierre@widget.com,Pierre Lefèvre,Account Manager,active,Paris\n";

/// The directory row of `email` (as [`Install::directory`] gives rows).
fn row<'a>(rows: &'a [crate::harness::Row], email: &str) -> &'a crate::harness::Row {
    rows.iter()
        .find(|r| r["email"] == email)
        .unwrap_or_else(|| panic!("{email} is not in the directory"))
}

/// The person `email` of a `directory --format json` listing.
fn person<'a>(people: &'a Value, email: &str) -> &'a Value {
    people
        .as_array()
        .expect("a JSON list")
        .iter()
        .find(|p| p["email"] == email)
        .unwrap_or_else(|| panic!("{email} is not in {people}"))
}

fn counts(s: &Value) -> [u64; 5] {
    [
        "created",
        "updated",
        "deactivated",
        "reactivated",
        "unchanged",
    ]
    .map(|k| {
        s[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {s}"))
    })
}

pub fn import_then_directory(i: &Install) {
    let t = tenant("acme");
    let s = i.import_ok(&t, &i.file("people.csv", THREE), &[]);
    assert_eq!(counts(&s), [3, 0, 0, 0, 0]);
    assert_eq!(s["rows_read"], 3);
    assert_eq!(s["tenant"], t.as_str());
    assert!(s["run_id"].as_str().is_some_and(|r| r.len() == 36));
    assert_eq!(
        i.directory_csv(&t, false),
        "email,employee_id,first_name,last_name,display_name,job_title,department,phone,active,group,organization,site,location,locale,time_zone,manager_email\n\
ak@veris.in,,Amit,Kumar,Amit Kumar,Software Engineer,,,true,HQ,,,,,,\n\
frank@widget.com,,Frank,Williams,Frank Williams,Sales Executive,,,true,Chicago,,,,,,\n\
pierre@widget.com,,Pierre,Lefèvre,Pierre Lefèvre,Account Manager,,,true,Paris,,,,,,\n"
    );
    let runs = i.roster(&["runs", "--tenant", &t, "--json"]).json();
    assert_eq!(runs[0]["state"], "applied");
    assert_eq!(runs[0]["created"], 3);
}

pub fn reimport_changes_nothing(i: &Install) {
    let t = tenant("acme");
    let f = i.file("people.csv", THREE);
    i.import_ok(&t, &f, &[]);
    let before = i.directory_csv(&t, true);
    let s = i.import_ok(&t, &f, &[]);
    assert_eq!(counts(&s), [0, 0, 0, 0, 3]);
    assert_eq!(i.directory_csv(&t, true), before);
}

/// A file delivered again with the content of the tenant's last applied run ends at
/// fetch time, reporting everyone unchanged; anything that could make it change people (a
/// mapping, another run since) sends it through the whole pipeline again.
pub fn a_file_delivered_again_ends_when_fetched(i: &Install) {
    let t = tenant("acme");
    let bad_row = "nobody-at-all,No Body,Clerk,active,HQ\n";
    let f = i.file("people.csv", format!("{THREE}{bad_row}"));
    let first = i.import_ok(&t, &f, &[]);
    assert_eq!(counts(&first), [3, 0, 0, 0, 0]);
    let again = i.import_ok(&t, &i.file("monday.csv", format!("{THREE}{bad_row}")), &[]);
    assert_eq!(counts(&again), [0, 0, 0, 0, 3]);
    assert_eq!(
        (again["rows_read"].as_u64(), again["rejected"].as_u64()),
        (Some(4), Some(1))
    );
    let runs = i.roster(&["runs", "--tenant", &t, "--json"]).json();
    assert_eq!(runs[0]["state"], "applied");
    let reason = runs[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "the same content as run {}",
            first["run_id"].as_str().unwrap()
        )),
        "{reason}"
    );
    assert!(
        runs[0]["parse_ms"].is_null(),
        "not parsed again: {:#}",
        runs[0]
    );
    let errors = &again["errors"];
    assert_eq!(
        errors.as_array().map(Vec::len),
        Some(1),
        "row errors kept: {again:#}"
    );

    // The same people in another order are another file: parsed and compared.
    let reordered: String = THREE.lines().rev().map(|l| format!("{l}\n")).collect();
    let header = "Email,Name,Title,Status,Office\n";
    let body = reordered.replace(header, "");
    let s = i.import_ok(&t, &i.file("shuffled.csv", format!("{header}{body}")), &[]);
    assert_eq!(counts(&s), [0, 0, 0, 0, 3]);
    let runs = i.roster(&["runs", "--tenant", &t, "--json"]).json();
    assert!(runs[0]["parse_ms"].is_i64(), "parsed: {:#}", runs[0]);

    // After another run, the first file again is a change (it brings back Pierre).
    let two: String = THREE.lines().take(3).map(|l| format!("{l}\n")).collect();
    let s = i.import_ok(&t, &i.file("two.csv", &two), &[]);
    assert_eq!(counts(&s), [0, 0, 1, 0, 2]);
    let s = i.import_ok(&t, &f, &[]);
    assert_eq!(counts(&s), [0, 0, 0, 1, 2]);
    // A new mapping reads the same bytes differently: parsed again, and it changes people.
    let ran = i.roster(&["mapping", "set", "--tenant", &t, "Office", "site"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let s = i.import_ok(&t, &f, &[]);
    assert_eq!(counts(&s), [0, 3, 0, 0, 0], "{s:#}");
    assert_eq!(i.directory(&t, false)[0]["site"], "HQ");
}

pub fn full_mode_deactivates_the_missing_and_keeps_them(i: &Install) {
    let t = tenant("acme");
    i.import_ok(&t, &i.file("all.csv", THREE), &[]);
    let two: String = THREE.lines().take(3).map(|l| format!("{l}\n")).collect();
    let s = i.import_ok(&t, &i.file("two.csv", &two), &[]);
    assert_eq!(counts(&s), [0, 0, 1, 0, 2]);
    assert_eq!(i.emails(&t, false), ["ak@veris.in", "frank@widget.com"]);
    let all = i.directory(&t, true);
    assert_eq!(all.len(), 3, "deactivated, never deleted");
    assert_eq!(all[2]["email"], "pierre@widget.com");
    assert_eq!(all[2]["active"], "false");
    assert_eq!(all[2]["job_title"], "Account Manager", "history stays");
    // Back again: reactivated.
    let s = i.import_ok(&t, &i.file("all.csv", THREE), &[]);
    assert_eq!(counts(&s), [0, 0, 0, 1, 2]);
    assert_eq!(i.emails(&t, false).len(), 3);
}

pub fn delta_mode_changes_only_rows_present(i: &Install) {
    let t = tenant("acme");
    i.import_ok(&t, &i.file("all.csv", THREE), &[]);
    let delta = "Email,Name,Title,Status,Office\n\
frank@widget.com,Frank Williams,Sales Director,active,Chicago\n\
pierre@widget.com,Pierre Lefèvre,Account Manager,inactive,Paris\n\
neha@veris.in,Neha Sharma,Receptionist,active,Mumbai\n";
    let s = i.import_ok(&t, &i.file("delta.csv", delta), &["--mode", "delta"]);
    assert_eq!(counts(&s), [1, 1, 1, 0, 0]);
    let all = i.directory(&t, true);
    let by: std::collections::BTreeMap<_, _> =
        all.iter().map(|r| (r["email"].as_str(), r)).collect();
    assert_eq!(
        by["ak@veris.in"]["active"], "true",
        "absent from a delta: untouched"
    );
    assert_eq!(by["frank@widget.com"]["job_title"], "Sales Director");
    assert_eq!(by["pierre@widget.com"]["active"], "false");
    assert_eq!(by["neha@veris.in"]["active"], "true");
    let runs = i.roster(&["runs", "--tenant", &t, "--json"]).json();
    assert_eq!(runs[0]["mode"], "delta");
}

pub fn tenants_with_the_same_emails_are_kept_apart(i: &Install) {
    let (a, b) = (tenant("a"), tenant("b"));
    i.import_ok(&a, &i.file("a.csv", THREE), &[]);
    let other = THREE.replace("Software Engineer", "CTO");
    i.import_ok(&b, &i.file("b.csv", &other), &[]);
    assert_eq!(i.directory(&a, false)[0]["job_title"], "Software Engineer");
    assert_eq!(i.directory(&b, false)[0]["job_title"], "CTO");
    // A full import of B with one person deactivates only B's people.
    let one = "Email\nak@veris.in\n";
    let s = i.import_ok(&b, &i.file("b1.csv", one), &[]);
    assert_eq!(s["deactivated"], 2);
    assert_eq!(i.emails(&a, false).len(), 3);
    assert_eq!(i.emails(&b, false), ["ak@veris.in"]);
}

pub fn a_rejected_file_exits_2_and_writes_nothing(i: &Install) {
    let t = tenant("acme");
    i.import_ok(&t, &i.file("good.csv", THREE), &[]);
    let before = i.directory_csv(&t, true);
    let (code, s) = i.import(&t, &i.file("nomail.csv", "Name,Phone\nA B,1\n"), &[]);
    assert_eq!(code, 2, "{s:#}");
    assert_eq!(s["status"], "rejected");
    let msg = s["errors"][0]["message"].as_str().unwrap();
    assert!(msg.starts_with("nomail.csv: no email column"), "{msg}");
    let (code, s) = i.import(&t, &i.file("book.xlsx", b"PK\x03\x04\x14\x00\x06\x00"), &[]);
    assert_eq!(code, 2, "{s:#}");
    assert!(
        s["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not text")
    );
    let (code, s) = i.import(
        &t,
        &i.file("latin1.csv", b"Email,Name\na@x.com,Ren\xe9\n"),
        &[],
    );
    assert_eq!(code, 2, "{s:#}");
    let msg = s["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("latin1.csv: line 2, column 2"), "{msg}");
    assert_eq!(i.directory_csv(&t, true), before, "nothing written");

    // Each refused file waits among the parser's dead letters; an operator may give up one.
    let dead = i.roster(&["dlq", "list", "--tenant", &t, "--json"]).json();
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 3, "{dead:#?}");
    assert!(dead.iter().all(|d| d["stage"] == "parser"), "{dead:#?}");
    let id = dead[0]["id"].as_str().unwrap();
    let dropped = i.roster(&["dlq", "drop", id]);
    assert_eq!(dropped.code, 0, "{}", dropped.stderr);
    let left = i.roster(&["dlq", "list", "--tenant", &t, "--json"]).json();
    let left = left.as_array().unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|d| d["id"] != id));
    let all = i
        .roster(&["dlq", "list", "--tenant", &t, "--all", "--json"])
        .json();
    let was = all.as_array().unwrap().iter().find(|d| d["id"] == id);
    assert_eq!(
        was.map(|d| &d["status"]),
        Some(&serde_json::json!("dropped"))
    );
    let runs = i.roster(&["runs", "--tenant", &t, "--json"]).json();
    assert_eq!(runs[0]["state"], "rejected");
}

pub fn an_empty_full_file_deactivates_nobody(i: &Install) {
    let t = tenant("acme");
    i.import_ok(&t, &i.file("good.csv", THREE), &[]);
    let (code, s) = i.import(&t, &i.file("empty.csv", "Email,Name\n"), &[]);
    assert_eq!(code, 2, "{s:#}");
    assert!(
        s["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no usable people")
    );
    assert_eq!(i.emails(&t, false).len(), 3);
}

pub fn row_errors_are_reported_and_the_rest_applied(i: &Install) {
    let t = tenant("acme");
    let file = "Email,Name,Status\n\
a@x.com,A A,active\n\
,No Mail,active\n\
b@x.com,B B,sometimes\n\
a@x.com,A Again,active\n";
    let (code, s) = i.import(&t, &i.file("rows.csv", file), &[]);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["rejected"], 3);
    assert_eq!(s["created"], 1);
    let errors = s["errors"].as_array().unwrap();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 4, 5]);
    assert_eq!(errors[0]["column"], "Email");
    assert_eq!(errors[1]["column"], "Status");
    assert!(
        errors[2]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate email a@x.com")
    );
    assert_eq!(i.emails(&t, true), ["a@x.com"]);
}

pub fn a_failed_row_does_not_deactivate_its_person(i: &Install) {
    let t = tenant("acme");
    i.import_ok(&t, &i.file("good.csv", THREE), &[]);
    let bad = THREE.replace("Sales Executive,active", "Sales Executive,unknown");
    let (code, s) = i.import(&t, &i.file("bad.csv", &bad), &[]);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["deactivated"], 0);
    assert_eq!(s["rejected"], 1);
    assert_eq!(i.emails(&t, false).len(), 3);
}

pub fn dry_run_writes_nothing(i: &Install) {
    let t = tenant("acme");
    let f = i.file("people.csv", THREE);
    let (code, s) = i.import(&t, &f, &["--dry-run"]);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["status"], "dry_run");
    assert_eq!(counts(&s), [3, 0, 0, 0, 0]);
    assert!(s["run_id"].is_null());
    if i.backend == "embedded" {
        assert!(
            !i.path().join("roster.db").exists(),
            "a dry run creates no database"
        );
    }
    assert!(i.emails(&t, true).is_empty());
    assert!(
        i.roster(&["runs", "--tenant", &t, "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );

    i.import_ok(&t, &f, &[]);
    let before = i.directory_csv(&t, true);
    let changed = THREE.replace("Sales Executive", "Sales Director");
    let dump = i.path().join("dump.jsonl");
    let (_, s) = i.import(
        &t,
        &i.file("changed.csv", changed),
        &["--dry-run", "--dump", dump.to_str().unwrap()],
    );
    assert_eq!(counts(&s), [0, 1, 0, 0, 2]);
    assert_eq!(i.directory_csv(&t, true), before);
    let dumped = std::fs::read_to_string(&dump).unwrap();
    let change: Value = serde_json::from_str(dumped.lines().next().unwrap()).unwrap();
    assert_eq!(change["kind"], "updated");
    assert_eq!(change["changed"][0]["field"], "job_title");
    assert_eq!(change["changed"][0]["new"], "Sales Director");
    // A dry run of a bad file is refused like the real thing.
    let (code, s) = i.import(&t, &i.file("bad.csv", "Name\nX\n"), &["--dry-run"]);
    assert_eq!((code, s["status"].as_str()), (2, Some("rejected")));
}

pub fn mass_deactivation_is_held_until_approved(i: &Install) {
    let t = tenant("acme");
    let mut many = String::from("Email,Name\n");
    for n in 0..40 {
        many.push_str(&format!("p{n}@x.com,Person {n}\n"));
    }
    i.import_ok(&t, &i.file("many.csv", &many), &[]);
    let few: String = many.lines().take(6).map(|l| format!("{l}\n")).collect();
    let (code, s) = i.import(&t, &i.file("few.csv", &few), &[]);
    assert_eq!((code, s["status"].as_str()), (1, Some("held")), "{s:#}");
    let reason = s["reason"].as_str().unwrap();
    assert!(reason.contains("would deactivate 35 of 40"), "{reason}");
    assert_eq!(i.emails(&t, false).len(), 40, "nothing applied while held");
    let run = s["run_id"].as_str().unwrap();
    let ran = i.roster(&["approve", "--tenant", &t, "--json", run]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let s = ran.json();
    assert_eq!(s["status"], "applied");
    assert_eq!(s["deactivated"], 35);
    assert_eq!(i.emails(&t, false).len(), 5);
}

pub fn a_tenant_mapping_rescues_an_unknown_column(i: &Install) {
    let t = tenant("fr");
    let f = i.file(
        "fr.csv",
        "Courriel,Nom complet\nmarie@exemple.fr,Marie Curie\n",
    );
    let (code, _) = i.import(&t, &f, &[]);
    assert_eq!(code, 2);
    for (header, target) in [("Courriel", "email"), ("Nom complet", "name")] {
        let ran = i.roster(&["mapping", "set", "--tenant", &t, header, target]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    let bad = i.roster(&["mapping", "set", "--tenant", &t, "X", "shoe_size"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("not a field name"));
    i.import_ok(&t, &f, &[]);
    let rows = i.directory(&t, false);
    assert_eq!(rows[0]["email"], "marie@exemple.fr");
    assert_eq!(rows[0]["last_name"], "Curie");
}

pub fn web_service_json_and_seed_tsv(i: &Install) {
    let t = tenant("veris");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let s = i.import_ok(&t, &fixtures.join("veris.json"), &[]);
    assert_eq!(s["created"], 2);
    let rows = i.directory(&t, false);
    assert_eq!(rows[0]["email"], "ak@veris.in");
    assert_eq!(rows[0]["job_title"], "Software Engineer");
    assert_eq!(rows[1]["email"], "neha.sharma@veris.in");
    assert_eq!(rows[1]["group"], "Mumbai Office");
    let t = tenant("widget");
    i.import_ok(&t, &fixtures.join("people.tsv"), &["--format", "tsv"]);
    let rows = i.directory(&t, false);
    assert_eq!(rows[1]["last_name"], "Lefèvre");
    assert_eq!(rows[1]["organization"], "Widget France");
    assert_eq!(rows[0]["time_zone"], "Central Time (US & Canada)");
}

/// A column left out of a file leaves its field as stored (extra attributes too); an
/// empty cell in a column that is there blanks it. The dry run counts the same.
pub fn a_column_left_out_keeps_its_field(i: &Install) {
    let t = tenant("acme");
    let full = "Email,Name,Title,Office,Source\n\
ak@veris.in,Amit Kumar,Software Engineer,HQ,AD\n\
frank@widget.com,Frank Williams,Sales Executive,Chicago,AD\n";
    i.import_ok(&t, &i.file("full.csv", full), &[]);
    let before = i.directory_csv(&t, true);
    // Titles, offices and the source left out: nothing changes.
    let names = "Email,Name\nak@veris.in,Amit Kumar\nfrank@widget.com,Frank Williams\n";
    let f = i.file("names.csv", names);
    let (_, dry) = i.import(&t, &f, &["--dry-run"]);
    assert_eq!(counts(&dry), [0, 0, 0, 0, 2], "{dry:#}");
    let s = i.import_ok(&t, &f, &[]);
    assert_eq!(counts(&s), [0, 0, 0, 0, 2], "{s:#}");
    assert_eq!(i.directory_csv(&t, true), before);
    // A changed name updates the name and keeps the rest.
    let renamed = names.replace("Frank Williams", "Franklin Williams");
    let f = i.file("renamed.csv", &renamed);
    let (_, dry) = i.import(&t, &f, &["--dry-run"]);
    assert_eq!(counts(&dry), [0, 1, 0, 0, 1], "{dry:#}");
    let s = i.import_ok(&t, &f, &[]);
    assert_eq!(counts(&s), [0, 1, 0, 0, 1], "{s:#}");
    let rows = i.directory(&t, true);
    assert_eq!(rows[1]["first_name"], "Franklin");
    assert_eq!(rows[1]["job_title"], "Sales Executive", "left out, kept");
    assert_eq!(rows[1]["group"], "Chicago");
    // An empty cell in a column that is there blanks its field; the rest stays.
    let blank = "Email,Title,Source\nak@veris.in,,AD\nfrank@widget.com,Sales Director,\n";
    let s = i.import_ok(&t, &i.file("blank.csv", blank), &[]);
    assert_eq!(counts(&s), [0, 2, 0, 0, 0], "{s:#}");
    let rows = i.directory(&t, true);
    assert_eq!(rows[0]["job_title"], "");
    assert_eq!(rows[0]["first_name"], "Amit", "left out, kept");
    assert_eq!(rows[1]["job_title"], "Sales Director");
    assert_eq!(rows[1]["first_name"], "Franklin");
    assert_eq!(rows[1]["group"], "Chicago");
    let extras = i
        .roster(&["directory", "--tenant", &t, "--format", "json"])
        .json();
    let frank = person(&extras, "frank@widget.com");
    assert!(frank["extra"].get("Source").is_none(), "{frank}");
    let amit = person(&extras, "ak@veris.in");
    assert_eq!(amit["extra"]["Source"], "AD", "{amit}");
}

fn utf16le(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

/// `roster runs show RUN --rejects` writes the rejected rows of a UTF-16 semicolon file
/// in its own columns, delimiter, line ends and encoding, with `line` and `error`; fixed
/// and sent back as a delta, they apply.
pub fn a_reject_file_round_trip(i: &Install) {
    let t = tenant("acme");
    let text = "Email;Name;Status\r\n\
a@x.com;A A;active\r\n\
b@x.com;B B;sometimes\r\n\
;No mail;active\r\n";
    let (code, s) = i.import(&t, &i.file("people.csv", utf16le(text)), &[]);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["rejected"], 2);
    let run = s["run_id"].as_str().unwrap();
    let path = i.path().join("rejects.csv");
    let ran = i.roster(&[
        "runs",
        "show",
        run,
        "--rejects",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let rejects = "Email;Name;Status;line;error\r\n\
b@x.com;B B;sometimes;3;\"\"\"sometimes\"\" is not a status; use active/inactive, true/false, yes/no, 1/0 or enabled/disabled\"\r\n\
;No mail;active;4;missing email\r\n";
    assert_eq!(std::fs::read(&path).unwrap(), utf16le(rejects));
    let shown = i.roster(&["runs", "show", run, "--tenant", &t]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("line 4"), "{}", shown.stdout);
    let other = i.roster(&["runs", "show", run, "--tenant", &tenant("other")]);
    assert_eq!(other.code, 1, "another tenant's run is not shown");
    let fixed = rejects
        .replace(";sometimes;", ";active;")
        .replace(";No mail;", "c@x.com;No mail;");
    let s = i.import_ok(
        &t,
        &i.file("fixed.csv", utf16le(&fixed)),
        &["--mode", "delta"],
    );
    assert_eq!(counts(&s), [2, 0, 0, 0, 0], "{s:#}");
    assert_eq!(s["rejected"], 0);
    assert_eq!(i.emails(&t, false), ["a@x.com", "b@x.com", "c@x.com"]);
    let people = i
        .roster(&["directory", "--tenant", &t, "--format", "json"])
        .json();
    assert!(
        people
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["extra"].as_object().is_none_or(serde_json::Map::is_empty)),
        "{people}"
    );
}

/// SOAP 1.1 and 1.2 answers imported as files give the directory the JSON answer gives.
pub fn soap_answers_import_like_json(i: &Install) {
    let json = tenant("json");
    i.import_ok(&json, &fixture("veris.json"), &[]);
    let want = i.directory_csv(&json, true);
    for (name, extra) in [
        ("veris-soap11.xml", &[][..]),
        ("veris-soap12.xml", &["--format", "soap"][..]),
    ] {
        let t = tenant("soap");
        let s = i.import_ok(&t, &fixture(name), extra);
        assert_eq!(s["created"], 2, "{name}: {s:#}");
        assert_eq!(i.directory_csv(&t, true), want, "{name}");
    }
}

/// `roster mapping check` says how each column would be read and why, shows the first
/// rows as read, writes nothing, and exits 2 for a file that would be refused.
pub fn mapping_check_shows_how_a_file_is_read(i: &Install) {
    let t = tenant("fr");
    i.import_ok(&t, &i.file("people.csv", THREE), &[]);
    let before = i.directory_csv(&t, true);
    let ran = i.roster(&["mapping", "set", "--tenant", &t, "Courriel", "email"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let f = i.file(
        "fr.csv",
        "Courriel;Nom;Statut;Disabled\r\nmarie@exemple.fr;Marie Curie;x;0\r\n;Sans courriel;;1\r\n",
    );
    let ran = i.roster(&["mapping", "check", "--tenant", &t, f.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out = &ran.stdout;
    assert!(out.contains("delimited by ';'"), "{out}");
    assert!(
        out.contains("\"Courriel\" -> email (the tenant's mapping)"),
        "{out}"
    );
    assert!(
        out.contains("\"Nom\"      -> extra attribute \"Nom\""),
        "{out}"
    );
    assert!(
        out.contains("\"Disabled\" -> active (a true value"),
        "{out}"
    );
    assert!(
        out.contains("line 2: marie@exemple.fr ") && out.contains("extra \"Statut\"=\"x\""),
        "{out}"
    );
    assert!(
        out.contains("line 3: rejected: column \"Courriel\": missing email"),
        "{out}"
    );
    assert_eq!(i.directory_csv(&t, true), before, "a check writes nothing");
    let bad = i.file("bad.csv", "Name,Phone\nA,1\n");
    let ran = i.roster(&["mapping", "check", "--tenant", &t, bad.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{}", ran.stdout);
    assert!(ran.stdout.contains("no email column"), "{}", ran.stdout);
}

/// A tenant's `mapping:` in the tenants file: its own column names, columns ignored,
/// values rewritten and defaults; it replaces mappings made with `roster mapping set`.
pub fn a_tenants_file_mapping_reads_a_tenants_own_file(i: &Install) {
    let t = tenant("fr");
    let file = i.file(
        "tenants.yaml",
        format!(
            "tenants:\n  {t}:\n    mapping:\n      columns: {{Courriel: email, \"Nom complet\": name, Statut: active}}\n      \
             ignore: [Remarques]\n      values:\n        Statut: {{Parti: inactive, \"En congé\": active}}\n      \
             defaults: {{locale: fr-FR}}\n"
        ),
    );
    let ran = i.roster(&["tenants", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let listed = i.roster(&["mapping", "list", "--tenant", &t]);
    assert!(
        listed.stdout.contains("courriel\temail"),
        "{}",
        listed.stdout
    );
    let f = i.file(
        "fr.csv",
        "Courriel;Nom complet;Statut;Remarques\n\
marie@exemple.fr;Marie Curie;en congé;à rappeler\n\
pierre@exemple.fr;Pierre Curie;PARTI;\n",
    );
    let s = i.import_ok(&t, &f, &[]);
    assert_eq!(s["created"], 2, "{s:#}");
    let rows = i.directory(&t, true);
    assert_eq!(rows[0]["email"], "marie@exemple.fr");
    assert_eq!(rows[0]["last_name"], "Curie");
    assert_eq!(rows[0]["active"], "true");
    assert_eq!(rows[0]["locale"], "fr-FR");
    assert_eq!(rows[1]["active"], "false", "Parti: inactive");
    let people = i
        .roster(&["directory", "--tenant", &t, "--format", "json", "--all"])
        .json();
    assert!(
        people
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["extra"].get("Remarques").is_none()),
        "{people}"
    );
    let bad = i.file(
        "bad.yaml",
        format!("tenants:\n  {t}:\n    mapping:\n      columns: {{X: shoe_size}}\n      defaults: {{active: x}}\n"),
    );
    let ran = i.roster(&["tenants", "apply", "-f", bad.to_str().unwrap()]);
    assert_ne!(ran.code, 0);
    assert!(
        ran.stderr.contains("mapping.columns.X") && ran.stderr.contains("mapping.defaults.active"),
        "{}",
        ran.stderr
    );
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Both kinds of Active Directory export (`Get-ADUser | Export-Csv` in UTF-8 with BOM and
/// a `#TYPE` line; `csvde -u` in UTF-16LE): managers given by distinguished name land as
/// emails, disabled accounts as inactive people, service accounts are skipped with a
/// note, and the second export of the same people changes only what differs.
pub fn active_directory_exports(i: &Install) {
    let t = tenant("ad");
    let s = i.import_ok(&t, &fixture("ad-get-aduser.csv"), &[]);
    assert_eq!(counts(&s), [4, 0, 0, 0, 0], "{s:#}");
    assert_eq!(
        (s["rejected"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(1))
    );
    let notes = s["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2, "{s:#}");
    assert_eq!(notes[0]["line"], 6);
    assert!(notes[0]["message"].as_str().unwrap().contains("svc-backup"));
    assert_eq!(notes[1]["column"], "Manager");
    let rows = i.directory(&t, true);
    assert_eq!(
        row(&rows, "ak@veris.in")["manager_email"],
        "neha.sharma@veris.in"
    );
    assert_eq!(
        row(&rows, "rahul.muller@veris.in")["manager_email"],
        "ak@veris.in"
    );
    assert_eq!(row(&rows, "rahul.muller@veris.in")["active"], "false");
    // (The export guards a leading `+` against spreadsheet formulas.)
    assert_eq!(
        row(&rows, "neha.sharma@veris.in")["phone"],
        "'+91 22 4000 1002"
    );
    assert_eq!(row(&rows, "priya.iyer@veris.in")["manager_email"], "");
    let runs = i.roster(&["runs", "--tenant", &t, "--json"]).json();
    assert_eq!(runs[0]["skipped"], 1);
    // csvde's export of the same directory: Priya is not in it (a full sync deactivates
    // her), Amit's display name is now his displayName.
    let s = i.import_ok(&t, &fixture("ad-csvde.csv"), &[]);
    assert_eq!(s["skipped"], 1, "{s:#}");
    assert_eq!(s["deactivated"], 1, "{s:#}");
    let rows = i.directory(&t, true);
    let amit = row(&rows, "ak@veris.in");
    assert_eq!(amit["display_name"], "Amit Kumar");
    assert_eq!(amit["manager_email"], "neha.sharma@veris.in");
    let rahul = row(&rows, "rahul.muller@veris.in");
    assert_eq!(rahul["active"], "false", "userAccountControl 66050");
}

/// A tenant that lists its organizations: a row naming another fails alone, with its line
/// and the name, and the rest applies; names match whatever their case.
pub fn a_row_with_an_unlisted_organization_fails_alone(i: &Install) {
    let t = tenant("widget");
    let file = i.file(
        "tenants.yaml",
        format!("tenants:\n  {t}:\n    organizations: [Widget USA, Widget France]\n"),
    );
    let ran = i.roster(&["tenants", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (code, s) = i.import(&t, &fixture("people-import.csv"), &[]);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["created"], 3, "{s:#}");
    assert_eq!(s["rejected"], 1);
    assert_eq!(s["errors"][0]["line"], 4);
    assert_eq!(s["errors"][0]["column"], "Organization");
    assert!(
        s["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("\"Widget Germany\"")
    );
    let rows = i.directory(&t, true);
    let pierre = row(&rows, "pierre.lefevre@widget.com");
    assert_eq!(pierre["organization"], "Widget France");
    assert_eq!(pierre["manager_email"], "frank.williams@widget.com");
    let old = row(&rows, "old.timer@widget.com");
    assert_eq!(old["active"], "false", "Disabled 1");
    assert!(!rows.iter().any(|r| r["email"] == "hans.meier@widget.com"));
}

pub fn bad_arguments_exit_1(i: &Install) {
    let ran = i.roster(&["import", "--tenant", "../etc", "x.csv"]);
    assert_ne!(ran.code, 0);
    let ran = i.roster(&["import", "--tenant", "acme", "/no/such/file.csv"]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("/no/such/file.csv"), "{}", ran.stderr);
}

/// `n` people under `Email,Name,City,Status`, all with `status`.
fn crowd(n: usize, status: &str) -> String {
    let mut out = String::from("Email,Name,City,Status\n");
    for k in 0..n {
        out.push_str(&format!("p{k:03}@x.com,Person {k},Paris,{status}\n"));
    }
    out
}

pub fn a_delta_deactivating_everyone_is_held(i: &Install) {
    let t = tenant("acme");
    i.import_ok(&t, &i.file("all.csv", crowd(100, "active")), &[]);
    let (code, s) = i.import(
        &t,
        &i.file("leavers.csv", crowd(100, "inactive")),
        &["--mode", "delta"],
    );
    assert_eq!((code, s["status"].as_str()), (1, Some("held")), "{s:#}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("would deactivate 100 of 100"),
        "{s:#}"
    );
    assert_eq!(
        i.emails(&t, false).len(),
        100,
        "nobody deactivated while held"
    );
}

pub fn an_unclosed_quote_deactivates_nobody(i: &Install) {
    let t = tenant("acme");
    let good = crowd(100, "active");
    i.import_ok(&t, &i.file("people.csv", &good), &[]);
    let before = i.directory_csv(&t, true);
    // The 81st person's city opens a quote that never closes: 20 rows from the end.
    let broken = good.replace(
        "p080@x.com,Person 80,Paris",
        "p080@x.com,Person 80,\"Boston",
    );
    let path = i.file("broken.csv", &broken);
    let ran = i.roster(&["import", "--tenant", &t, "--json", path.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    let s = ran.json();
    assert_eq!(s["status"], "rejected");
    let msg = s["errors"][0]["message"].as_str().unwrap();
    assert!(msg.starts_with("broken.csv: line 82: "), "{msg}");
    // Refused as a whole: the reason is on stderr too, one line naming the file.
    let lines: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.contains("broken.csv"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", ran.stderr);
    assert!(lines[0].contains("line 82"), "{}", ran.stderr);
    assert_eq!(i.directory_csv(&t, true), before, "nobody deactivated");
}

pub fn directory_exports_cannot_carry_formulas(i: &Install) {
    let t = tenant("acme");
    let file = "Email,Name,Title,Phone,Department\n\
=1+2@x.com,Eve Formula,=HYPERLINK(\"\"http://evil.example\"\"),+1 555 0100,@SUM(A1)\n\
ok@x.com,Ok Person,-minus,555,Sales\n";
    i.import_ok(&t, &i.file("eve.csv", file), &[]);
    let csv = i.directory_csv(&t, false);
    assert!(csv.contains("'=1+2@x.com"), "{csv}");
    assert!(csv.contains("\"'=HYPERLINK("), "{csv}");
    assert!(
        csv.contains("'+1 555 0100") && csv.contains("'@SUM(A1)"),
        "{csv}"
    );
    assert!(csv.contains("'-minus"), "{csv}");
    let raw = i.roster(&["directory", "--tenant", &t, "--raw"]);
    assert_eq!(raw.code, 0, "{}", raw.stderr);
    assert!(raw.stdout.contains("\n=1+2@x.com,"), "{}", raw.stdout);
}

pub fn a_replayed_delta_is_applied_on_todays_directory(i: &Install) {
    let t = tenant("acme");
    i.import_ok(&t, &i.file("all.csv", THREE), &[]);
    // A delta the parser cannot read yet (its email column is in French).
    let delta = "Courriel,Name,Title\nfrank@widget.com,Frank Williams,Sales Director\n";
    let (code, _) = i.import(&t, &i.file("delta.csv", delta), &["--mode", "delta"]);
    assert_eq!(code, 2);
    // A later delivery is applied meanwhile.
    i.import_ok(&t, &i.file("again.csv", THREE), &[]);
    let dead = i.roster(&["dlq", "list", "--tenant", &t, "--json"]).json();
    let id = dead[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        i.roster(&["mapping", "set", "--tenant", &t, "Courriel", "email"])
            .code,
        0
    );
    let replayed = i.roster(&["dlq", "replay", &id, "--json"]);
    assert_eq!(replayed.code, 0, "{}\n{}", replayed.stdout, replayed.stderr);
    assert_eq!(replayed.json()[0]["state"], "applied");
    let rows = i.directory(&t, true);
    let frank = row(&rows, "frank@widget.com");
    assert_eq!(
        frank["job_title"], "Sales Director",
        "the delta's change is in effect"
    );
    assert_eq!(rows.len(), 3);
}

pub fn a_replayed_full_run_overtaken_by_a_later_one_says_superseded(i: &Install) {
    let t = tenant("acme");
    i.import_ok(&t, &i.file("all.csv", THREE), &[]);
    let old = "Courriel,Name\nak@veris.in,Amit Kumar\n";
    let (code, _) = i.import(&t, &i.file("old.csv", old), &[]);
    assert_eq!(code, 2);
    i.import_ok(&t, &i.file("new.csv", THREE), &[]);
    let dead = i.roster(&["dlq", "list", "--tenant", &t, "--json"]).json();
    let id = dead[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        i.roster(&["mapping", "set", "--tenant", &t, "Courriel", "email"])
            .code,
        0
    );
    let replayed = i.roster(&["dlq", "replay", &id]);
    assert_eq!(replayed.code, 1, "nothing applied: {}", replayed.stdout);
    assert!(
        replayed.stdout.contains("superseded"),
        "{}",
        replayed.stdout
    );
    assert_eq!(
        i.emails(&t, false).len(),
        3,
        "the older full file did not apply"
    );
}

pub fn a_file_over_the_size_limit_is_refused_when_fetched(i: &Install) {
    let t = tenant("acme");
    let path = i.file("big.csv", crowd(100, "active"));
    let ran = i.roster(&[
        "import",
        "--tenant",
        &t,
        "--json",
        "--max-file-bytes",
        "1000",
        path.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    let s = ran.json();
    assert_eq!(s["status"], "rejected");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("big.csv") && reason.contains("1000"),
        "{reason}"
    );
    assert!(i.emails(&t, true).is_empty());
}

pub fn rows_with_control_characters_fail_alone(i: &Install) {
    let t = tenant("acme");
    // Past the first 8 KiB, which the encoding check looks at.
    let mut file = crowd(400, "active");
    file.push_str("nul@x.com,Bad\u{0}Name,Paris,active\n");
    let (code, s) = i.import(&t, &i.file("nul.csv", file), &[]);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(
        (s["created"].as_u64(), s["rejected"].as_u64()),
        (Some(400), Some(1))
    );
    assert_eq!(s["errors"][0]["line"], 402);
}

/// The contact details of `email` in a `directory --format json` listing, without their
/// ids, sorted: what the person can be reached by.
fn contacts_of(people: &Value, email: &str) -> Vec<String> {
    let mut out: Vec<String> = person(people, email)["contacts"]
        .as_array()
        .unwrap_or_else(|| panic!("no contacts list in {people}"))
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.as_object_mut().unwrap().remove("id");
            c.to_string()
        })
        .collect();
    out.sort();
    out
}

/// `roster contacts list --json` of one person: their details, each with its `id`.
fn contacts_list(i: &Install, t: &str, person: &str) -> Vec<Value> {
    let ran = i.roster(&[
        "contacts", "list", "--tenant", t, "--person", person, "--json",
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    ran.json().as_array().expect("a JSON list").clone()
}

/// The seed's contact-details file (UTF-8, UTF-8 with BOM, UTF-16LE) after its people
/// file: each person's details as the rows say; a detail added by hand survives the
/// next file, integration-owned ones are replaced by it (rows of one person need not be
/// adjacent), an `ID` updates that one detail, and a person not in the directory fails
/// alone with the line.
pub fn contact_details_replace_the_integrations_and_keep_the_manual_ones(i: &Install) {
    let seed = std::fs::read_to_string(fixture("contact-details.tsv")).unwrap();
    let mut want = None;
    for (name, bytes) in [
        ("utf8", seed.clone().into_bytes()),
        ("bom", [&b"\xEF\xBB\xBF"[..], seed.as_bytes()].concat()),
        ("utf16", utf16le(&seed)),
    ] {
        let t = tenant("widget");
        i.import_ok(&t, &fixture("people-import.csv"), &[]);
        let s = i.import_ok(&t, &i.file(&format!("contacts-{name}.tsv"), bytes), &[]);
        assert_eq!(s["related"]["contacts_changed"], 3, "{name}: {s:#}");
        assert_eq!(
            counts(&s),
            [0, 0, 0, 0, 0],
            "{name}: no person changes: {s:#}"
        );
        assert_eq!(s["mode"], "delta", "{name}");
        let people = i
            .roster(&["directory", "--tenant", &t, "--format", "json"])
            .json();
        let got = (
            contacts_of(&people, "frank.williams@widget.com"),
            contacts_of(&people, "pierre.lefevre@widget.com"),
        );
        assert_eq!(got.0.len(), 1, "{name}: {people:#}");
        assert_eq!(got.1.len(), 2, "{name}: {people:#}");
        match &want {
            None => want = Some(got),
            Some(w) => assert_eq!(&got, w, "{name} reads as UTF-8 does"),
        }
    }
    let pierre = want.unwrap().1;
    assert!(
        pierre
            .iter()
            .any(|c| c.contains("\"city\":\"Paris\"") && c.contains("\"zip\":\"75006\"")),
        "{pierre:?}"
    );

    let t = tenant("widget");
    i.import_ok(&t, &fixture("people-import.csv"), &[]);
    i.import_ok(&t, &fixture("contact-details.tsv"), &[]);
    let added = i.roster(&[
        "contacts",
        "add",
        "--tenant",
        &t,
        "--person",
        "pierre.lefevre@widget.com",
        "--protocol",
        "chat",
        "--label",
        "teams",
        "--uri",
        "pierre@teams",
        "--json",
    ]);
    assert_eq!(added.code, 0, "{}", added.stderr);
    let manual = added.json();
    assert_eq!(manual["integration"], false);
    let listed = contacts_list(i, &t, "pierre.lefevre@widget.com");
    assert_eq!(listed.len(), 3, "{listed:#?}");
    let work = listed.iter().find(|c| c["label"] == "work").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let removed = i.roster(&["contacts", "remove", "--tenant", &t, &work]);
    assert_eq!(
        removed.code, 2,
        "an integration-owned detail is the file's to decide"
    );
    assert!(removed.stderr.contains("integration"), "{}", removed.stderr);

    // Pierre's rows apart, his home moved and his work phone as it was; Frank's mobile
    // replaced; a person not in the directory.
    let next = "Person\tContact Protocol\tContact Label\tContact URI\tAddress Label\tAddress Address\tAddress City\tAddress Zip\tAddress Country\tIntegration\n\
pierre.lefevre@widget.com\ttelephone\twork\t+33 (1) 4703 5144\t\t\t\t\t\t1\n\
frank.williams@widget.com\ttelephone\tmobile\t+1 (713) 555 0000\t\t\t\t\t\t1\n\
ghost@widget.com\ttelephone\twork\t1\t\t\t\t\t\ttrue\n\
pierre.lefevre@widget.com\t\t\t\thome\t3 Quai Voltaire\tParis\t75007\tFR\t1\n";
    let (_, dry) = i.import(&t, &i.file("next.tsv", next), &["--dry-run"]);
    assert_eq!(dry["related"]["contacts_changed"], 4, "{dry:#}");
    let s = i.import_ok(&t, &i.file("next.tsv", next), &[]);
    assert_eq!(
        s["related"]["contacts_changed"], 4,
        "2 added, 2 removed: {s:#}"
    );
    assert_eq!(s["rejected"], 1, "{s:#}");
    assert_eq!(s["errors"][0]["line"], 4, "{s:#}");
    assert!(
        s["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ghost@widget.com")
    );
    let listed = contacts_list(i, &t, "pierre.lefevre@widget.com");
    assert_eq!(
        listed.len(),
        3,
        "work phone, new home, the manual chat: {listed:#?}"
    );
    assert!(
        listed.iter().any(|c| c["id"] == work.as_str()),
        "the unchanged detail kept its id"
    );
    assert!(
        listed
            .iter()
            .any(|c| c["id"] == manual["id"] && c["integration"] == false)
    );
    assert!(
        listed
            .iter()
            .any(|c| c["address"]["address"] == "3 Quai Voltaire")
    );
    assert!(
        !listed
            .iter()
            .any(|c| c["address"]["address"] == "14 Rue de Seine")
    );

    // An ID updates that one detail (and may hand it over to the person's own care).
    let by_id = format!(
        "Person,Contact Protocol,Contact Label,Contact URI,Integration,ID\n\
pierre.lefevre@widget.com,telephone,work,+33 1 00 00 00 00,0,{work}\n"
    );
    let s = i.import_ok(&t, &i.file("by-id.csv", by_id), &[]);
    assert_eq!(s["related"]["contacts_changed"], 1, "{s:#}");
    let listed = contacts_list(i, &t, "pierre.lefevre@widget.com");
    let updated = listed.iter().find(|c| c["id"] == work.as_str()).unwrap();
    assert_eq!(updated["uri"], "+33 1 00 00 00 00");
    assert_eq!(updated["integration"], false);
    let removed = i.roster(&[
        "contacts",
        "remove",
        "--tenant",
        &t,
        manual["id"].as_str().unwrap(),
    ]);
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    let listed = contacts_list(i, &t, "pierre.lefevre@widget.com");
    assert_eq!(listed.len(), 2, "{listed:#?}");
    // Nothing of this reached another tenant.
    let other = i
        .roster(&["contacts", "list", "--tenant", &tenant("other"), "--json"])
        .json();
    assert_eq!(other, serde_json::json!([]));
}

/// Copies the bundle fixture into a folder of the install, with `edit` applied to each
/// file's text (the byte-order mark kept).
fn bundle(i: &Install, name: &str, edit: impl Fn(&str, &str) -> String) -> std::path::PathBuf {
    let dir = i.path().join("files").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["users.csv", "groups.csv", "groups-mapping.csv"] {
        let text = std::fs::read_to_string(fixture("bundle").join(file)).unwrap();
        std::fs::write(dir.join(file), edit(file, &text)).unwrap();
    }
    dir
}

fn groups(i: &Install, t: &str) -> Value {
    let ran = i.roster(&["groups", "--tenant", t, "--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    ran.json()
}

/// The group `id` of `roster groups --json`.
fn group(i: &Install, t: &str, id: &str) -> Value {
    let all = groups(i, t);
    all.as_array()
        .expect("a JSON list")
        .iter()
        .find(|g| g["id"] == id)
        .unwrap_or_else(|| panic!("no group {id} in {all:#}"))
        .clone()
}

/// A three-file bundle as a folder or a zip: users, groups with managers and subgroups;
/// a renamed group keeps its id and members, a removed line deactivates its user and
/// drops their memberships; a cycle of subgroups or a file not UTF-8 with a BOM refuses
/// the bundle naming them (unless the encoding check is waived), a mapping to an
/// unknown user fails alone.
pub fn bundles_bring_groups_memberships_and_renames(i: &Install) {
    let t = tenant("ov");
    let s = i.import_ok(&t, &bundle(i, "b1", |_, text| text.to_owned()), &[]);
    assert_eq!(counts(&s), [3, 0, 0, 0, 0], "{s:#}");
    assert_eq!(s["related"]["groups_created"], 3, "{s:#}");
    assert_eq!(s["related"]["memberships_added"], 4, "{s:#}");
    let sales = group(i, &t, "g-sales");
    assert_eq!(sales["name"], "Sales");
    assert_eq!(
        sales["members"],
        serde_json::json!(["ana.silva@widget.com"])
    );
    assert_eq!(
        sales["managers"],
        serde_json::json!(["ana.silva@widget.com"])
    );
    assert_eq!(sales["subgroups"], serde_json::json!(["g-emea"]));
    let people = i
        .roster(&["directory", "--tenant", &t, "--format", "json"])
        .json();
    assert_eq!(
        person(&people, "bo.chen@widget.com")["groups"],
        serde_json::json!([{"id": "g-emea", "name": "Sales EMEA", "manager": false}])
    );
    assert_eq!(
        person(&people, "carla.diaz@widget.com")["last_name"],
        "Díaz"
    );

    // The same bundle as a zip changes nothing.
    let zip = i.path().join("files").join("b1.zip");
    roster_parser::bundle::pack_folder(&i.path().join("files").join("b1"), &zip).unwrap();
    let s = i.import_ok(&t, &zip, &[]);
    assert_eq!(counts(&s), [0, 0, 0, 0, 3], "{s:#}");
    assert_eq!(s["related"]["groups_created"], 0, "{s:#}");
    assert_eq!(s["related"]["memberships_added"], 0, "{s:#}");

    // Renamed, and Bo leaves: his line and his mapping go.
    let renamed = bundle(i, "b2", |file, text| match file {
        "groups.csv" => text.replace("g-emea,Sales EMEA", "g-emea,EMEA Sales"),
        "users.csv" => text.replace("bo.chen@widget.com,Bo,Chen,Account Manager,en\r\n", ""),
        _ => text.replace(
            "g-emea,bo.chen@widget.com,false,\r\n",
            "g-emea,carla.diaz@widget.com,1,\r\n",
        ),
    });
    let s = i.import_ok(&t, &renamed, &[]);
    assert_eq!(counts(&s)[2], 1, "Bo is deactivated: {s:#}");
    assert_eq!(s["related"]["groups_renamed"], 1, "{s:#}");
    assert_eq!(s["related"]["memberships_removed"], 1, "{s:#}");
    assert_eq!(s["related"]["memberships_added"], 1, "{s:#}");
    let emea = group(i, &t, "g-emea");
    assert_eq!(emea["name"], "EMEA Sales");
    assert_eq!(
        emea["managers"],
        serde_json::json!(["carla.diaz@widget.com"])
    );
    let before = (i.directory_csv(&t, true), groups(i, &t));

    // A cycle of subgroups refuses the bundle, naming the groups; nothing changes.
    let cycle = bundle(i, "b3", |file, text| match file {
        "groups-mapping.csv" => format!("{text}g-emea,,,g-sales\r\n"),
        _ => text.to_owned(),
    });
    let (code, s) = i.import(&t, &cycle, &[]);
    assert_eq!(code, 2, "{s:#}");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("cycle") && reason.contains("g-sales") && reason.contains("g-emea"),
        "{reason}"
    );
    assert_eq!((i.directory_csv(&t, true), groups(i, &t)), before);

    // A file without its byte-order mark refuses the bundle, naming it, unless waived.
    let plain = bundle(i, "b4", |file, text| match file {
        "groups.csv" => text.trim_start_matches('\u{FEFF}').to_owned(),
        _ => text.to_owned(),
    });
    let (code, s) = i.import(&t, &plain, &[]);
    assert_eq!(code, 2, "{s:#}");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("groups.csv") && reason.contains("byte-order mark"),
        "{reason}"
    );
    assert_eq!((i.directory_csv(&t, true), groups(i, &t)), before);
    let s = i.import_ok(&t, &plain, &["--ignore-encoding"]);
    assert_eq!(
        s["related"]["groups_renamed"], 1,
        "the fixture's name again: {s:#}"
    );

    // A mapping to a user the bundle does not have fails alone, with its line.
    let unknown = bundle(i, "b5", |file, text| match file {
        "groups-mapping.csv" => format!("{text}g-eng,nobody@widget.com,false,\r\n"),
        _ => text.to_owned(),
    });
    let s = i.import_ok(&t, &unknown, &[]);
    assert_eq!(s["rejected"], 1, "{s:#}");
    assert_eq!(s["errors"][0]["line"], 6, "{s:#}");
    assert!(
        s["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nobody@widget.com"),
        "{s:#}"
    );

    // The same bundle in UTF-16LE reads alike once its encoding check is waived.
    let wide = bundle(i, "b7", |_, text| {
        String::from(text.trim_start_matches('\u{FEFF}'))
    });
    for file in ["users.csv", "groups.csv", "groups-mapping.csv"] {
        let text = std::fs::read_to_string(wide.join(file)).unwrap();
        std::fs::write(wide.join(file), utf16le(&text)).unwrap();
    }
    let t16 = tenant("wide");
    let (code, s) = i.import(&t16, &wide, &[]);
    assert_eq!(code, 2, "UTF-16 is not UTF-8 with a BOM: {s:#}");
    assert!(s["reason"].as_str().unwrap().contains("UTF-16"), "{s:#}");
    let s = i.import_ok(&t16, &wide, &["--ignore-encoding"]);
    assert_eq!(s["created"], 3, "{s:#}");
    let t8 = tenant("narrow");
    i.import_ok(&t8, &bundle(i, "b8", |_, text| text.to_owned()), &[]);
    assert_eq!(groups(i, &t16), groups(i, &t8));
    assert_eq!(i.directory_csv(&t16, true), i.directory_csv(&t8, true));

    // A tenant whose bundle's files have other names says so in the tenants file.
    let named = tenant("named");
    let file = i.file(
        "tenants.yaml",
        format!(
            "tenants:\n  {named}:\n    bundle: {{users: people.csv, groups: teams.csv, \
             mappings: team-members.csv}}\n"
        ),
    );
    let ran = i.roster(&["tenants", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let dir = bundle(i, "b6", |_, text| text.to_owned());
    let (code, s) = i.import(&named, &dir, &[]);
    assert_eq!(code, 2, "the usual names are not this tenant's: {s:#}");
    assert!(
        s["reason"].as_str().unwrap().contains("people.csv"),
        "{s:#}"
    );
    for (from, to) in [
        ("users.csv", "people.csv"),
        ("groups.csv", "teams.csv"),
        ("groups-mapping.csv", "team-members.csv"),
    ] {
        std::fs::rename(dir.join(from), dir.join(to)).unwrap();
    }
    let s = i.import_ok(&named, &dir, &[]);
    assert_eq!(s["created"], 3, "{s:#}");
    assert_eq!(s["related"]["memberships_added"], 4, "{s:#}");
}

backends!(
    [
        embedded => crate::harness::Install::embedded(),
        distributed => crate::harness::Install::distributed(),
        served => crate::harness::Install::served(),
    ],
    [
        import_then_directory,
        reimport_changes_nothing,
        a_file_delivered_again_ends_when_fetched,
        full_mode_deactivates_the_missing_and_keeps_them,
        delta_mode_changes_only_rows_present,
        tenants_with_the_same_emails_are_kept_apart,
        a_rejected_file_exits_2_and_writes_nothing,
        an_empty_full_file_deactivates_nobody,
        row_errors_are_reported_and_the_rest_applied,
        a_failed_row_does_not_deactivate_its_person,
        dry_run_writes_nothing,
        mass_deactivation_is_held_until_approved,
        a_tenant_mapping_rescues_an_unknown_column,
        web_service_json_and_seed_tsv,
        bad_arguments_exit_1,
        a_delta_deactivating_everyone_is_held,
        an_unclosed_quote_deactivates_nobody,
        directory_exports_cannot_carry_formulas,
        a_replayed_delta_is_applied_on_todays_directory,
        a_replayed_full_run_overtaken_by_a_later_one_says_superseded,
        a_file_over_the_size_limit_is_refused_when_fetched,
        rows_with_control_characters_fail_alone,
        active_directory_exports,
        a_row_with_an_unlisted_organization_fails_alone,
        a_column_left_out_keeps_its_field,
        a_reject_file_round_trip,
        soap_answers_import_like_json,
        mapping_check_shows_how_a_file_is_read,
        a_tenants_file_mapping_reads_a_tenants_own_file,
        contact_details_replace_the_integrations_and_keep_the_manual_ones,
        bundles_bring_groups_memberships_and_renames,
    ]
);
