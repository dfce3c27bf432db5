//! The recorder of served impressions (see [`crate::impressions`]): the thread that writes
//! what the query threads queued, and the flush that waits for it.

use std::sync::Arc;

use super::{lock, Inner, Store};
use crate::impressions::ImpressionCounts;

/// How long a deletion is remembered against impressions served before it: a `View` taken
/// before the deletion can still serve (and queue) answers for the user until it is dropped,
/// so this is a day, not the milliseconds a queued impression waits.
const DELETED_KEPT: std::time::Duration = std::time::Duration::from_secs(86_400);

impl Store {
    /// Write every impression of a served answer queued so far
    /// ([`crate::Config::record_served_impressions`]), on this thread, and return once they
    /// are recorded. The recorder does this by itself within milliseconds; call it when the
    /// next ask must see the last answer's shows (a test, the end of an import).
    pub fn flush_impressions(&self) {
        if let Some(q) = &self.inner.shared.impressions {
            q.drain(|events| self.record_served(events));
        }
    }

    /// Start the recorder thread, if this store records served impressions.
    pub(crate) fn start_recorder(&self) {
        if self.inner.shared.impressions.is_none() {
            return;
        }
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("recostore-impressions".into())
            .spawn(move || {
                let Some(q) = &inner.shared.impressions else {
                    return;
                };
                // A handle that does not count: the recorder must not keep the store open,
                // and closing the store stops the recorder before its own last write.
                let store = Store {
                    inner: Arc::clone(&inner),
                    closed: true,
                };
                while q.wait() {
                    q.drain(|events| store.record_served(events));
                }
            });
        match spawned {
            Ok(h) => *lock(&self.inner.recorder_thread) = Some(h),
            Err(e) => {
                tracing::error!(error = %e, "could not start the impression recorder; served impressions are recorded by flush_impressions and at close only");
            }
        }
    }

    /// Record a batch of served impressions, less those of users deleted after the answer
    /// was served (each carries the write sequence of its snapshot): written, they would
    /// bring the user back.
    /// Each event is checked against the clock here, one by one: one that no longer passes
    /// (the clock stepped back) is dropped alone, not with the batch.
    fn record_served(&self, batch: &[(crate::event::Event, u64)]) -> crate::error::Result<usize> {
        let latest = crate::event::latest_event_time(self.config().future_tolerance_secs);
        let deleted = lock(&self.inner.deleted_users);
        let events: Vec<crate::event::Event> = batch
            .iter()
            .filter(|(e, seq)| deleted.get(&e.user).is_none_or(|d| d.0 <= *seq))
            .filter(|(e, _)| e.validate(0, latest).is_ok())
            .map(|(e, _)| e.clone())
            .collect();
        drop(deleted);
        let skipped = (batch.len() - events.len()) as u64;
        if let (Some(q), true) = (&self.inner.shared.impressions, skipped > 0) {
            q.count_dropped(skipped);
        }
        // The store's own bookkeeping: validated above, and not counted against an events
        // quota (`crate::Quota::events_per_sec`), which is the app's budget.
        match self.record_admitted(&events) {
            Err(crate::error::Error::QuotaExceeded { .. }) => {
                // At the records quota, an impression of a user the store has never seen
                // would create one: those are dropped, the rest of the batch is kept.
                let snap = self.snapshot();
                let (known, new): (Vec<_>, Vec<_>) = events
                    .into_iter()
                    .partition(|e| snap.user_id(&e.user).is_some());
                drop(snap);
                if let Some(q) = &self.inner.shared.impressions {
                    q.count_dropped(new.len() as u64);
                }
                self.record_admitted(&known)
            }
            recorded => recorded,
        }
    }

    /// Run `delete` (a deletion of `users`) with the recorder paused: what was queued before
    /// is written first (and so deleted with the rest), nothing is written while `delete`
    /// runs, and afterwards impressions served before the deletion are skipped.
    pub(crate) fn deleting<T>(
        &self,
        users: &[&str],
        delete: impl FnOnce() -> crate::error::Result<T>,
    ) -> crate::error::Result<T> {
        let Some(q) = &self.inner.shared.impressions else {
            return delete();
        };
        let paused = q.pause();
        q.drain_locked(&paused, |events| self.record_served(events));
        let out = delete()?;
        self.note_deleted(users, self.snapshot().seq);
        Ok(out)
    }

    /// Stop recording served impressions for good: this store is a replica's.
    #[cfg_attr(not(feature = "replication"), allow(dead_code))]
    pub(crate) fn stop_recording(&self) {
        if let Some(q) = &self.inner.shared.impressions {
            q.turn_off();
            let running = lock(&self.inner.recorder_thread).take();
            if let Some(h) = running {
                let _ = h.join();
            }
        }
    }

    /// Note that `users` were deleted as of write `seq`, for [`Store::record_served`]. Kept for
    /// [`DELETED_KEPT`]: the recorder writes what was queued within milliseconds.
    pub(crate) fn note_deleted(&self, users: &[&str], seq: u64) {
        let mut d = lock(&self.inner.deleted_users);
        let now = std::time::Instant::now();
        d.retain(|_, (_, at)| now.duration_since(*at) < DELETED_KEPT);
        for u in users {
            d.insert((*u).to_string(), (seq, now));
        }
    }

    /// Served impressions counted since the store opened.
    pub(crate) fn impression_counts(&self) -> ImpressionCounts {
        self.inner
            .shared
            .impressions
            .as_ref()
            .map(|q| q.counts())
            .unwrap_or_default()
    }
}

impl Inner {
    /// Write what is still queued, before a close's checkpoint; the last handle's close
    /// stops the recorder first.
    pub(crate) fn stop_recorder(self: &Arc<Self>) {
        let Some(q) = &self.shared.impressions else {
            return;
        };
        if self.handles.load(std::sync::atomic::Ordering::Acquire) == 0 {
            q.close();
            let running = lock(&self.recorder_thread).take();
            if let Some(h) = running {
                let _ = h.join();
            }
        }
        let store = Store {
            inner: Arc::clone(self),
            closed: true,
        };
        q.drain(|events| store.record_served(events));
    }
}

#[cfg(test)]
mod tests {
    use crate::activity::checkpoint::{EXPOSURE_PREFIX, META_EXPOSURE};
    use crate::durable::Batch;
    use crate::{Config, Event, Item, Store};

    fn memory(store: &Store, user: &str) -> Vec<(u32, u64)> {
        let snap = store.snapshot();
        let id = snap.user_id(user).expect("user");
        snap.activity
            .exposure(id)
            .map(|e| e.shows().collect())
            .unwrap_or_default()
    }

    /// A store written before the memory existed has impressions in its log and no `X` keys:
    /// its first open derives the memory from the log, writes it with the mark, and the next
    /// open reads it back instead of deriving it again.
    #[test]
    fn a_store_written_before_the_memory_derives_it_from_its_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("open");
        let items: Vec<Item> = (0..6)
            .map(|i| Item::new(format!("i{i}"), [("t", 1.0)]))
            .collect();
        store.upsert_items(&items).expect("items");
        for t in 0..5u64 {
            let shown = vec![format!("i{t}"), format!("i{}", t + 1)];
            store
                .record_events(&[
                    Event::impression("ann", "home", "builtin", shown, 100 + t),
                    Event::view("ann", "i0", 100 + t),
                ])
                .expect("events");
        }
        let want = memory(&store, "ann");
        assert_eq!(want.len(), 10);
        store.close().expect("close");
        // As an older binary left it: no memory, no mark.
        let tree = crate::durable::open_sled(tmp.path(), &Config::default()).expect("sled");
        let mut batch = Batch::default();
        for kv in tree.scan_prefix([EXPOSURE_PREFIX]) {
            batch.remove(kv.expect("key").0);
        }
        batch.remove(META_EXPOSURE);
        tree.apply_batch(batch).expect("remove");
        tree.flush().expect("flush");
        drop(tree);
        let store = Store::open(tmp.path()).expect("reopen");
        assert_eq!(memory(&store, "ann"), want, "derived from the log");
        store.close().expect("close");
        let tree = crate::durable::open_sled(tmp.path(), &Config::default()).expect("sled");
        assert!(tree.get(META_EXPOSURE).expect("get").is_some(), "marked");
        assert_eq!(tree.scan_prefix([EXPOSURE_PREFIX]).count(), 1, "written");
        drop(tree);
        let store = Store::open(tmp.path()).expect("reopen");
        assert_eq!(memory(&store, "ann"), want, "read back");
        store.close().expect("close");
        // The mark gone but the keys kept (an upgrade left them): derived again from the log
        // in place of the keys, not on top of them.
        let tree = crate::durable::open_sled(tmp.path(), &Config::default()).expect("sled");
        tree.remove(META_EXPOSURE).expect("remove");
        tree.flush().expect("flush");
        drop(tree);
        let store = Store::open(tmp.path()).expect("reopen");
        assert_eq!(memory(&store, "ann"), want, "not counted twice");
        store.close().expect("close");
        // With the memory off, impressions go into no memory, and the mark goes: the next
        // open with a memory derives it from the whole log again.
        let off = Config::default().exposure_memory(0);
        let store = Store::open_with(tmp.path(), off).expect("open without memory");
        store
            .record_event(&Event::impression(
                "ann",
                "home",
                "builtin",
                vec!["i5".into()],
                200,
            ))
            .expect("event");
        store.close().expect("close");
        let store = Store::open(tmp.path()).expect("reopen");
        let got = memory(&store, "ann");
        assert_eq!(
            got.len(),
            11,
            "the ten shows, and the one recorded with the memory off"
        );
        assert_eq!(
            got.last(),
            Some(&(store.snapshot().item_id("i5").expect("i5"), 200))
        );
    }
}
