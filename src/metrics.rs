//! What the store counts about its own serving: queries answered and their latency, in a
//! lock-free log-scale histogram, for `stats` on the admin socket.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// Sub-buckets per power of two: bucket bounds grow by 2^(1/4) ≈ 19%, so a percentile read
/// from the histogram is within 19% of the true value.
const STEPS: u32 = 4;
/// Buckets cover 1 ns to 2^40 ns (18 minutes); slower calls land in the last one.
const BUCKETS: usize = 40 * STEPS as usize;

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Answers counted.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest answer.
    pub max_us: f64,
}

/// A latency histogram any number of threads record into without a lock.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    max_ns: AtomicU64,
    /// Sum of every recorded duration (for the Prometheus histogram's `_sum`).
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_ns: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

#[cfg(feature = "admin")]
/// The scenarios a latency is kept for, by [`crate::scenario::Scenario`]'s plugin ABI code
/// (1 to 12); 0 is a similarity [`crate::Query`] asked directly.
pub(crate) const SCENARIO_NAMES: [&str; 13] = [
    "query",
    "similar",
    "profile",
    "together",
    "viewed",
    "for-user",
    "cart",
    "after-purchase",
    "search-rerank",
    "trending",
    "gift",
    "substitutes",
    "complements",
];

#[cfg(feature = "admin")]
/// Bucket edges of the exported latency histograms, in seconds. Each count is placed by the
/// upper edge of its log-scale bucket (at most 19% wide), so a count near an edge may sit one
/// edge up: the exported counts at `le` are lower bounds of the true ones.
pub(crate) const EXPORT_EDGES_S: [f64; 15] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0,
];

#[cfg(feature = "admin")]
/// A histogram read for export: sum (s), count, and the count in each bucket (not cumulative:
/// the encoder sums them), the last bucket's edge `f64::MAX` for `+Inf` as prometheus-client
/// writes it.
pub(crate) struct Exported {
    pub sum_s: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

/// The bucket of `ns`: `STEPS · log2(ns)`, rounded down.
fn bucket(ns: u64) -> usize {
    if ns <= 1 {
        return 0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a float-to-int cast saturates; at most 64 * STEPS"
    )]
    let b = (STEPS as f64 * (ns as f64).log2()) as usize;
    b.min(BUCKETS - 1)
}

/// The upper bound of bucket `b`, in ns.
fn upper(b: usize) -> f64 {
    2f64.powf((b + 1) as f64 / f64::from(STEPS))
}

impl Histogram {
    /// Add every count of `earlier` to this one: a replica's next generation carries on the
    /// figures of the one it replaces, so its counters never restart at a switch.
    #[cfg(feature = "replication")]
    pub(crate) fn absorb(&self, earlier: &Histogram) {
        for (mine, theirs) in self.buckets.iter().zip(earlier.buckets.iter()) {
            mine.fetch_add(theirs.load(Relaxed), Relaxed);
        }
        self.max_ns.fetch_max(earlier.max_ns.load(Relaxed), Relaxed);
        self.sum_ns.fetch_add(earlier.sum_ns.load(Relaxed), Relaxed);
    }

    /// The bucket counts, maximum and sum (ns), for saving.
    pub(crate) fn raw(&self) -> (Vec<u64>, u64, u64) {
        (
            self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            self.max_ns.load(Relaxed),
            self.sum_ns.load(Relaxed),
        )
    }

    /// Add counts saved by [`Histogram::raw`]; buckets beyond this histogram's are ignored
    /// (a saved record is never longer unless the layout changed).
    pub(crate) fn absorb_raw(&self, raw: &(Vec<u64>, u64, u64)) {
        for (mine, c) in self.buckets.iter().zip(&raw.0) {
            mine.fetch_add(*c, Relaxed);
        }
        self.max_ns.fetch_max(raw.1, Relaxed);
        self.sum_ns.fetch_add(raw.2, Relaxed);
    }

    /// Count one answer that took `d`.
    pub(crate) fn record(&self, d: Duration) {
        let ns = crate::narrow::u64_from(d.as_nanos());
        self.buckets[bucket(ns)].fetch_add(1, Relaxed);
        self.max_ns.fetch_max(ns, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// The counts for export at [`EXPORT_EDGES_S`] (and `+Inf`), each of this histogram's
    /// buckets counted at the first edge at or above its upper bound.
    #[cfg(feature = "admin")]
    pub(crate) fn exported(&self) -> Exported {
        let mut buckets: Vec<(f64, u64)> = EXPORT_EDGES_S
            .iter()
            .map(|&e| (e, 0))
            .chain(std::iter::once((f64::MAX, 0)))
            .collect();
        let mut count = 0;
        for (b, c) in self.buckets.iter().enumerate() {
            let c = c.load(Relaxed);
            count += c;
            let at = EXPORT_EDGES_S
                .iter()
                .position(|&e| upper(b) <= e * 1e9)
                .unwrap_or(EXPORT_EDGES_S.len());
            if let Some(slot) = buckets.get_mut(at) {
                slot.1 += c;
            }
        }
        Exported {
            sum_s: self.sum_ns.load(Relaxed) as f64 / 1e9,
            count,
            buckets,
        }
    }

    /// Percentiles so far (each the upper bound of its bucket, so never optimistic).
    pub(crate) fn latency(&self) -> Latency {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let count: u64 = counts.iter().sum();
        let max_ns = self.max_ns.load(Relaxed) as f64;
        let at = |p: f64| {
            if count == 0 {
                return 0.0;
            }
            #[expect(
                clippy::cast_possible_truncation,
                reason = "a float-to-int cast saturates; at most count"
            )]
            let rank = ((count as f64 * p).ceil() as u64).max(1);
            let mut seen = 0;
            for (b, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return upper(b).min(max_ns) / 1e3;
                }
            }
            max_ns / 1e3
        };
        Latency {
            count,
            p50_us: at(0.5),
            p90_us: at(0.9),
            p99_us: at(0.99),
            max_us: max_ns / 1e3,
        }
    }
}

/// Resident memory of this process in bytes, where the OS says (Linux `/proc`).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket_of_the_truth() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let l = h.latency();
        assert_eq!(l.count, 1000);
        for (got, want) in [(l.p50_us, 500.0), (l.p90_us, 900.0), (l.p99_us, 990.0)] {
            assert!(got >= want && got <= want * 1.2, "{got} vs {want}");
        }
        assert_eq!(l.max_us, 1000.0);
        assert_eq!(Histogram::default().latency(), Latency::default());
    }
}
