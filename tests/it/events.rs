//! Directory events on RabbitMQ, routed by tenant; and the database errors that no retry
//! can mend.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use roster_shared::db::Db;
use roster_shared::error::is_data_error;
use roster_shared::model::envelope::{Envelope, EventBatch};
use roster_shared::model::source::SourceEvent;
use roster_shared::sea_orm::ConnectionTrait;

use crate::harness::{Install, amqp_url, pg_url, tenant};

const PEOPLE: &str = "Email,Name\na@x.com,A A\nb@x.com,B B\n";

/// An exclusive queue bound to `exchange` (declared as Roster declares it) with `key`,
/// and a consumer on it.
async fn subscribe(exchange: &str, key: &str) -> (Connection, lapin::Consumer) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = connection.create_channel().await.unwrap();
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let queue = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.queue_bind(
        queue.name().clone(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let consumer = ch
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    (connection, consumer)
}

#[test]
fn a_consumer_bound_to_its_tenant_sees_only_its_tenant() {
    let i = Install::distributed();
    let (a, b) = (tenant("a"), tenant("b"));
    let exchange = format!("{}roster.events", i.env("ROSTER_QUEUE_PREFIX").unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The binding the README gives: this tenant's events, every kind.
    let (connection, mut consumer) = rt.block_on(subscribe(&exchange, &format!("{a}.#")));
    i.import_ok(&b, &i.file("b.csv", PEOPLE), &[]);
    i.import_ok(&a, &i.file("a.csv", PEOPLE), &[]);
    let received = rt.block_on(async {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        // A's two creations, then quiet: nothing of B's may follow.
        while Instant::now() < deadline {
            let wait = if got.len() >= 2 { 2 } else { 60 };
            match tokio::time::timeout(Duration::from_secs(wait), consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    let key = delivery.routing_key.as_str().to_owned();
                    let env = Envelope::<EventBatch>::from_bytes(&delivery.data).unwrap();
                    for e in env.body.events {
                        got.push((key.clone(), e.tenant.to_string(), e.email));
                    }
                }
                _ => break,
            }
        }
        got
    });
    let _ = rt.block_on(connection.close(200, "done".into()));
    assert_eq!(received.len(), 2, "{received:?}");
    for (key, who, _) in &received {
        assert_eq!(key, &format!("{a}.employee.created"));
        assert_eq!(who, &a);
    }
}

/// The group, membership and contact events of a bundle and a contact-details file, on
/// the tenant's routing keys, each announcing what changed; a bundle delivered again
/// announces nothing more.
#[test]
fn groups_memberships_and_contact_details_are_announced() {
    use roster_shared::model::related::{RelatedChange, RelatedEventBatch};
    let i = Install::distributed();
    let t = tenant("ov");
    let exchange = format!("{}roster.events", i.env("ROSTER_QUEUE_PREFIX").unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (connection, mut consumer) = rt.block_on(subscribe(&exchange, &format!("{t}.#")));
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = i.path().join("files").join("bundle");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["users.csv", "groups.csv", "groups-mapping.csv"] {
        std::fs::copy(fixtures.join("bundle").join(f), dir.join(f)).unwrap();
    }
    i.import_ok(&t, &dir, &[]);
    let contacts = i.file(
        "contacts.csv",
        "Person,Contact Protocol,Contact Label,Contact URI,Integration\n\
         ana.silva@widget.com,telephone,work,+351 21 000 0000,1\n",
    );
    i.import_ok(&t, &contacts, &[]);
    // Renamed: one more event.
    let groups = std::fs::read_to_string(dir.join("groups.csv")).unwrap();
    std::fs::write(
        dir.join("groups.csv"),
        groups.replace(",Engineering", ",R&D"),
    )
    .unwrap();
    i.import_ok(&t, &dir, &[]);
    let received = rt.block_on(async {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(3), consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    let key = delivery.routing_key.as_str().to_owned();
                    if key.ends_with("employee.created") {
                        continue;
                    }
                    let env = Envelope::<RelatedEventBatch>::from_bytes(&delivery.data).unwrap();
                    for e in env.body.events {
                        assert_eq!(key, format!("{t}.{}", e.event));
                        assert_eq!(e.tenant.as_str(), t);
                        got.push(e);
                    }
                }
                _ => break,
            }
        }
        got
    });
    let _ = rt.block_on(connection.close(200, "done".into()));
    let mut names: Vec<&str> = received.iter().map(|e| e.event.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "contact.changed",
            "group.created",
            "group.created",
            "group.created",
            "group.renamed",
            "membership.added",
            "membership.added",
            "membership.added",
            "membership.added",
        ],
        "{received:#?}"
    );
    let renamed = received
        .iter()
        .find(|e| e.event == "group.renamed")
        .unwrap();
    assert_eq!(
        renamed.change,
        RelatedChange::GroupRenamed {
            id: "g-eng".into(),
            from: "Engineering".into(),
            to: "R&D".into(),
        }
    );
    let contact = received
        .iter()
        .find(|e| e.event == "contact.changed")
        .unwrap();
    assert_eq!(contact.email.as_deref(), Some("ana.silva@widget.com"));
    assert!(
        matches!(&contact.change, RelatedChange::ContactAdded { contact } if contact.integration)
    );
    let ids: std::collections::BTreeSet<_> = received.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), received.len(), "every event has its own id");
}

#[test]
fn what_postgres_refuses_in_the_data_is_never_retried() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = Db::connect(&pg_url().into()).await.unwrap();
        for sql in [
            "SELECT 1 / 0",
            "SELECT convert_from('\\x00'::bytea, 'UTF8')",
            "SELECT 'nope'::integer",
        ] {
            let err = db.conn().execute_unprepared(sql).await.unwrap_err();
            assert!(is_data_error(&err), "{sql}: {err:?}");
        }
        let missing = db
            .conn()
            .execute_unprepared("SELECT * FROM no_such_table")
            .await
            .unwrap_err();
        assert!(!is_data_error(&missing), "{missing:?}");
    });
}

#[test]
fn a_source_failing_in_a_row_is_announced_and_so_is_its_recovery() {
    let i = Install::distributed_with(&[
        ("ROSTER_SOURCE_FAILING_AFTER", "2"),
        ("ROSTER_SOURCE_RETRY_SECS", "1"),
    ]);
    let t = tenant("acme");
    let folder = i.path().join("share");
    let file = i.file(
        "tenants.yaml",
        format!(
            "tenants:\n  {t}:\n    sources:\n      share:\n        kind: inbox\n        path: {}\n        schedule: 1s\n        stable_after: 0s\n",
            folder.display()
        ),
    );
    let exchange = format!("{}roster.events", i.env("ROSTER_QUEUE_PREFIX").unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (connection, mut consumer) = rt.block_on(subscribe(&exchange, &format!("{t}.source.#")));
    let ran = i.roster(&["tenants", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let next = |consumer: &mut lapin::Consumer| {
        rt.block_on(async {
            let delivery = tokio::time::timeout(Duration::from_secs(60), consumer.next())
                .await
                .expect("an event within a minute")
                .unwrap()
                .unwrap();
            let env = Envelope::<SourceEvent>::from_bytes(&delivery.data).unwrap();
            (delivery.routing_key.as_str().to_owned(), env.body)
        })
    };
    let (key, event) = next(&mut consumer);
    assert_eq!(key, format!("{t}.source.failing"));
    assert_eq!(
        (event.event.as_str(), event.source.as_str()),
        ("source.failing", "share")
    );
    assert_eq!(event.failures, 2);
    assert!(event.error.contains("share"), "{}", event.error);
    // Announced once, not at every further failure; then the folder appears.
    std::fs::create_dir_all(&folder).unwrap();
    let (key, event) = next(&mut consumer);
    assert_eq!(key, format!("{t}.source.recovered"));
    assert_eq!(event.failures, 0);
    let _ = rt.block_on(connection.close(200, "done".into()));
}
