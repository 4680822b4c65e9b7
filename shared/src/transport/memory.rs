//! The in-process transport: bounded queues in memory, for the embedded `roster` binary
//! and tests. It keeps the [`Transport`] promises within one process: a full queue makes
//! publishers wait, retries come back after their delay, dead letters are kept on a
//! per-queue dead-letter list, and a delivery dropped unsettled returns to the front.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast};

use super::{
    Deliveries, Delivery, Message, Outcome, Queue, Settle, Transport, TransportError, header,
};

/// The in-memory transport. Clones share the same queues.
#[derive(Clone, Debug)]
pub struct MemoryTransport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    queues: Mutex<HashMap<String, Arc<MemQueue>>>,
    events: broadcast::Sender<(String, Message)>,
}

#[derive(Debug, Default)]
struct MemQueue {
    items: Mutex<VecDeque<Item>>,
    readable: Notify,
    writable: Notify,
    deferred: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone)]
struct Item {
    message: Message,
    attempt: u32,
}

impl MemQueue {
    fn push_back(&self, item: Item) {
        self.items.lock().expect("queue lock").push_back(item);
        self.readable.notify_one();
    }

    fn push_front(&self, item: Item) {
        self.items.lock().expect("queue lock").push_front(item);
        self.readable.notify_one();
    }

    fn pop(&self) -> Option<Item> {
        let item = self.items.lock().expect("queue lock").pop_front();
        if item.is_some() {
            self.writable.notify_one();
        }
        item
    }

    fn len(&self) -> usize {
        self.items.lock().expect("queue lock").len()
    }
}

fn dlq_name(queue: Queue) -> String {
    format!("{}.dlq", queue.name())
}

impl MemoryTransport {
    /// A transport whose queue of change batches (`roster.changes`, the one whose messages
    /// carry thousands of changes each) holds at most `capacity` messages before
    /// publishers wait. The other queues carry references (a file, a snapshot) and take
    /// whatever comes: bounding them too would close a cycle of waits, the writer
    /// waiting for room in the differ's queue (a run planned again, a tenant's next run)
    /// while the differ waits for room in the writer's.
    pub fn new(capacity: usize) -> Self {
        MemoryTransport {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                queues: Mutex::new(HashMap::new()),
                events: broadcast::channel(4096).0,
            }),
        }
    }

    fn queue(&self, name: &str) -> Arc<MemQueue> {
        self.inner
            .queues
            .lock()
            .expect("queues lock")
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Receives every event published from now on, with its routing key.
    pub fn subscribe_events(&self) -> broadcast::Receiver<(String, Message)> {
        self.inner.events.subscribe()
    }

    /// Messages waiting in `queue` (not counting unsettled deliveries).
    pub fn len(&self, queue: Queue) -> usize {
        self.queue(queue.name()).len()
    }

    /// Messages waiting in `queue`'s dead-letter list.
    pub fn dead_letter_len(&self, queue: Queue) -> usize {
        self.queue(&dlq_name(queue)).len()
    }

    /// How many deliveries of `queue` were postponed ([`Outcome::Defer`]) so far.
    pub fn deferred(&self, queue: Queue) -> u64 {
        self.queue(queue.name())
            .deferred
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

struct MemSettle {
    transport: MemoryTransport,
    queue: Queue,
    dead_letters: bool,
    item: Option<Item>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for MemSettle {
    fn drop(&mut self) {
        // Unsettled: hand it back so nothing is lost.
        if let Some(item) = self.item.take() {
            let name = if self.dead_letters {
                dlq_name(self.queue)
            } else {
                self.queue.name().to_owned()
            };
            self.transport.queue(&name).push_front(item);
        }
    }
}

#[async_trait]
impl Settle for MemSettle {
    async fn settle(mut self: Box<Self>, outcome: Outcome) -> Result<(), TransportError> {
        let mut item = self.item.take().expect("settled once");
        let main = self.transport.queue(self.queue.name());
        match outcome {
            Outcome::Ack => {}
            Outcome::Requeue => {
                let name = if self.dead_letters {
                    dlq_name(self.queue)
                } else {
                    self.queue.name().to_owned()
                };
                self.transport.queue(&name).push_front(item);
            }
            Outcome::Retry { delay } | Outcome::Defer { delay } => {
                if matches!(outcome, Outcome::Retry { .. }) {
                    item.attempt += 1;
                } else {
                    main.deferred
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                item.message
                    .headers
                    .insert(header::ATTEMPT.into(), item.attempt.to_string());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    main.push_back(item);
                });
            }
            Outcome::DeadLetter(info) => {
                item.message.mark_dead(info);
                self.transport.queue(&dlq_name(self.queue)).push_back(item);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    async fn publish(&self, queue: Queue, messages: Vec<Message>) -> Result<(), TransportError> {
        let q = self.queue(queue.name());
        let capacity = match queue {
            Queue::Changes => self.inner.capacity,
            Queue::Fetched | Queue::Parsed => usize::MAX,
        };
        for mut message in messages {
            let attempt = message
                .header(header::ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(1);
            message
                .headers
                .insert(header::ATTEMPT.into(), attempt.to_string());
            let mut item = Some(Item { message, attempt });
            while let Some(it) = item.take() {
                let writable = q.writable.notified();
                tokio::pin!(writable);
                writable.as_mut().enable();
                {
                    let mut items = q.items.lock().expect("queue lock");
                    if items.len() < capacity {
                        items.push_back(it);
                        drop(items);
                        q.readable.notify_one();
                        break;
                    }
                }
                item = Some(it);
                writable.await;
            }
        }
        Ok(())
    }

    async fn publish_events(
        &self,
        routing_key: &str,
        messages: Vec<Message>,
    ) -> Result<(), TransportError> {
        for message in messages {
            // No subscriber is fine: an exchange without bindings drops too.
            let _ = self.inner.events.send((routing_key.to_owned(), message));
        }
        Ok(())
    }

    fn events_leave_process(&self) -> bool {
        false
    }

    fn events_wanted(&self) -> bool {
        self.inner.events.receiver_count() > 0
    }

    async fn consume(&self, queue: Queue, prefetch: u16) -> Result<Deliveries, TransportError> {
        let q = self.queue(queue.name());
        let permits = Arc::new(Semaphore::new(usize::from(prefetch.max(1))));
        let transport = self.clone();
        let stream = futures::stream::unfold((), move |()| {
            let (q, permits, transport) = (q.clone(), permits.clone(), transport.clone());
            async move {
                let permit = permits.acquire_owned().await.ok()?;
                loop {
                    let readable = q.readable.notified();
                    tokio::pin!(readable);
                    readable.as_mut().enable();
                    if let Some(mut item) = q.pop() {
                        // The decoded value goes to the consumer alone; the copy kept
                        // for a redelivery holds the bytes.
                        let mut message = item.message.clone();
                        message.local = std::mem::take(&mut item.message.local);
                        let delivery = Delivery::new(
                            message,
                            item.attempt,
                            Box::new(MemSettle {
                                transport: transport.clone(),
                                queue,
                                dead_letters: false,
                                item: Some(item),
                                _permit: Some(permit),
                            }),
                        );
                        return Some((delivery, ()));
                    }
                    readable.await;
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn next_dead_letter(&self, queue: Queue) -> Result<Option<Delivery>, TransportError> {
        let Some(item) = self.queue(&dlq_name(queue)).pop() else {
            return Ok(None);
        };
        Ok(Some(Delivery::new(
            item.message.clone(),
            item.attempt,
            Box::new(MemSettle {
                transport: self.clone(),
                queue,
                dead_letters: true,
                item: Some(item),
                _permit: None,
            }),
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::model::ids::MessageId;
    use crate::transport::Local;

    fn msg(n: u8) -> Message {
        Message::new(MessageId::new(), BTreeMap::new(), vec![n])
    }

    async fn next(d: &mut Deliveries) -> Delivery {
        tokio::time::timeout(Duration::from_secs(5), d.next())
            .await
            .expect("a delivery in time")
            .expect("stream open")
    }

    #[tokio::test]
    async fn a_value_riding_along_goes_to_the_first_delivery_alone() {
        let t = MemoryTransport::new(4);
        let mut m = msg(7);
        m.local = Local::of(String::from("decoded"));
        t.publish(Queue::Changes, vec![m]).await.unwrap();
        let mut d = t.consume(Queue::Changes, 1).await.unwrap();
        let mut first = next(&mut d).await;
        assert_eq!(
            first.take_local().take::<String>().as_deref(),
            Some("decoded")
        );
        first.retry(Duration::from_millis(1)).await.unwrap();
        // The redelivery carries the bytes only: its consumer decodes them.
        let mut again = next(&mut d).await;
        assert_eq!(again.message().payload, [7]);
        assert!(!again.take_local().is_some());
        again.ack().await.unwrap();
    }

    #[tokio::test]
    async fn full_queues_make_publishers_wait() {
        let t = MemoryTransport::new(1);
        t.publish(Queue::Changes, vec![msg(1)]).await.unwrap();
        let blocked = tokio::time::timeout(
            Duration::from_millis(50),
            t.publish(Queue::Changes, vec![msg(2)]),
        )
        .await;
        assert!(blocked.is_err(), "publish should wait for room");
        let mut d = t.consume(Queue::Changes, 1).await.unwrap();
        let publisher = {
            let t = t.clone();
            tokio::spawn(async move { t.publish(Queue::Changes, vec![msg(3)]).await })
        };
        next(&mut d).await.ack().await.unwrap();
        publisher.await.unwrap().unwrap();
        assert_eq!(next(&mut d).await.message().payload, [3]);
    }

    /// The queues of references never make a publisher wait: the writer, whose own
    /// queue may be full, publishes to the differ's (a run planned again), and must not
    /// wait there while the differ waits for room in the writer's.
    #[tokio::test]
    async fn queues_of_references_never_make_publishers_wait() {
        let t = MemoryTransport::new(1);
        t.publish(Queue::Changes, vec![msg(1)]).await.unwrap();
        for queue in [Queue::Parsed, Queue::Fetched] {
            let many = (0..50).map(msg).collect();
            tokio::time::timeout(Duration::from_secs(5), t.publish(queue, many))
                .await
                .expect("published without waiting")
                .unwrap();
            assert_eq!(t.len(queue), 50);
        }
    }
}
