//! The transport contract, run against both backends: the in-memory queues of the
//! embedded binary and RabbitMQ (`ROSTER_TEST_AMQP_URL`, as `scripts/test.sh` sets it;
//! the machine's default broker otherwise). Each RabbitMQ test has its own queue prefix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use roster_shared::model::ids::MessageId;
use roster_shared::secret::SecretUrl;
use roster_shared::transport::amqp::AmqpTransport;
use roster_shared::transport::memory::MemoryTransport;
use roster_shared::transport::{
    DeadLetterInfo, Deliveries, Delivery, Message, Queue, Stage, Transport, TransportError, header,
};

fn url() -> SecretUrl {
    std::env::var("ROSTER_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
        .into()
}

/// Which transport a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    RabbitMq,
}

/// A transport of `backend`, and the RabbitMQ one again to clean up after.
async fn transport(backend: Backend) -> (Arc<dyn Transport>, Option<AmqpTransport>) {
    match backend {
        Backend::Memory => (Arc::new(MemoryTransport::new(8)), None),
        Backend::RabbitMq => {
            let prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
            let t = AmqpTransport::connect(&url(), &prefix)
                .await
                .expect("the test broker is up");
            (Arc::new(t.clone()), Some(t))
        }
    }
}

async fn cleanup(amqp: Option<AmqpTransport>) {
    if let Some(t) = amqp {
        t.delete_topology().await.unwrap();
    }
}

fn msg(n: u8) -> Message {
    let mut headers = BTreeMap::new();
    headers.insert(header::TENANT.to_owned(), "acme".to_owned());
    Message::new(MessageId::new(), headers, vec![n])
}

async fn next(d: &mut Deliveries) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), d.next())
        .await
        .expect("a delivery in time")
        .expect("stream open")
}

/// The next dead letter of `queue`, waiting up to `limit` for one to be there (a
/// delivery dropped unsettled goes back to the broker asynchronously).
async fn dead_letter_within(t: &dyn Transport, queue: Queue, limit: Duration) -> Option<Delivery> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(d) = t.next_dead_letter(queue).await.unwrap() {
            return Some(d);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn publish_consume_retry_and_dead_letter(backend: Backend) {
    let (t, amqp) = transport(backend).await;
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
    assert!(retried_at.elapsed() >= Duration::from_millis(10), "waited");
    if backend == Backend::RabbitMq {
        assert!(
            retried_at.elapsed() >= Duration::from_millis(200),
            "waited in the retry tier"
        );
    }
    assert_eq!((again.message().id, again.attempt()), (sent.id, 2));
    again
        .dead_letter(DeadLetterInfo {
            reason: "bad file".into(),
            stage: Stage::Parser,
            attempts: 2,
            rejected: false,
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
    drop(dead);
    let dead = dead_letter_within(t.as_ref(), Queue::Fetched, Duration::from_secs(10))
        .await
        .expect("kept when dropped unsettled");
    dead.ack().await.unwrap();
    assert!(t.next_dead_letter(Queue::Fetched).await.unwrap().is_none());
    // Deleting a queue cancels its consumer; the shared connection must survive that.
    cleanup(amqp).await;
    drop(d);
}

async fn a_dropped_delivery_comes_back(backend: Backend) {
    let (t, amqp) = transport(backend).await;
    t.publish(Queue::Changes, vec![msg(7), msg(8)])
        .await
        .unwrap();
    let mut d = t.consume(Queue::Changes, 1).await.unwrap();
    let first = next(&mut d).await;
    assert_eq!(first.message().payload, [7]);
    drop(first);
    let again = next(&mut d).await;
    assert_eq!(again.message().payload, [7], "back before the next one");
    again.ack().await.unwrap();
    next(&mut d).await.ack().await.unwrap();
    cleanup(amqp).await;
}

async fn events_without_consumers_are_accepted(backend: Backend) {
    let (t, amqp) = transport(backend).await;
    // No binding on the events exchange: accepted (and dropped by the broker).
    t.publish_events("employee.created", vec![msg(1)])
        .await
        .unwrap();
    t.check().await.unwrap();
    cleanup(amqp).await;
}

/// Runs every contract case against every backend: one module per backend.
macro_rules! contract {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::Backend::Memory).await;
            })+
        }
        mod rabbitmq {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::Backend::RabbitMq).await;
            })+
        }
    };
}

contract!(
    publish_consume_retry_and_dead_letter,
    a_dropped_delivery_comes_back,
    events_without_consumers_are_accepted,
);

#[tokio::test]
async fn rabbitmq_unroutable_messages_and_unreachable_brokers_are_errors() {
    let (t, amqp) = transport(Backend::RabbitMq).await;
    cleanup(amqp).await;
    // No queue to take a message: the broker returns it, and that is an error.
    let err = t.publish(Queue::Parsed, vec![msg(2)]).await.unwrap_err();
    assert!(matches!(err, TransportError::Refused(_)), "{err}");
    // A broker that cannot be reached is `Unavailable`, never a hang.
    let err = AmqpTransport::connect(&"amqp://guest:guest@127.0.0.1:1/%2f".into(), "x.")
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn a_broker_that_never_answers_is_unavailable_not_a_hang() {
    // Accepts connections and says nothing: the AMQP handshake never completes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let url: SecretUrl = format!("amqp://guest:guest@127.0.0.1:{port}/%2f").into();
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        AmqpTransport::connect(&url, "silent."),
    )
    .await
    .expect("connecting gave up by itself, well before this test's own limit");
    let err = outcome.unwrap_err();
    assert!(matches!(err, TransportError::Unavailable(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    held.abort();
}
