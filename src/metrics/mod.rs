//! The gateway's Prometheus metrics (`prometheus-client`), served as text at the admin
//! listener's `/metrics` (`admin/http.rs`).
//!
//! Two kinds of numbers. *Pushed* ones are counted where they happen: requests by route and
//! status class, request durations, upstream errors, ceremonies, rate-limited requests, reloads.
//! The proxy's per-request counters are resolved once per route ([`RouteCounters`]), so the hot
//! path increments an atomic and never builds a label. *Pulled* ones are read from their owners
//! at scrape time (sessions cached and stored, revocations, store commits): the owners keep plain
//! atomics and know nothing of Prometheus.

mod pulled;

pub use pulled::Pulled;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The route label of requests no `[[route]]` served: the gateway's own endpoints, 404s, refusals.
pub const NO_ROUTE: &str = "_gateway";

/// Status classes, in [`RouteCounters`] slot order; `none` is a request that got no response.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CeremonyLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// Which ceremony an outcome belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyKind {
    Login,
    Registration,
}

/// How a ceremony's `complete` step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyOutcome {
    Success,
    /// Refused: a bad or replayed response, an unknown credential, a disabled user.
    Failure,
    /// The gateway could not answer (store down).
    Error,
}

/// Every pushed metric, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    upstream_errors: Family<RouteLabel, Counter>,
    ceremonies: Family<CeremonyLabels, Counter>,
    rate_limited: Counter,
    reloads: Family<OutcomeLabel, Counter>,
    reload_time: Gauge,
    webhooks: Family<OutcomeLabel, Counter>,
    /// Unix time of the last attempt's outcome, kept so `/readyz` can report it.
    last_reload_ok: AtomicU64,
}

/// One route's request counters, one per status class, resolved when the routes are built.
#[derive(Clone, Debug)]
pub struct RouteCounters {
    classes: [Counter; 6],
    upstream_errors: Counter,
}

impl RouteCounters {
    /// Counts one finished request; `status` 0 means none was sent.
    pub fn count(&self, status: u16) {
        let slot = match status {
            100..=599 => usize::from(status / 100) - 1,
            _ => 5,
        };
        if let Some(counter) = self.classes.get(slot) {
            counter.inc();
        }
    }

    /// Counts an upstream that could not be reached or answered in time.
    pub fn upstream_error(&self) {
        self.upstream_errors.inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("passkey_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by route (`_gateway`: none) and status class",
            requests.clone(),
        );
        // 0.5 ms to ~8 s: a proxied request, a ceremony, or an upstream timing out.
        let duration = Histogram::new(exponential_buckets(0.0005, 2.0, 15));
        registry.register_with_unit(
            "request_duration",
            "Time from the request header to the end of the response",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        let upstream_errors = Family::<RouteLabel, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstreams down or too slow (answered 502/504)",
            upstream_errors.clone(),
        );
        let ceremonies = Family::<CeremonyLabels, Counter>::default();
        registry.register(
            "ceremonies",
            "Completed WebAuthn ceremonies by kind and outcome",
            ceremonies.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited",
            "Ceremony requests refused by the rate limit (429)",
            rate_limited.clone(),
        );
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by outcome",
            reloads.clone(),
        );
        let reload_time = Gauge::default();
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded (start or last good reload), unix seconds",
            reload_time.clone(),
        );
        registry.register(
            "build",
            "The running build",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: crate::version::COMMIT,
            }),
        );
        let webhooks = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook attempts: delivered, retried (an attempt failed), dropped (attempts spent or queue full)",
            webhooks.clone(),
        );
        // Both outcomes appear from the start, so a dashboard's rate() has a series to read.
        for outcome in ["success", "failure"] {
            drop(reloads.get_or_create(&OutcomeLabel { outcome }));
        }
        Metrics {
            registry,
            requests,
            duration,
            upstream_errors,
            ceremonies,
            rate_limited,
            reloads,
            reload_time,
            webhooks,
            last_reload_ok: AtomicU64::new(0),
        }
    }

    /// The counters of the route named `route` ([`NO_ROUTE`] for unrouted requests).
    pub fn route(&self, route: &str) -> RouteCounters {
        let classes = CLASSES.map(|class| {
            self.requests.get_or_create_owned(&RequestLabels {
                route: route.to_string(),
                class,
            })
        });
        let upstream_errors = self.upstream_errors.get_or_create_owned(&RouteLabel {
            route: route.to_string(),
        });
        RouteCounters {
            classes,
            upstream_errors,
        }
    }

    /// Records how long one request took.
    pub fn observe_duration(&self, took: Duration) {
        self.duration.observe(took.as_secs_f64());
    }

    /// Counts one ceremony's `complete`.
    pub fn ceremony(&self, kind: CeremonyKind, outcome: CeremonyOutcome) {
        let kind = match kind {
            CeremonyKind::Login => "login",
            CeremonyKind::Registration => "registration",
        };
        let outcome = match outcome {
            CeremonyOutcome::Success => "success",
            CeremonyOutcome::Failure => "failure",
            CeremonyOutcome::Error => "error",
        };
        self.ceremonies
            .get_or_create(&CeremonyLabels { kind, outcome })
            .inc();
    }

    /// Counts a request refused by the ceremony rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Counts a reload attempt; a success also moves the "loaded at" time to `now`.
    pub fn reload(&self, ok: bool, now: i64) {
        let outcome = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&OutcomeLabel { outcome }).inc();
        if ok {
            self.loaded(now);
        }
    }

    /// Counts a webhook attempt's outcome: `delivered`, `retried` or `dropped`.
    pub fn webhook(&self, outcome: &'static str) {
        self.webhooks.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The running configuration was loaded at `now` (unix seconds).
    pub fn loaded(&self, now: i64) {
        self.reload_time.set(now);
        self.last_reload_ok
            .store(u64::try_from(now).unwrap_or(0), Ordering::Relaxed);
    }

    /// When the running configuration was loaded, unix seconds.
    pub fn loaded_at(&self) -> u64 {
        self.last_reload_ok.load(Ordering::Relaxed)
    }

    /// The text exposition: the pushed metrics, then `pulled`, then the end marker.
    pub fn encode(&self, pulled: &Pulled) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode_registry(&mut text, &self.registry)?;
        prometheus_client::encoding::text::encode_registry(&mut text, &pulled.registry())?;
        prometheus_client::encoding::text::encode_eof(&mut text)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests;
