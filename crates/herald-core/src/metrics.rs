//! Process metrics, rendered in Prometheus' text exposition format. One registry per process
//! ([`global`]); counters and histograms are updated where things happen (the HTTP edge, the
//! delivery engine), gauges of stored state are refreshed in the background by
//! [`refresh_gauges`] from a few grouped counts, so a scrape itself never touches the database.
//!
//! Labels are bounded by construction: surfaces, route templates, status codes, providers,
//! outcomes and states — never ids, tokens or user-supplied values.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

/// Upper bounds (seconds) of the histograms' buckets.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Every series Herald exports: name, type and help text.
pub const SERIES: &[(&str, &str, &str)] = &[
    ("herald_http_requests_total", "counter", "HTTP requests answered, by surface, route template and status."),
    ("herald_http_request_duration_seconds", "histogram", "Time to answer an HTTP request, by surface and route."),
    (
        "herald_deliveries_total",
        "counter",
        "Delivery attempts by provider and outcome (delivered, retried, gone, channel_error, failed, expired).",
    ),
    (
        "herald_delivery_latency_seconds",
        "histogram",
        "From the send being accepted to the push service's answer, by provider.",
    ),
    ("herald_provider_request_duration_seconds", "histogram", "One request to a push service, by provider."),
    ("herald_queue_depth", "gauge", "Deliveries by state: due, scheduled, retrying, leased."),
    ("herald_fanouts_pending", "gauge", "Broadcasts still being expanded."),
    ("herald_webhook_outbox_depth", "gauge", "Webhook and callback deliveries not yet delivered or given up."),
    ("herald_subscriptions", "gauge", "Subscriptions by provider and status."),
    ("herald_channels_unhealthy", "gauge", "Channels marked unhealthy by a push service's answer."),
    ("herald_rate_limited_total", "counter", "Requests refused with 429, by surface."),
    ("herald_receipts_total", "counter", "Receipts reported by devices, by event."),
    ("herald_db_pool_connections", "gauge", "Database connections of this process, by state (idle, in_use)."),
];

type Labels = Vec<(&'static str, String)>;
type Key = (&'static str, Labels);

#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The metrics of this process.
#[derive(Debug, Default)]
pub struct Registry {
    counters: Mutex<BTreeMap<Key, u64>>,
    gauges: Mutex<BTreeMap<Key, f64>>,
    histograms: Mutex<BTreeMap<Key, Histogram>>,
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    (name, labels.iter().map(|(k, v)| (*k, v.to_string())).collect())
}

/// The registry of this process.
pub fn global() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Registry {
    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        *self.counters.lock().expect("metrics lock").entry(key(name, labels)).or_default() += 1;
    }

    /// Records one observation (seconds) in a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        let mut all = self.histograms.lock().expect("metrics lock");
        let h = all.entry(key(name, labels)).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        self.gauges.lock().expect("metrics lock").insert(key(name, labels), value);
    }

    /// Replaces every series of a gauge (so states that emptied read 0, not their last value).
    pub fn replace_gauge(&self, name: &'static str, series: &[(Vec<(&'static str, &str)>, f64)]) {
        let mut gauges = self.gauges.lock().expect("metrics lock");
        for ((n, _), v) in gauges.iter_mut() {
            if *n == name {
                *v = 0.0;
            }
        }
        for (labels, value) in series {
            gauges.insert(key(name, labels), *value);
        }
    }

    /// A counter's value (for tests and the console).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        self.counters.lock().expect("metrics lock").get(&key(name, labels)).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let counters = self.counters.lock().expect("metrics lock").clone();
        let gauges = self.gauges.lock().expect("metrics lock").clone();
        let histograms = self.histograms.lock().expect("metrics lock").clone();
        let mut out = String::with_capacity(8 * 1024);
        for (name, kind, help) in SERIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, labels), v) in counters.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", render_labels(labels, None));
            }
            for ((n, labels), v) in gauges.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", render_labels(labels, None));
            }
            for ((n, labels), h) in histograms.iter().filter(|((n, _), _)| n == name) {
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let le = format!("{bound}");
                    let _ = writeln!(out, "{n}_bucket{} {}", render_labels(labels, Some(&le)), h.buckets[i]);
                }
                let _ = writeln!(out, "{n}_bucket{} {}", render_labels(labels, Some("+Inf")), h.count);
                let _ = writeln!(out, "{n}_sum{} {}", render_labels(labels, None), h.sum);
                let _ = writeln!(out, "{n}_count{} {}", render_labels(labels, None), h.count);
            }
        }
        out
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Counts of stored state the gauges show, read with a few grouped queries.
#[derive(Debug, Clone, Default)]
pub struct StoredState {
    /// (state, n) for `due`, `scheduled`, `retrying`, `leased`.
    pub queue: Vec<(&'static str, i64)>,
    pub fanouts_pending: i64,
    pub webhook_outbox: i64,
    /// (provider, status, n).
    pub subscriptions: Vec<(String, String, i64)>,
    pub channels_unhealthy: i64,
    /// (idle, in use) connections of this process's pools.
    pub pool: (u32, u32),
}

/// Reads [`StoredState`]; implemented next to [`crate::store::Store`].
#[async_trait::async_trait]
pub trait MetricsStore: Send + Sync {
    /// The counts behind the gauges, as of `now`.
    async fn stored_state(&self, now: crate::clock::Millis) -> crate::store::StoreResult<StoredState>;
}

/// Puts a fresh reading of stored state into the gauges.
pub fn refresh_gauges(registry: &Registry, s: &StoredState) {
    let queue: Vec<(Vec<(&'static str, &str)>, f64)> =
        s.queue.iter().map(|(state, n)| (vec![("state", *state)], *n as f64)).collect();
    registry.replace_gauge("herald_queue_depth", &queue);
    registry.set("herald_fanouts_pending", &[], s.fanouts_pending as f64);
    registry.set("herald_webhook_outbox_depth", &[], s.webhook_outbox as f64);
    let subs: Vec<(Vec<(&'static str, &str)>, f64)> = s
        .subscriptions
        .iter()
        .map(|(p, st, n)| (vec![("provider", p.as_str()), ("status", st.as_str())], *n as f64))
        .collect();
    registry.replace_gauge("herald_subscriptions", &subs);
    registry.set("herald_channels_unhealthy", &[], s.channels_unhealthy as f64);
    registry.set("herald_db_pool_connections", &[("state", "idle")], f64::from(s.pool.0));
    registry.set("herald_db_pool_connections", &[("state", "in_use")], f64::from(s.pool.1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let r = Registry::default();
        r.inc("herald_deliveries_total", &[("provider", "web_push"), ("outcome", "delivered")]);
        r.inc("herald_deliveries_total", &[("provider", "web_push"), ("outcome", "delivered")]);
        r.observe("herald_provider_request_duration_seconds", &[("provider", "apns")], 0.003);
        r.replace_gauge("herald_queue_depth", &[(vec![("state", "due")], 4.0)]);
        r.replace_gauge("herald_queue_depth", &[]);
        let text = r.render();
        assert!(text.contains("# TYPE herald_deliveries_total counter"));
        assert!(text.contains("herald_deliveries_total{provider=\"web_push\",outcome=\"delivered\"} 2"));
        assert!(text.contains("herald_provider_request_duration_seconds_bucket{provider=\"apns\",le=\"0.0025\"} 0"));
        assert!(text.contains("herald_provider_request_duration_seconds_bucket{provider=\"apns\",le=\"0.005\"} 1"));
        assert!(text.contains("herald_provider_request_duration_seconds_count{provider=\"apns\"} 1"));
        assert!(text.contains("herald_queue_depth{state=\"due\"} 0"), "an emptied state reads 0: {text}");
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }
}
