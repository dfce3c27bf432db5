//! Reclaiming the durable layer's space while the store serves, and when to do it.
//!
//! sled frees the pages of replaced values lazily. Under a steady stream of events (each one
//! rewrites a user's log chunk, journal keys and, at checkpoints, behaviour state) its files
//! grew by about 1.7 KB per event in `bench/soak.rs`, some eight times the live data the events
//! add. [`crate::durable::Db::reclaim`] copies the live pairs into fresh files and swaps them
//! in while queries go on (writes wait for the copy). This module holds the report and the
//! pacing: reclaim once the files have grown [`crate::Config::reclaim_growth`] times past
//! their size after the last reclaim (or at open), checked at most every
//! [`CHECK_EVERY_SECS`] seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// How often, at most, a write checks the size of the durable layer's files. The check walks
/// sled's directory (a handful of files), cheap but not free.
pub const CHECK_EVERY_SECS: u64 = 10;

/// What a reclaim did ([`crate::Store::reclaim_space`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReclaimReport {
    /// Bytes of sled's files before.
    pub bytes_before: u64,
    /// Bytes of the fresh files, which hold the live data only. sled lays fresh pages out
    /// with room to spare (about 2.8 times the live bytes after an Online Retail import), so
    /// a store with little to give back can come out larger than it went in.
    pub bytes_after: u64,
    /// Durable keys the copy read.
    pub keys: u64,
    /// Bytes of those keys and values.
    pub live_bytes: u64,
    /// How long the whole reclaim took, in seconds; queries went on meanwhile.
    pub seconds: f64,
    /// How long writes waited, in seconds: the copy and the commit.
    pub writes_held_seconds: f64,
}

/// When to reclaim: the size to grow past, and the time of the last check.
#[derive(Debug)]
pub(crate) struct Pacer {
    started: Instant,
    /// Bytes of the files after the last reclaim, or at open.
    base: AtomicU64,
    /// Seconds since `started` of the last check.
    checked: AtomicU64,
}

impl Pacer {
    /// Pace from files of `bytes` now.
    pub(crate) fn new(bytes: u64) -> Pacer {
        Pacer {
            started: Instant::now(),
            base: AtomicU64::new(bytes),
            checked: AtomicU64::new(0),
        }
    }

    /// Whether a check is due now; claims it, so of several writers at once one checks.
    pub(crate) fn check_due(&self) -> bool {
        let now = self.started.elapsed().as_secs();
        let last = self.checked.load(Ordering::Relaxed);
        now >= last + CHECK_EVERY_SECS
            && self
                .checked
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether files of `bytes` call for a reclaim under `growth`, given the floor
    /// `min_bytes`. A growth that is not a number above 1 would reclaim without end, and is
    /// taken as 1.5.
    pub(crate) fn calls_for(&self, bytes: u64, growth: f32, min_bytes: u64) -> bool {
        let growth = if growth.is_finite() && growth > 1.0 {
            f64::from(growth)
        } else {
            1.5
        };
        let base = self.base.load(Ordering::Relaxed).max(1);
        bytes >= min_bytes && bytes as f64 > growth * base as f64
    }

    /// A reclaim left files of `bytes`: the next grows from there.
    pub(crate) fn reclaimed(&self, bytes: u64) {
        self.base.store(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaims_past_the_growth_and_the_floor_only() {
        const MIN: u64 = 64 << 20;
        let p = Pacer::new(100 << 20);
        assert!(!p.calls_for(399 << 20, 4.0, MIN));
        assert!(p.calls_for(401 << 20, 4.0, MIN));
        p.reclaimed(10 << 20);
        // 4x of 10 MiB is past the growth, but under the floor.
        assert!(!p.calls_for(50 << 20, 4.0, MIN));
        assert!(p.calls_for(MIN + 1, 4.0, MIN));
        // A store opened empty.
        let p = Pacer::new(0);
        assert!(!p.calls_for(MIN - 1, 4.0, MIN));
        assert!(p.calls_for(MIN, 4.0, MIN));
        // Growths that would reclaim after every write are taken as 1.5.
        let p = Pacer::new(100);
        for g in [0.0, 1.0, -3.0, f32::NAN, f32::INFINITY] {
            assert!(!p.calls_for(150, g, 0), "{g}");
            assert!(p.calls_for(151, g, 0), "{g}");
        }
    }

    #[test]
    fn one_check_per_period() {
        let p = Pacer::new(0);
        // The first check at open is not due: the size was just taken.
        assert!(!p.check_due());
        let p = Pacer {
            started: Instant::now() - std::time::Duration::from_secs(CHECK_EVERY_SECS),
            base: AtomicU64::new(0),
            checked: AtomicU64::new(0),
        };
        assert!(p.check_due());
        assert!(!p.check_due());
    }
}
