//! Stage behaviour in process, on the in-memory transport and SQLite: idempotent batches,
//! stale changes, events, run ordering, re-announcing.

use std::sync::Arc;
use std::time::Duration;

use roster::App;
use roster::pipeline::{Pipeline, PipelineSettings, wait_for_run};
use roster_differ::db as differ_db;
use roster_fetcher::{FetchLimits, NewRun, Submission};
use roster_shared::blob::BlobStore;
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::db::runs;
use roster_shared::model::change::{Change, ChangeKind, RowState};
use roster_shared::model::envelope::{
    ChangesReady, Envelope, EventBatch, Format, SnapshotParsed, SyncMode,
};
use roster_shared::model::ids::{MessageId, RunId, TenantId};
use roster_shared::model::person::{Field, Person};
use roster_shared::model::run::RunState;
use roster_shared::stage::NoProgress;
use roster_shared::supervisor::recover_stalled;
use roster_shared::transport::Queue;
use roster_shared::transport::memory::MemoryTransport;
use tempfile::TempDir;

/// An embedded install in a temp folder, with the memory transport kept at hand. Its
/// settings are the defaults, never the caller's `ROSTER_*` environment.
pub async fn app(dir: &TempDir) -> (App, MemoryTransport) {
    let store = StoreSettings::sqlite(&dir.path().join("roster.db"), dir.path().join("data"));
    let mut app = App::open(store, BrokerSettings::default(), Arc::new(NoProgress), true)
        .await
        .unwrap();
    let memory = MemoryTransport::new(8);
    app.services.transport = Arc::new(memory.clone());
    (app, memory)
}

/// The stages' settings for tests: defaults, with quick retries.
pub fn settings() -> PipelineSettings {
    let mut settings = PipelineSettings::default();
    settings.consume.retry_base_ms = 20;
    settings
}

/// Imports `csv` for `tenant` through a pipeline started for it; returns the final run.
pub async fn import(app: &App, tenant: &TenantId, csv: &str, mode: SyncMode) -> RunId {
    import_with(app, &settings(), tenant, csv, mode).await
}

/// [`import`] with the stages' settings given.
pub async fn import_with(
    app: &App,
    settings: &PipelineSettings,
    tenant: &TenantId,
    csv: &str,
    mode: SyncMode,
) -> RunId {
    let path = app
        .store
        .data_dir
        .join(format!("{}.csv", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, csv).unwrap();
    let mut pipeline = Pipeline::start(app, settings, None);
    let run = roster_fetcher::submit(
        &app.services,
        submission(tenant, &path, mode),
        &FetchLimits::default(),
    )
    .await
    .unwrap();
    let done = pipeline.wait_for(app, tenant, run).await.unwrap();
    pipeline.stop().await.unwrap();
    assert_eq!(done.state.name(), "applied", "{:?}", done.reason);
    run
}

fn submission(tenant: &TenantId, path: &std::path::Path, mode: SyncMode) -> Submission {
    Submission {
        tenant: tenant.clone(),
        source: "test".into(),
        path: path.to_owned(),
        file_name: "people.csv".into(),
        format: Format::Auto,
        mode,
        encoding: None,
        ignore_encoding: false,
        seen: None,
        options: Default::default(),
    }
}

async fn person(app: &App, tenant: &TenantId, email: &str) -> Person {
    differ_db::fetch(app.services.db.conn(), tenant, &[email])
        .await
        .unwrap()
        .remove(email)
        .unwrap()
}

/// A new run of `tenant` from a test source, as the fetcher records it.
fn new_run(tenant: &TenantId, id: RunId, file_name: &str, mode: SyncMode) -> NewRun {
    NewRun {
        tenant: tenant.clone(),
        id,
        source: "test".into(),
        file_name: file_name.into(),
        blob_key: "none".into(),
        sha256: "0".into(),
        size: 0,
        format: Format::Csv,
        mode,
        encoding: None,
        ignore_encoding: false,
        options: Default::default(),
    }
}

/// A run planned as generation 1 with `batches` batches, as the differ would leave it.
async fn planned_run(app: &App, tenant: &TenantId, batches: u32) -> RunId {
    let db = &app.services.db;
    let id = RunId::new();
    roster_fetcher::db::create_run(db, &new_run(tenant, id, "hand-made", SyncMode::Delta), None)
        .await
        .unwrap();
    mark_parsed_by_hand(db, tenant, id).await;
    assert_eq!(
        differ_db::begin_plan(db, tenant, id, 0, MessageId::new())
            .await
            .unwrap(),
        Some(1)
    );
    assert!(
        differ_db::set_plan(db, tenant, id, 1, batches, 0, 0, 0)
            .await
            .unwrap()
    );
    id
}

fn batch(
    tenant: &TenantId,
    run: RunId,
    n: u32,
    of: u32,
    changes: Vec<Change>,
) -> Envelope<ChangesReady> {
    Envelope::new(
        MessageId::new(),
        tenant.clone(),
        run,
        ChangesReady {
            generation: 1,
            batch: n,
            of,
            changes,
            creates_from: None,
            related: None,
        },
    )
}

fn retitle(before: &Person, title: &str) -> Change {
    let mut after = before.clone();
    after.set(Field::JobTitle, title);
    Change {
        kind: ChangeKind::Updated,
        email: before.email.clone(),
        expected: Some(RowState::of(before)),
        target: RowState::of(&after),
        changed: roster_differ::changes::field_changes(before, &after),
        renamed_from: None,
        person: Some(after),
    }
}

const TWO: &str = "Email,Name,Title\na@x.com,A A,Engineer\nb@x.com,B B,Analyst\n";

#[tokio::test]
async fn a_batch_applied_twice_changes_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let t = TenantId::new("t1").unwrap();
    import(&app, &t, TWO, SyncMode::Full).await;
    let a = person(&app, &t, "a@x.com").await;
    let b = person(&app, &t, "b@x.com").await;
    let run = planned_run(&app, &t, 2).await;
    let first = batch(&t, run, 1, 2, vec![retitle(&a, "Lead")]);
    roster_writer::handle(&app.services, first.clone())
        .await
        .unwrap();
    let after_first = runs::get(&app.services.db, &t, run).await.unwrap().unwrap();
    assert_eq!(
        (after_first.updated, after_first.state.name()),
        (1, "applying")
    );
    assert_eq!(
        person(&app, &t, "a@x.com").await.job_title.as_deref(),
        Some("Lead")
    );
    // Batch 1 again (a redelivery): nothing changes, nothing is counted, and it does not
    // count as the run's second batch.
    roster_writer::handle(&app.services, first).await.unwrap();
    let after_again = runs::get(&app.services.db, &t, run).await.unwrap().unwrap();
    assert_eq!(
        (after_again.updated, after_again.state.name()),
        (1, "applying")
    );
    // Batch 2 finishes it.
    roster_writer::handle(
        &app.services,
        batch(&t, run, 2, 2, vec![retitle(&b, "Boss")]),
    )
    .await
    .unwrap();
    let done = runs::get(&app.services.db, &t, run).await.unwrap().unwrap();
    assert_eq!((done.updated, done.state.name()), (2, "applied"));
}

#[tokio::test]
async fn a_stale_change_is_a_conflict_and_the_run_is_planned_again() {
    let dir = tempfile::tempdir().unwrap();
    let (app, memory) = app(&dir).await;
    let t = TenantId::new("t1").unwrap();
    import(&app, &t, TWO, SyncMode::Full).await;
    let a = person(&app, &t, "a@x.com").await;
    let b = person(&app, &t, "b@x.com").await;
    let mut stale_b = b.clone();
    stale_b.set(Field::Phone, "was different");
    let run = planned_run(&app, &t, 1).await;
    let changes = vec![retitle(&a, "Lead"), retitle(&stale_b, "Boss")];
    roster_writer::handle(&app.services, batch(&t, run, 1, 1, changes))
        .await
        .unwrap();
    let r = runs::get(&app.services.db, &t, run).await.unwrap().unwrap();
    assert_eq!((r.updated, r.conflicts), (1, 1));
    assert_eq!(
        r.state.name(),
        "applying",
        "not finished: it goes back to the differ"
    );
    assert_eq!(
        person(&app, &t, "b@x.com").await,
        b,
        "a stale change is never applied"
    );
    assert_eq!(memory.len(Queue::Parsed), 1, "re-planning requested");
}

fn create(person: &Person) -> Change {
    Change {
        kind: ChangeKind::Created,
        email: person.email.clone(),
        expected: None,
        target: RowState::of(person),
        changed: Vec::new(),
        renamed_from: None,
        person: Some(person.clone()),
    }
}

/// A batch creating people is written by one insert when nobody is stored yet; when some
/// are (stored by another run since it was planned), the insert is undone and each change
/// is checked: the one already in its target state is skipped, the one stored otherwise is
/// a conflict, the new one is created, once.
#[tokio::test]
async fn a_creating_batch_meeting_stored_people_is_checked_person_by_person() {
    let dir = tempfile::tempdir().unwrap();
    let (app, memory) = app(&dir).await;
    creating_batch_meeting_stored_people(app, memory).await;
}

/// The same on PostgreSQL, where the insert of a creating batch fails on a stored key
/// (rather than skipping it) and its savepoint is rolled back.
///
/// A plain test driving its own runtime: the install (its database and queues) is
/// dropped outside any runtime, which dropping it needs, whether the body passed or
/// panicked.
#[test]
fn on_postgres_a_creating_batch_meeting_stored_people_is_checked_person_by_person() {
    let install = crate::harness::Install::on_broker(&[], "postgres");
    let store = StoreSettings {
        database_url: install
            .env("ROSTER_DATABASE_URL")
            .expect("a database")
            .into(),
        data_dir: install.path().join("data"),
        push_root: None,
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut app = App::open(store, BrokerSettings::default(), Arc::new(NoProgress), true)
            .await
            .unwrap();
        let memory = MemoryTransport::new(8);
        app.services.transport = Arc::new(memory.clone());
        creating_batch_meeting_stored_people(app, memory).await;
    });
}

async fn creating_batch_meeting_stored_people(app: App, memory: MemoryTransport) {
    let t = TenantId::new("t-create").unwrap();
    let run = planned_run(&app, &t, 2).await;
    // Every kind of value the insert (a binary COPY on PostgreSQL) must carry exactly:
    // quotes, backslashes, a tab, non-ASCII, extra attributes, absent fields, and a new
    // person who is inactive.
    let mut a = Person::new("a@x.com".to_owned());
    a.set(Field::JobTitle, "Engineer");
    a.set(Field::FirstName, "Ann \"Q\" O'Neil \\N \t 😀 Zoë");
    a.extra.insert("Badge".into(), "7\\\"".into());
    let mut b = Person::new("b@x.com".to_owned());
    b.set(Field::JobTitle, "Analyst");
    let mut d = Person::new("d@x.com".to_owned());
    d.set(Field::LastName, "Dee");
    d.active = false;
    roster_writer::handle(
        &app.services,
        batch(&t, run, 1, 2, vec![create(&a), create(&b), create(&d)]),
    )
    .await
    .unwrap();
    let r = runs::get(&app.services.db, &t, run).await.unwrap().unwrap();
    assert_eq!((r.created, r.conflicts), (3, 0));
    assert_eq!(person(&app, &t, "a@x.com").await, a);
    assert_eq!(person(&app, &t, "d@x.com").await, d);
    // The bookkeeping columns: the run, one moment, the hash, and the start of an
    // inactive streak for the inactive one alone.
    let db = &app.services.db;
    let rows = roster_shared::sea_orm::ConnectionTrait::query_all_raw(
        db.conn(),
        roster_shared::db::raw(
            db.backend(),
            "SELECT email, last_run_id, row_hash, created_at = updated_at, \
             deactivated_at IS NULL, deactivated_at = created_at OR deactivated_at IS NULL \
             FROM people WHERE tenant_id = $1 ORDER BY email",
            vec![t.as_str().into()],
        ),
    )
    .await
    .unwrap();
    let stored: Vec<(String, String, i64, bool, bool, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
                r.try_get_by_index(2).unwrap(),
                r.try_get_by_index(3).unwrap(),
                r.try_get_by_index(4).unwrap(),
                r.try_get_by_index(5).unwrap(),
            )
        })
        .collect();
    let run_text = run.to_string();
    assert_eq!(
        stored,
        [&a, &b, &d]
            .iter()
            .map(|p| (
                p.email.clone(),
                run_text.clone(),
                p.content_hash(),
                true,
                p.active,
                true
            ))
            .collect::<Vec<_>>()
    );

    let mut b_other = b.clone();
    b_other.set(Field::JobTitle, "Boss");
    let mut c = Person::new("c@x.com".to_owned());
    c.set(Field::JobTitle, "Clerk");
    let changes = vec![create(&a), create(&b_other), create(&c)];
    roster_writer::handle(&app.services, batch(&t, run, 2, 2, changes))
        .await
        .unwrap();
    let r = runs::get(&app.services.db, &t, run).await.unwrap().unwrap();
    assert_eq!(
        (r.created, r.conflicts),
        (4, 1),
        "a: already applied, not counted; b: a conflict; c: created"
    );
    assert_eq!(
        person(&app, &t, "b@x.com").await,
        b,
        "the conflict is not applied"
    );
    assert_eq!(person(&app, &t, "c@x.com").await, c);
    assert_eq!(
        roster_shared::db::people::count(app.services.db.conn(), &t)
            .await
            .unwrap(),
        (3, 4)
    );
    assert_eq!(memory.len(Queue::Parsed), 1, "re-planning requested");
}

#[tokio::test]
async fn batches_of_an_older_generation_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let t = TenantId::new("t1").unwrap();
    import(&app, &t, TWO, SyncMode::Full).await;
    let a = person(&app, &t, "a@x.com").await;
    let run = planned_run(&app, &t, 1).await;
    // A re-plan started: generation 2.
    assert_eq!(
        differ_db::begin_plan(&app.services.db, &t, run, 1, MessageId::new())
            .await
            .unwrap(),
        Some(2)
    );
    roster_writer::handle(
        &app.services,
        batch(&t, run, 1, 1, vec![retitle(&a, "Lead")]),
    )
    .await
    .unwrap();
    assert_eq!(person(&app, &t, "a@x.com").await, a);
}

#[tokio::test]
async fn every_change_is_announced_once_with_a_stable_id() {
    let dir = tempfile::tempdir().unwrap();
    let (app, memory) = app(&dir).await;
    let mut events = memory.subscribe_events();
    let t = TenantId::new("t1").unwrap();
    import(&app, &t, TWO, SyncMode::Full).await;
    import(
        &app,
        &t,
        "Email,Name,Title\na@x.com,A A,Lead\n",
        SyncMode::Full,
    )
    .await;
    let mut seen = Vec::new();
    while let Ok((key, msg)) = events.try_recv() {
        let env = Envelope::<EventBatch>::from_bytes(&msg.payload).unwrap();
        for e in env.body.events {
            // Routing keys start with the tenant, so a consumer binds to its own.
            assert_eq!(key, format!("t1.{}", e.event));
            seen.push((e.event.clone(), e.email, e.event_id, e.changed.len()));
        }
    }
    seen.sort();
    let kinds: Vec<(&str, &str)> = seen
        .iter()
        .map(|(k, e, _, _)| (k.as_str(), e.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("employee.created", "a@x.com"),
            ("employee.created", "b@x.com"),
            ("employee.deactivated", "b@x.com"),
            ("employee.updated", "a@x.com"),
        ]
    );
    let updated = seen.iter().find(|s| s.0 == "employee.updated").unwrap();
    assert_eq!(updated.3, 1, "one changed field: job_title");
    let ids: std::collections::HashSet<_> = seen.iter().map(|s| s.2).collect();
    assert_eq!(ids.len(), 4);
}

#[tokio::test]
async fn a_later_run_waits_until_the_earlier_one_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (app, memory) = app(&dir).await;
    let t = TenantId::new("t1").unwrap();
    // Run 1 is stuck in `fetched` (its fetcher died before announcing it).
    let stuck = RunId::new();
    roster_fetcher::db::create_run(
        &app.services.db,
        &new_run(&t, stuck, "stuck.csv", SyncMode::Full),
        None,
    )
    .await
    .unwrap();
    let path = dir.path().join("second.csv");
    std::fs::write(&path, TWO).unwrap();
    let mut pipeline = Pipeline::start(&app, &settings(), None);
    let second = roster_fetcher::submit(
        &app.services,
        submission(&t, &path, SyncMode::Full),
        &FetchLimits::default(),
    )
    .await
    .unwrap();
    // The differ has looked at run 2 (and put it off) twice: it is waiting, not slow.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while memory.deferred(Queue::Parsed) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the differ never put run 2 off"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waiting = runs::get(&app.services.db, &t, second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiting.state.name(), "parsed", "run 2 must wait for run 1");
    runs::fail(
        &app.services.db,
        &t,
        stuck,
        roster_shared::transport::Stage::Parser,
        None,
        RunState::Failed,
        "given up",
    )
    .await
    .unwrap();
    let done = pipeline.wait_for(&app, &t, second).await.unwrap();
    pipeline.stop().await.unwrap();
    assert_eq!(done.state.name(), "applied");
}

#[tokio::test]
async fn an_old_run_replayed_after_a_newer_one_is_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let t = TenantId::new("t1").unwrap();
    let old = import(&app, &t, TWO, SyncMode::Full).await;
    import(&app, &t, "Email\na@x.com\n", SyncMode::Full).await;
    // Pretend the old run's plan comes around again (a replayed dead letter).
    let db = &app.services.db;
    runs::transition(
        db.conn(),
        &t,
        old,
        &[RunState::Applied],
        RunState::Parsed,
        None,
    )
    .await
    .unwrap();
    let model = runs::get(db, &t, old).await.unwrap().unwrap();
    // Its snapshot went when it was applied; as if it were still there:
    let old_snapshot = BlobStore::snapshot_key(&t, old);
    let blobs = &app.services.blobs;
    blobs.put_bytes(&old_snapshot, Vec::new()).await.unwrap();
    let env = Envelope::new(MessageId::new(), t.clone(), old, runs::parsed_body(&model));
    let pipeline = Pipeline::start(&app, &settings(), None);
    app.services
        .transport
        .publish(
            Queue::Parsed,
            vec![roster_shared::stage::message(&env, None)],
        )
        .await
        .unwrap();
    let done = wait_for_run(&app, &t, old).await.unwrap();
    pipeline.stop().await.unwrap();
    assert_eq!(done.state.name(), "superseded");
    assert!(
        !blobs.exists(&old_snapshot).await.unwrap(),
        "a superseded run is never planned again"
    );
    let active: Vec<String> = differ_db::load_index(db, &t, old)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.state.active)
        .map(|e| e.email.to_string())
        .collect();
    assert_eq!(active, ["a@x.com"], "the newer delivery stands");
}

#[tokio::test]
async fn snapshots_are_discarded_once_their_runs_are_final_and_kept_while_held() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let t = TenantId::new("t1").unwrap();
    let blobs = &app.services.blobs;
    let snapshot_kept = async |run| {
        blobs
            .exists(&BlobStore::snapshot_key(&t, run))
            .await
            .unwrap()
    };
    let thirty: String = std::iter::once("Email\n".to_owned())
        .chain((0..30).map(|i| format!("p{i:02}@x.com\n")))
        .collect();
    // Applied with batches (finished by the writer) and with none (by the differ).
    let first = import(&app, &t, &thirty, SyncMode::Full).await;
    assert!(!snapshot_kept(first).await);
    let again = import(&app, &t, &thirty, SyncMode::Full).await;
    assert!(!snapshot_kept(again).await);
    let model = runs::get(&app.services.db, &t, again)
        .await
        .unwrap()
        .unwrap();
    assert!(
        blobs.exists(&model.blob_key).await.unwrap(),
        "the raw file stays"
    );

    // Held for approval: the plan must still be there to be approved.
    let path = dir.path().join("one.csv");
    std::fs::write(&path, "Email\np00@x.com\n").unwrap();
    let mut pipeline = Pipeline::start(&app, &settings(), None);
    let held = roster_fetcher::submit(
        &app.services,
        submission(&t, &path, SyncMode::Full),
        &FetchLimits::default(),
    )
    .await
    .unwrap();
    let done = pipeline.wait_for(&app, &t, held).await.unwrap();
    pipeline.stop().await.unwrap();
    assert_eq!(done.state.name(), "held", "{:?}", done.reason);
    assert!(snapshot_kept(held).await);
}

#[tokio::test]
async fn one_run_is_one_trace_across_the_stages() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;

    let provider = roster_shared::telemetry::tracer_provider("test");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    // This test's runtime has one thread, so every stage task sees this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().unwrap();
    let (app, memory) = app(&dir).await;
    let mut events = memory.subscribe_events();
    let t = TenantId::new("t1").unwrap();
    let trace_ids = |events: &mut tokio::sync::broadcast::Receiver<(
        String,
        roster_shared::transport::Message,
    )>| {
        let mut ids = std::collections::BTreeSet::new();
        while let Ok((_, msg)) = events.try_recv() {
            let env = Envelope::<EventBatch>::from_bytes(&msg.payload).unwrap();
            let parent = env.trace.traceparent.expect("events carry a trace context");
            ids.insert(parent[3..35].to_owned());
        }
        ids
    };
    // Each import runs inside a root span of the test's own: the trace a run must carry
    // from the fetcher through parser, differ and writer to its events.
    let mut roots = Vec::new();
    let mut seen = Vec::new();
    for csv in [TWO, "Email,Name,Title\na@x.com,A A,Lead\n"] {
        use opentelemetry::trace::TraceContextExt;
        use tracing::Instrument;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let root = tracing::info_span!("test root");
        roots.push(format!(
            "{}",
            root.context().span().span_context().trace_id()
        ));
        import(&app, &t, csv, SyncMode::Full).instrument(root).await;
        seen.push(trace_ids(&mut events));
    }
    for (root, seen) in roots.iter().zip(&seen) {
        assert_eq!(
            seen.iter().collect::<Vec<_>>(),
            [root],
            "the events continue the run's trace"
        );
    }
    assert_ne!(roots[0], roots[1], "each run its own trace");
}

#[tokio::test]
async fn stalled_runs_are_announced_again_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (app, memory) = app(&dir).await;
    // Two runs whose messages died with their process: one just fetched, one parsed.
    let (t1, t2) = (TenantId::new("t1").unwrap(), TenantId::new("t2").unwrap());
    let path = dir.path().join("one.csv");
    std::fs::write(&path, TWO).unwrap();
    let fetched = roster_fetcher::submit(
        &app.services,
        submission(&t1, &path, SyncMode::Full),
        &FetchLimits::default(),
    )
    .await
    .unwrap();
    planned_run(&app, &t2, 1).await;
    {
        // Lose the announcement.
        use futures::StreamExt;
        let mut d = app
            .services
            .transport
            .consume(Queue::Fetched, 1)
            .await
            .unwrap();
        d.next().await.unwrap().ack().await.unwrap();
    }
    assert_eq!(memory.len(Queue::Fetched), 0);
    let young = recover_stalled(&app.services, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(young, 0, "runs that moved recently are left alone");
    let sent = recover_stalled(&app.services, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(sent, 2);
    assert_eq!(
        memory.len(Queue::Fetched),
        1,
        "the fetched run is announced to the parser"
    );
    assert_eq!(
        memory.len(Queue::Parsed),
        1,
        "the parsed run is planned again"
    );
    // Announced once per period, not at every look.
    let again = recover_stalled(&app.services, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again, 0);
    let mut pipeline = Pipeline::start(&app, &settings(), None);
    let done = pipeline.wait_for(&app, &t1, fetched).await.unwrap();
    pipeline.stop().await.unwrap();
    assert_eq!(done.state.name(), "applied");
}

/// What the parser announces for a hand-made run: one person, delta, no snapshot.
fn hand_made_parse() -> SnapshotParsed {
    SnapshotParsed {
        snapshot_key: "none".into(),
        rejects_key: "none".into(),
        rows_read: 1,
        accepted: 1,
        rejected: 0,
        mode: SyncMode::Delta,
        generation: 0,
        covered: None,
        related_key: None,
    }
}

/// Records run `id` of `tenant` as parsed (one person, delta) as the parser would.
async fn mark_parsed_by_hand(db: &roster_shared::db::Db, tenant: &TenantId, id: RunId) {
    let parsed = hand_made_parse();
    let recorded = roster_parser::db::Parsed {
        body: &parsed,
        errors: &[],
        skipped: 0,
        parse_ms: 0,
        parse_config: "test",
    };
    assert!(
        roster_parser::db::mark_parsed(db, tenant, id, &recorded)
            .await
            .unwrap()
    );
}

/// A run of `tenant` parsed as the parser would leave it (generation 0), not planned.
async fn parsed_run(app: &App, tenant: &TenantId) -> RunId {
    let db = &app.services.db;
    let id = RunId::new();
    roster_fetcher::db::create_run(db, &new_run(tenant, id, "hand-made", SyncMode::Delta), None)
        .await
        .unwrap();
    mark_parsed_by_hand(db, tenant, id).await;
    id
}

/// A stage working on a run for longer than the supervisor waits keeps the run moving
/// (its heartbeat), so the supervisor does not announce it again and start the same work
/// beside itself; once the handler is done, a run left where it is stalls as before.
#[tokio::test]
async fn a_run_worked_on_is_not_announced_again() {
    use roster_shared::stage::{ConsumeOptions, HEARTBEAT, consume, message};
    use roster_shared::transport::Stage;
    let dir = tempfile::tempdir().unwrap();
    let (app, memory) = app(&dir).await;
    let t = TenantId::new("beat").unwrap();
    let run = parsed_run(&app, &t).await;
    let envelope = Envelope::new(MessageId::new(), t.clone(), run, hand_made_parse());
    app.services
        .transport
        .publish(Queue::Parsed, vec![message(&envelope, None)])
        .await
        .unwrap();
    let stall = HEARTBEAT - Duration::from_millis(500);
    let work = HEARTBEAT * 2;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let options = ConsumeOptions::new(&Default::default(), true);
    let consuming = consume(
        &app.services,
        Stage::Differ,
        options,
        shutdown.clone(),
        |_: Envelope<SnapshotParsed>| async move {
            tokio::time::sleep(work).await;
            Ok(())
        },
    );
    let watching = async {
        // Past the stall time and past the first beat, the handler still at work.
        tokio::time::sleep(HEARTBEAT + Duration::from_millis(700)).await;
        let sent = recover_stalled(&app.services, stall).await.unwrap();
        assert_eq!(sent, 0, "a run a handler works on is moving");
        // The handler done (and nothing more taken), the run left parsed: it stalls like
        // any other.
        tokio::time::sleep(work - HEARTBEAT).await;
        shutdown.cancel();
        tokio::time::sleep(stall).await;
        let sent = recover_stalled(&app.services, stall).await.unwrap();
        assert_eq!(sent, 1, "a run nobody works on any more is announced again");
    };
    let (consumed, ()) = tokio::join!(consuming, watching);
    consumed.unwrap();
    assert_eq!(memory.len(Queue::Parsed), 1, "announced again once");
}

#[tokio::test]
async fn runs_waiting_behind_an_earlier_one_are_not_stalled() {
    let dir = tempfile::tempdir().unwrap();
    let (app, memory) = app(&dir).await;
    let t = TenantId::new("t1").unwrap();
    let first = parsed_run(&app, &t).await;
    let _waiting = parsed_run(&app, &t).await;
    let sent = recover_stalled(&app.services, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        sent, 1,
        "only the first run is stalled; the second waits for it"
    );
    use futures::StreamExt;
    let mut d = app
        .services
        .transport
        .consume(Queue::Parsed, 1)
        .await
        .unwrap();
    let announced = d.next().await.unwrap();
    assert_eq!(
        announced
            .message()
            .header(roster_shared::transport::header::RUN),
        Some(first.to_string().as_str())
    );
    assert_eq!(memory.len(Queue::Parsed), 0);
}

#[tokio::test]
async fn a_stale_announcement_of_a_run_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let t = TenantId::new("t1").unwrap();
    let run = parsed_run(&app, &t).await;
    let db = &app.services.db;
    let first = MessageId::new();
    assert_eq!(
        differ_db::begin_plan(db, &t, run, 0, first).await.unwrap(),
        Some(1)
    );
    // Another announcement made for generation 0 (a recovery racing a re-plan, a late
    // duplicate) must not start another planning and throw the first one's batches away.
    assert_eq!(
        differ_db::begin_plan(db, &t, run, 0, MessageId::new())
            .await
            .unwrap(),
        None
    );
    // The first announcement itself, redelivered because its planner died, plans again.
    assert_eq!(
        differ_db::begin_plan(db, &t, run, 0, first).await.unwrap(),
        Some(2)
    );
    let model = runs::get(db, &t, run).await.unwrap().unwrap();
    let mut stale = runs::parsed_body(&model);
    stale.generation = 0;
    let env = Envelope::new(MessageId::new(), t.clone(), run, stale);
    roster_differ::handle(&app.services, &differ_config(), env)
        .await
        .unwrap();
    let after = runs::get(db, &t, run).await.unwrap().unwrap();
    assert_eq!(
        after.generation, 2,
        "the stale announcement planned nothing"
    );
}

fn differ_config() -> roster_differ::DifferConfig {
    roster_differ::DifferConfig::new(
        &settings().consume,
        &roster_differ::BrakeSettings::default(),
        true,
    )
}

/// A dead letter of `run` from `queue`, as a stage would park it.
fn dead_letter(
    tenant: &TenantId,
    run: RunId,
    stage: roster_shared::transport::Stage,
    outcome: &str,
    generation: Option<u32>,
) -> roster_shared::transport::Message {
    use roster_shared::transport::header;
    let mut headers = std::collections::BTreeMap::new();
    headers.insert(header::TENANT.to_owned(), tenant.to_string());
    headers.insert(header::RUN.to_owned(), run.to_string());
    headers.insert(header::STAGE.to_owned(), stage.name().to_owned());
    headers.insert(header::REASON.to_owned(), "it broke".to_owned());
    headers.insert(header::OUTCOME.to_owned(), outcome.to_owned());
    if let Some(g) = generation {
        headers.insert(header::GENERATION.to_owned(), g.to_string());
    }
    roster_shared::transport::Message::new(MessageId::new(), headers, b"{}".to_vec())
}

#[tokio::test]
async fn archiving_a_dead_letter_records_the_outcome_the_stage_would() {
    use roster_shared::db::dead_letters;
    use roster_shared::transport::Stage;
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let db = &app.services.db;
    let t = TenantId::new("t1").unwrap();
    let path = dir.path().join("one.csv");
    std::fs::write(&path, TWO).unwrap();
    // Archived before the stage marks its run: refused input still ends `rejected`.
    let refused = roster_fetcher::submit(
        &app.services,
        submission(&t, &path, SyncMode::Full),
        &FetchLimits::default(),
    )
    .await
    .unwrap();
    let letter = dead_letter(&t, refused, Stage::Parser, "rejected", None);
    dead_letters::archive(db, Queue::Fetched, &letter)
        .await
        .unwrap();
    let run = runs::get(db, &t, refused).await.unwrap().unwrap();
    assert_eq!(run.state.name(), "rejected");

    // A late copy of a parser's dead letter does not fail a run gone on to the differ.
    let live = parsed_run(&app, &t).await;
    let letter = dead_letter(&t, live, Stage::Parser, "failed", None);
    dead_letters::archive(db, Queue::Fetched, &letter)
        .await
        .unwrap();
    let run = runs::get(db, &t, live).await.unwrap().unwrap();
    assert_eq!(run.state.name(), "parsed");

    // Nor does a differ's dead letter fail a held run, nor an old generation's batch a
    // run applying a newer one.
    runs::transition(
        db.conn(),
        &t,
        live,
        &[RunState::Parsed],
        RunState::Held,
        Some("brake"),
    )
    .await
    .unwrap();
    let letter = dead_letter(&t, live, Stage::Differ, "failed", None);
    dead_letters::archive(db, Queue::Parsed, &letter)
        .await
        .unwrap();
    let run = runs::get(db, &t, live).await.unwrap().unwrap();
    assert_eq!(run.state.name(), "held");
    let planned = planned_run(&app, &t, 1).await;
    let letter = dead_letter(&t, planned, Stage::Writer, "failed", Some(7));
    dead_letters::archive(db, Queue::Changes, &letter)
        .await
        .unwrap();
    let run = runs::get(db, &t, planned).await.unwrap().unwrap();
    assert_eq!(run.state.name(), "diffed", "generation 7 is not the run's");
    let letter = dead_letter(&t, planned, Stage::Writer, "failed", Some(1));
    dead_letters::archive(db, Queue::Changes, &letter)
        .await
        .unwrap();
    let run = runs::get(db, &t, planned).await.unwrap().unwrap();
    assert_eq!(
        run.state.name(),
        "failed",
        "the run's own generation fails it"
    );
}

#[tokio::test]
async fn batches_are_cut_by_size_as_well_as_count() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir).await;
    let t = TenantId::new("t1").unwrap();
    // Ten people with a dozen wide attributes each: about 7 MiB of changes in all.
    let wide = "w".repeat(60 * 1024);
    let mut csv = String::from("Email");
    for c in 0..12 {
        csv.push_str(&format!(",Extra{c}"));
    }
    csv.push('\n');
    for p in 0..10 {
        csv.push_str(&format!("p{p}@x.com"));
        for _ in 0..12 {
            csv.push(',');
            csv.push_str(&wide);
        }
        csv.push('\n');
    }
    let run = import(&app, &t, &csv, SyncMode::Full).await;
    let done = runs::get(&app.services.db, &t, run).await.unwrap().unwrap();
    assert_eq!(done.created, 10);
    // Ten people of ~740 KB: one batch by count, more when cut by bytes.
    let bytes = 10 * 12 * wide.len();
    let at_least = bytes.div_ceil(roster_shared::CHANGE_BATCH_BYTES);
    assert!(at_least >= 2);
    assert!(
        done.batches_total.unwrap_or(0) as usize >= at_least,
        "batches of at most {} bytes: {:?}",
        roster_shared::CHANGE_BATCH_BYTES,
        done.batches_total
    );
}

/// A transport whose first `publish_events` fails, as a broker blip would.
#[derive(Debug)]
struct EventsFailOnce {
    inner: MemoryTransport,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl roster_shared::transport::Transport for EventsFailOnce {
    async fn publish(
        &self,
        queue: Queue,
        messages: Vec<roster_shared::transport::Message>,
    ) -> Result<(), roster_shared::transport::TransportError> {
        self.inner.publish(queue, messages).await
    }

    async fn publish_events(
        &self,
        routing_key: &str,
        messages: Vec<roster_shared::transport::Message>,
    ) -> Result<(), roster_shared::transport::TransportError> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(roster_shared::transport::TransportError::Unavailable(
                "blip".into(),
            ));
        }
        self.inner.publish_events(routing_key, messages).await
    }

    async fn consume(
        &self,
        queue: Queue,
        prefetch: u16,
    ) -> Result<roster_shared::transport::Deliveries, roster_shared::transport::TransportError>
    {
        self.inner.consume(queue, prefetch).await
    }

    async fn next_dead_letter(
        &self,
        queue: Queue,
    ) -> Result<Option<roster_shared::transport::Delivery>, roster_shared::transport::TransportError>
    {
        self.inner.next_dead_letter(queue).await
    }
}

#[tokio::test]
async fn events_of_a_batch_with_conflicts_survive_a_failed_publish() {
    let dir = tempfile::tempdir().unwrap();
    let (mut app, memory) = app(&dir).await;
    let t = TenantId::new("t1").unwrap();
    import(&app, &t, TWO, SyncMode::Full).await;
    let a = person(&app, &t, "a@x.com").await;
    let mut stale_b = person(&app, &t, "b@x.com").await;
    stale_b.set(Field::Phone, "was different");
    let run = planned_run(&app, &t, 1).await;
    let mut events = memory.subscribe_events();
    app.services.transport = Arc::new(EventsFailOnce {
        inner: memory.clone(),
        failed: std::sync::atomic::AtomicBool::new(false),
    });
    let delivery = batch(
        &t,
        run,
        1,
        1,
        vec![retitle(&a, "Lead"), retitle(&stale_b, "Boss")],
    );
    // The broker blips as the events go out: the batch is tried again.
    assert!(
        roster_writer::handle(&app.services, delivery.clone())
            .await
            .is_err()
    );
    roster_writer::handle(&app.services, delivery)
        .await
        .unwrap();
    let mut announced = Vec::new();
    while let Ok((_, msg)) = events.try_recv() {
        let env = Envelope::<EventBatch>::from_bytes(&msg.payload).unwrap();
        announced.extend(env.body.events.into_iter().map(|e| (e.event, e.email)));
    }
    assert_eq!(
        announced,
        [("employee.updated".to_owned(), "a@x.com".to_owned())],
        "the applied change is announced, once"
    );
}

/// A tenant's first import carries its creations by reference to the run's snapshot: the
/// batch holds no changes, the writer reads its lines (skipping a rejected row's
/// protecting line), a redelivery after the run finished (its snapshot discarded) is
/// recognised as applied before, and a batch whose lines are gone before it was applied
/// fails instead of creating nobody.
#[tokio::test]
async fn a_first_import_creates_people_from_the_snapshot_by_reference() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let (app, memory) = app(&dir).await;
    let db = &app.services.db;
    let t = TenantId::new("t1").unwrap();
    let csv = "Email,Status\na@x.com,active\nb@x.com,maybe\nc@x.com,inactive\nd@x.com,active\n";
    let parsed = roster_parser::parse(
        Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
        &roster_parser::ParseOptions {
            file_name: "people.csv".into(),
            organizations: Vec::new(),
            value_rules: Default::default(),
            format: Format::Csv,
            encoding: None,
            mappings: vec![],
            limits: Default::default(),
            sort_memory: roster_parser::DEFAULT_SORT_MEMORY,
            spill_dir: None,
            ignore_encoding: false,
            bundle: Default::default(),
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!((parsed.accepted, parsed.rejected), (3, 1));
    let mut snapshot = Vec::new();
    parsed.write_snapshot(&mut snapshot).unwrap();
    let run = RunId::new();
    roster_fetcher::db::create_run(db, &new_run(&t, run, "people.csv", SyncMode::Full), None)
        .await
        .unwrap();
    let snapshot_key = BlobStore::snapshot_key(&t, run);
    app.services
        .blobs
        .put_bytes(&snapshot_key, snapshot)
        .await
        .unwrap();
    let body = SnapshotParsed {
        snapshot_key: snapshot_key.clone(),
        rejects_key: "none".into(),
        rows_read: 4,
        accepted: 3,
        rejected: 1,
        mode: SyncMode::Full,
        generation: 0,
        covered: None,
        related_key: None,
    };
    let recorded = roster_parser::db::Parsed {
        body: &body,
        errors: &[],
        skipped: 0,
        parse_ms: 0,
        parse_config: "test",
    };
    assert!(
        roster_parser::db::mark_parsed(db, &t, run, &recorded)
            .await
            .unwrap()
    );
    roster_differ::handle(
        &app.services,
        &differ_config(),
        Envelope::new(MessageId::new(), t.clone(), run, body),
    )
    .await
    .unwrap();
    assert_eq!(memory.len(Queue::Changes), 1);
    let mut deliveries = app
        .services
        .transport
        .consume(Queue::Changes, 1)
        .await
        .unwrap();
    let delivery = deliveries.next().await.unwrap();
    let env = Envelope::<ChangesReady>::from_bytes(&delivery.message().payload).unwrap();
    let slice = env
        .body
        .creates_from
        .clone()
        .expect("a first import by reference");
    assert!(env.body.changes.is_empty());
    assert_eq!(
        (slice.key.as_str(), slice.start),
        (snapshot_key.as_str(), 0)
    );
    roster_writer::handle(&app.services, env.clone())
        .await
        .unwrap();
    let done = runs::get(db, &t, run).await.unwrap().unwrap();
    assert_eq!((done.state.name(), done.created), ("applied", 3));
    let stored = differ_db::fetch(db.conn(), &t, &["a@x.com", "b@x.com", "c@x.com", "d@x.com"])
        .await
        .unwrap();
    let mut emails: Vec<&String> = stored.keys().collect();
    emails.sort();
    assert_eq!(
        emails,
        ["a@x.com", "c@x.com", "d@x.com"],
        "b's row was rejected"
    );
    assert!(!stored["c@x.com"].active);
    // The run is applied, so its snapshot is gone; the batch delivered again is a batch
    // applied before, not an error.
    assert!(!app.services.blobs.exists(&snapshot_key).await.unwrap());
    roster_writer::handle(&app.services, env).await.unwrap();
    let again = runs::get(db, &t, run).await.unwrap().unwrap();
    assert_eq!((again.state.name(), again.created), ("applied", 3));

    // A t2 batch creating from `key`: the writer's error.
    let t2 = TenantId::new("t2").unwrap();
    let run2 = planned_run(&app, &t2, 1).await;
    let refusal = |key: String| {
        let mut env = batch(&t2, run2, 1, 1, vec![]);
        env.body.creates_from = Some(roster_shared::model::envelope::SnapshotSlice {
            key,
            start: 0,
            end: 100,
        });
        let services = app.services.clone();
        async move {
            roster_writer::handle(&services, env)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    // A batch naming a snapshot other than its run's (here t1's) is refused.
    let err = refusal(snapshot_key.clone()).await;
    assert!(err.contains("not its run's snapshot"), "{err}");
    // A batch whose lines are gone before it was applied is an error, and creates no one.
    let err = refusal(BlobStore::snapshot_key(&t2, run2)).await;
    assert!(err.contains("is gone"), "{err}");
    let still = runs::get(db, &t2, run2).await.unwrap().unwrap();
    assert_eq!((still.state.name(), still.created), ("diffed", 0));
}
