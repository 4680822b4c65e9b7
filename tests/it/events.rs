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
use roster_shared::sea_orm::ConnectionTrait;

use crate::harness::{Install, amqp_url, pg_url, tenant};

const PEOPLE: &str = "Email,Name\na@x.com,A A\nb@x.com,B B\n";

#[test]
fn a_consumer_bound_to_its_tenant_sees_only_its_tenant() {
    let i = Install::distributed();
    let (a, b) = (tenant("a"), tenant("b"));
    let exchange = format!("{}roster.events", i.env("ROSTER_QUEUE_PREFIX").unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (connection, mut consumer) = rt.block_on(async {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let ch = connection.create_channel().await.unwrap();
        ch.exchange_declare(
            exchange.as_str().into(),
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
        // The binding the README gives: this tenant's events, every kind.
        ch.queue_bind(
            queue.name().clone(),
            exchange.as_str().into(),
            format!("{a}.#").as_str().into(),
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
    });
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
