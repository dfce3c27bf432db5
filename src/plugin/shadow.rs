//! Shadow variants: a strategy ranks a sample of a slot's answers off the request path, and
//! its list is compared with the one that was served. Nothing it ranks is ever shown.
//!
//! The query thread only decides whether to sample (one draw per shadow), and hands the
//! worker a task holding the same snapshot, the same ask and the served list: a push onto a
//! bounded lock-free queue. Every ranking happens on one worker thread per store, which
//! keeps its CPU to a configured share of one core ([`crate::PluginLimits::shadow_cpu`]) by
//! resting after each ranking in proportion to its length, and which on Linux runs at the
//! `SCHED_IDLE` policy: it gets a core only when no query (or any other thread) wants it,
//! so on a saturated machine shadows are dropped rather than answers delayed. A sampled answer that finds the
//! queue full is dropped and counted, so a slow shadow costs comparisons, never serving
//! time.
//!
//! The shadow ranks the candidates its scenario gathers from that snapshot for that ask,
//! which is what it would have served. The comparison reports overlap@k and Kendall's rank
//! correlation with the served list, and counts the items either list would show that are
//! out of stock, refused by the ask's filter, or already bought by a shopper whose ask
//! excludes purchases: a check, independent of the ranking tail, that the host keeps those
//! out whatever the strategy does (a plugin orders the candidates it is given and cannot add
//! one). A shadow's plugin calls bypass its version's counters
//! (`PluginVersion::run_shadow`): its faults are counted here only, never disable it or roll
//! anything back, and never move the guardrails' figures of a version that also serves.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_skiplist::SkipMap;
use serde::{Deserialize, Serialize};

use super::fault::Counters;
use super::Fault;
use crate::metrics::Histogram;

/// What a shadow ranking came to, against the list that was served.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Comparison {
    /// |served ∩ shadow| / max(|served|, |shadow|); none when both are empty (nothing to
    /// agree on, so such a ranking is not compared).
    pub overlap: Option<f64>,
    /// Kendall's tau over the items both lists hold, when they share at least two.
    pub tau: Option<f64>,
    /// The shadow's items that are out of stock, refused by the filter, already bought.
    pub would_show: Bad,
    /// The same counts for the served list, for reference.
    pub served_shows: Bad,
}

/// Items a list would show that it should not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bad {
    /// Items with a stock of 0.
    pub out_of_stock: u64,
    /// Items the ask's filter refuses.
    pub filtered: u64,
    /// Items the shopper already bought, when the ask excludes purchases.
    pub purchased: u64,
}

impl Bad {
    fn add(&mut self, o: Bad) {
        self.out_of_stock += o.out_of_stock;
        self.filtered += o.filtered;
        self.purchased += o.purchased;
    }
}

/// Overlap and rank correlation of `shadow` against `served` (each best first, distinct).
pub(crate) fn compare<T: Eq + std::hash::Hash>(
    served: &[T],
    shadow: &[T],
) -> (Option<f64>, Option<f64>) {
    let longest = served.len().max(shadow.len());
    if longest == 0 {
        return (None, None);
    }
    let at: std::collections::HashMap<&T, usize> =
        served.iter().enumerate().map(|(i, x)| (x, i)).collect();
    // Positions in the served list of the shadow's items that were served, in shadow order.
    let mut common: Vec<usize> = shadow.iter().filter_map(|x| at.get(x).copied()).collect();
    let overlap = common.len() as f64 / longest as f64;
    let n = common.len() as u64;
    if n < 2 {
        return (Some(overlap), None);
    }
    // Discordant pairs are the inversions of `common`; every other pair is concordant (the
    // lists hold distinct items, so there are no ties).
    let pairs = n * (n - 1) / 2;
    let discordant = inversions(&mut common);
    let tau = (pairs as f64 - 2.0 * discordant as f64) / pairs as f64;
    (Some(overlap), Some(tau))
}

/// The number of pairs out of order in `v` (which it sorts), by merge sort: O(n log n), so a
/// shadow of a 10,000-item answer costs the worker milliseconds, not seconds.
fn inversions(v: &mut [usize]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let (left, right) = v.split_at_mut(n / 2);
    let mut count = inversions(left) + inversions(right);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        if left[i] <= right[j] {
            merged.push(left[i]);
            i += 1;
        } else {
            merged.push(right[j]);
            count += (left.len() - i) as u64;
            j += 1;
        }
    }
    merged.extend_from_slice(&left[i..]);
    merged.extend_from_slice(&right[j..]);
    v.copy_from_slice(&merged);
    count
}

/// One shadow's figures ([`super::VariantStats::shadow`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowStats {
    /// Share of the slot's answers it is sampled at now; none when the slot no longer
    /// shadows it, or when these are the figures of a plugin version that no longer serves
    /// (the figures stay).
    pub sample: Option<f64>,
    /// Answers sampled for it.
    pub sampled: u64,
    /// Sampled answers it never ranked: the queue was full (the worker was busy, resting
    /// within its CPU share, or waiting for idle CPU), the task waited more than 10 s, or the
    /// store was closing.
    pub dropped: u64,
    /// Rankings it ran.
    pub calls: u64,
    /// Rankings that faulted, by kind (the answer is then not compared). At idle priority a
    /// call may wait for a core, so a `deadline` fault (at ten times the serving deadline) can
    /// be the machine's load rather than the strategy; an error of the store's own ranking
    /// code is counted as a `trap`.
    pub faults: super::FaultCounts,
    /// Time to rank one answer on the shadow worker, candidates included: upper bounds of
    /// the log-scale buckets the median and 99th percentile fall in, in µs.
    pub p50_us: f64,
    /// See `p50_us`.
    pub p99_us: f64,
    /// Rankings compared with the served list.
    pub compared: u64,
    /// Mean overlap@k with the served list: shared items over the longer list's length.
    pub overlap: f64,
    /// Mean Kendall's tau with the served list over the items both hold, among the
    /// `correlated` comparisons that shared at least two items.
    pub rank_correlation: Option<f64>,
    /// Comparisons that shared at least two items.
    pub correlated: u64,
    /// Items its lists would have shown that they should not, summed over `compared`,
    /// checked against the ask on the worker. The host filters candidates before a plugin
    /// ranks them, and a plugin only orders what it is given, so any count here is a bug in
    /// the host, not in the strategy: a check that the ranking path keeps its promises.
    pub would_show: Bad,
    /// The same counts for the lists that were served, for reference.
    pub served_shows: Bad,
}

/// Live counters of one shadow (slot, strategy, version).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    sampled: AtomicU64,
    dropped: AtomicU64,
    calls: Counters,
    latency: Histogram,
    sums: Mutex<Sums>,
}

/// What only the worker adds to: floats and comparison counts, under one lock.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
struct Sums {
    compared: u64,
    overlap: f64,
    correlated: u64,
    tau: f64,
    would_show: Bad,
    served_shows: Bad,
}

/// A shadow's figures as the store saves them (in key `P` `x`, FORMAT.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedShadow {
    /// (slot, strategy, version).
    pub key: (String, String, u32),
    /// Sampled, dropped, calls, then the fault counts by kind (as `FaultCounts` orders them).
    pub counts: [u64; 10],
    /// The latency histogram's buckets, maximum and sum (ns).
    pub latency: (Vec<u64>, u64, u64),
    sums: Sums,
}

/// A ranking to run: the work (which returns the comparison, or the fault that stopped it)
/// and the counters it goes to.
struct Task {
    counts: Arc<Counts>,
    run: Box<dyn FnOnce() -> Result<Comparison, Fault> + Send>,
    /// When it was queued: a task that waited longer than [`MAX_WAIT`] is dropped, so that
    /// a ranking is never of a snapshot far older than the answer it is compared with.
    queued: Instant,
}

/// The longest a task may wait for the worker: one that waited longer when the worker takes
/// it is dropped. (On a machine with no idle CPU the worker may not take any for a while;
/// until it does, or the store closes, the queued tasks keep their snapshots.)
const MAX_WAIT: Duration = Duration::from_secs(10);

/// The largest queue accepted (the whole queue is allocated up front).
const MAX_QUEUE: usize = 1 << 16;

/// A shadow's key: (slot, strategy, version).
type Key = (String, String, u32);

/// The shadow queue, worker and figures of one plugin registry.
pub(crate) struct Shadows {
    inner: Arc<Inner>,
}

struct Inner {
    queue: ArrayQueue<Task>,
    stats: SkipMap<Key, Arc<Counts>>,
    /// The same counters by (hash of the key, sub-index), for lookups without allocating.
    by_hash: SkipMap<(u64, u32), (Key, Arc<Counts>)>,
    share: f64,
    /// The worker, once started (or `None` if it could not be).
    worker: std::sync::OnceLock<Option<std::thread::Thread>>,
    /// Set while the worker is parked with nothing to do: a submit unparks it only then, so
    /// the query thread makes no system call while the worker is busy.
    parked: AtomicBool,
    /// Set while the worker runs a task.
    running: AtomicBool,
    /// Set when the store closes: nothing more is queued.
    closed: AtomicBool,
}

impl Inner {
    /// Drop every queued task, counted.
    fn drain(&self) {
        while let Some(t) = self.queue.pop() {
            t.counts.dropped.fetch_add(1, Relaxed);
        }
    }
}

impl std::fmt::Debug for Shadows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shadows")
            .field("queued", &self.inner.queue.len())
            .finish_non_exhaustive()
    }
}

impl Shadows {
    /// A queue of `queue` tasks (at least 1) and a worker held to `share` of a core.
    pub(crate) fn new(queue: usize, share: f64) -> Shadows {
        let share = if share.is_nan() {
            0.1
        } else {
            share.clamp(0.001, 1.0)
        };
        Shadows {
            inner: Arc::new(Inner {
                queue: ArrayQueue::new(queue.clamp(1, MAX_QUEUE)),
                stats: SkipMap::new(),
                by_hash: SkipMap::new(),
                share,
                worker: std::sync::OnceLock::new(),
                parked: AtomicBool::new(false),
                running: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The counters of shadow (`slot`, `strategy`, `version`), found by a hash of the key so
    /// that the query thread allocates nothing once they exist.
    fn counts(&self, slot: &str, strategy: &str, version: u32) -> Arc<Counts> {
        let h = key_hash(slot, strategy, version);
        let mut range = self.inner.by_hash.range((h, 0)..=(h, u32::MAX));
        if let Some(e) = range.find(|e| {
            let (s, st, v) = &e.value().0;
            s == slot && st == strategy && *v == version
        }) {
            return e.value().1.clone();
        }
        let key = (slot.to_string(), strategy.to_string(), version);
        let counts = self
            .inner
            .stats
            .get_or_insert_with(key.clone(), || Arc::new(Counts::default()))
            .value()
            .clone();
        // A second entry under one hash (a collision) takes the next free sub-index.
        let taken = self.inner.by_hash.range((h, 0)..=(h, u32::MAX)).count();
        self.inner.by_hash.insert(
            (h, u32::try_from(taken).unwrap_or(u32::MAX)),
            (key, counts.clone()),
        );
        counts
    }

    /// Count an answer sampled for shadow (`slot`, `strategy`, `version`), and queue the task
    /// `make` builds for the worker; a full queue or a closing store drops it (counted)
    /// before anything is built, so that a saturated worker costs the query thread almost
    /// nothing.
    pub(crate) fn submit(
        &self,
        slot: &str,
        strategy: &str,
        version: u32,
        make: impl FnOnce() -> Box<dyn FnOnce() -> Result<Comparison, Fault> + Send>,
    ) {
        let counts = self.counts(slot, strategy, version);
        counts.sampled.fetch_add(1, SeqCst);
        if self.inner.closed.load(SeqCst) || self.inner.queue.is_full() {
            counts.dropped.fetch_add(1, SeqCst);
            return;
        }
        let task = Task {
            counts,
            run: make(),
            queued: Instant::now(),
        };
        if let Err(t) = self.inner.queue.push(task) {
            t.counts.dropped.fetch_add(1, Relaxed);
            return;
        }
        if self.inner.closed.load(SeqCst) {
            // `close` ran between the check above and the push: take back what it missed.
            self.inner.drain();
            return;
        }
        self.wake();
    }

    /// Start the worker if it is not running, else unpark it if it sleeps.
    fn wake(&self) {
        let worker = self.inner.worker.get_or_init(|| {
            let weak = Arc::downgrade(&self.inner);
            match std::thread::Builder::new()
                .name("recostore-shadow".into())
                .spawn(move || work(&weak))
            {
                Ok(h) => Some(h.thread().clone()),
                Err(e) => {
                    tracing::error!(
                        target: "recostore::plugin",
                        error = %e,
                        "the shadow worker could not start; shadow rankings are dropped"
                    );
                    None
                }
            }
        });
        match worker {
            Some(t) => {
                if self.inner.parked.swap(false, SeqCst) {
                    t.unpark();
                }
            }
            // No thread, no shadows: drop what waits.
            None => {
                while let Some(t) = self.inner.queue.pop() {
                    t.counts.dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Stop taking tasks, drop those queued (counted) and wait for the one running: the
    /// store calls this on close, before it saves the figures, so that no task outlives it
    /// holding its files open.
    pub(crate) fn close(&self) {
        self.inner.closed.store(true, SeqCst);
        self.inner.drain();
        // The worker marks itself running before it takes a task, and drops any task it
        // takes once closed is set, so after this wait no task runs. At idle priority on a
        // saturated machine the task running may wait long for a core: give up after a
        // while rather than hold the close (the task then holds the store's files a little
        // longer).
        let started = Instant::now();
        while self.inner.running.load(SeqCst) {
            if started.elapsed() > Duration::from_secs(5) {
                tracing::warn!(
                    target: "recostore::plugin",
                    "a shadow ranking still runs 5 s into the store's close; closing without it"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The figures of shadow `key`, if it was ever sampled.
    pub(crate) fn stats(
        &self,
        key: &(String, String, u32),
        sample: Option<f64>,
    ) -> Option<ShadowStats> {
        let e = self.inner.stats.get(key)?;
        let c = e.value();
        // Calls first and sampled last: a reader never sees more rankings than samples, nor
        // a call whose figures are missing.
        let calls = c.calls.calls.load(SeqCst);
        let dropped = c.dropped.load(SeqCst);
        let sums = c
            .sums
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let lat = c.latency.latency();
        let mean = |s: f64, n: u64| if n == 0 { 0.0 } else { s / n as f64 };
        Some(ShadowStats {
            sample,
            calls,
            dropped,
            sampled: c.sampled.load(SeqCst),
            faults: c.calls.faults(),
            p50_us: lat.p50_us,
            p99_us: lat.p99_us,
            compared: sums.compared,
            overlap: mean(sums.overlap, sums.compared),
            rank_correlation: (sums.correlated > 0).then(|| mean(sums.tau, sums.correlated)),
            correlated: sums.correlated,
            would_show: sums.would_show,
            served_shows: sums.served_shows,
        })
    }

    /// Every shadow's key, in order.
    pub(crate) fn keys(&self) -> Vec<(String, String, u32)> {
        self.inner.stats.iter().map(|e| e.key().clone()).collect()
    }

    /// Every shadow's figures, for saving.
    pub(crate) fn figures(&self) -> Vec<SavedShadow> {
        self.inner
            .stats
            .iter()
            .map(|e| {
                let c = e.value();
                // In the order `stats` reads: calls, then dropped, then sampled.
                let calls = c.calls.calls.load(SeqCst);
                let dropped = c.dropped.load(SeqCst);
                let f = c.calls.faults();
                SavedShadow {
                    key: e.key().clone(),
                    counts: [
                        c.sampled.load(SeqCst),
                        dropped,
                        calls,
                        f.deadline,
                        f.fuel,
                        f.memory,
                        f.stack,
                        f.trap,
                        f.bad_output,
                        f.instantiate,
                    ],
                    latency: c.latency.raw(),
                    sums: c
                        .sums
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone(),
                }
            })
            .collect()
    }

    /// Add saved figures back (on open, before anything is sampled).
    pub(crate) fn restore(&self, saved: Vec<SavedShadow>) {
        for s in saved {
            let c = self.counts(&s.key.0, &s.key.1, s.key.2);
            let [sampled, dropped, calls, faults @ ..] = s.counts;
            // Tasks still queued or running when the figures were saved never finish in this
            // process: they were dropped.
            let dropped = dropped.max(sampled.saturating_sub(calls));
            let sampled = sampled.max(calls.saturating_add(dropped));
            c.sampled.fetch_add(sampled, Relaxed);
            c.dropped.fetch_add(dropped, Relaxed);
            c.calls.calls.fetch_add(calls, Relaxed);
            c.calls.add_faults(faults);
            c.latency.absorb_raw(&s.latency);
            let mut sums = c
                .sums
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            sums.compared += s.sums.compared;
            sums.overlap += s.sums.overlap;
            sums.correlated += s.sums.correlated;
            sums.tau += s.sums.tau;
            sums.would_show.add(s.sums.would_show);
            sums.served_shows.add(s.sums.served_shows);
        }
    }
}

/// A hash of a shadow's key.
fn key_hash(slot: &str, strategy: &str, version: u32) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(slot.as_bytes());
    h.update(&[0xff]);
    h.update(strategy.as_bytes());
    h.update(&version.to_le_bytes());
    h.digest()
}

/// Run the calling thread only on CPU no other thread wants (Linux `SCHED_IDLE`): a query
/// thread that becomes runnable takes the core from it at once, so shadow work waits for
/// idle time instead of delaying answers. Elsewhere the CPU share alone bounds it.
fn yield_to_everything() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` with pid 0 changes only the calling thread's policy;
        // `param` is a valid, initialised `sched_param` that outlives the call, and
        // SCHED_IDLE requires priority 0 and no privilege.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            tracing::warn!(
                target: "recostore::plugin",
                error = %std::io::Error::last_os_error(),
                "the shadow worker could not lower its priority; its CPU share still bounds it"
            );
        }
    }
}

/// The worker: run tasks while the registry lives, resting to stay within its CPU share.
fn work(inner: &Weak<Inner>) {
    yield_to_everything();
    // Rest owed and not yet taken: rests shorter than this are gathered, since a sleep of a
    // few microseconds costs more than it rests.
    const MIN_REST: Duration = Duration::from_millis(2);
    let mut owed = Duration::ZERO;
    loop {
        let Some(me) = inner.upgrade() else { return };
        // Running before taking, so that `close` waits for any task taken after it looked.
        me.running.store(true, SeqCst);
        let Some(task) = me.queue.pop() else {
            me.running.store(false, SeqCst);
            // Say so before looking again, so that a task pushed between the look and the
            // park finds the flag set and unparks (a park after an unpark returns at once).
            me.parked.store(true, SeqCst);
            if !me.queue.is_empty() {
                me.parked.store(false, SeqCst);
                continue;
            }
            drop(me);
            // The timeout notices a registry that is gone.
            std::thread::park_timeout(Duration::from_millis(200));
            continue;
        };
        let Task {
            counts,
            run,
            queued,
        } = task;
        if me.closed.load(SeqCst) || queued.elapsed() > MAX_WAIT {
            counts.dropped.fetch_add(1, SeqCst);
            drop(run);
            me.running.store(false, SeqCst);
            continue;
        }
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        let took = started.elapsed();
        counts.latency.record(took);
        match result {
            Ok(Ok(c)) => {
                let mut s = counts
                    .sums
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(o) = c.overlap {
                    s.compared += 1;
                    s.overlap += o;
                }
                if let Some(t) = c.tau {
                    s.correlated += 1;
                    s.tau += t;
                }
                s.would_show.add(c.would_show);
                s.served_shows.add(c.served_shows);
            }
            Ok(Err(f)) => {
                counts.calls.fault(&f);
            }
            Err(_) => {
                // A panic in the host's ranking code: a bug, counted as a trap so that it
                // shows, and logged by the panic hook already.
                counts.calls.fault(&Fault::Trap {
                    reason: "the host panicked ranking for the shadow".into(),
                });
            }
        }
        // Last, so that a reader who sees the call sees what it added.
        counts.calls.calls.fetch_add(1, SeqCst);
        let share = me.share;
        me.running.store(false, SeqCst);
        drop(me);
        owed += took.mul_f64((1.0 - share) / share);
        if owed >= MIN_REST {
            let rest = Instant::now();
            std::thread::sleep(owed);
            owed = owed.saturating_sub(rest.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_and_tau_against_a_pairwise_count() {
        let (o, t) = compare(&[1, 2, 3, 4], &[1, 2, 3, 4]);
        assert_eq!((o, t), (Some(1.0), Some(1.0)));
        let (o, t) = compare(&[1, 2, 3, 4], &[4, 3, 2, 1]);
        assert_eq!((o, t), (Some(1.0), Some(-1.0)));
        // Shared: 2 and 4; 4 before 2 in the shadow, 2 before 4 in the served list.
        let (o, t) = compare(&[1, 2, 3, 4], &[4, 9, 2]);
        assert_eq!((o, t), (Some(0.5), Some(-1.0)));
        let (o, t) = compare(&[1, 2], &[3]);
        assert_eq!((o, t), (Some(0.0), None));
        assert_eq!(compare::<u32>(&[], &[]), (None, None));
        // Three shared, one pair swapped: concordant 2, discordant 1.
        let (_, t) = compare(&[1, 2, 3], &[2, 1, 3]);
        assert!((t.unwrap_or(9.0) - 1.0 / 3.0).abs() < 1e-12);
        // Against a count of every pair, on shuffled lists.
        let mut r = crate::splitmix::SplitMix64(3);
        for _ in 0..200 {
            let n = 2 + r.below(40);
            let served: Vec<usize> = (0..n).collect();
            let mut shadow: Vec<usize> = (0..n + 5).map(|_| r.below(n + 10)).collect();
            shadow.sort_unstable();
            shadow.dedup();
            for i in (1..shadow.len()).rev() {
                shadow.swap(i, r.below(i + 1));
            }
            let common: Vec<usize> = shadow.iter().copied().filter(|&x| x < n).collect();
            let (mut c, mut d) = (0i64, 0i64);
            for i in 0..common.len() {
                for j in i + 1..common.len() {
                    if common[i] < common[j] {
                        c += 1;
                    } else {
                        d += 1;
                    }
                }
            }
            let want = (common.len() >= 2).then(|| (c - d) as f64 / (c + d) as f64);
            let (_, got) = compare(&served, &shadow);
            assert_eq!(got.is_some(), want.is_some());
            assert!((got.unwrap_or(0.0) - want.unwrap_or(0.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_close_waits() {
        let s = Shadows::new(1, 1.0);
        let key = ("home".to_string(), "x".to_string(), 1);
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g = gate.clone();
        // The first task holds the worker until the test lets it go.
        s.submit("home", "x", 1, || {
            Box::new(move || {
                g.wait();
                Ok(Comparison::default())
            })
        });
        // Wait for the worker to take it, so the queue is empty again.
        while s.inner.queue.len() == 1 {
            std::thread::yield_now();
        }
        s.submit("home", "x", 1, || Box::new(|| Ok(Comparison::default())));
        s.submit("home", "x", 1, || Box::new(|| Err(Fault::Fuel)));
        gate.wait();
        s.close();
        let st = s.stats(&key, Some(1.0)).expect("stats");
        assert_eq!(st.sampled, 3);
        // The third found the queue full; the second was either run or dropped by close.
        assert!(st.dropped >= 1, "{st:?}");
        assert_eq!(st.calls + st.dropped, 3, "{st:?}");
        s.submit("home", "x", 1, || Box::new(|| Ok(Comparison::default())));
        assert_eq!(
            s.stats(&key, Some(1.0)).expect("stats").dropped,
            st.dropped + 1
        );
    }
}
