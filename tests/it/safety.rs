//! Applying changes safely: each brake (deactivations by count and by share, in full and
//! delta runs; attribute churn; population drift; a slow leak over several runs), review
//! of a held run field by field, approve, reject and approve after the directory moved,
//! and an old file arriving after a newer one. Run against every backend (see the bottom).

use serde_json::Value;

use crate::harness::{Install, tenant};

/// `n` people `p000@x.com`..., in `department` (`{k}` in it becomes the person's number),
/// with `status`.
fn crowd(n: usize, department: &str, status: &str) -> String {
    let mut out = String::from("Email,Name,Department,Status\n");
    for k in 0..n {
        let dept = department.replace("{k}", &k.to_string());
        out.push_str(&format!("p{k:03}@x.com,Person {k},{dept},{status}\n"));
    }
    out
}

/// The lines of `csv` after the header, from `skip` on, with the header.
fn without_first(csv: &str, skip: usize) -> String {
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    let rest: Vec<&str> = lines.skip(skip).collect();
    format!("{header}\n{}\n", rest.join("\n"))
}

/// Imports and expects the run held by exactly `brakes`; returns the summary.
fn held(i: &Install, t: &str, name: &str, content: &str, extra: &[&str], brakes: &[&str]) -> Value {
    let (code, s) = i.import(t, &i.file(name, content), extra);
    assert_eq!((code, s["status"].as_str()), (1, Some("held")), "{s:#}");
    let run = s["run_id"].as_str().unwrap();
    let shown = i.roster(&["runs", "show", run, "--changes", "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert_eq!(
        shown.json()["held_by"],
        serde_json::json!(brakes),
        "{:#}",
        shown.json()
    );
    s
}

/// Applies a tenants file giving `t` the `safety` YAML (indented under the tenant).
fn safety(i: &Install, t: &str, yaml: &str) {
    let file = i.file(
        "tenants.yaml",
        format!("tenants:\n  {t}:\n    safety:\n{yaml}"),
    );
    let ran = i.roster(&["tenants", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
}

pub fn deactivations_by_share_and_count_in_full_and_delta_runs(i: &Install) {
    let t = tenant("share");
    let all = crowd(100, "Sales", "active");
    i.import_ok(&t, &i.file("all.csv", &all), &[]);
    // Full: 11 of 100 missing is over 10%.
    let s = held(
        i,
        &t,
        "cut.csv",
        &without_first(&all, 11),
        &[],
        &["deactivations"],
    );
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("would deactivate 11 of 100"),
        "{s:#}"
    );
    assert_eq!(i.emails(&t, false).len(), 100, "nothing applied while held");
    // Delta: 11 marked inactive, the same.
    let leavers = crowd(11, "Sales", "inactive");
    held(
        i,
        &t,
        "leavers.csv",
        &leavers,
        &["--mode", "delta"],
        &["deactivations"],
    );
    // 10 is within the share.
    let ten = crowd(10, "Sales", "inactive");
    let s = i.import_ok(&t, &i.file("ten.csv", &ten), &["--mode", "delta"]);
    assert_eq!(s["deactivated"], 10);

    // By count: the tenant allows 3 (over the floor of 10 it sets to 0), whatever the share.
    let c = tenant("count");
    safety(
        i,
        &c,
        "      brakes: {max_deactivate: 3, deactivate_floor: 0}\n",
    );
    i.import_ok(&c, &i.file("all.csv", &all), &[]);
    let s = held(
        i,
        &c,
        "four.csv",
        &without_first(&all, 4),
        &[],
        &["deactivations"],
    );
    assert!(s["reason"].as_str().unwrap().contains("limit 3"), "{s:#}");
    held(
        i,
        &c,
        "four-delta.csv",
        &crowd(4, "Sales", "inactive"),
        &["--mode", "delta"],
        &["deactivations"],
    );
    let s = i.import_ok(&c, &i.file("three.csv", without_first(&all, 3)), &[]);
    assert_eq!(s["deactivated"], 3);
    // `tenants list` shows the tenant's own thresholds over the defaults.
    let list = i.roster(&["tenants", "list", "--json"]).json();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tenant"] == c.as_str())
        .unwrap();
    assert_eq!(row["brakes"]["max_deactivate"], 3, "{row:#}");
    assert_eq!(row["brakes"]["max_churn_percent"], 30, "{row:#}");
    assert_eq!(row["brakes"]["window_days"], 7, "{row:#}");
    assert_eq!(
        row["own_brakes"],
        serde_json::json!(["deactivate_floor", "max_deactivate"])
    );
    let text = i.roster(&["tenants", "list"]).stdout;
    assert!(text.contains("max_deactivate=3*"), "{text}");
}

pub fn a_shifted_column_is_caught_by_attribute_churn(i: &Install) {
    let t = tenant("churn");
    let all = crowd(50, "Dept {k}", "active");
    i.import_ok(&t, &i.file("all.csv", &all), &[]);
    // 16 of 50 (32%) get a new department: held, nothing applied.
    let mut shifted = String::from("Email,Name,Department,Status\n");
    for k in 0..50 {
        let dept = if k < 16 {
            "Sales".to_owned()
        } else {
            format!("Dept {k}")
        };
        shifted.push_str(&format!("p{k:03}@x.com,Person {k},{dept},active\n"));
    }
    let s = held(i, &t, "shifted.csv", &shifted, &[], &["attribute_churn"]);
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("16 of 50 active people would get a new department"),
        "{s:#}"
    );
    let rows = i.directory(&t, true);
    assert!(rows.iter().all(|r| r["department"] != "Sales"));
    // The review lists each change field by field.
    let run = s["run_id"].as_str().unwrap();
    let review = i
        .roster(&["runs", "show", run, "--changes", "--json"])
        .json();
    assert_eq!(review["run"], run);
    assert_eq!(review["state"], "held");
    assert_eq!(
        review["totals"],
        serde_json::json!({"created": 0, "updated": 16, "deactivated": 0, "reactivated": 0})
    );
    assert_eq!(review["changes"].as_array().unwrap().len(), 16);
    assert_eq!(
        review["changes"][0],
        serde_json::json!({"email": "p000@x.com", "kind": "updated", "fields": [
            {"field": "department", "old": "Dept 0", "new": "Sales"}
        ]})
    );
    // A dry run of the same file lists the same, with its summary.
    let file = i.file("shifted-again.csv", &shifted);
    let dry = i.roster(&[
        "import",
        "--tenant",
        &t,
        "--dry-run",
        "--changes",
        "--json",
        file.to_str().unwrap(),
    ]);
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    let dry = dry.json();
    assert_eq!(
        (&dry["run"], &dry["state"]),
        (&Value::Null, &"planned".into())
    );
    for key in ["held_by", "totals", "changes"] {
        assert_eq!(dry[key], review[key], "{key}");
    }
    assert_eq!(dry["summary"]["updated"], 16, "{dry:#}");
    let text = i.roster(&["runs", "show", run, "--changes"]).stdout;
    assert!(text.contains("department: Dept 0 -> Sales"), "{text}");
    assert!(text.contains("held by: attribute_churn"), "{text}");
    // 15 (30%) passes.
    let mut fewer = String::from("Email,Name,Department,Status\n");
    for k in 0..50 {
        let dept = if k < 15 {
            "Sales".to_owned()
        } else {
            format!("Dept {k}")
        };
        fewer.push_str(&format!("p{k:03}@x.com,Person {k},{dept},active\n"));
    }
    let s = i.import_ok(&t, &i.file("fewer.csv", &fewer), &[]);
    assert_eq!(s["updated"], 15);
}

pub fn population_drift_is_held(i: &Install) {
    let t = tenant("drift");
    i.import_ok(&t, &i.file("all.csv", crowd(100, "Sales", "active")), &[]);
    // 130 people where there were 100: a merged export, say.
    held(
        i,
        &t,
        "more.csv",
        &crowd(130, "Sales", "active"),
        &[],
        &["population_drift"],
    );
    let s = i.import_ok(&t, &i.file("some.csv", crowd(125, "Sales", "active")), &[]);
    assert_eq!(s["created"], 25);
}

pub fn a_slow_leak_is_caught_across_runs(i: &Install) {
    let t = tenant("leak");
    let all = crowd(100, "Sales", "active");
    i.import_ok(&t, &i.file("all.csv", &all), &[]);
    // Four people leave per run (4%): the first two pass, the third makes 12 of 100.
    for run in 0..2 {
        let cut = without_first(&all, 4 * (run + 1));
        let s = i.import_ok(&t, &i.file(&format!("cut{run}.csv"), &cut), &[]);
        assert_eq!(s["deactivated"], 4);
    }
    let s = held(
        i,
        &t,
        "cut2.csv",
        &without_first(&all, 12),
        &[],
        &["deactivations"],
    );
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("would deactivate 4 of 92") && reason.contains("12 in all"),
        "{reason}"
    );
    // Approving it starts the window afresh: the next small leak passes.
    let run = s["run_id"].as_str().unwrap();
    let ran = i.roster(&["runs", "approve", run, "--json"]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(ran.json()["deactivated"], 4);
    let s = i.import_ok(&t, &i.file("cut3.csv", without_first(&all, 16)), &[]);
    assert_eq!(s["deactivated"], 4);
}

pub fn held_runs_are_approved_rejected_or_planned_again(i: &Install) {
    let t = tenant("review");
    let all = crowd(40, "Sales", "active");
    i.import_ok(&t, &i.file("all.csv", &all), &[]);
    // Rejected: becomes `rejected`, nothing applied, cannot be approved after.
    let s = held(
        i,
        &t,
        "few.csv",
        &without_first(&all, 30),
        &[],
        &["deactivations", "population_drift"],
    );
    let run = s["run_id"].as_str().unwrap();
    let ran = i.roster(&["runs", "reject", run]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let shown = i.roster(&["runs", "show", run, "--json"]).json();
    assert_eq!(shown["status"], "rejected", "{shown:#}");
    assert_eq!(i.emails(&t, false).len(), 40);
    let again = i.roster(&["runs", "approve", run]);
    assert_eq!(again.code, 1, "a rejected run is not held");
    assert!(again.stderr.contains("not held"), "{}", again.stderr);

    // Approved while the directory is as it was: applied as diffed.
    let s = held(
        i,
        &t,
        "few2.csv",
        &without_first(&all, 30),
        &[],
        &["deactivations", "population_drift"],
    );
    let run = s["run_id"].as_str().unwrap().to_owned();
    let review = i
        .roster(&["runs", "show", &run, "--changes", "--json"])
        .json();
    assert_eq!(review["totals"]["deactivated"], 30);
    let ran = i.roster(&["approve", "--tenant", &t, "--json", &run]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let applied = ran.json();
    assert_eq!(applied["deactivated"], 30, "{applied:#}");
    assert!(
        applied["reason"].is_null(),
        "an applied run keeps no hold reason: {applied:#}"
    );
    assert_eq!(i.emails(&t, false).len(), 10);

    // Approved after the directory moved: planned afresh, and held again when the new
    // plan trips a brake.
    let t = tenant("moved");
    let all = crowd(40, "Sales", "active");
    i.import_ok(&t, &i.file("all.csv", &all), &[]);
    let delta = crowd(20, "Sales", "inactive");
    let s = held(
        i,
        &t,
        "leavers.csv",
        &delta,
        &["--mode", "delta"],
        &["deactivations", "population_drift"],
    );
    let run = s["run_id"].as_str().unwrap().to_owned();
    // Meanwhile 40 newcomers arrive (applied: 40 -> 80 people is drift, so the tenant
    // allows it).
    safety(i, &t, "      brakes: {max_drift_percent: 100}\n");
    let newcomers: String = (0..40)
        .map(|k| format!("n{k:03}@x.com,New {k},Sales,active\n"))
        .collect();
    i.import_ok(
        &t,
        &i.file(
            "newcomers.csv",
            format!("Email,Name,Department,Status\n{newcomers}"),
        ),
        &["--mode", "delta"],
    );
    // 20 of 80 is still over 10%: held again, naming why.
    let ran = i.roster(&["runs", "approve", &run, "--json"]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    let s = ran.json();
    assert_eq!(s["status"], "held", "{s:#}");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("held again") && reason.contains("would deactivate 20 of 80"),
        "{reason}"
    );
    assert_eq!(i.emails(&t, false).len(), 80, "nothing applied");
    // With a limit that allows it, the re-planned run is applied against today's
    // directory.
    safety(
        i,
        &t,
        "      brakes: {max_drift_percent: 100, max_deactivate_percent: 30}\n",
    );
    let newer = crowd(5, "Sales", "active");
    i.import_ok(
        &t,
        &i.file("touch.csv", newer.replace("Person", "Someone")),
        &["--mode", "delta"],
    );
    let ran = i.roster(&["runs", "approve", &run, "--json"]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(ran.json()["deactivated"], 20);
    assert_eq!(i.emails(&t, false).len(), 60);
}

pub fn an_old_file_arriving_after_a_newer_one_is_stale(i: &Install) {
    let t = tenant("stale");
    safety(
        i,
        &t,
        "      file_time: {regex: 'export_(\\d{8}T\\d{4})', format: '%Y%m%dT%H%M'}\n",
    );
    let newer = crowd(3, "Newer", "active");
    i.import_ok(&t, &i.file("export_20261127T0900.csv", &newer), &[]);
    let older = crowd(3, "Older", "active");
    let (code, s) = i.import(&t, &i.file("export_20261126T0900.csv", &older), &[]);
    assert_eq!((code, s["status"].as_str()), (1, Some("stale")), "{s:#}");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("export_20261126T0900.csv was produced at 2026-11-26T09:00:00Z")
            && reason.contains("export_20261127T0900.csv"),
        "{reason}"
    );
    assert!(
        i.directory(&t, true)
            .iter()
            .all(|r| r["department"] == "Newer"),
        "the older file changed nothing"
    );
    // A newer one still applies; a name without a timestamp is as old as its delivery.
    let s = i.import_ok(
        &t,
        &i.file("export_20261128T0900.csv", crowd(3, "Newest", "active")),
        &[],
    );
    assert_eq!(s["updated"], 3);
    let s = i.import_ok(
        &t,
        &i.file("people.csv", crowd(3, "Undated", "active")),
        &[],
    );
    assert_eq!(s["updated"], 3);
    // A name from the future is not believed: it would make every later file stale.
    let typo = i.file("export_20991231T0000.csv", crowd(3, "Typo", "active"));
    assert_eq!(i.import_ok(&t, &typo, &[])["updated"], 3);
    let later = i.file("people.csv", crowd(3, "Later", "active"));
    assert_eq!(
        i.import_ok(&t, &later, &[])["updated"],
        3,
        "not stale behind a file dated 2099"
    );
}

backends!(
    [
        embedded => crate::harness::Install::embedded(),
        distributed => crate::harness::Install::distributed(),
    ],
    [
        deactivations_by_share_and_count_in_full_and_delta_runs,
        a_shifted_column_is_caught_by_attribute_churn,
        population_drift_is_held,
        a_slow_leak_is_caught_across_runs,
        held_runs_are_approved_rejected_or_planned_again,
        an_old_file_arriving_after_a_newer_one_is_stale,
    ]
);
