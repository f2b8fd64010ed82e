//! Prometheus metrics, served at `/metrics`: HTTP requests by route and status, request latency, and
//! event ingestion counts. The body is the OpenMetrics text format (`prometheus_client`'s text encoder: counters
//! end in `_total`, the body in `# EOF`), sent with that format's content type, [`CONTENT_TYPE`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The content type of what [`Metrics::render`] writes: OpenMetrics 1.0 text, which Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub events_accepted: Counter,
    pub events_duplicate: Counter,
    pub events_rejected: Counter,
    pub connections_refused: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("attune");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_request_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let events_accepted = Counter::default();
        let events_duplicate = Counter::default();
        let events_rejected = Counter::default();
        registry.register("http_requests", "HTTP requests by method, route and status", http_requests.clone());
        registry.register("http_request_seconds", "HTTP request latency by route", http_request_seconds.clone());
        registry.register("events_accepted", "Events stored", events_accepted.clone());
        registry.register(
            "events_duplicate",
            "Events skipped because their id was already stored",
            events_duplicate.clone(),
        );
        registry.register("events_rejected", "Events rejected by validation", events_rejected.clone());
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections closed on arrival because the most allowed were open",
            connections_refused.clone(),
        );
        Self {
            registry,
            http_requests,
            http_request_seconds,
            events_accepted,
            events_duplicate,
            events_rejected,
            connections_refused,
        }
    }

    /// Counts one request by method, route and status, and its latency by route.
    pub fn observe_request(&self, method: String, route: String, status: u16, elapsed: Duration) {
        self.http_requests.get_or_create(&RequestLabels { method, route: route.clone(), status }).inc();
        self.http_request_seconds.get_or_create(&RouteLabels { route }).observe(elapsed.as_secs_f64());
    }

    /// The metrics in the OpenMetrics text format (serve it as [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a string cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
