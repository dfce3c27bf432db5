//! Impressions of served answers, recorded off the request path.
//!
//! An answer whose ask names a user and a slot is an impression of its items
//! ([`crate::Config::record_served_impressions`]). Writing it on the query thread would put
//! every personal query behind the store's one writer and a sled batch; instead the query
//! thread pushes the event onto a bounded lock-free queue ([`Queue::push`]: a CAS, and a
//! short lock that wakes the recorder and orders the push with the store's close) and a
//! recorder thread of the store writes whatever has piled up as one event batch. So a query
//! never waits on a write, and a burst of 1,000 answers costs one batch, not 1,000.
//!
//! **What that costs.** Between the answer and the batch (a few milliseconds when the writer
//! is free) a second ask does not see the first answer's shows yet. [`Queue::drain`], which
//! [`crate::Store::flush_impressions`] calls, records everything queued before it. A full
//! queue drops the impression and the answer says so; the counts are in
//! [`crate::Stats::served_impressions`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use serde::Serialize;

use crate::event::Event;

/// Impressions the queue holds at most; a recorder that fell this far behind the queries
/// (a writer stalled on a slow disk) drops the newest rather than grow without bound.
pub const QUEUE_CAPACITY: usize = 16_384;
/// Most events the recorder writes in one batch.
const BATCH: usize = 4_096;
/// How long the recorder sleeps when nothing wakes it: an idle bound, not a delay (a push
/// wakes it).
const IDLE: Duration = Duration::from_millis(200);

/// What happened to a served answer's impression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recording {
    /// Queued; recorded by the store's recorder within milliseconds
    /// ([`crate::Store::flush_impressions`] waits for it).
    Queued,
    /// Not recorded, and why (the queue was full, the store is closed, or the ask's user is
    /// not a valid id).
    Dropped {
        /// Why.
        reason: String,
    },
}

/// Served impressions counted since the store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImpressionCounts {
    /// Queued for recording.
    pub queued: u64,
    /// Written to the store.
    pub recorded: u64,
    /// Not written, each counted once: the queue was full, the store was closing, the ask's
    /// user id was not valid, or the user was deleted after the answer (or the event's time
    /// no longer passes the clock check when written).
    pub dropped: u64,
    /// Queued, but their batch failed to write (logged): lost.
    pub failed: u64,
}

/// The queue between the query threads and the recorder.
pub(crate) struct Queue {
    /// Each impression with the write sequence of the snapshot that answered: a user deleted
    /// after that answer must not come back when it is written.
    events: ArrayQueue<(Event, u64)>,
    queued: AtomicU64,
    recorded: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Set by a push, cleared by the recorder; with `wake`, what the recorder sleeps on.
    pending: Mutex<bool>,
    wake: Condvar,
    /// Held while a batch is taken off the queue and written, so that a flush returns only
    /// once every impression queued before it is written, whoever took it.
    draining: Mutex<()>,
    closing: AtomicBool,
    /// Set when the store turns out to be a replica's: it records nothing, and its answers
    /// say nothing of an impression.
    off: AtomicBool,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            events: ArrayQueue::new(QUEUE_CAPACITY),
            queued: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            pending: Mutex::new(false),
            wake: Condvar::new(),
            draining: Mutex::new(()),
            closing: AtomicBool::new(false),
            off: AtomicBool::new(false),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are a flag and nothing: a panic cannot leave them half-written.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Queue {
    /// Queue `event` (an impression served from the snapshot of write `seq`) for the
    /// recorder; what became of it.
    pub(crate) fn push(&self, event: Event, seq: u64) -> Recording {
        let dropped = |reason: String| {
            self.dropped.fetch_add(1, Relaxed);
            Recording::Dropped { reason }
        };
        if let Err(e) = event.validate(0, u64::MAX) {
            return dropped(e.to_string());
        }
        // Under the lock `close` sets `closing` under: a push either lands before the last
        // drain or sees the store closed, never "queued" and then lost.
        let mut p = lock(&self.pending);
        if self.closing.load(Relaxed) {
            return dropped("the store is closed".to_string());
        }
        if self.events.push((event, seq)).is_err() {
            return dropped(format!(
                "{QUEUE_CAPACITY} impressions are waiting to be written already; \
                 the writer is behind (see the store's log)"
            ));
        }
        self.queued.fetch_add(1, Relaxed);
        if !*p {
            *p = true;
            self.wake.notify_one();
        }
        Recording::Queued
    }

    /// Write everything queued before this call with `write` (a batch at a time), on this
    /// thread, and no more: under steady traffic the queue is seldom empty, and a drain that
    /// waited for empty would never end. Failed batches are counted and logged; they are not
    /// retried (a write that failed once, on a full disk say, would block every later
    /// impression).
    pub(crate) fn drain(&self, write: impl FnMut(&[(Event, u64)]) -> crate::error::Result<usize>) {
        let one = lock(&self.draining);
        self.drain_locked(&one, write);
    }

    /// Stop every drain (the recorder's and flushes) until the guard is dropped: a deletion
    /// holds it from its own flush to its write, so that no impression served before it is
    /// written in between.
    pub(crate) fn pause(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.draining)
    }

    /// [`Queue::drain`] by the holder of [`Queue::pause`]'s guard.
    pub(crate) fn drain_locked(
        &self,
        _paused: &std::sync::MutexGuard<'_, ()>,
        mut write: impl FnMut(&[(Event, u64)]) -> crate::error::Result<usize>,
    ) {
        // FIFO: the first `left` popped are those queued before this call (or a few pushed
        // since, in place of ones another drainer took before the lock was ours).
        let mut left = self.events.len();
        let mut batch = Vec::with_capacity(BATCH.min(left));
        loop {
            batch.clear();
            while batch.len() < BATCH && left > 0 {
                match self.events.pop() {
                    Some(e) => {
                        batch.push(e);
                        left -= 1;
                    }
                    None => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            let n = batch.len() as u64;
            match write(&batch) {
                // What the writer recorded; what it left out it counted as dropped.
                Ok(k) => self.recorded.fetch_add(k as u64, Relaxed),
                Err(e) => {
                    tracing::error!(error = %e, impressions = n, "recording served impressions failed; they are lost");
                    self.failed.fetch_add(n, Relaxed)
                }
            };
        }
    }

    /// Block until a push (or `IDLE`) or [`Queue::close`]; false once closing.
    pub(crate) fn wait(&self) -> bool {
        let mut p = lock(&self.pending);
        if !*p && !self.closing.load(Relaxed) {
            p = self
                .wake
                .wait_timeout(p, IDLE)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        *p = false;
        !self.closing.load(Relaxed)
    }

    /// Whether answers are recorded (false for a replica's store).
    pub(crate) fn is_recording(&self) -> bool {
        !self.off.load(Relaxed)
    }

    /// Record nothing from now on (the store is a replica's), and stop the recorder.
    #[cfg_attr(not(feature = "replication"), allow(dead_code))]
    pub(crate) fn turn_off(&self) {
        self.off.store(true, Relaxed);
        self.close();
    }

    /// Count `n` impressions taken off the queue and not written (see
    /// [`ImpressionCounts::dropped`]).
    pub(crate) fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    /// Wake the recorder to stop.
    pub(crate) fn close(&self) {
        let _p = lock(&self.pending);
        self.closing.store(true, Relaxed);
        self.wake.notify_all();
    }

    /// The counts so far.
    pub(crate) fn counts(&self) -> ImpressionCounts {
        ImpressionCounts {
            queued: self.queued.load(Relaxed),
            recorded: self.recorded.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            failed: self.failed.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_writes_in_batches_and_counts_failures() {
        let q = Queue::default();
        for i in 0..(BATCH + 10) {
            let e = Event::impression("u", "home", "builtin", vec!["a".into()], i as u64);
            assert_eq!(q.push(e, 0), Recording::Queued);
        }
        let bad = Event::impression("", "home", "builtin", vec!["a".into()], 1);
        assert!(matches!(q.push(bad, 0), Recording::Dropped { .. }));
        let mut sizes = Vec::new();
        q.drain(|b| {
            sizes.push(b.len());
            if sizes.len() == 2 {
                Err(crate::error::Error::InvalidQuery {
                    reason: "test".into(),
                })
            } else {
                Ok(b.len())
            }
        });
        assert_eq!(sizes, vec![BATCH, 10]);
        let c = q.counts();
        assert_eq!(
            (c.queued, c.recorded, c.failed, c.dropped),
            (BATCH as u64 + 10, BATCH as u64, 10, 1)
        );
        q.close();
        let late = Event::impression("u", "home", "builtin", vec!["a".into()], 1);
        assert!(
            matches!(q.push(late, 0), Recording::Dropped { reason } if reason.contains("closed"))
        );
    }
}
