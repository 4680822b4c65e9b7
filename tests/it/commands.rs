//! The operator's command line beyond imports: what read-only commands leave behind.

use crate::harness::{Install, tenant};

#[test]
fn reading_commands_create_and_migrate_nothing() {
    let i = Install::embedded();
    let t = tenant("acme");
    let runs = i.roster(&["runs", "--tenant", &t, "--json"]);
    assert_eq!(runs.code, 0, "{}", runs.stderr);
    assert!(runs.json().as_array().unwrap().is_empty());
    let directory = i.roster(&["directory", "--tenant", &t]);
    assert_eq!(directory.code, 0, "{}", directory.stderr);
    assert_eq!(directory.stdout.lines().count(), 1, "a header only");
    let mappings = i.roster(&["mapping", "list", "--tenant", &t]);
    assert_eq!(mappings.code, 0, "{}", mappings.stderr);
    assert!(
        !i.path().join("roster.db").exists(),
        "a read created the database"
    );
    assert!(
        !i.path().join("data").exists(),
        "a read created the data folder"
    );
    // A write that is not an import says what to do first, and creates nothing either.
    let set = i.roster(&["mapping", "set", "--tenant", &t, "Courriel", "email"]);
    assert_eq!(set.code, 1);
    assert!(set.stderr.contains("roster migrate"), "{}", set.stderr);
    assert!(!i.path().join("roster.db").exists());
}
