//! The store's figures in the Prometheus / OpenMetrics text format, for `stats` with
//! `{"format": "prometheus"}` and for `recostore serve --metrics ADDR`.
//!
//! Every value is read at the moment of the scrape from what the store already counts
//! (`Stats`, the latency histograms of `metrics`, the plugin registry and the A/B figures);
//! nothing is counted twice. prometheus-client writes the format.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::metrics::{Exported, SCENARIO_NAMES};
use crate::store::Store;

/// A label set: `[("scenario", "trending")]`.
type Labels = Vec<(String, String)>;

/// The per-scenario latency histograms, read at the scrape.
#[derive(Debug)]
struct Latencies(Vec<(&'static str, Exported)>);

impl std::fmt::Debug for Exported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in {:.3} s", self.count, self.sum_s)
    }
}

impl EncodeMetric for Latencies {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (scenario, h) in &self.0 {
            let labels: Labels = vec![("scenario".into(), (*scenario).into())];
            encoder
                .encode_family(&labels)?
                .encode_histogram::<Labels>(h.sum_s, h.count, &h.buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The store's figures, now, as OpenMetrics text (ends with `# EOF`).
pub fn text(store: &Store) -> String {
    let mut r = Registry::with_prefix("recostore");
    store_figures(&mut r, store);
    encode(&r)
}

/// A replica's figures: those of the generation it serves (whose query counters carry on
/// across switches), plus its generation, lag and last successful poll.
#[cfg(feature = "replication")]
pub fn replica_text(replica: &crate::Replica) -> String {
    let mut r = Registry::with_prefix("recostore");
    store_figures(&mut r, &replica.store());
    let st = replica.status();
    r.register(
        "replica_generation",
        "Published generation this replica serves",
        gauge(st.generation),
    );
    r.register(
        "replica_behind",
        "Generations between the newest the last successful poll saw and the one served",
        gauge(st.behind),
    );
    r.register(
        "replica_published_at_seconds",
        "When the leader published the generation served (Unix time, the leader's clock)",
        gauge(st.published_at_ms / 1000),
    );
    r.register(
        "replica_last_poll_ok_seconds",
        "When a poll last read the object store's manifests (Unix time; 0: never since open)",
        gauge(st.last_poll_ok_ms.map_or(0, |ms| ms / 1000)),
    );
    r.register(
        "replica_stale",
        "1 while the last poll failed: the generation served may be older than the newest",
        gauge(u64::from(st.stale)),
    );
    encode(&r)
}

fn encode(r: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, r);
    out
}

fn store_figures(r: &mut Registry, store: &Store) {
    let s = store.stats();
    let shared = store.shared();

    let queries = Family::<Labels, Counter>::default();
    let mut latencies = Vec::new();
    for (name, h) in SCENARIO_NAMES.iter().zip(shared.by_scenario.iter()) {
        let e = h.exported();
        if e.count > 0 {
            queries
                .get_or_create(&labels(&[("scenario", name)]))
                .inc_by(e.count);
            latencies.push((*name, e));
        }
    }
    r.register("queries", "Queries answered, by scenario", queries);
    r.register(
        "query_latency_seconds",
        "Query latency by scenario (bucket edges rounded to the store's 19% log-scale buckets: counts at an edge are lower bounds)",
        Latencies(latencies),
    );
    r.register("events", "Behaviour events recorded", counter(s.events));
    r.register(
        "writes",
        "Write calls that stored something (records, events, deletes) since the store opened",
        counter(shared.writes.load(std::sync::atomic::Ordering::Relaxed)),
    );
    r.register("items", "Live items", gauge(s.items as u64));
    r.register("users", "Live users", gauge(s.users as u64));
    r.register(
        "segment_generation",
        "Generation of the current segment",
        gauge(s.generation),
    );
    r.register(
        "segment_bytes",
        "Bytes of the current segment file",
        gauge(s.segment_bytes as u64),
    );
    r.register(
        "delta_records",
        "Records changed since the segment (re-tagged, new, deleted)",
        gauge(s.delta_records as u64),
    );
    r.register(
        "delta_attribute_only",
        "Items whose attributes alone changed since the segment",
        gauge(s.attribute_overlay as u64),
    );
    if let Some(rss) = crate::metrics::resident_bytes() {
        r.register(
            "resident_bytes",
            "Resident memory of this process",
            gauge(rss),
        );
    }

    let calls = Family::<Labels, Counter>::default();
    let faults = Family::<Labels, Counter>::default();
    for p in store.plugins().list() {
        calls
            .get_or_create(&labels(&[("plugin", &p.name)]))
            .inc_by(p.calls);
        // Every kind the registry counts, by its field name.
        if let Ok(serde_json::Value::Object(kinds)) = serde_json::to_value(p.faults) {
            for (kind, n) in kinds {
                if let Some(n) = n.as_u64() {
                    faults
                        .get_or_create(&labels(&[("plugin", &p.name), ("kind", &kind)]))
                        .inc_by(n);
                }
            }
        }
    }
    r.register("plugin_calls", "Plugin calls, by plugin", calls);
    r.register("plugin_faults", "Plugin faults, by plugin and kind", faults);

    let family = Family::<Labels, Counter>::default;
    let (serves, impressions, clicks, purchases, fallbacks) =
        (family(), family(), family(), family(), family());
    for v in store.plugins().variant_stats(None) {
        let version = v.version.to_string();
        let l = labels(&[
            ("slot", &v.slot),
            ("strategy", &v.strategy),
            ("version", &version),
        ]);
        serves.get_or_create(&l).inc_by(v.serves);
        impressions.get_or_create(&l).inc_by(v.impressions);
        clicks.get_or_create(&l).inc_by(v.clicks);
        purchases.get_or_create(&l).inc_by(v.purchases);
        fallbacks.get_or_create(&l).inc_by(v.fallbacks);
    }
    r.register(
        "slot_serves",
        "A/B answers served, by slot and variant",
        serves,
    );
    r.register(
        "slot_impressions",
        "A/B items shown, by slot and variant",
        impressions,
    );
    r.register(
        "slot_clicks",
        "A/B clicks attributed, by slot and variant",
        clicks,
    );
    r.register(
        "slot_purchases",
        "A/B purchases attributed, by slot and variant",
        purchases,
    );
    r.register(
        "slot_fallbacks",
        "A/B answers that fell back to the built-in ranker, by slot and variant",
        fallbacks,
    );
}

#[cfg(test)]
mod tests {
    use crate::metrics::SCENARIO_NAMES;
    use crate::scenario::strategy::scenario_code;
    use crate::scenario::Scenario;

    /// Each scenario's latency is exported under its own name.
    #[test]
    fn scenario_names_follow_the_codes() {
        let item = || "i".to_string();
        for s in [
            Scenario::Similar { item: item() },
            Scenario::Profile { tags: vec![] },
            Scenario::Substitutes { item: item() },
            Scenario::Complements { item: item() },
            Scenario::Together { item: item() },
            Scenario::Viewed { item: item() },
            Scenario::ForUser,
            Scenario::Cart { items: vec![] },
            Scenario::AfterPurchase,
            Scenario::SearchRerank {
                items: vec![],
                keywords: vec![],
            },
            Scenario::Trending,
            Scenario::Gift { recipient: item() },
        ] {
            assert_eq!(SCENARIO_NAMES[scenario_code(&s) as usize], s.name());
        }
    }
}
