//! Group commit of event appends, shared by both backends: callers queue their rows, and whoever takes the
//! backend's write lock first commits every queued append in one transaction (one durable flush), then
//! hands each caller its own outcome. Under concurrent ingest this turns many small commits into few.

use crate::rows::EventRow;
use crate::types::AppendOutcome;
use crate::{StoreError, StoreResult};
use attune_core::TenantId;
use std::sync::{Arc, Mutex};

/// One caller's events waiting for the next group commit.
pub(crate) struct PendingAppend {
    pub tenant: TenantId,
    pub rows: Vec<EventRow>,
    slot: Arc<AppendSlot>,
}

/// Where the committing thread leaves a waiting caller's outcome.
#[derive(Default)]
struct AppendSlot(Mutex<Option<StoreResult<AppendOutcome>>>);

impl AppendSlot {
    fn fill(&self, outcome: StoreResult<AppendOutcome>) {
        *self.0.lock().expect("append slot poisoned") = Some(outcome);
    }

    fn take(&self) -> Option<StoreResult<AppendOutcome>> {
        self.0.lock().expect("append slot poisoned").take()
    }
}

/// The queue of appends waiting for a commit.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Vec<PendingAppend>>,
}

impl GroupCommit {
    /// Queues `rows`, then takes the write lock with `lock`: if an earlier leader already committed them, its
    /// outcome is returned; otherwise this caller commits everything queued with `commit`, which returns one
    /// outcome per pending append, in order.
    pub fn append<Guard>(
        &self,
        tenant: &TenantId,
        rows: Vec<EventRow>,
        lock: impl FnOnce() -> Guard,
        commit: impl FnOnce(&mut Guard, &[PendingAppend]) -> StoreResult<Vec<AppendOutcome>>,
    ) -> StoreResult<AppendOutcome> {
        let slot = Arc::new(AppendSlot::default());
        self.queue.lock().expect("append queue poisoned").push(PendingAppend {
            tenant: tenant.clone(),
            rows,
            slot: slot.clone(),
        });
        let mut guard = lock();
        if let Some(outcome) = slot.take() {
            return outcome;
        }
        let group: Vec<PendingAppend> = std::mem::take(&mut *self.queue.lock().expect("append queue poisoned"));
        match commit(&mut guard, &group) {
            Ok(outcomes) => {
                for (pending, outcome) in group.iter().zip(outcomes) {
                    pending.slot.fill(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(%error, appends = group.len(), "event group commit failed");
                for pending in &group {
                    pending.slot.fill(Err(error.for_group_member()));
                }
            }
        }
        drop(guard);
        slot.take().expect("the leader filled every slot of its group, its own included")
    }
}

impl StoreError {
    /// The error a member of a failed group commit sees: an unreachable database stays unreachable (the
    /// caller may retry), anything else is reported as the failed commit it was.
    fn for_group_member(&self) -> StoreError {
        match self {
            StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
            other => StoreError::Corrupt(format!("group commit failed: {other}")),
        }
    }
}
