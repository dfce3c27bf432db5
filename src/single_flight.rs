//! [`Derived`]: a value derived from the snapshot (the liked-by-the-same-people relation, the
//! users-like matrix), kept between queries and built by one query at a time.
//!
//! Why not build it lock-free? Both relations take a whole pass over the behaviour state. When
//! a write makes the kept one stale, every query that arrives before a new one is stored would
//! see it stale: with eight request threads, eight full builds of the same value, and the p99
//! of every one of them is a build. Here the first query builds, and the others wait for its
//! result instead of repeating the work. Reads of a value that still serves take no lock.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

/// A kept value of type `T` and the lock that lets only one query build its successor.
pub(crate) struct Derived<T> {
    kept: ArcSwapOption<T>,
    building: Mutex<()>,
}

impl<T> Default for Derived<T> {
    fn default() -> Self {
        Derived {
            kept: ArcSwapOption::empty(),
            building: Mutex::new(()),
        }
    }
}

impl<T> Derived<T> {
    /// The kept value, whatever it was built from; none before the first build.
    pub(crate) fn peek(&self) -> Option<Arc<T>> {
        self.kept.load_full()
    }

    /// The kept value if `serves` accepts it; otherwise one new value from `build`, kept for
    /// later queries. Concurrent callers that find no serving value wait for a single build and
    /// share its result (as long as it serves them too: a caller holding a newer snapshot than
    /// the builder's may build once more).
    pub(crate) fn get_or_build(
        &self,
        serves: impl Fn(&T) -> bool,
        build: impl FnOnce() -> T,
    ) -> Arc<T> {
        if let Some(v) = self.kept.load_full().filter(|v| serves(v)) {
            return v;
        }
        // A build that panicked left nothing half-made (the value is stored only when whole),
        // so a poisoned lock carries no meaning.
        let _one_builder = self.building.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = self.kept.load_full().filter(|v| serves(v)) {
            return v;
        }
        let v = Arc::new(build());
        self.kept.store(Some(v.clone()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Eight threads that find the value missing at the same moment cause one build.
    #[test]
    fn concurrent_misses_build_once() {
        let derived = Arc::new(Derived::<u64>::default());
        let builds = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (derived, builds, gate) = (derived.clone(), builds.clone(), gate.clone());
                std::thread::spawn(move || {
                    gate.wait();
                    *derived.get_or_build(
                        |v| *v == 7,
                        || {
                            builds.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            7
                        },
                    )
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("query thread"), 7);
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    /// A kept value that no longer serves is replaced, once.
    #[test]
    fn a_value_that_no_longer_serves_is_rebuilt() {
        let derived = Derived::<u64>::default();
        assert_eq!(*derived.get_or_build(|_| true, || 1), 1);
        assert_eq!(*derived.get_or_build(|_| true, || 2), 1);
        assert_eq!(*derived.get_or_build(|v| *v >= 2, || 2), 2);
        assert_eq!(*derived.get_or_build(|v| *v >= 2, || 3), 2);
    }
}
