//! The task leases this process holds, by tenant and task kind: the whole lease on SQLite (one process per
//! data directory), and on PostgreSQL the in-process half checked before the advisory lock.

use crate::TaskLease;
use attune_core::TenantId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

type LeaseKey = (String, String);

/// The leases held in this process; clones share them.
#[derive(Clone, Default)]
pub(crate) struct LocalLeases(Arc<Mutex<HashSet<LeaseKey>>>);

impl LocalLeases {
    /// The lease on `kind` for `tenant`, or `None` while this process holds it already.
    pub(crate) fn try_take(&self, tenant: &TenantId, kind: &str) -> Option<LocalLease> {
        let key = (tenant.to_string(), kind.to_string());
        let taken = self.0.lock().expect("leases poisoned").insert(key.clone());
        taken.then(|| LocalLease { leases: self.clone(), key })
    }
}

/// A lease of this process, given back when dropped.
pub(crate) struct LocalLease {
    leases: LocalLeases,
    key: LeaseKey,
}

impl TaskLease for LocalLease {
    fn still_held(&mut self) -> bool {
        true
    }
}

impl Drop for LocalLease {
    fn drop(&mut self) {
        self.leases.0.lock().expect("leases poisoned").remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_refused_while_held_and_free_again_once_dropped() {
        let (leases, shop) = (LocalLeases::default(), TenantId::parse_slug("shop").unwrap());
        let held = leases.try_take(&shop, "train").expect("free");
        assert!(leases.try_take(&shop, "train").is_none());
        assert!(leases.try_take(&shop, "index").is_some());
        drop(held);
        assert!(leases.try_take(&shop, "train").is_some());
    }
}
