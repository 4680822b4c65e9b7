//! The RabbitMQ transport against a real broker (`ROSTER_TEST_AMQP_URL`, as
//! `scripts/test.sh` sets it; the machine's default broker otherwise). Each test has its
//! own queue prefix.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use roster_shared::ids::MessageId;
use roster_shared::transport::amqp::AmqpTransport;
use roster_shared::transport::{
    DeadLetterInfo, Deliveries, Delivery, Message, Queue, Stage, Transport, TransportError, header,
};

fn url() -> String {
    std::env::var("ROSTER_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

async fn transport() -> AmqpTransport {
    let prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
    AmqpTransport::connect(&url(), &prefix)
        .await
        .expect("the test broker is up")
}

fn msg(n: u8) -> Message {
    let mut headers = BTreeMap::new();
    headers.insert(header::TENANT.to_owned(), "acme".to_owned());
    Message {
        id: MessageId::new(),
        headers,
        payload: vec![n],
    }
}

async fn next(d: &mut Deliveries) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), d.next())
        .await
        .expect("a delivery in time")
        .expect("stream open")
}

#[tokio::test]
async fn publish_consume_retry_and_dead_letter() {
    let t = transport().await;
    let sent = msg(1);
    t.publish(Queue::Fetched, vec![sent.clone(), msg(2)])
        .await
        .unwrap();
    let mut d = t.consume(Queue::Fetched, 4).await.unwrap();

    let first = next(&mut d).await;
    assert_eq!(first.message().id, sent.id);
    assert_eq!(first.message().header(header::TENANT), Some("acme"));
    assert_eq!(first.attempt(), 1);
    let retried_at = Instant::now();
    first.retry(Duration::from_millis(10)).await.unwrap();

    next(&mut d).await.ack().await.unwrap();

    let again = next(&mut d).await;
    assert!(
        retried_at.elapsed() >= Duration::from_millis(200),
        "waited in the retry tier"
    );
    assert_eq!((again.message().id, again.attempt()), (sent.id, 2));
    again
        .dead_letter(DeadLetterInfo {
            reason: "bad file".into(),
            stage: Stage::Parser,
            attempts: 2,
        })
        .await
        .unwrap();

    let dead = t
        .next_dead_letter(Queue::Fetched)
        .await
        .unwrap()
        .expect("a dead letter");
    assert_eq!(dead.message().id, sent.id);
    assert_eq!(dead.message().header(header::REASON), Some("bad file"));
    assert_eq!(dead.message().header(header::STAGE), Some("parser"));
    assert_eq!(dead.message().header(header::ATTEMPT), Some("2"));
    assert!(dead.message().header(header::FIRST_FAILED_AT).is_some());
    dead.requeue().await.unwrap();
    let dead = t
        .next_dead_letter(Queue::Fetched)
        .await
        .unwrap()
        .expect("kept until acked");
    dead.ack().await.unwrap();
    assert!(t.next_dead_letter(Queue::Fetched).await.unwrap().is_none());
    // Deleting a queue cancels its consumer; the shared connection must survive that.
    t.delete_topology().await.unwrap();
    drop(d);
}

#[tokio::test]
async fn a_dropped_delivery_comes_back() {
    let t = transport().await;
    t.publish(Queue::Changes, vec![msg(7)]).await.unwrap();
    let mut d = t.consume(Queue::Changes, 1).await.unwrap();
    drop(next(&mut d).await);
    let again = next(&mut d).await;
    assert_eq!(again.message().payload, [7]);
    again.ack().await.unwrap();
    t.delete_topology().await.unwrap();
}

#[tokio::test]
async fn events_go_to_the_exchange_and_unroutable_queues_are_errors() {
    let t = transport().await;
    // No binding on the events exchange: accepted (and dropped by the broker).
    t.publish_events("employee.created", vec![msg(1)])
        .await
        .unwrap();
    t.delete_topology().await.unwrap();
    // No queue to take a message: the broker returns it, and that is an error.
    let err = t.publish(Queue::Parsed, vec![msg(2)]).await.unwrap_err();
    assert!(matches!(err, TransportError::Refused(_)), "{err}");
    // A broker that cannot be reached is `Unavailable`, never a hang.
    let err = AmqpTransport::connect("amqp://guest:guest@127.0.0.1:1/%2f", "x.")
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Unavailable(_)), "{err}");
}
