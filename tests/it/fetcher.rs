//! The inbox poller: finished files only, each once, with the right mode.

use roster_fetcher::{FetchLimits, InboxState, poll_inbox};
use roster_shared::db::runs;
use roster_shared::model::ids::TenantId;
use roster_shared::supervisor::recover_stalled;

use crate::pipeline::app;

#[tokio::test]
async fn inbox_files_are_taken_when_finished_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let inbox = app.store.inbox_dir();
    let acme = inbox.join("acme");
    std::fs::create_dir_all(acme.join("delta")).unwrap();
    std::fs::create_dir_all(inbox.join("not a tenant")).unwrap();
    std::fs::write(inbox.join("not a tenant/x.csv"), "Email\na@x.com\n").unwrap();
    std::fs::write(acme.join("people.csv"), "Email\na@x.com\n").unwrap();
    std::fs::write(acme.join("upload.csv.part"), "Email\n").unwrap();
    std::fs::write(acme.join(".hidden.csv"), "Email\n").unwrap();
    let mut state = InboxState::default();

    // First sight: size and time not yet known to be stable.
    let first = poll_inbox(&app.services, &inbox, &FetchLimits::default(), &mut state)
        .await
        .unwrap();
    assert!(first.is_empty(), "a file seen once may still be uploading");
    // Unchanged at the next poll: taken.
    let second = poll_inbox(&app.services, &inbox, &FetchLimits::default(), &mut state)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    let tenant = TenantId::new("acme").unwrap();
    let run = runs::get(&app.services.db, &tenant, second[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (run.file_name.as_str(), run.mode.name(), run.source.as_str()),
        ("people.csv", "full", "inbox")
    );
    assert!(
        app.services.blobs.exists(&run.blob_key).await.unwrap(),
        "stored before handed on"
    );
    // Never twice.
    assert!(
        poll_inbox(&app.services, &inbox, &FetchLimits::default(), &mut state)
            .await
            .unwrap()
            .is_empty()
    );

    // A `.done` marker makes a file ready at first sight; `delta/` means delta.
    std::fs::write(acme.join("delta/changes.csv"), "Email\nb@x.com\n").unwrap();
    std::fs::write(acme.join("delta/changes.csv.done"), "").unwrap();
    let marked = poll_inbox(&app.services, &inbox, &FetchLimits::default(), &mut state)
        .await
        .unwrap();
    assert_eq!(marked.len(), 1);
    let run = runs::get(&app.services.db, &tenant, marked[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (run.file_name.as_str(), run.mode.name()),
        ("delta/changes.csv", "delta")
    );

    // A new version of a taken file (new size) is a new delivery.
    std::fs::write(acme.join("people.csv"), "Email\na@x.com\nc@x.com\n").unwrap();
    assert!(
        poll_inbox(&app.services, &inbox, &FetchLimits::default(), &mut state)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        poll_inbox(&app.services, &inbox, &FetchLimits::default(), &mut state)
            .await
            .unwrap()
            .len(),
        1
    );
    let all = runs::list(&app.services.db, &tenant, 10).await.unwrap();
    assert_eq!(all.len(), 3);
}

#[tokio::test]
async fn a_run_that_was_never_announced_is_announced_again() {
    let dir = tempfile::tempdir().unwrap();
    let (app, memory) = app(&dir).await;
    let tenant = TenantId::new("acme").unwrap();
    let id = roster_shared::model::ids::RunId::new();
    roster_fetcher::db::create_run(
        &app.services.db,
        &roster_fetcher::NewRun {
            tenant: tenant.clone(),
            id,
            source: "inbox".into(),
            file_name: "lost.csv".into(),
            blob_key: "raw/acme/0".into(),
            sha256: "0".into(),
            size: 1,
            format: roster_shared::model::envelope::Format::Csv,
            mode: roster_shared::model::envelope::SyncMode::Full,
            encoding: None,
            ignore_encoding: false,
            options: Default::default(),
        },
        None,
    )
    .await
    .unwrap();
    let fresh = recover_stalled(&app.services, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        fresh, 0,
        "too young: its fetcher may still be announcing it"
    );
    let sent = recover_stalled(&app.services, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(sent, 1);
    assert_eq!(memory.len(roster_shared::transport::Queue::Fetched), 1);
    assert!(
        runs::get(&app.services.db, &tenant, id)
            .await
            .unwrap()
            .unwrap()
            .published
    );
    assert_eq!(
        recover_stalled(&app.services, std::time::Duration::from_secs(30))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn links_in_an_inbox_are_never_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let inbox = app.store.inbox_dir();
    let (a, b) = (inbox.join("tenant-a"), inbox.join("tenant-b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("people.csv"), "Email\nsecret@b.example\n").unwrap();
    // Tenant A's inbox: a file that is a link to B's file, and a delta folder that is a
    // link to B's folder. A whole tenant folder may be a link too.
    symlink(b.join("people.csv"), a.join("evil.csv")).unwrap();
    symlink(&b, a.join("delta")).unwrap();
    symlink(&b, inbox.join("tenant-c")).unwrap();
    let mut state = InboxState::default();
    let limits = FetchLimits::default();
    poll_inbox(&app.services, &inbox, &limits, &mut state)
        .await
        .unwrap();
    let taken = poll_inbox(&app.services, &inbox, &limits, &mut state)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "only B's own file");
    for other in ["tenant-a", "tenant-c"] {
        let t = TenantId::new(other).unwrap();
        assert!(
            runs::list(&app.services.db, &t, 10)
                .await
                .unwrap()
                .is_empty(),
            "{other} took another tenant's file"
        );
    }
    let b_runs = runs::list(&app.services.db, &TenantId::new("tenant-b").unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(b_runs.len(), 1);
    assert_eq!(b_runs[0].file_name, "people.csv");
}

/// Sets `path`'s modification time to `secs` after the epoch (whole seconds, as most
/// file servers report).
fn set_mtime(path: &std::path::Path, secs: i64) {
    let out = std::process::Command::new("touch")
        .args(["-m", "-d", &format!("@{secs}")])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[tokio::test]
async fn a_file_is_known_by_name_size_time_and_content() {
    use roster_fetcher::sources::files::{Pull, pull};
    use roster_fetcher::sources::{SourceSpec, Taken, local};

    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let tenant = TenantId::new("acme").unwrap();
    let folder = dir.path().join("drop");
    std::fs::create_dir_all(&folder).unwrap();
    let spec: SourceSpec = serde_json::from_value(serde_json::json!({
        "kind": "inbox",
        "path": folder.display().to_string(),
        "stable_after": "1s",
    }))
    .unwrap();
    let limits = FetchLimits::default();
    let p = Pull {
        services: &app.services,
        tenant: &tenant,
        source: "drop",
        spec: &spec,
        limits: &limits,
        dry_run: false,
    };
    let runs_now = || async {
        runs::list(&app.services.db, &tenant, 100)
            .await
            .unwrap()
            .len()
    };
    let mut server = local::open(&spec, "acme/drop").unwrap();
    let file = folder.join("people.csv");
    let taken = |t: Vec<Taken>| t.len();

    std::fs::write(&file, "Email\nann@x.com\n").unwrap();
    set_mtime(&file, 1_700_000_000);
    assert_eq!(taken(pull(server.as_mut(), &p).await.unwrap()), 1);
    // Listed again unchanged: known without being read.
    assert_eq!(taken(pull(server.as_mut(), &p).await.unwrap()), 0);
    // Rewritten within the same second, same size: a new delivery all the same.
    std::fs::write(&file, "Email\nbob@x.com\n").unwrap();
    set_mtime(&file, 1_700_000_000);
    assert_eq!(taken(pull(server.as_mut(), &p).await.unwrap()), 1);
    // Rewritten with an older time: taken.
    std::fs::write(&file, "Email\ncyd@x.com\n").unwrap();
    set_mtime(&file, 1_600_000_000);
    assert_eq!(taken(pull(server.as_mut(), &p).await.unwrap()), 1);
    // Touched, content unchanged: not taken again (and known from now on).
    set_mtime(&file, 1_800_000_000);
    assert_eq!(taken(pull(server.as_mut(), &p).await.unwrap()), 0);
    assert_eq!(taken(pull(server.as_mut(), &p).await.unwrap()), 0);
    // Back to an earlier content: the directory must follow, so it is taken.
    std::fs::write(&file, "Email\nann@x.com\n").unwrap();
    assert_eq!(taken(pull(server.as_mut(), &p).await.unwrap()), 1);
    assert_eq!(runs_now().await, 4);

    // Still being written: a growing file and temporary names wait.
    let growing = folder.join("growing.csv");
    std::fs::write(&growing, "Email\n").unwrap();
    std::fs::write(folder.join("next.csv.part"), "Email\nx@x.com\n").unwrap();
    let writer = {
        let growing = growing.clone();
        std::thread::spawn(move || {
            for k in 0..8 {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let mut text = std::fs::read_to_string(&growing).unwrap();
                text.push_str(&format!("p{k}@x.com\n"));
                std::fs::write(&growing, text).unwrap();
            }
        })
    };
    assert_eq!(taken(pull(server.as_mut(), &p).await.unwrap()), 0);
    writer.join().unwrap();
    // Renamed into place and left alone: taken.
    std::fs::rename(folder.join("next.csv.part"), folder.join("next.csv")).unwrap();
    assert_eq!(taken(pull(server.as_mut(), &p).await.unwrap()), 2);
    assert_eq!(runs_now().await, 6);
}

#[tokio::test]
async fn push_jails_are_polled_upload_as_full_and_delta_as_delta() {
    use roster_fetcher::inbox::{Layout, poll};

    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let root = dir.path().join("push");
    let jail = root.join("acme");
    std::fs::create_dir_all(jail.join("upload")).unwrap();
    std::fs::create_dir_all(jail.join("delta")).unwrap();
    std::fs::write(jail.join("upload/people.csv"), "Email\na@x.com\n").unwrap();
    std::fs::write(jail.join("delta/changes.csv"), "Email\nb@x.com\n").unwrap();
    std::fs::write(jail.join("stray.csv"), "Email\nc@x.com\n").unwrap();
    let mut state = InboxState::default();
    let limits = FetchLimits::default();
    assert!(
        poll(&app.services, &root, Layout::PUSH, &limits, &mut state)
            .await
            .unwrap()
            .is_empty()
    );
    let taken = poll(&app.services, &root, Layout::PUSH, &limits, &mut state)
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    let tenant = TenantId::new("acme").unwrap();
    let mut seen: Vec<(String, String, String)> = runs::list(&app.services.db, &tenant, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.file_name, r.mode.name().to_owned(), r.source))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "delta/changes.csv".to_owned(),
                "delta".to_owned(),
                "push".to_owned()
            ),
            (
                "people.csv".to_owned(),
                "full".to_owned(),
                "push".to_owned()
            ),
        ]
    );
}
