//! One supervisor per install, whatever the number of processes: the install-wide chores
//! (re-announcing stalled runs, archiving dead letters) are done by the one process that
//! holds the supervisor lease, and another takes over when it dies.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use roster_fetcher::NewRun;
use roster_shared::db::{Db, lease};
use roster_shared::model::envelope::{Format, SyncMode};
use roster_shared::model::ids::{RunId, TenantId};
use roster_shared::supervisor::LEASE;
use roster_shared::transport::amqp::AmqpTransport;
use roster_shared::transport::{Queue, Transport};

use crate::harness::{Install, amqp_url, tenant};

/// The pid in a lease holder's name (`host:pid:random`).
fn pid_of(holder: &str) -> Option<u32> {
    holder.split(':').nth(1)?.parse().ok()
}

#[test]
fn two_fetchers_one_stalled_run_it_is_announced_once() {
    // Only fetchers: nothing consumes what they announce, so every announcement stays in
    // the queue to be counted.
    let mut i = Install::on_broker(
        &[
            ("ROSTER_STALL_AFTER_SECS", "60"),
            ("ROSTER_SUPERVISE_INTERVAL_MS", "100"),
            ("ROSTER_SUPERVISOR_LEASE_SECS", "3"),
        ],
        "supervised",
    );
    i.start_process("fetcher-a", "roster-fetcher", &[]);
    i.start_process("fetcher-b", "roster-fetcher", &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(Db::connect(&i.env("ROSTER_DATABASE_URL").unwrap().into()))
        .unwrap();
    let holder = |db: &Db| {
        rt.block_on(lease::holder(db, LEASE))
            .unwrap()
            .filter(|h| h.expires_in_ms > 0)
            .and_then(|h| pid_of(&h.holder))
    };
    let fetchers = |i: &Install| -> BTreeSet<u32> {
        ["fetcher-a", "fetcher-b"]
            .iter()
            .filter_map(|n| i.pid(n))
            .collect()
    };
    i.wait_until("a fetcher to supervise", Duration::from_secs(60), || {
        holder(&db).is_some_and(|pid| fetchers(&i).contains(&pid))
    });

    // A run whose announcement was lost with its process an hour ago.
    let t = TenantId::new(tenant("stalled")).unwrap();
    let run = RunId::new();
    rt.block_on(async {
        roster_fetcher::db::create_run(
            &db,
            &NewRun {
                tenant: t.clone(),
                id: run,
                source: "inbox".into(),
                file_name: "lost.csv".into(),
                blob_key: "raw/lost".into(),
                sha256: "0".into(),
                size: 1,
                format: Format::Csv,
                mode: SyncMode::Full,
                encoding: None,
                ignore_encoding: false,
                options: Default::default(),
            },
            None,
        )
        .await
        .unwrap();
        let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
        db.conn()
            .execute_raw(roster_shared::db::raw(
                db.backend(),
                "UPDATE runs SET updated_at = $1 WHERE id = $2",
                vec![an_hour_ago.into(), run.to_string().into()],
            ))
            .await
            .unwrap();
    });
    use roster_shared::sea_orm::ConnectionTrait;

    // Announced once: one message on the parser's queue, and no second one while the
    // supervisors keep looking (every 100 ms).
    let prefix = i.env("ROSTER_QUEUE_PREFIX").unwrap().to_owned();
    let announced = rt.block_on(async {
        let t = AmqpTransport::connect(&amqp_url().into(), &prefix)
            .await
            .unwrap();
        let mut deliveries = t.consume(Queue::Fetched, 16).await.unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.is_empty() && Instant::now() < deadline {
            if let Ok(Some(d)) =
                tokio::time::timeout(Duration::from_millis(200), deliveries.next()).await
            {
                seen.push(d);
            }
        }
        let quiet = Instant::now() + Duration::from_secs(3);
        while Instant::now() < quiet {
            if let Ok(Some(d)) =
                tokio::time::timeout(Duration::from_millis(200), deliveries.next()).await
            {
                seen.push(d);
            }
        }
        seen.iter()
            .map(|d| {
                d.message()
                    .header(roster_shared::transport::header::RUN)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(announced, [run.to_string()], "{}", i.logs());

    // Exactly one of the two fetchers supervised.
    let supervising: Vec<&str> = ["fetcher-a", "fetcher-b"]
        .into_iter()
        .filter(|n| i.full_log(n).contains("supervising this install"))
        .collect();
    assert_eq!(supervising.len(), 1, "{supervising:?}");

    // The supervisor dies: the other fetcher takes over once its lease expires.
    let dead = supervising[0];
    let survivor = if dead == "fetcher-a" {
        "fetcher-b"
    } else {
        "fetcher-a"
    };
    let survivor_pid = i.pid(survivor).unwrap();
    i.kill_stage(dead);
    i.wait_until(
        "the other fetcher to take over",
        Duration::from_secs(60),
        || holder(&db) == Some(survivor_pid),
    );
    assert!(i.full_log(survivor).contains("supervising this install"));
}
