//! The RabbitMQ transport (lapin).
//!
//! Topology, every name behind the configured prefix:
//! - `roster.fetched`, `roster.parsed`, `roster.changes`: durable quorum queues, one per
//!   consuming stage. A message that crashes its consumer again and again (delivery
//!   limit) is dead-lettered by the broker, at least once, to the queue's `.dlq`.
//! - `<queue>.retry.<ms>`: quorum queues with a message TTL that dead-letter back into
//!   `<queue>` at least once: a retry or postponement waits there, no busy loop. Delays
//!   round up to the next tier.
//! - `<queue>.dlq`: durable quorum queues holding dead letters with their reason, stage,
//!   attempts and times in headers.
//! - `roster.events`: a durable topic exchange for downstream consumers.
//!
//! Publishing waits for the broker's confirms of the whole batch; a nack or an
//! unroutable return is an error. Every call to the broker has a deadline
//! ([`CONNECT_TIMEOUT`], [`CALL_TIMEOUT`]): a broker that stops answering is unavailable,
//! never a hang. A delivery is acked only when its consumer settles it;
//! a retry or dead letter is published (and confirmed) before the original is acked.
//! When the broker goes away, publishing fails with [`TransportError::Unavailable`] and
//! consumer streams reconnect with backoff on their own; unsettled deliveries come back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Mutex, mpsc};
use tracing::{info, warn};

use crate::secret::SecretUrl;

use super::{
    Deliveries, Delivery, EVENTS_EXCHANGE, Message, Outcome, Queue, Settle, Transport,
    TransportError, header,
};

/// Delay tiers of the retry queues, in milliseconds.
pub const RETRY_TIERS_MS: [u64; 6] = [250, 1_000, 5_000, 15_000, 60_000, 300_000];

/// Redeliveries after which the broker dead-letters a message that keeps killing its
/// consumer (a crash, not an error: errors are settled by the consumer).
const DELIVERY_LIMIT: i64 = 20;

/// The RabbitMQ transport. Clones share one connection.
#[derive(Clone)]
pub struct AmqpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    url: SecretUrl,
    prefix: String,
    live: Mutex<Option<Live>>,
}

#[derive(Clone)]
struct Live {
    connection: Arc<Connection>,
    publisher: Channel,
}

impl std::fmt::Debug for AmqpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpTransport")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display, url: &SecretUrl) -> TransportError {
    TransportError::Unavailable(url.redact_in(&e.to_string()))
}

/// How long connecting to the broker (and declaring the topology) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one call to the broker may take: opening a channel, a publish's confirm,
/// an acknowledgement, a `basic.get`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Awaits `call` to the broker (`what`, for the message), giving up after `limit`: a
/// broker that stops answering is unavailable, never a hang.
async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    url: &SecretUrl,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, TransportError> {
    match tokio::time::timeout(limit, call).await {
        Ok(done) => done.map_err(|e| unavailable(e, url)),
        Err(_) => Err(TransportError::Unavailable(format!(
            "{what}: no answer from the broker within {} s",
            limit.as_secs()
        ))),
    }
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// A header table from text headers.
fn to_table(headers: &BTreeMap<String, String>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in headers {
        table.insert(ShortString::from(k.as_str()), long(v));
    }
    table
}

/// Text headers from a header table (numbers as text; nested values left out).
fn from_table(table: Option<&FieldTable>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(table) = table else {
        return out;
    };
    for (k, v) in table {
        let text = match v {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            AMQPValue::ShortString(s) => s.as_str().to_owned(),
            AMQPValue::LongLongInt(n) => n.to_string(),
            AMQPValue::LongInt(n) => n.to_string(),
            AMQPValue::LongUInt(n) => n.to_string(),
            AMQPValue::ShortInt(n) => n.to_string(),
            AMQPValue::ShortUInt(n) => n.to_string(),
            AMQPValue::Boolean(b) => b.to_string(),
            _ => continue,
        };
        out.insert(k.as_str().to_owned(), text);
    }
    out
}

/// The message a lapin delivery carries.
fn message_of(properties: &BasicProperties, data: Vec<u8>) -> Message {
    let mut headers = from_table(properties.headers().as_ref());
    // A message the broker dead-lettered (delivery limit) has its reason in its own header.
    if !headers.contains_key(header::REASON)
        && let Some(reason) = headers.get("x-first-death-reason").cloned()
    {
        headers.insert(
            header::REASON.into(),
            format!("dead-lettered by the broker: {reason} (its consumer kept failing)"),
        );
    }
    let id = properties
        .message_id()
        .as_ref()
        .and_then(|id| id.as_str().parse::<crate::model::ids::MessageId>().ok())
        .unwrap_or_default();
    Message::new(id, headers, data)
}

fn attempt_of(message: &Message) -> u32 {
    message
        .header(header::ATTEMPT)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1)
}

impl AmqpTransport {
    /// Connects to `url` and declares the topology under `prefix`.
    pub async fn connect(url: &SecretUrl, prefix: &str) -> Result<AmqpTransport, TransportError> {
        let t = AmqpTransport {
            inner: Arc::new(Inner {
                url: url.clone(),
                prefix: prefix.to_owned(),
                live: Mutex::new(None),
            }),
        };
        t.live().await?;
        Ok(t)
    }

    /// Deletes every queue and the exchange under this transport's prefix (for tests and
    /// for removing an install). Messages in them are lost.
    pub async fn delete_topology(&self) -> Result<(), TransportError> {
        let url = &self.inner.url;
        // A channel of its own: a refused delete closes the channel it ran on.
        let ch = self.channel().await?;
        for &queue in Queue::ALL {
            let mut names = vec![self.queue_name(queue), self.dlq_name(queue)];
            names.extend(RETRY_TIERS_MS.map(|t| self.retry_name(queue, t)));
            for name in names {
                ch.queue_delete(
                    name.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await
                .map_err(|e| unavailable(format!("deleting {name}: {e}"), url))?;
            }
        }
        ch.exchange_delete(
            self.name(EVENTS_EXCHANGE).as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await
        .map_err(|e| unavailable(e, url))?;
        let _ = ch.close(200, "done".into()).await;
        Ok(())
    }

    /// Whether the broker is reachable (connecting if needed).
    pub async fn check(&self) -> Result<(), TransportError> {
        self.live().await.map(drop)
    }

    /// A name behind the prefix.
    pub fn name(&self, base: &str) -> String {
        format!("{}{base}", self.inner.prefix)
    }

    fn queue_name(&self, queue: Queue) -> String {
        self.name(queue.name())
    }

    fn dlq_name(&self, queue: Queue) -> String {
        format!("{}.dlq", self.queue_name(queue))
    }

    fn retry_name(&self, queue: Queue, tier_ms: u64) -> String {
        format!("{}.retry.{tier_ms}", self.queue_name(queue))
    }

    /// The shared connection, reconnecting (once) if it is gone; a closed publishing
    /// channel is reopened on a healthy connection.
    async fn live(&self) -> Result<Live, TransportError> {
        let mut guard = self.inner.live.lock().await;
        let url = &self.inner.url;
        if let Some(live) = guard.as_mut()
            && live.connection.status().connected()
        {
            if !live.publisher.status().connected() {
                live.publisher = Self::publisher(&live.connection, url).await?;
            }
            return Ok(live.clone());
        }
        // Bounded: every publisher and the readiness probe wait on this lock.
        let connected = async {
            let connection = within(
                CONNECT_TIMEOUT,
                "connecting",
                url,
                Connection::connect(
                    url.expose(),
                    ConnectionProperties::default().with_connection_name("roster".into()),
                ),
            )
            .await?;
            let publisher = Self::publisher(&connection, url).await?;
            self.declare(&publisher).await?;
            Ok::<_, TransportError>((connection, publisher))
        };
        let (connection, publisher) = match tokio::time::timeout(CONNECT_TIMEOUT, connected).await {
            Ok(done) => done?,
            Err(_) => {
                return Err(TransportError::Unavailable(format!(
                    "connecting: no answer from the broker within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
        info!(prefix = %self.inner.prefix, "connected to RabbitMQ");
        let live = Live {
            connection: Arc::new(connection),
            publisher,
        };
        *guard = Some(live.clone());
        Ok(live)
    }

    async fn publisher(
        connection: &Connection,
        url: &SecretUrl,
    ) -> Result<Channel, TransportError> {
        let ch = within(
            CALL_TIMEOUT,
            "opening a channel",
            url,
            connection.create_channel(),
        )
        .await?;
        within(
            CALL_TIMEOUT,
            "enabling confirms",
            url,
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        Ok(ch)
    }

    /// Our delivery for a lapin delivery taken from `queue` (or its dead-letter queue),
    /// counted in `in_flight` until settled.
    fn delivery(
        &self,
        queue: Queue,
        d: lapin::message::Delivery,
        in_flight: Option<&Arc<InFlight>>,
    ) -> Delivery {
        let message = message_of(&d.properties, d.data);
        let attempt = attempt_of(&message);
        Delivery::new(
            message.clone(),
            attempt,
            Box::new(AmqpSettle {
                transport: self.clone(),
                queue,
                acker: Some(d.acker),
                message,
                attempt,
                _in_flight: in_flight.map(InFlight::enter),
            }),
        )
    }

    /// A new channel on the shared connection.
    async fn channel(&self) -> Result<Channel, TransportError> {
        let live = self.live().await?;
        within(
            CALL_TIMEOUT,
            "opening a channel",
            &self.inner.url,
            live.connection.create_channel(),
        )
        .await
    }

    /// Forgets the connection if it is broken, so the next use reconnects.
    async fn forget_if_broken(&self) {
        let mut guard = self.inner.live.lock().await;
        if guard
            .as_ref()
            .is_some_and(|live| !live.connection.status().connected())
        {
            *guard = None;
        }
    }

    async fn declare(&self, ch: &Channel) -> Result<(), TransportError> {
        let url = &self.inner.url;
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let quorum = |dead_letter_to: &str| {
            let mut args = FieldTable::default();
            args.insert("x-queue-type".into(), long("quorum"));
            args.insert("x-dead-letter-exchange".into(), long(""));
            args.insert("x-dead-letter-routing-key".into(), long(dead_letter_to));
            args.insert("x-dead-letter-strategy".into(), long("at-least-once"));
            args.insert("x-overflow".into(), long("reject-publish"));
            args
        };
        for &queue in Queue::ALL {
            let main = self.queue_name(queue);
            let dlq = self.dlq_name(queue);
            let mut dlq_args = FieldTable::default();
            dlq_args.insert("x-queue-type".into(), long("quorum"));
            ch.queue_declare(dlq.as_str().into(), durable, dlq_args)
                .await
                .map_err(|e| unavailable(e, url))?;
            let mut main_args = quorum(&dlq);
            main_args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(DELIVERY_LIMIT),
            );
            ch.queue_declare(main.as_str().into(), durable, main_args)
                .await
                .map_err(|e| unavailable(e, url))?;
            for tier in RETRY_TIERS_MS {
                let mut args = quorum(&main);
                args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(tier as i64));
                ch.queue_declare(self.retry_name(queue, tier).as_str().into(), durable, args)
                    .await
                    .map_err(|e| unavailable(e, url))?;
            }
        }
        ch.exchange_declare(
            self.name(EVENTS_EXCHANGE).as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| unavailable(e, url))?;
        Ok(())
    }

    /// Publishes `messages` to `exchange` with `routing_key`, waiting for every confirm.
    async fn publish_to(
        &self,
        exchange: &str,
        routing_key: &str,
        messages: &[Message],
    ) -> Result<(), TransportError> {
        let live = self.live().await?;
        let url = &self.inner.url;
        let mut confirms = Vec::with_capacity(messages.len());
        for m in messages {
            let properties = BasicProperties::default()
                .with_message_id(m.id.to_string().into())
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_headers(to_table(&m.headers));
            let sent = within(
                CALL_TIMEOUT,
                "publishing",
                url,
                live.publisher.basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: exchange.is_empty(),
                        ..BasicPublishOptions::default()
                    },
                    &m.payload,
                    properties,
                ),
            )
            .await;
            match sent {
                Ok(confirm) => confirms.push(confirm),
                Err(e) => {
                    self.forget_if_broken().await;
                    return Err(e);
                }
            }
        }
        for confirm in confirms {
            match within(CALL_TIMEOUT, "waiting for a publish confirm", url, confirm).await {
                Ok(c) if c.is_nack() => {
                    return Err(TransportError::Refused(format!(
                        "the broker refused a message for {routing_key}"
                    )));
                }
                Ok(c) => {
                    if c.take_message().is_some() {
                        return Err(TransportError::Refused(format!(
                            "no queue {routing_key} to take the message"
                        )));
                    }
                }
                Err(e) => {
                    self.forget_if_broken().await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn open_consumer(
        &self,
        queue: Queue,
        prefetch: u16,
    ) -> Result<(Channel, lapin::Consumer), TransportError> {
        let url = &self.inner.url;
        let ch = self.channel().await?;
        within(
            CALL_TIMEOUT,
            "setting the prefetch",
            url,
            ch.basic_qos(prefetch, BasicQosOptions::default()),
        )
        .await?;
        let consumer = within(
            CALL_TIMEOUT,
            "subscribing",
            url,
            ch.basic_consume(
                self.queue_name(queue).as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        Ok((ch, consumer))
    }

    /// Stops a consumer: the deliveries in hand are settled first, on this channel; the
    /// ones never handed out go back to the queue when it closes.
    async fn stop(channel: &Channel, in_flight: &InFlight) {
        in_flight.drained(DRAIN_LIMIT).await;
        let _ = channel.close(200, "consumer stopped".into()).await;
    }

    /// Feeds `tx` from `queue` until `tx` closes, reconnecting whenever the broker goes
    /// away.
    async fn consume_loop(self, queue: Queue, prefetch: u16, tx: mpsc::Sender<Delivery>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if tx.is_closed() {
                return;
            }
            match self.open_consumer(queue, prefetch).await {
                Ok((channel, mut consumer)) => {
                    backoff = Duration::from_millis(100);
                    let in_flight = Arc::new(InFlight::default());
                    loop {
                        let next = tokio::select! {
                            _ = tx.closed() => return Self::stop(&channel, &in_flight).await,
                            next = consumer.next() => next,
                        };
                        match next {
                            Some(Ok(d)) => {
                                let delivery = self.delivery(queue, d, Some(&in_flight));
                                if tx.send(delivery).await.is_err() {
                                    return Self::stop(&channel, &in_flight).await;
                                }
                            }
                            Some(Err(e)) => {
                                warn!(queue = queue.name(), error = %unavailable(e, &self.inner.url), "consumer lost; reconnecting");
                                break;
                            }
                            None => {
                                warn!(
                                    queue = queue.name(),
                                    "consumer cancelled; subscribing again"
                                );
                                break;
                            }
                        }
                    }
                    let _ = channel.close(200, "resubscribing".into()).await;
                    self.forget_if_broken().await;
                }
                Err(e) => {
                    warn!(queue = queue.name(), error = %e, retry_in_ms = backoff.as_millis() as u64, "broker unavailable");
                }
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_RECONNECT_DELAY);
        }
    }
}

/// Longest wait between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Deliveries of one consumer channel not yet settled: the channel stays open until they
/// are (closing it would send them back to the queue while their handlers still work).
#[derive(Default)]
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    settled: tokio::sync::Notify,
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Waits until every delivery is settled (or dropped), at most `limit`.
    async fn drained(&self, limit: Duration) {
        let wait = async {
            loop {
                let settled = self.settled.notified();
                if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return;
                }
                settled.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

/// Counts one delivery in flight until dropped.
struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.settled.notify_waiters();
    }
}

/// How long a stopping consumer waits for its deliveries to be settled.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// The smallest retry tier at least `delay` long (the longest tier past that).
pub fn retry_tier(delay: Duration) -> u64 {
    let ms = delay.as_millis() as u64;
    RETRY_TIERS_MS
        .into_iter()
        .find(|t| *t >= ms)
        .unwrap_or(RETRY_TIERS_MS[RETRY_TIERS_MS.len() - 1])
}

struct AmqpSettle {
    transport: AmqpTransport,
    queue: Queue,
    /// Taken when settled; still here when dropped unsettled.
    acker: Option<lapin::Acker>,
    message: Message,
    attempt: u32,
    /// Keeps the consumer's channel open until this delivery is settled.
    _in_flight: Option<InFlightGuard>,
}

/// An acknowledgement the broker did not take: the channel closed under the delivery.
async fn settled(
    ack: impl std::future::Future<Output = Result<bool, lapin::Error>>,
    url: &SecretUrl,
) -> Result<(), TransportError> {
    match within(CALL_TIMEOUT, "settling a delivery", url, ack).await? {
        true => Ok(()),
        false => Err(TransportError::Unavailable(
            "the channel closed before the delivery was settled; it will be delivered again".into(),
        )),
    }
}

impl Drop for AmqpSettle {
    fn drop(&mut self) {
        // Dropped unsettled (a handler panicked): hand it back now rather than when the
        // channel closes. The broker counts the redelivery toward the delivery limit.
        if let Some(acker) = self.acker.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await;
            });
        }
    }
}

#[async_trait]
impl Settle for AmqpSettle {
    async fn settle(mut self: Box<Self>, outcome: Outcome) -> Result<(), TransportError> {
        let acker = self.acker.take().expect("settled once");
        let t = &self.transport;
        let url = &t.inner.url;
        let mut message = self.message.clone();
        match outcome {
            Outcome::Ack => {}
            Outcome::Requeue => {
                let nack = acker.nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                });
                return settled(nack, url).await;
            }
            Outcome::Retry { delay } | Outcome::Defer { delay } => {
                let attempt = if matches!(outcome, Outcome::Retry { .. }) {
                    self.attempt + 1
                } else {
                    self.attempt
                };
                message
                    .headers
                    .insert(header::ATTEMPT.into(), attempt.to_string());
                let retry = t.retry_name(self.queue, retry_tier(delay));
                t.publish_to("", &retry, &[message]).await?;
            }
            Outcome::DeadLetter(info) => {
                message.mark_dead(info);
                t.publish_to("", &t.dlq_name(self.queue), &[message])
                    .await?;
            }
        }
        settled(acker.ack(BasicAckOptions::default()), url).await
    }
}

#[async_trait]
impl Transport for AmqpTransport {
    async fn publish(&self, queue: Queue, messages: Vec<Message>) -> Result<(), TransportError> {
        self.publish_to("", &self.queue_name(queue), &messages)
            .await
    }

    async fn publish_events(
        &self,
        routing_key: &str,
        messages: Vec<Message>,
    ) -> Result<(), TransportError> {
        self.publish_to(&self.name(EVENTS_EXCHANGE), routing_key, &messages)
            .await
    }

    async fn consume(&self, queue: Queue, prefetch: u16) -> Result<Deliveries, TransportError> {
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        tokio::spawn(self.clone().consume_loop(queue, prefetch.max(1), tx));
        Ok(
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|d| (d, rx)) })
                .boxed(),
        )
    }

    async fn check(&self) -> Result<(), TransportError> {
        AmqpTransport::check(self).await
    }

    async fn next_dead_letter(&self, queue: Queue) -> Result<Option<Delivery>, TransportError> {
        let live = self.live().await?;
        let got = within(
            CALL_TIMEOUT,
            "taking a dead letter",
            &self.inner.url,
            live.publisher.basic_get(
                self.dlq_name(queue).as_str().into(),
                BasicGetOptions::default(),
            ),
        )
        .await?;
        Ok(got.map(|g| self.delivery(queue, g.delivery, None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_a_tier() {
        assert_eq!(retry_tier(Duration::from_millis(20)), 250);
        assert_eq!(retry_tier(Duration::from_secs(1)), 1_000);
        assert_eq!(retry_tier(Duration::from_secs(2)), 5_000);
        assert_eq!(retry_tier(Duration::from_secs(3600)), 300_000);
    }

    #[test]
    fn headers_round_trip() {
        let mut h = BTreeMap::new();
        h.insert(header::TENANT.to_owned(), "acme".to_owned());
        h.insert(header::REASON.to_owned(), "bad: ünïcode".to_owned());
        assert_eq!(from_table(Some(&to_table(&h))), h);
    }
}
