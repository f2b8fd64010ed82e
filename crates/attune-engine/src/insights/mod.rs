//! Predictive analytics of each tenant kept in memory: the customer model and demand history
//! ([`analytics`]) over the tenant's observation window ([`window`]: the days read and the as-of day), built by one scan of the event log and rebuilt when the tenant's event count changed and
//! the cached value is older than [`REBUILD_AFTER`]; customer segments and churn risk ([`customers`]);
//! demand forecasts ([`demand`]); reorder suggestions ([`reorder`]), which the `forecast` task computes with
//! the default policy ahead of the first request.

pub mod activity;
pub mod analytics;
pub mod customers;
pub mod demand;
pub mod reorder;
pub mod window;

use crate::error::{EngineError, EngineResult};
use crate::tasks::{TaskProgress, TaskRegistry};
use analytics::TenantAnalytics;
use attune_core::{TenantId, Timestamp};
use attune_store::Store;
use demand::{DemandForecast, ForecastTarget, Granularity};
use reorder::{DEFAULT_LEAD_TIME_DAYS, DEFAULT_SERVICE_LEVEL, Reorder, compute_reorder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// A cached model is rebuilt only when the tenant's event count changed and it is at least this old.
pub const REBUILD_AFTER: Duration = Duration::from_secs(60);
/// The task kind that refreshes a tenant's analytics: rescan the event log, refit the customer model, forecast
/// demand (total and per item) and compute the reorder suggestions with the default policy.
pub const FORECAST_TASK: &str = "forecast";

/// What the latest `forecast` task computed for a tenant, served while the analytics it came from are current.
struct ForecastSnapshot {
    /// `events` and `fitted_at` of the analytics it was computed from.
    analytics_events: u64,
    analytics_fitted_at: Timestamp,
    /// The reorder list with the default policy.
    reorder: Reorder,
}

/// The analytics service of one engine.
pub struct InsightsService {
    store: Arc<dyn Store>,
    analytics: Mutex<HashMap<TenantId, Arc<TenantAnalytics>>>,
    /// Held while analytics are built, so concurrent requests share one build.
    building: Mutex<()>,
    /// Per-tenant results of the latest `forecast` task.
    forecasts: Mutex<HashMap<TenantId, Arc<ForecastSnapshot>>>,
}

impl InsightsService {
    pub fn new(store: Arc<dyn Store>, tasks: &TaskRegistry) -> Arc<Self> {
        let service = Arc::new(Self {
            store,
            analytics: Mutex::default(),
            building: Mutex::default(),
            forecasts: Mutex::default(),
        });
        let insights: Weak<InsightsService> = Arc::downgrade(&service);
        tasks.register(FORECAST_TASK, move |tenant, progress| {
            insights.upgrade().ok_or(EngineError::ShuttingDown)?.run_forecast_task(tenant, progress)
        });
        service
    }

    /// The cached analytics of `tenant` when they are recent enough to serve without a check; else call
    /// [`InsightsService::analytics`] on a blocking thread.
    pub fn fresh(&self, tenant: &TenantId) -> Option<Arc<TenantAnalytics>> {
        self.cached(tenant).filter(|cached| cached.built_at.elapsed() < REBUILD_AFTER)
    }

    /// Drops the tenant's cached analytics (a user changed or was erased); the next request builds them anew.
    pub fn forget(&self, tenant: &TenantId) {
        self.analytics.lock().expect("analytics cache poisoned").remove(tenant);
    }

    /// The analytics of `tenant`: cached while the event count is unchanged or the cache is younger than
    /// [`REBUILD_AFTER`], else rebuilt. Blocking; one build at a time, so a burst of requests after a change
    /// waits for one scan, not many.
    pub fn analytics(&self, tenant: &TenantId) -> EngineResult<Arc<TenantAnalytics>> {
        if let Some(fresh) = self.fresh(tenant) {
            return Ok(fresh);
        }
        let _building = self.building.lock().map_err(EngineError::internal)?;
        let events = self.store.stats(tenant)?.events;
        if let Some(cached) = self.cached(tenant)
            && (cached.events == events || cached.built_at.elapsed() < REBUILD_AFTER)
        {
            return Ok(cached);
        }
        let built = Arc::new(analytics::build(self.store.as_ref(), tenant, events, &mut |_| {})?);
        self.analytics.lock().expect("analytics cache poisoned").insert(tenant.clone(), built.clone());
        Ok(built)
    }

    /// The demand forecast of `target`. Blocking (reads the catalog, fits the model).
    pub fn forecast(
        &self,
        tenant: &TenantId,
        analytics: &TenantAnalytics,
        target: &ForecastTarget,
        granularity: Granularity,
        horizon: usize,
    ) -> EngineResult<DemandForecast> {
        let (daily, items) = demand::target_demand(self.store.as_ref(), tenant, analytics, target)?;
        demand::forecast_demand(analytics, target, &daily, items, granularity, horizon)
    }

    /// The reorder list for a policy: the `forecast` task's list when it matches (default policy, same
    /// analytics), else computed now. Blocking unless [`InsightsService::precomputed_reorder`] answers.
    pub fn reorder(
        &self,
        tenant: &TenantId,
        analytics: &TenantAnalytics,
        lead_time_days: f64,
        service_level: f64,
    ) -> EngineResult<Reorder> {
        if let Some(reorder) = self.precomputed_reorder(tenant, analytics, lead_time_days, service_level) {
            return Ok(reorder);
        }
        compute_reorder(self.store.as_ref(), tenant, analytics, lead_time_days, service_level)
    }

    /// The `forecast` task's reorder list, when it was computed for this policy from these analytics.
    pub fn precomputed_reorder(
        &self,
        tenant: &TenantId,
        analytics: &TenantAnalytics,
        lead_time_days: f64,
        service_level: f64,
    ) -> Option<Reorder> {
        if lead_time_days != DEFAULT_LEAD_TIME_DAYS || service_level != DEFAULT_SERVICE_LEVEL {
            return None;
        }
        let snapshot = self.forecasts.lock().expect("forecast cache poisoned").get(tenant).cloned()?;
        (snapshot.analytics_events == analytics.events && snapshot.analytics_fitted_at == analytics.fitted_at)
            .then(|| snapshot.reorder.clone())
    }

    fn cached(&self, tenant: &TenantId) -> Option<Arc<TenantAnalytics>> {
        self.analytics.lock().expect("analytics cache poisoned").get(tenant).cloned()
    }

    /// The `forecast` task: rescans the event log and refits the customer model (replacing the cached
    /// analytics), then forecasts daily demand for the best sellers and computes the reorder list with the
    /// default policy, kept as the tenant's [`ForecastSnapshot`].
    fn run_forecast_task(&self, tenant: &TenantId, progress: &TaskProgress<'_>) -> EngineResult<String> {
        let analytics = self.rebuild(tenant, progress)?;
        progress.checkpoint()?;
        progress.report("forecasting demand", 0.6);
        let reorder =
            compute_reorder(self.store.as_ref(), tenant, &analytics, DEFAULT_LEAD_TIME_DAYS, DEFAULT_SERVICE_LEVEL)?;
        let summary = format!(
            "{} events scanned; {}; {} items forecast, {} with stock figures, {} to reorder now",
            analytics.events,
            match &analytics.customers {
                Ok(model) => format!("{} customers valued", model.customers.len()),
                Err(why) => format!("no customer model ({why})"),
            },
            reorder.items_considered,
            reorder.items_with_stock,
            reorder.reorder_now,
        );
        let snapshot =
            ForecastSnapshot { analytics_events: analytics.events, analytics_fitted_at: analytics.fitted_at, reorder };
        self.forecasts.lock().expect("forecast cache poisoned").insert(tenant.clone(), Arc::new(snapshot));
        Ok(summary)
    }

    /// Rebuilds the tenant's analytics now, reporting the scan's progress.
    fn rebuild(&self, tenant: &TenantId, progress: &TaskProgress<'_>) -> EngineResult<Arc<TenantAnalytics>> {
        let _building = self.building.lock().map_err(EngineError::internal)?;
        let events = self.store.stats(tenant)?.events;
        progress.report("scanning events", 0.0);
        let total = events.max(1) as f64;
        let built = analytics::build(self.store.as_ref(), tenant, events, &mut |scanned| {
            progress.report("scanning events", 0.5 * scanned as f64 / total)
        })?;
        progress.report("fitting customer model", 0.5);
        let built = Arc::new(built);
        self.analytics.lock().expect("analytics cache poisoned").insert(tenant.clone(), built.clone());
        Ok(built)
    }
}
