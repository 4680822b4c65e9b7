//! Identity continuity and references that hold, end to end on each backend: a person
//! whose email changed is the same person where an employee id says so (one update, the
//! email old to new, groups and contact details carried, no deactivation), not without
//! one; an email taken by another active person is a row error naming both; a manager
//! not in the directory is a warning on its row, a manager cycle an error naming the
//! people in it (their rows rejected).

use serde_json::Value;

use crate::harness::{Install, tenant};

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

/// The bundle fixture with an employee id per user, in a folder of the install.
fn bundle_with_ids(i: &Install) -> std::path::PathBuf {
    let dir = i.path().join("files").join("ids");
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle");
    for file in ["groups.csv", "groups-mapping.csv"] {
        std::fs::copy(fixtures.join(file), dir.join(file)).unwrap();
    }
    let users = "\u{feff}email,employeeId,firstName,lastName,jobTitle,language\r\n\
ana.silva@widget.com,E1,Ana,Silva,Head of Sales,pt\r\n\
bo.chen@widget.com,E2,Bo,Chen,Account Manager,en\r\n\
carla.diaz@widget.com,E3,Carla,Diaz,Engineer,es\r\n";
    std::fs::write(dir.join("users.csv"), users).unwrap();
    dir
}

/// The people of the bundle as a plain people file, Bo's email (and employee id) as given.
fn people_file(bo: &str, bo_id: &str) -> String {
    format!(
        "email,employeeId,firstName,lastName,jobTitle,language\n\
ana.silva@widget.com,E1,Ana,Silva,Head of Sales,pt\n\
{bo},{bo_id},Bo,Chen,Account Manager,en\n\
carla.diaz@widget.com,E3,Carla,Diaz,Engineer,es\n"
    )
}

fn people_json(i: &Install, t: &str) -> Value {
    let ran = i.roster(&["directory", "--tenant", t, "--all", "--format", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    ran.json()
}

fn person<'a>(people: &'a Value, email: &str) -> Option<&'a Value> {
    people
        .as_array()
        .expect("a JSON list")
        .iter()
        .find(|p| p["email"] == email)
}

/// Bo's email changes, his employee id stays: one update of the stored person, the change
/// saying `email` old to new; his group membership and contact details follow him;
/// nobody is deactivated or created.
pub fn an_email_change_with_an_employee_id_keeps_the_person(i: &Install) {
    let t = tenant("ids");
    let s = i.import_ok(&t, &bundle_with_ids(i), &[]);
    assert_eq!(counts(&s), [3, 0, 0, 0, 0], "{s:#}");
    let contacts = "Person\tContact Protocol\tContact Label\tContact URI\tAddress Label\t\
Address Address\tAddress City\tAddress State\tAddress Zip\tAddress Country\tIntegration\n\
bo.chen@widget.com\ttelephone\tmobile\t+1 555 0100\t\t\t\t\t\t\t1\n";
    let s = i.import_ok(&t, &i.file("contacts.tsv", contacts), &[]);
    assert_eq!(s["related"]["contacts_changed"], 1, "{s:#}");

    let moved = i.file("moved.csv", people_file("bo.chen2@widget.com", "E2"));
    // The plan, dumped: one change, Bo's row moving to the new email.
    let dump = i.path().join("files").join("moved.jsonl");
    let (code, dry) = i.import(&t, &moved, &["--dry-run", "--dump", dump.to_str().unwrap()]);
    assert_eq!(code, 0, "{dry:#}");
    assert_eq!(counts(&dry), [0, 1, 0, 0, 2], "{dry:#}");
    let changes: Vec<Value> = std::fs::read_to_string(&dump)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    let change = &changes[0];
    assert_eq!(change["kind"], "updated");
    assert_eq!(change["email"], "bo.chen2@widget.com");
    assert_eq!(change["renamed_from"], "bo.chen@widget.com");
    assert_eq!(
        change["changed"],
        serde_json::json!([{"field": "email", "old": "bo.chen@widget.com", "new": "bo.chen2@widget.com"}]),
        "{change:#}"
    );

    let s = i.import_ok(&t, &moved, &[]);
    assert_eq!(counts(&s), [0, 1, 0, 0, 2], "{s:#}");
    let people = people_json(i, &t);
    assert!(
        person(&people, "bo.chen@widget.com").is_none(),
        "{people:#}"
    );
    let bo = person(&people, "bo.chen2@widget.com").expect("Bo under his new email");
    assert_eq!(bo["employee_id"], "E2");
    assert_eq!(bo["active"], true, "{bo:#}");
    assert_eq!(
        bo["groups"],
        serde_json::json!([{"id": "g-emea", "name": "Sales EMEA", "manager": false}]),
        "{bo:#}"
    );
    let contacts = bo["contacts"].to_string();
    assert!(contacts.contains("+1 555 0100"), "{bo:#}");
    // Again: nothing left to do.
    let s = i.import_ok(&t, &moved, &[]);
    assert_eq!(counts(&s), [0, 0, 0, 0, 3], "{s:#}");
}

/// Without an employee id, or with another one, a new email is a new person: the old one
/// is deactivated (and keeps their groups), the new one created.
pub fn an_email_change_without_the_employee_id_is_a_new_person(i: &Install) {
    for (n, (old_id, new_id)) in [("", ""), ("E2", "E9")].into_iter().enumerate() {
        let t = tenant(&format!("noid{n}"));
        i.import_ok(
            &t,
            &i.file("before.csv", people_file("bo.chen@widget.com", old_id)),
            &[],
        );
        let s = i.import_ok(
            &t,
            &i.file("after.csv", people_file("bo.chen2@widget.com", new_id)),
            &[],
        );
        assert_eq!(counts(&s), [1, 0, 1, 0, 2], "{s:#}");
        let people = people_json(i, &t);
        assert_eq!(
            person(&people, "bo.chen@widget.com").unwrap()["active"],
            false
        );
        assert_eq!(
            person(&people, "bo.chen2@widget.com").unwrap()["active"],
            true
        );
    }
}

/// Ana's employee id on Bo's email (Ana's own email gone): Ana would move onto the email
/// of Bo, who is active. The row is an error on its line naming both, and both stay as
/// they were; the dry run says the same.
pub fn an_email_taken_by_another_active_person_is_a_row_error(i: &Install) {
    let t = tenant("taken");
    i.import_ok(
        &t,
        &i.file("before.csv", people_file("bo.chen@widget.com", "E2")),
        &[],
    );
    let before = i.directory_csv(&t, true);
    let taken = "email,employeeId,firstName,lastName,jobTitle,language\n\
bo.chen@widget.com,E1,Ana,Silva,Head of Sales,pt\n\
carla.diaz@widget.com,E3,Carla,Diaz,Engineer,es\n";
    let taken = i.file("taken.csv", taken);
    // The dry run says the same, line and all.
    let (code, dry) = i.import(&t, &taken, &["--dry-run"]);
    assert_eq!(code, 0, "{dry:#}");
    assert_eq!(dry["errors"][0]["line"], 2, "{dry:#}");
    let (code, s) = i.import(&t, &taken, &[]);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(counts(&s), [0, 0, 0, 0, 1], "{s:#}");
    assert_eq!(s["rejected"], 1, "{s:#}");
    assert_eq!(s["errors"][0]["line"], 2, "the row's line: {s:#}");
    assert_eq!(s["errors"][0]["column"], "email", "{s:#}");
    let message = s["errors"][0]["message"].as_str().unwrap_or_default();
    for part in [
        "ana.silva@widget.com",
        "bo.chen@widget.com",
        "employee id E1",
        "employee id E2",
    ] {
        assert!(message.contains(part), "{part} not in {message:?}: {s:#}");
    }
    assert_eq!(i.directory_csv(&t, true), before, "nobody changed");
}

/// In a directory of 600 people, a full file leaves two out (few: the differ reads their
/// employee ids by email) and a delta leaves out nearly everyone (one pass over the
/// directory): either way an employee id carries its person to a new email, and an
/// employee id nobody holds is a new person.
pub fn renames_are_found_among_few_or_many_left_out(i: &Install) {
    let t = tenant("many");
    let header = "email,employeeId,firstName,lastName,jobTitle,language\n";
    let row = |n: u32, email: &str| format!("{email},E{n},First{n},Last{n},Engineer,en\n");
    let email = |n: u32| format!("p{n:03}@widget.com");
    let everyone: String = (0..600).map(|n| row(n, &email(n))).collect();
    let s = i.import_ok(&t, &i.file("all.csv", format!("{header}{everyone}")), &[]);
    assert_eq!(counts(&s), [600, 0, 0, 0, 0], "{s:#}");

    // Full: p007 moves to q007, p008 leaves, E999 arrives.
    let full: String = (0..600)
        .filter_map(|n| match n {
            7 => Some(row(7, "q007@widget.com")),
            8 => None,
            _ => Some(row(n, &email(n))),
        })
        .chain([row(999, "new@widget.com")])
        .collect();
    let s = i.import_ok(&t, &i.file("full.csv", format!("{header}{full}")), &[]);
    assert_eq!(counts(&s), [1, 1, 1, 0, 598], "{s:#}");

    // Delta: p009 moves to q009.
    let delta = format!("{header}{}", row(9, "q009@widget.com"));
    let s = i.import_ok(&t, &i.file("delta.csv", delta), &["--mode", "delta"]);
    assert_eq!(counts(&s)[..4], [0, 1, 0, 0], "{s:#}");

    let people = people_json(i, &t);
    for (gone, moved, id) in [
        ("p007@widget.com", "q007@widget.com", "E7"),
        ("p009@widget.com", "q009@widget.com", "E9"),
    ] {
        assert!(person(&people, gone).is_none(), "{gone} still stored");
        let p = person(&people, moved).unwrap_or_else(|| panic!("{moved} missing"));
        assert_eq!(
            (&p["employee_id"], &p["active"]),
            (&id.into(), &true.into())
        );
    }
    assert_eq!(person(&people, "p008@widget.com").unwrap()["active"], false);
    assert_eq!(
        person(&people, "new@widget.com").unwrap()["employee_id"],
        "E999"
    );
}

/// A manager not in the directory is a warning on the row (applied all the same); a
/// cycle of managers rejects its rows with an error naming the people and their lines.
/// In a delta, a manager stored in the directory is known.
pub fn managers_resolve_warn_and_refuse_cycles(i: &Install) {
    let t = tenant("mgr");
    let file = "Email,Name,Manager\n\
a@x.com,A A,\n\
b@x.com,B B,a@x.com\n\
c@x.com,C C,zed@x.com\n\
d@x.com,D D,e@x.com\n\
e@x.com,E E,d@x.com\n";
    let (code, s) = i.import(&t, &i.file("managers.csv", file), &[]);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["status"], "applied", "{s:#}");
    assert_eq!(counts(&s), [3, 0, 0, 0, 0], "{s:#}");
    assert_eq!(s["rejected"], 2, "{s:#}");
    let errors = s["errors"].as_array().unwrap();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [5, 6], "{s:#}");
    for e in errors {
        let m = e["message"].as_str().unwrap();
        assert!(
            m.contains("manager cycle")
                && m.contains("d@x.com (line 5)")
                && m.contains("e@x.com (line 6)"),
            "{m}"
        );
    }
    let warnings = s["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{s:#}");
    assert_eq!(warnings[0]["line"], 4);
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("zed@x.com")
    );
    assert_eq!(i.emails(&t, true), ["a@x.com", "b@x.com", "c@x.com"]);

    let delta = "Email,Name,Manager\nf@x.com,F F,a@x.com\ng@x.com,G G,nobody@x.com\n";
    let s = i.import_ok(&t, &i.file("delta.csv", delta), &["--mode", "delta"]);
    assert_eq!(counts(&s)[0], 2, "{s:#}");
    let warnings = s["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{s:#}");
    assert_eq!(warnings[0]["line"], 3);
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("nobody@x.com")
    );
}

backends!(
    [
        embedded => crate::harness::Install::embedded(),
        distributed => crate::harness::Install::distributed(),
    ],
    [
        an_email_change_with_an_employee_id_keeps_the_person,
        an_email_change_without_the_employee_id_is_a_new_person,
        an_email_taken_by_another_active_person_is_a_row_error,
        renames_are_found_among_few_or_many_left_out,
        managers_resolve_warn_and_refuse_cycles,
    ]
);
