//! Stage behaviour in process, on the in-memory transport and SQLite: idempotent batches,
//! stale changes, events, run ordering, re-announcing.

use std::sync::Arc;
use std::time::Duration;

use roster::App;
use roster::pipeline::{Pipeline, PipelineSettings, wait_for_run};
use roster_differ::db as differ_db;
use roster_fetcher::{NewRun, Submission};
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
    let mut app = App::open(store, BrokerSettings::default(), Arc::new(NoProgress))
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
    let run = roster_fetcher::submit(&app.services, submission(tenant, &path, mode))
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
        seen: None,
    }
}

async fn person(app: &App, tenant: &TenantId, email: &str) -> Person {
    differ_db::fetch(app.services.db.conn(), tenant, &[email])
        .await
        .unwrap()
        .remove(email)
        .unwrap()
}

/// A run planned as generation 1 with `batches` batches, as the differ would leave it.
async fn planned_run(app: &App, tenant: &TenantId, batches: u32) -> RunId {
    let db = &app.services.db;
    let id = RunId::new();
    roster_fetcher::db::create_run(
        db,
        &NewRun {
            tenant: tenant.clone(),
            id,
            source: "test".into(),
            file_name: "hand-made".into(),
            blob_key: "none".into(),
            sha256: "0".into(),
            size: 0,
            format: Format::Csv,
            mode: SyncMode::Delta,
            encoding: None,
        },
        None,
    )
    .await
    .unwrap();
    let parsed = SnapshotParsed {
        snapshot_key: "none".into(),
        rejects_key: "none".into(),
        rows_read: 1,
        accepted: 1,
        rejected: 0,
        mode: SyncMode::Delta,
    };
    assert!(
        roster_parser::db::mark_parsed(db, tenant, id, &parsed, &[], 0)
            .await
            .unwrap()
    );
    assert_eq!(
        differ_db::begin_plan(db, tenant, id).await.unwrap(),
        Some(1)
    );
    assert!(
        differ_db::set_plan(db, tenant, id, 1, batches, 0, 0)
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
        differ_db::begin_plan(&app.services.db, &t, run)
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
            assert_eq!(e.event, key);
            seen.push((key.clone(), e.email, e.event_id, e.changed.len()));
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
        &NewRun {
            tenant: t.clone(),
            id: stuck,
            source: "test".into(),
            file_name: "stuck.csv".into(),
            blob_key: "none".into(),
            sha256: "0".into(),
            size: 0,
            format: Format::Csv,
            mode: SyncMode::Full,
            encoding: None,
        },
        None,
    )
    .await
    .unwrap();
    let path = dir.path().join("second.csv");
    std::fs::write(&path, TWO).unwrap();
    let mut pipeline = Pipeline::start(&app, &settings(), None);
    let second = roster_fetcher::submit(&app.services, submission(&t, &path, SyncMode::Full))
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
    runs::fail(&app.services.db, &t, stuck, RunState::Failed, "given up")
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
    let held = roster_fetcher::submit(&app.services, submission(&t, &path, SyncMode::Full))
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
    let fetched = roster_fetcher::submit(&app.services, submission(&t1, &path, SyncMode::Full))
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
