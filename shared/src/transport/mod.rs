//! The message transport between stages, chosen by [`TransportConfig`]: in memory for the
//! embedded `roster` binary, RabbitMQ for separate processes. Both give the same promises:
//!
//! - [`Transport::publish`] returns `Ok` only once every message is safely queued
//!   (for RabbitMQ: the broker confirmed it; a nack is an error).
//! - A [`Delivery`] is settled exactly one way: [`Delivery::ack`] after the consumer's own
//!   output is durable, [`Delivery::retry`] to see it again later, [`Delivery::dead_letter`]
//!   to park it with its reason, or [`Delivery::requeue`] to hand it back unprocessed.
//!   A delivery dropped unsettled goes back to its queue; nothing is lost.
//! - Delivery is at least once, so every consumer is idempotent.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::model::ids::MessageId;
use crate::secret::SecretUrl;

pub mod amqp;
pub mod memory;

crate::text_enum! {
    /// The stages of the pipeline, in order.
    pub enum Stage as "stage" {
        /// Lists sources, stores raw files.
        Fetcher = "fetcher",
        /// Decodes and maps files to snapshots.
        Parser = "parser",
        /// Compares snapshots with the directory.
        Differ = "differ",
        /// Applies changes and announces them.
        Writer = "writer",
    }
}

impl Stage {
    /// The queue this stage consumes, if it consumes one (the fetcher polls sources).
    pub fn input(self) -> Option<Queue> {
        match self {
            Stage::Fetcher => None,
            Stage::Parser => Some(Queue::Fetched),
            Stage::Differ => Some(Queue::Parsed),
            Stage::Writer => Some(Queue::Changes),
        }
    }
}

crate::text_enum! {
    /// The queues between stages, named by their name before the install's prefix. Each
    /// is the input of exactly one stage.
    pub enum Queue as "queue" {
        /// `roster.fetched`: [`crate::model::envelope::FileFetched`], consumed by the parser.
        Fetched = "roster.fetched",
        /// `roster.parsed`: [`crate::model::envelope::SnapshotParsed`], consumed by the differ.
        Parsed = "roster.parsed",
        /// `roster.changes`: [`crate::model::envelope::ChangesReady`], consumed by the writer.
        Changes = "roster.changes",
    }
}

impl Queue {
    /// The stage that consumes it.
    pub fn consumer(self) -> Stage {
        match self {
            Queue::Fetched => Stage::Parser,
            Queue::Parsed => Stage::Differ,
            Queue::Changes => Stage::Writer,
        }
    }
}

/// Base name of the exchange directory events are published to.
pub const EVENTS_EXCHANGE: &str = "roster.events";

/// Header names Roster sets on messages. Values are text.
pub mod header {
    /// The tenant of the message.
    pub const TENANT: &str = "x-roster-tenant";
    /// The run of the message.
    pub const RUN: &str = "x-roster-run";
    /// The original file name, when the message concerns one file.
    pub const FILE: &str = "x-roster-file";
    /// Delivery attempt, from 1.
    pub const ATTEMPT: &str = "x-roster-attempt";
    /// Why the message was dead-lettered.
    pub const REASON: &str = "x-roster-reason";
    /// The stage that dead-lettered it.
    pub const STAGE: &str = "x-roster-stage";
    /// RFC 3339 time of the first dead-lettering.
    pub const FIRST_FAILED_AT: &str = "x-roster-first-failed-at";
    /// RFC 3339 time of the latest dead-lettering.
    pub const LAST_FAILED_AT: &str = "x-roster-last-failed-at";
    /// The planning generation a `changes.ready` batch belongs to.
    pub const GENERATION: &str = "x-roster-generation";
    /// What the dead-lettering made of the message's run: `rejected` (its input was
    /// refused) or `failed`, so whoever archives it records the same.
    pub const OUTCOME: &str = "x-roster-outcome";
}

/// A message as the transport carries it: an id, text headers and opaque bytes
/// (a JSON [`crate::model::envelope::Envelope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The envelope's message id.
    pub id: MessageId,
    /// Text headers (see [`header`]).
    pub headers: BTreeMap<String, String>,
    /// The serialised envelope.
    pub payload: Vec<u8>,
    /// The envelope the payload encodes, as its publisher had it, while the message stays
    /// in this process (see [`Local`]).
    pub local: Local,
}

impl Message {
    /// A message of `payload` under `id` with `headers`, carrying nothing beside its bytes.
    pub fn new(id: MessageId, headers: BTreeMap<String, String>, payload: Vec<u8>) -> Self {
        Message {
            id,
            headers,
            payload,
            local: Local::default(),
        }
    }
}

/// The decoded value a message's payload encodes, riding beside the bytes so a consumer
/// in the same process (the in-memory transport of the embedded install) takes it as it
/// is instead of decoding the bytes again. Only a transport that keeps messages in the
/// process hands it on; a broker carries the bytes alone, and a message redelivered
/// after a failed attempt is decoded from its bytes. Whoever sets it promises that it is
/// exactly what the payload decodes to, so equality of messages ignores it.
#[derive(Clone, Default)]
pub struct Local(Option<Arc<dyn std::any::Any + Send + Sync>>);

impl Local {
    /// Carries `value` (what the message's payload encodes).
    pub fn of<T: std::any::Any + Send + Sync>(value: T) -> Self {
        Local(Some(Arc::new(value)))
    }

    /// The value, when it is a `T` held nowhere else; otherwise `None` (the consumer then
    /// decodes the payload).
    pub fn take<T: std::any::Any + Send + Sync>(self) -> Option<T> {
        let shared = self.0?.downcast::<T>().ok()?;
        Arc::try_unwrap(shared).ok()
    }

    /// Whether a value rides along.
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Local(..)"
        } else {
            "Local(none)"
        })
    }
}

impl PartialEq for Local {
    /// Always equal: the value repeats the payload, which the message compares.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Local {}

impl Message {
    /// The value of header `name`, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Records on the message why and when it is dead-lettered (keeping the time of its
    /// first failure if it died before).
    pub fn mark_dead(&mut self, info: DeadLetterInfo) {
        let now = chrono::Utc::now().to_rfc3339();
        let h = &mut self.headers;
        h.insert(header::REASON.into(), info.reason);
        h.insert(header::STAGE.into(), info.stage.name().into());
        h.insert(header::ATTEMPT.into(), info.attempts.to_string());
        h.insert(
            header::OUTCOME.into(),
            if info.rejected { "rejected" } else { "failed" }.into(),
        );
        h.entry(header::FIRST_FAILED_AT.into())
            .or_insert_with(|| now.clone());
        h.insert(header::LAST_FAILED_AT.into(), now);
    }
}

/// Why the transport failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The broker is unreachable or the connection dropped; worth retrying.
    #[error("transport unavailable: {0}")]
    Unavailable(String),
    /// The broker refused a message (nack, or a queue over its limit).
    #[error("broker refused the message: {0}")]
    Refused(String),
    /// The transport was shut down.
    #[error("transport closed")]
    Closed,
}

/// How a delivery was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; forget it.
    Ack,
    /// Deliver again after `delay` as attempt `attempt + 1`.
    Retry {
        /// How long to wait.
        delay: Duration,
    },
    /// Deliver again after `delay` without counting an attempt (the work was not tried,
    /// only postponed, for example until an earlier run finishes).
    Defer {
        /// How long to wait.
        delay: Duration,
    },
    /// Park it on the dead-letter queue of its queue with these facts.
    DeadLetter(DeadLetterInfo),
    /// Hand it back untouched (shutting down).
    Requeue,
}

/// The facts stored with a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterInfo {
    /// Why it could not be processed.
    pub reason: String,
    /// The stage that gave up.
    pub stage: Stage,
    /// Attempts made.
    pub attempts: u32,
    /// Whether the input was refused (the run ends `rejected`, not `failed`).
    pub rejected: bool,
}

/// How the transport-specific side settles one delivery.
#[async_trait]
pub trait Settle: Send {
    /// Settles the delivery with `outcome`.
    async fn settle(self: Box<Self>, outcome: Outcome) -> Result<(), TransportError>;
}

/// One message handed to a consumer, to be settled once.
pub struct Delivery {
    message: Message,
    attempt: u32,
    settle: Box<dyn Settle>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.message.id)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl Delivery {
    /// Builds a delivery (for transport implementations).
    pub fn new(message: Message, attempt: u32, settle: Box<dyn Settle>) -> Self {
        Delivery {
            message,
            attempt,
            settle,
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Takes the decoded value riding beside the message's bytes, if any (see [`Local`]).
    pub fn take_local(&mut self) -> Local {
        std::mem::take(&mut self.message.local)
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Settles it.
    pub async fn settle(self, outcome: Outcome) -> Result<(), TransportError> {
        self.settle.settle(outcome).await
    }

    /// Done: the consumer's output is durable.
    pub async fn ack(self) -> Result<(), TransportError> {
        self.settle(Outcome::Ack).await
    }

    /// See it again after `delay`, as the next attempt.
    pub async fn retry(self, delay: Duration) -> Result<(), TransportError> {
        self.settle(Outcome::Retry { delay }).await
    }

    /// Park it on the dead-letter queue.
    pub async fn dead_letter(self, info: DeadLetterInfo) -> Result<(), TransportError> {
        self.settle(Outcome::DeadLetter(info)).await
    }

    /// Hand it back unprocessed.
    pub async fn requeue(self) -> Result<(), TransportError> {
        self.settle(Outcome::Requeue).await
    }
}

/// A stream of deliveries from one queue. It ends only when the transport closes; a
/// transport that reconnects keeps the stream going across reconnections.
pub type Deliveries = BoxStream<'static, Delivery>;

/// What moves messages between stages.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Publishes `messages` to `queue`; `Ok` once all are safely queued.
    async fn publish(&self, queue: Queue, messages: Vec<Message>) -> Result<(), TransportError>;

    /// Publishes `messages` to the events exchange under `routing_key`
    /// (`employee.created`, ...); `Ok` once all are safely accepted.
    async fn publish_events(
        &self,
        routing_key: &str,
        messages: Vec<Message>,
    ) -> Result<(), TransportError>;

    /// Starts consuming `queue`, with at most `prefetch` deliveries unsettled at once.
    async fn consume(&self, queue: Queue, prefetch: u16) -> Result<Deliveries, TransportError>;

    /// Takes the next message off `queue`'s dead-letter queue, if there is one. The
    /// message stays there until the delivery is acked.
    async fn next_dead_letter(&self, queue: Queue) -> Result<Option<Delivery>, TransportError>;

    /// Whether events published here leave this process (for a broker's subscribers).
    /// Only such events are worth the outbox, which makes their delivery survive a crash
    /// between the writer's commit and its publish; events that stay in the process
    /// (the embedded install) die with it either way.
    fn events_leave_process(&self) -> bool {
        true
    }

    /// Whether anyone can receive events now. False only where an event published now
    /// would certainly be dropped (an in-process transport nobody subscribed to), so a
    /// publisher may skip building them. A broker's exchange decides by its bindings,
    /// which a publisher cannot see: always true there.
    fn events_wanted(&self) -> bool {
        true
    }

    /// Whether the transport can move messages now (for readiness probes).
    async fn check(&self) -> Result<(), TransportError> {
        Ok(())
    }
}

/// Which transport to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// In this process only; for the embedded `roster` binary and tests.
    Memory {
        /// Change batches the writer's queue holds before the differ waits
        /// (back-pressure); the queues of references are not bounded.
        capacity: usize,
    },
    /// RabbitMQ.
    RabbitMq {
        /// `amqp://user:pass@host:port/vhost`.
        url: SecretUrl,
        /// Prefix of every queue and exchange name.
        prefix: String,
    },
}

impl TransportConfig {
    /// Builds the transport.
    pub async fn connect(&self) -> Result<Arc<dyn Transport>, TransportError> {
        match self {
            TransportConfig::Memory { capacity } => {
                Ok(Arc::new(memory::MemoryTransport::new(*capacity)))
            }
            TransportConfig::RabbitMq { url, prefix } => {
                Ok(Arc::new(amqp::AmqpTransport::connect(url, prefix).await?))
            }
        }
    }
}
