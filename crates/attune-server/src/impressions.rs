//! Impression logging off the request path: a served recommendation list is queued as an `impression` event
//! and a writer thread appends queued impressions in batches (one store transaction per tenant and batch), so
//! a request never waits for a disk sync of its own impression.
//!
//! A batch lingers up to [`LINGER`] after its first impression before it is written. Under load that keeps
//! the writes to a few commits a second instead of one after another: each commit costs an fsync, and on the
//! embedded store it also makes every reader connection drop its page cache and file map, which the very
//! next recommendation request (reading the shopper's events) would pay for.
//!
//! Impressions are telemetry the server writes about itself, not data a client was promised: when the
//! queue is full (the store cannot keep up) new impressions are dropped and counted, never the request
//! failed. [`ImpressionLog::flush`] waits until everything queued before it is stored (tests, shutdown).

use attune_core::{Event, TenantId};
use attune_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Impressions waiting to be written, at most.
pub const QUEUE_CAPACITY: usize = 50_000;
/// Impressions written in one batch, at most.
const BATCH: usize = 5_000;
/// How long a batch waits for more impressions after its first one (a flush request writes at once).
pub const LINGER: Duration = Duration::from_millis(200);

enum Message {
    Impression(TenantId, Box<Event>),
    Flush(std::sync::mpsc::Sender<()>),
}

/// The queue and its writer thread.
pub struct ImpressionLog {
    sender: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl ImpressionLog {
    /// Starts the writer thread for `store`.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (sender, receiver) = sync_channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("impression-writer".into())
            .spawn(move || write_loop(store.as_ref(), receiver))
            .expect("start the impression writer thread");
        Self { sender, dropped: Arc::new(AtomicU64::new(0)) }
    }

    /// Queues an impression; returns false (and counts it) when the queue is full.
    pub fn record(&self, tenant: TenantId, event: Event) -> bool {
        match self.sender.try_send(Message::Impression(tenant, Box::new(event))) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "impression queue full, impressions dropped");
                }
                false
            }
        }
    }

    /// Impressions dropped because the queue was full, since start-up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Blocks until every impression queued before this call is stored (or failed and was logged).
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

fn write_loop(store: &dyn Store, receiver: Receiver<Message>) {
    while let Ok(first) = receiver.recv() {
        let linger_until = Instant::now() + LINGER;
        let mut batch: BTreeMap<TenantId, Vec<Event>> = BTreeMap::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(message) = next.take() {
            match message {
                Message::Impression(tenant, event) => {
                    batch.entry(tenant).or_default().push(*event);
                    taken += 1;
                }
                // Answer after this batch is written: everything queued before the flush is in it.
                Message::Flush(done) => flushes.push(done),
            }
            if taken >= BATCH {
                break;
            }
            next = match receiver.try_recv() {
                Ok(message) => Some(message),
                // Nothing waiting: linger for more unless someone waits for this batch.
                Err(_) if flushes.is_empty() => {
                    match receiver.recv_timeout(linger_until.saturating_duration_since(Instant::now())) {
                        Ok(message) => Some(message),
                        Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
                    }
                }
                Err(_) => None,
            };
        }
        for (tenant, events) in batch {
            if let Err(error) = store.append_events(&tenant, &events) {
                tracing::warn!(tenant = %tenant, impressions = events.len(), %error, "impressions not stored");
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}
