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
use serde::{Deserialize, Serialize};

use crate::ids::MessageId;

pub mod amqp;
pub mod memory;

/// The stages of the pipeline, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Lists sources, stores raw files.
    Fetcher,
    /// Decodes and maps files to snapshots.
    Parser,
    /// Compares snapshots with the directory.
    Differ,
    /// Applies changes and announces them.
    Writer,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Fetcher, Stage::Parser, Stage::Differ, Stage::Writer];

    /// The stage's name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Fetcher => "fetcher",
            Stage::Parser => "parser",
            Stage::Differ => "differ",
            Stage::Writer => "writer",
        }
    }

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

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| format!("unknown stage {s:?}; use fetcher, parser, differ or writer"))
    }
}

/// The queues between stages. Each is the input of exactly one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Queue {
    /// `roster.fetched`: [`crate::envelope::FileFetched`], consumed by the parser.
    Fetched,
    /// `roster.parsed`: [`crate::envelope::SnapshotParsed`], consumed by the differ.
    Parsed,
    /// `roster.changes`: [`crate::envelope::ChangesReady`], consumed by the writer.
    Changes,
}

impl Queue {
    /// Every queue, in pipeline order.
    pub const ALL: [Queue; 3] = [Queue::Fetched, Queue::Parsed, Queue::Changes];

    /// The queue's name before the prefix.
    pub fn base_name(self) -> &'static str {
        match self {
            Queue::Fetched => "roster.fetched",
            Queue::Parsed => "roster.parsed",
            Queue::Changes => "roster.changes",
        }
    }

    /// The queue named `base` (as [`Queue::base_name`] spells it).
    pub fn from_base_name(base: &str) -> Option<Queue> {
        Queue::ALL.into_iter().find(|q| q.base_name() == base)
    }

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
}

/// A message as the transport carries it: an id, text headers and opaque bytes
/// (a JSON [`crate::envelope::Envelope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The envelope's message id.
    pub id: MessageId,
    /// Text headers (see [`header`]).
    pub headers: BTreeMap<String, String>,
    /// The serialised envelope.
    pub payload: Vec<u8>,
}

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
        /// Messages a queue holds before publishers wait (back-pressure).
        capacity: usize,
    },
    /// RabbitMQ.
    RabbitMq {
        /// `amqp://user:pass@host:port/vhost`.
        url: String,
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
