//! Events the engine writes about its own serving, off the request path: a served recommendation list is
//! queued as an `impression` event and a search with a shopper as a `search` event, and a writer thread
//! appends queued events in batches (one store transaction per tenant and batch), so a request never waits
//! for a disk sync of its own event.
//!
//! A batch lingers up to [`LINGER`] after its first event before it is written. Under load that keeps the
//! writes to a few commits a second instead of one after another: each commit costs an fsync, and on the
//! embedded store it also makes every reader connection drop its page cache and file map, which the very
//! next recommendation request (reading the shopper's events) would pay for.
//!
//! These are telemetry the engine writes about itself, not data a client was promised: when the queue is
//! full (the store cannot keep up) new events are dropped and counted, never the request failed. Nothing
//! queued is lost at shutdown: [`EventLog::close`] writes everything queued before it, then stops the writer.

use attune_core::{Event, TenantId};
use attune_store::Store;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Events waiting to be written, at most.
pub const QUEUE_CAPACITY: usize = 50_000;
/// Events written in one batch, at most.
const BATCH: usize = 5_000;
/// How long a batch waits for more events after its first one (a close writes at once).
pub const LINGER: Duration = Duration::from_millis(200);

enum Message {
    Event(TenantId, Box<Event>),
    /// Write everything queued before it now, then answer.
    Flush(SyncSender<()>),
    /// Write everything queued before it, then end the writer.
    Close,
}

/// The queue and its writer thread.
pub struct EventLog {
    store: Arc<dyn Store>,
    sender: SyncSender<Message>,
    dropped: AtomicU64,
    /// Events queued since start-up, for the shutdown report.
    queued: AtomicU64,
    written: Arc<AtomicU64>,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What [`EventLog::close`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLogReport {
    /// Events queued since start-up.
    pub queued: u64,
    /// Events written since start-up.
    pub written: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
}

impl EventLog {
    /// Starts the writer thread for `store`.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (sender, receiver) = sync_channel(QUEUE_CAPACITY);
        let written = Arc::new(AtomicU64::new(0));
        let (writing, counted) = (store.clone(), written.clone());
        let writer = std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || write_loop(writing.as_ref(), receiver, &counted))
            .expect("start the event writer thread");
        Self {
            store,
            sender,
            dropped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            written,
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Queues an event; returns false (and counts it) when the queue is full. After [`EventLog::close`] the
    /// event is written at once instead.
    pub fn record(&self, tenant: TenantId, event: Event) -> bool {
        // The engine builds these events itself: one the log could not read back would break every later scan
        // of it, so such an event is dropped here (a bug to fix, not a shopper's mistake).
        if let Err(error) = Event::parse(event.to_input(), event.timestamp) {
            tracing::error!(tenant = %tenant, kind = event.kind.event_type().as_str(), %error, "engine event not valid; dropped");
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.closed.load(Ordering::Acquire) {
            return match self.store.append_events(&tenant, std::slice::from_ref(&event)) {
                Ok(_) => true,
                Err(error) => {
                    tracing::warn!(tenant = %tenant, %error, "event not stored after the event log closed");
                    false
                }
            };
        }
        match self.sender.try_send(Message::Event(tenant, Box::new(event))) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "event queue full, events dropped");
                }
                false
            }
        }
    }

    /// Waits (up to `timeout`) until every event queued before this call is written: an erasure must not be
    /// followed by a queued event of the erased user. False when the writer did not answer in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return true;
        }
        let (ack, done) = sync_channel(1);
        if self.sender.send(Message::Flush(ack)).is_err() {
            return true;
        }
        done.recv_timeout(timeout).is_ok()
    }

    /// Events dropped because the queue was full, since start-up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything queued and stops the writer thread. Later events are written one by one.
    pub fn close(&self) -> EventLogReport {
        self.closed.store(true, Ordering::Release);
        let _ = self.sender.send(Message::Close);
        if let Some(writer) = self.writer.lock().expect("event writer poisoned").take()
            && writer.join().is_err()
        {
            tracing::error!("the event writer panicked");
        }
        EventLogReport {
            queued: self.queued.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped(),
        }
    }
}

fn write_loop(store: &dyn Store, receiver: Receiver<Message>, written: &AtomicU64) {
    let mut open = true;
    while open && let Ok(first) = receiver.recv() {
        let linger_until = Instant::now() + LINGER;
        let mut batch: BTreeMap<TenantId, Vec<Event>> = BTreeMap::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(message) = next.take() {
            match message {
                Message::Event(tenant, event) => {
                    batch.entry(tenant).or_default().push(*event);
                    taken += 1;
                }
                Message::Flush(ack) => flushes.push(ack),
                Message::Close => open = false,
            }
            if taken >= BATCH || !flushes.is_empty() {
                break;
            }
            next = match receiver.try_recv() {
                Ok(message) => Some(message),
                // Nothing waiting: linger for more unless the log is closing.
                Err(_) if open => match receiver.recv_timeout(linger_until.saturating_duration_since(Instant::now())) {
                    Ok(message) => Some(message),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
                },
                Err(_) => None,
            };
        }
        write_batch(store, batch, written);
        for ack in flushes {
            let _ = ack.send(());
        }
    }
    // An event that raced with the close is written too.
    let mut late: BTreeMap<TenantId, Vec<Event>> = BTreeMap::new();
    let mut flushes = Vec::new();
    while let Ok(message) = receiver.try_recv() {
        match message {
            Message::Event(tenant, event) => late.entry(tenant).or_default().push(*event),
            Message::Flush(ack) => flushes.push(ack),
            Message::Close => {}
        }
    }
    write_batch(store, late, written);
    for ack in flushes {
        let _ = ack.send(());
    }
}

fn write_batch(store: &dyn Store, batch: BTreeMap<TenantId, Vec<Event>>, written: &AtomicU64) {
    for (tenant, events) in batch {
        match store.append_events(&tenant, &events) {
            Ok(_) => {
                written.fetch_add(events.len() as u64, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(tenant = %tenant, events = events.len(), %error, "queued events not stored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_core::{EventInput, Timestamp};
    use attune_store::{SqliteOptions, SqliteStore};

    fn view(n: usize) -> Event {
        let input = EventInput {
            event_type: "view".into(),
            event_id: Some(format!("v{n}")),
            anonymous_id: Some("browser".into()),
            item_id: Some("a".into()),
            ..Default::default()
        };
        Event::parse(input, Timestamp::now()).unwrap()
    }

    #[test]
    fn close_writes_what_is_queued_and_later_events_directly() {
        let directory = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(directory.path().join("log.sqlite3"), SqliteOptions::default()).unwrap());
        let tenant = TenantId::parse_slug("shop").unwrap();
        crate::keys::create_tenant(store.as_ref(), &tenant, "Shop").unwrap();
        let log = EventLog::start(store.clone());
        for n in 0..10 {
            assert!(log.record(tenant.clone(), view(n)));
        }
        // Well inside the linger: nothing needs to have been written yet.
        let report = log.close();
        assert_eq!(report, EventLogReport { queued: 10, written: 10, dropped: 0 });
        assert_eq!(store.stats(&tenant).unwrap().events, 10);
        assert!(log.record(tenant.clone(), view(10)), "after closing, written at once");
        assert_eq!(store.stats(&tenant).unwrap().events, 11);
    }
}
