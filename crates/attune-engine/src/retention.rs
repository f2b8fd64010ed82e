//! Retention: a tenant's events are kept for a configured time, and anonymous visitors' (events without a user
//! id) for a shorter one — the tenant's own settings, else the installation's — and a daily task deletes what is
//! older. It takes the path of an erasure: the events leave
//! the log, the daily counts and every cached copy, customer analytics are refitted without them, and the served
//! recommendation model unlearns them ([`RecsService::unlearn`]).

use crate::error::EngineResult;
use crate::insights::InsightsService;
use crate::recs::RecsService;
use crate::tasks::TaskRegistry;
use attune_core::{TenantId, TenantSettings, Timestamp};
use attune_store::Store;
use std::sync::Arc;

/// The task that applies the retention policy to one tenant.
pub const RETENTION_TASK: &str = "retention";

const DAY_MS: i64 = 86_400_000;

/// How long events are kept; `None`: for ever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Days every event is kept.
    pub events_days: Option<u32>,
    /// Days an anonymous visitor's events are kept.
    pub anonymous_days: Option<u32>,
}

impl RetentionPolicy {
    pub fn is_set(&self) -> bool {
        self.events_days.is_some() || self.anonymous_days.is_some()
    }

    /// The policy for a tenant with `settings`: each of its own limits replaces the installation's.
    pub fn for_tenant(&self, settings: &TenantSettings) -> Self {
        Self {
            events_days: settings.retention_days.or(self.events_days),
            anonymous_days: settings.anonymous_retention_days.or(self.anonymous_days),
        }
    }
}

/// Whether a retention policy applies to `tenant` (so the daily schedule runs the task for it).
pub fn applies(store: &dyn Store, tenant: &TenantId, installation: RetentionPolicy) -> bool {
    installation.is_set() || store.tenant_settings(tenant).is_ok_and(|s| installation.for_tenant(&s).is_set())
}

/// Registers [`RETENTION_TASK`] with `tasks`.
pub fn register(
    tasks: &TaskRegistry,
    store: Arc<dyn Store>,
    insights: Arc<InsightsService>,
    recs: Arc<RecsService>,
    policy: RetentionPolicy,
) {
    tasks.register(RETENTION_TASK, move |tenant, _progress| {
        let policy = policy.for_tenant(&store.tenant_settings(tenant)?);
        if !policy.is_set() {
            return Ok("no retention policy: events are kept".to_string());
        }
        let summary = apply(store.as_ref(), insights.as_ref(), tenant, policy)?;
        if summary.deleted > 0 {
            recs.unlearn(tenant)?;
        }
        Ok(summary.text)
    });
}

/// What one application of the policy deleted.
struct Applied {
    deleted: u64,
    text: String,
}

/// Deletes `tenant`'s events older than `policy` keeps; a summary of what went.
fn apply(
    store: &dyn Store,
    insights: &InsightsService,
    tenant: &TenantId,
    policy: RetentionPolicy,
) -> EngineResult<Applied> {
    let cutoff = |days: u32| Timestamp::from_millis(Timestamp::now().millis() - i64::from(days) * DAY_MS);
    let mut parts = Vec::new();
    let mut deleted = 0;
    if let Some(days) = policy.anonymous_days {
        let anonymous = store.purge_events(tenant, cutoff(days)?, true)?;
        parts.push(format!("{anonymous} anonymous visitors' events older than {days} days"));
        deleted += anonymous;
    }
    if let Some(days) = policy.events_days {
        let old = store.purge_events(tenant, cutoff(days)?, false)?;
        parts.push(format!("{old} events older than {days} days"));
        deleted += old;
    }
    if deleted > 0 {
        insights.forget(tenant);
    }
    tracing::info!(tenant = %tenant, deleted, "retention applied");
    Ok(Applied { deleted, text: format!("deleted {}", parts.join(" and ")) })
}
