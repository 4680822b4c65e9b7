//! What every stage shares at run time: the [`Services`] it is given, and [`consume`], the
//! one loop that takes messages off a queue, runs the stage's handler and settles each
//! delivery by the handler's outcome (ack, retry with growing delay, postpone, or
//! dead-letter with the reason and mark the run failed).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::blob::BlobStore;
use crate::config::{ConsumeSettings, RetryPolicy};
use crate::db::entity::run;
use crate::db::{Db, runs};
use crate::error::{Disposition, StageError, report};
use crate::model::envelope::{Envelope, EnvelopeError};
use crate::model::ids::{MessageId, RunId, TenantId};
use crate::model::run::RunState;
use crate::transport::{
    DeadLetterInfo, Delivery, Local, Message, Outcome, Queue, Stage, Transport, TransportError,
    header,
};

/// Receives progress as stages work, for a progress bar. Calls are cheap and frequent.
pub trait Progress: Send + Sync {
    /// `rows` more input rows were read.
    fn rows_read(&self, rows: u64);
    /// `changes` more changes were applied.
    fn changes_applied(&self, changes: u64);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn rows_read(&self, _: u64) {}
    fn changes_applied(&self, _: u64) {}
}

/// What a stage is given to work with.
#[derive(Clone)]
pub struct Services {
    /// The database.
    pub db: Db,
    /// Raw files and snapshots.
    pub blobs: BlobStore,
    /// The message transport.
    pub transport: Arc<dyn Transport>,
    /// Progress reporting.
    pub progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("db", &self.db)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Publishes `envelope` to `queue` (with the routing headers and the current trace,
    /// see [`message`]); `Ok` once it is safely queued.
    pub async fn publish<T: Serialize + DeserializeOwned>(
        &self,
        queue: Queue,
        envelope: &Envelope<T>,
        file_name: Option<&str>,
    ) -> Result<(), TransportError> {
        self.transport
            .publish(queue, vec![message(envelope, file_name)])
            .await
    }

    /// Approves a held run and hands it back to the differ (its `snapshot.parsed`
    /// message rebuilt from the run's record, under an id naming the run and its
    /// generation, so approving it again after it was held again is a new message).
    /// Returns false, sending nothing, when the run is not held.
    pub async fn approve_held(
        &self,
        tenant: &TenantId,
        run_id: RunId,
        run: &run::Model,
    ) -> Result<bool, StageError> {
        if !runs::approve(&self.db, tenant, run_id).await? {
            return Ok(false);
        }
        let envelope = Envelope::new(
            MessageId::derived(&["approved", &run.id, &run.generation.to_string()]),
            tenant.clone(),
            run_id,
            runs::parsed_body(run),
        );
        self.publish(Queue::Parsed, &envelope, Some(&run.file_name))
            .await?;
        Ok(true)
    }

    /// Hands a fetched run to the parser: its `file.fetched` message rebuilt from the
    /// run's record (always under the same message id), then records that it went out.
    pub async fn send_to_parser(
        &self,
        tenant: &TenantId,
        run_id: RunId,
        run: &run::Model,
    ) -> Result<(), StageError> {
        let envelope = Envelope::new(
            MessageId::derived(&["file.fetched", &run.id]),
            tenant.clone(),
            run_id,
            runs::fetched_body(run),
        );
        self.publish(Queue::Fetched, &envelope, Some(&run.file_name))
            .await?;
        runs::mark_published(&self.db, tenant, run_id).await?;
        Ok(())
    }

    /// Hands `run` to the differ again: its `snapshot.parsed` message rebuilt from the
    /// run's record, under the message id `id` (derive it from why the run is sent, so a
    /// repeat of the same cause is one message).
    pub async fn send_to_differ(
        &self,
        tenant: &TenantId,
        run_id: RunId,
        run: &run::Model,
        id: MessageId,
    ) -> Result<(), TransportError> {
        let envelope = Envelope::new(id, tenant.clone(), run_id, runs::parsed_body(run));
        self.publish(Queue::Parsed, &envelope, Some(&run.file_name))
            .await
    }

    /// Moves the run to `applied` if every batch of `generation` is applied, and then
    /// discards its snapshot. Returns whether this call finished the run.
    pub async fn finish_run(
        &self,
        tenant: &TenantId,
        run: RunId,
        generation: i32,
    ) -> Result<bool, StageError> {
        let finished = runs::finish_if_complete(self.db.conn(), tenant, run, generation).await?;
        if finished {
            self.discard_snapshot(tenant, run).await;
        }
        Ok(finished)
    }

    /// Removes the snapshot and the related records of a run that will never be planned
    /// again (applied, or superseded by a later delivery; neither state is ever reopened),
    /// so snapshots do not pile up run after run. The raw file stays. Best effort: a failure is logged and
    /// leaves only a stray file behind.
    pub async fn discard_snapshot(&self, tenant: &TenantId, run: RunId) {
        for key in BlobStore::planning_keys(tenant, run) {
            if let Err(e) = self.blobs.delete(&key).await {
                warn!(%key, error = %e, "could not remove a finished run's snapshot");
            }
        }
    }
}

/// How [`consume`] runs a stage's handler.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeOptions {
    /// Messages handled at once.
    pub concurrency: usize,
    /// Deliveries held unsettled at once (at least `concurrency`).
    pub prefetch: u16,
    /// How failures are retried.
    pub retry: RetryPolicy,
}

impl ConsumeOptions {
    /// The options `settings` describe, for a database that is SQLite or not.
    pub fn new(settings: &ConsumeSettings, sqlite: bool) -> Self {
        ConsumeOptions {
            concurrency: settings.concurrency(sqlite),
            prefetch: settings.prefetch,
            retry: settings.retry(),
        }
    }
}

/// Builds the transport message for `envelope`, with the routing headers set and, when
/// the envelope carries no trace context yet, the current span's.
pub fn message<T: Serialize>(envelope: &Envelope<T>, file_name: Option<&str>) -> Message {
    let payload = if envelope.trace.traceparent.is_none() {
        envelope.to_bytes_traced(&crate::telemetry::current_trace_context())
    } else {
        envelope.to_bytes()
    };
    let mut headers = std::collections::BTreeMap::new();
    headers.insert(header::TENANT.to_owned(), envelope.tenant.to_string());
    headers.insert(header::RUN.to_owned(), envelope.run_id.to_string());
    if let Some(name) = file_name {
        headers.insert(header::FILE.to_owned(), name.to_owned());
    }
    Message::new(envelope.message_id, headers, payload)
}

/// As [`message`], and the envelope itself rides beside the bytes
/// ([`crate::transport::Local`]): a consumer in this process takes it without decoding.
pub fn message_carrying<T>(mut envelope: Envelope<T>, file_name: Option<&str>) -> Message
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    if envelope.trace.traceparent.is_none() {
        envelope.trace = crate::telemetry::current_trace_context();
    }
    let mut out = message(&envelope, file_name);
    out.local = Local::of(envelope);
    out
}

/// Consumes `stage`'s input queue until `shutdown`, calling `handler` for each message.
///
/// Outcomes: `Ok` acks; a retryable error retries after [`RetryPolicy::delay`] until
/// [`RetryPolicy::max_attempts`], then dead-letters; a deferral re-delivers later without
/// counting an attempt; a permanent error dead-letters at once. Dead-lettering marks the
/// run `rejected` (refused input) or `failed`. On shutdown no new message is taken and
/// the ones in hand finish.
pub async fn consume<T, H, Fut>(
    services: &Services,
    stage: Stage,
    options: ConsumeOptions,
    shutdown: CancellationToken,
    handler: H,
) -> Result<(), TransportError>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    H: Fn(Envelope<T>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), StageError>> + Send,
{
    let queue = stage
        .input()
        .expect("consume is for stages with an input queue");
    let prefetch = options.prefetch.max(options.concurrency as u16).max(1);
    let deliveries = services.transport.consume(queue, prefetch).await?;
    info!(stage = stage.name(), queue = queue.name(), "consuming");
    let shutdown_signal = shutdown.clone();
    deliveries
        .take_until(async move { shutdown_signal.cancelled().await })
        .for_each_concurrent(options.concurrency.max(1), |delivery| {
            handle(services, stage, options.retry, delivery, &handler)
        })
        .await;
    info!(stage = stage.name(), "stopped consuming");
    Ok(())
}

/// Messages larger than this are decoded on a blocking thread.
const DECODE_ASIDE: usize = 64 * 1024;

/// The message's envelope: the one riding beside the bytes when its publisher is in this
/// process ([`Local`]), else decoded from `payload`; a large one (a batch of thousands of
/// changes takes milliseconds) on a blocking thread, so the other messages a stage works
/// on at the same time (they share one task) go on meanwhile.
async fn decode<T>(local: Local, payload: &[u8]) -> Result<Envelope<T>, EnvelopeError>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    if let Some(envelope) = local.take::<Envelope<T>>() {
        return Ok(envelope);
    }
    if payload.len() < DECODE_ASIDE {
        return Envelope::from_bytes(payload);
    }
    let owned = payload.to_vec();
    match tokio::task::spawn_blocking(move || Envelope::from_bytes(&owned)).await {
        Ok(decoded) => decoded,
        // The decoding thread panicked or was cancelled: decode here instead.
        Err(_) => Envelope::from_bytes(payload),
    }
}

async fn handle<T, H, Fut>(
    services: &Services,
    stage: Stage,
    retry: RetryPolicy,
    mut delivery: Delivery,
    handler: &H,
) where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    H: Fn(Envelope<T>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), StageError>> + Send,
{
    let attempt = delivery.attempt();
    let local = delivery.take_local();
    let msg = delivery.message();
    let tenant = msg.header(header::TENANT).unwrap_or("").to_owned();
    let run = msg.header(header::RUN).unwrap_or("").to_owned();
    let msg_generation = msg.header(header::GENERATION).map(str::to_owned);
    let decoded = decode::<T>(local, &msg.payload).await;
    let span = info_span!("message", stage = stage.name(), %tenant, %run, id = %msg.id, attempt);
    if let Ok(envelope) = &decoded {
        crate::telemetry::continue_trace(&span, &envelope.trace);
    }
    async move {
        let result = match decoded {
            Ok(mut envelope) => {
                envelope.attempt = attempt;
                let heartbeat = Heartbeat::start(services, &tenant, &run);
                let result = handler(envelope).await;
                drop(heartbeat);
                result
            }
            Err(e) => Err(StageError::internal_from("reading the message", e)),
        };
        let outcome = match &result {
            Ok(()) => Outcome::Ack,
            Err(e) => match e.disposition() {
                Disposition::Defer(delay) => Outcome::Defer { delay },
                Disposition::Retry if attempt < retry.max_attempts => {
                    let delay = retry.delay(attempt);
                    warn!(error = %report(e), retry_in_ms = delay.as_millis() as u64, "will retry");
                    Outcome::Retry { delay }
                }
                _ => {
                    let reason = report(e);
                    if e.is_rejection() {
                        // Bad input is an outcome, not a fault: the run says why.
                        info!(error = %reason, "input refused: dead-lettering");
                    } else {
                        error!(error = %reason, "giving up: dead-lettering");
                    }
                    Outcome::DeadLetter(DeadLetterInfo {
                        reason,
                        stage,
                        attempts: attempt,
                        rejected: e.is_rejection(),
                    })
                }
            },
        };
        let dead = matches!(outcome, Outcome::DeadLetter(_));
        if let Err(e) = delivery.settle(outcome).await {
            // Unsettled deliveries come back when the connection does.
            warn!(error = %e, "could not settle the delivery; it will be delivered again");
            return;
        }
        if dead {
            let err = result.expect_err("dead letters come from errors");
            let state = if err.is_rejection() {
                RunState::Rejected
            } else {
                RunState::Failed
            };
            let generation = msg_generation.and_then(|g| g.parse::<i32>().ok());
            if let (Ok(tenant), Ok(run)) = (TenantId::new(tenant), run.parse::<RunId>())
                && let Err(e) = runs::fail(
                    &services.db,
                    &tenant,
                    run,
                    stage,
                    generation,
                    state,
                    &report(&err),
                )
                .await
            {
                warn!(error = %e, "could not mark the run failed; `roster dlq` will");
            }
        }
    }
    .instrument(span)
    .await;
}

/// How often a message's run is marked as worked on while its handler runs.
pub const HEARTBEAT: Duration = Duration::from_secs(3);

/// How long a handler's run is marked as worked on at most: a handler stuck longer stops
/// hiding its run from the supervisor, which announces it again.
pub const HEARTBEAT_FOR_AT_MOST: Duration = Duration::from_secs(3600);

/// Marks a message's run as worked on ([`runs::touch`]) every [`HEARTBEAT`] while the
/// handler runs (in a task of its own, so a slow database never holds the handler up),
/// until dropped: the supervisor, which announces again runs that have not moved for a
/// while (10 s in one process), then leaves a long parse or plan alone instead of
/// starting it again beside itself.
struct Heartbeat(Option<tokio::task::JoinHandle<()>>);

impl Heartbeat {
    /// Starts beating for run `run` of `tenant` (nothing when the message names none).
    fn start(services: &Services, tenant: &str, run: &str) -> Heartbeat {
        let (Ok(tenant), Ok(run)) = (TenantId::new(tenant), run.parse::<RunId>()) else {
            return Heartbeat(None);
        };
        let db = services.db.clone();
        Heartbeat(Some(tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut beat = tokio::time::interval_at(started + HEARTBEAT, HEARTBEAT);
            while started.elapsed() < HEARTBEAT_FOR_AT_MOST {
                beat.tick().await;
                match runs::touch(&db, &tenant, run).await {
                    Ok(true) => {}
                    // Held, finished or gone: nothing to keep moving.
                    Ok(false) => return,
                    Err(e) => debug!(error = %e, "could not mark the run as worked on"),
                }
            }
        })))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// A token cancelled on SIGTERM or Ctrl-C.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        info!("shutdown requested");
        cancel.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::envelope::{SnapshotParsed, SyncMode, sample_snapshot_parsed};

    #[tokio::test]
    async fn a_carried_envelope_is_what_its_bytes_say_and_taken_without_decoding() {
        let env = sample_snapshot_parsed(SyncMode::Full, 1);
        let mut message = message_carrying(env.clone(), Some("people.csv"));
        assert_eq!(message.header(header::FILE), Some("people.csv"));
        let from_bytes = Envelope::<SnapshotParsed>::from_bytes(&message.payload).unwrap();
        assert_eq!(from_bytes.body, env.body);
        let local = std::mem::take(&mut message.local);
        // Of another type, held elsewhere too, or nothing beside: the bytes are decoded
        // (here bytes that do not decode, so an `Ok` proves where the envelope came from).
        assert!(local.clone().take::<String>().is_none());
        let held = local.clone();
        assert!(decode::<SnapshotParsed>(held, b"not json").await.is_err());
        assert!(
            decode::<SnapshotParsed>(Local::default(), b"not json")
                .await
                .is_err()
        );
        let taken = decode::<SnapshotParsed>(local, b"not json").await;
        assert_eq!(taken.unwrap(), from_bytes);
    }
}
