//! Envoy stats defined by the filter: counters by event name, gauges for refresh times.

use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::flow::Event;

/// Metric ids by name, defined on first use (Envoy shares them across VMs by name).
#[derive(Default)]
pub struct Metrics {
    ids: HashMap<String, u32>,
    /// Counts of `Event::PER_REQUEST` not yet handed to Envoy, in its order. A host call per
    /// request cost about 2,000 instructions (a name lookup and a crossing into Envoy);
    /// the root context hands these over on its tick instead, so they reach Envoy at most
    /// one tick late, well inside Envoy's own 5 s stats flush to sinks.
    unflushed: [u64; Event::PER_REQUEST.len()],
}

impl Metrics {
    /// Defines the batched counters at once, so that they read 0 until the first tick
    /// rather than being absent.
    pub fn with_batched_defined() -> Metrics {
        let mut metrics = Metrics::default();
        for event in &Event::PER_REQUEST {
            metrics.id(&event.metric_name(), MetricType::Counter);
        }
        metrics
    }

    fn id(&mut self, name: &str, kind: MetricType) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        let id = hostcalls::define_metric(kind, name).ok()?;
        self.ids.insert(name.to_string(), id);
        Some(id)
    }

    pub fn count(&mut self, name: &str) {
        if let Some(id) = self.id(name, MetricType::Counter) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    /// Counts `event` at once (failures and rare events, which operators alert on), or at
    /// the next `flush` when it is one nearly every request ends in.
    pub fn record(&mut self, event: &Event) {
        match Event::PER_REQUEST.iter().position(|e| e == event).and_then(|i| self.unflushed.get_mut(i)) {
            Some(n) => *n = n.saturating_add(1),
            None => self.count(&event.metric_name()),
        }
    }

    /// Hands the batched counts to Envoy (on the root context's tick).
    pub fn flush(&mut self) {
        for (event, n) in Event::PER_REQUEST.iter().zip(self.unflushed) {
            if n > 0 {
                if let Some(id) = self.id(&event.metric_name(), MetricType::Counter) {
                    let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
        self.unflushed = Default::default();
    }

    pub fn gauge(&mut self, name: &str, value: u64) {
        if let Some(id) = self.id(name, MetricType::Gauge) {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}
