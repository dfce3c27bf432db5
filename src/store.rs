//! [`Store`]: the handle an app holds. The write API, rebuilds, stats; opening and recovery
//! are in `store/open.rs`.

#[cfg(test)]
mod crash_tests;
mod events;
mod forget;
mod impressions;
mod maintenance;
mod namespace;
pub(crate) mod open;
mod read;
#[cfg(feature = "replication")]
mod replica;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;

use crate::activity::background::Background;
use crate::activity::checkpoint::Unsaved;
use crate::codec::{self, Kind};
use crate::config::{Config, Durability};
use crate::error::Result;
use crate::model::{self, Item, User};
use crate::rebuild;
use crate::snapshot::Snapshot;
use crate::view::View;
use crate::write::{Carried, Counters, Pending};

/// An open recommendation store. Cheap to share: it is `Send + Sync`; put it in an `Arc` and
/// use it from every request thread. Reads never block; writes are serialised internally.
///
/// `clone` gives another handle to the same store (the admin socket's threads hold one).
/// Dropping a clone does no work. The last handle to go closes the store once: it waits for
/// a running background rebuild, checkpoints the behaviour state and flushes sled. Call
/// [`Store::close`] instead of dropping to see the errors of that final checkpoint and flush.
pub struct Store {
    inner: Arc<Inner>,
    /// Set by [`Store::close`], whose own work replaces the close on drop.
    closed: bool,
}

impl Clone for Store {
    fn clone(&self) -> Self {
        // Relaxed is enough to count up: a handle is cloned from a live one, so the count
        // cannot be at zero here (the same argument as `Arc::clone`).
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        Store {
            inner: self.inner.clone(),
            closed: false,
        }
    }
}

pub(crate) struct Inner {
    /// Live [`Store`] handles. Not `Arc::strong_count`: the background rebuild thread holds
    /// the `Inner` too, and reading a count and then acting on it races when two handles are
    /// dropped at once. The handle whose decrement takes this to zero is the one that closes.
    handles: AtomicUsize,
    dir: PathBuf,
    seg_dir: PathBuf,
    /// This store's id, written into every segment and neighbour file it publishes
    /// ([`crate::segment::format::Footer::store`]).
    store_tag: u32,
    /// The durable records (see [`crate::durable`]).
    tree: crate::durable::Db,
    snapshot: ArcSwap<Snapshot>,
    writer: Mutex<Writer>,
    rebuild_lock: Mutex<()>,
    rebuild_running: AtomicBool,
    rebuild_thread: Mutex<Option<JoinHandle<()>>>,
    /// The background flush of the delta's index (`crate::delta::index`): one at a time.
    index_running: AtomicBool,
    index_thread: Mutex<Option<JoinHandle<()>>>,
    /// The background reclaim of sled's space ([`crate::reclaim`]): one at a time.
    /// Shared by every namespace of one store: a reclaim rewrites their one sled, so one at a
    /// time, paced once.
    reclaim_running: Arc<AtomicBool>,
    reclaim_thread: Mutex<Option<JoinHandle<()>>>,
    /// When the next background reclaim is due.
    reclaim_pacer: Arc<crate::reclaim::Pacer>,
    /// The background prune of the event log ([`crate::retention`]): one at a time.
    prune_running: AtomicBool,
    prune_thread: Mutex<Option<JoinHandle<()>>>,
    /// When the next background prune is due.
    prune_pacer: crate::retention::Pacer,
    /// What the current generation's delta file holds: the newest write and the runs of the
    /// index saved with it (by address: a later flush's new runs make a save due again, and
    /// a reused address only costs that save). `(0, [])`: no file. Written under the rebuild
    /// lock.
    delta_saved: Mutex<(u64, Vec<usize>)>,
    /// A fold is wanted whatever the delta's size (a user was deleted: their row must leave
    /// the segment files), so the next upkeep folds instead of saving.
    fold_wanted: AtomicBool,
    /// Whether closing saves the delta (off once `compact` has swapped the store's files).
    save_on_close: AtomicBool,
    /// The delta's pressure when it was last saved (0 after a fold): the background work is
    /// due again once the pressure has grown by `Config::rebuild_threshold` past it.
    saved_pressure: AtomicUsize,
    /// One publish at a time (`crate::replica`): two would race for one generation number.
    #[cfg(feature = "replication")]
    publishing: Mutex<()>,
    /// What every view of this store shares: configuration, plugins, latency, the derived
    /// relations scenarios keep.
    shared: Arc<crate::view::Shared>,
    /// The recorder of served impressions ([`crate::impressions`]), while it runs.
    recorder_thread: Mutex<Option<JoinHandle<()>>>,
    /// Users deleted lately, with the write sequence of their deletion: impressions served
    /// before it and still queued are not written (see `store/impressions.rs`).
    deleted_users: Mutex<std::collections::HashMap<String, (u64, std::time::Instant)>>,
    /// This store's namespace name (`None`: the default namespace, the store opened).
    namespace: Option<String>,
    /// The namespaces opened through this store, so that each name gives the same store
    /// (only the default namespace's store has any; see `store/namespace.rs`).
    namespaces: Mutex<std::collections::HashMap<String, Store>>,
    /// The events-per-second quota, if [`Config::quota`] sets one.
    pace: Option<crate::namespace::Pace>,
}

/// What the writer lock guards: the id and sequence counters, and what event batches have
/// left to checkpoint.
#[derive(Debug, Default)]
struct Writer {
    counters: Counters,
    unsaved: Unsaved,
    carried: Carried,
    background: Background,
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RebuildReport {
    /// The new segment generation.
    pub generation: u64,
    /// Records folded in from the delta.
    pub folded: usize,
    /// Size of the new segment file in bytes.
    pub bytes: usize,
}

/// What saving the delta did ([`Store::save_delta`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeltaSaveReport {
    /// The segment generation the delta belongs to (unchanged by a save).
    pub generation: u64,
    /// The newest write the file holds.
    pub seq: u64,
    /// Records in the saved delta: re-tagged, attribute-only and deleted items, and users.
    pub records: usize,
    /// Runs of the delta's index saved with it (their rows are not indexed again on open).
    pub runs: usize,
    /// Size of the delta file in bytes (0 when nothing was written).
    pub bytes: u64,
    /// `false` when the file already held every write, or the delta was empty: nothing was
    /// written.
    pub written: bool,
    /// Wall-clock seconds, including the flush of sled that must come first.
    pub seconds: f64,
}

/// What the background work did when the delta grew past [`Config::rebuild_threshold`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Upkeep {
    /// Saved the delta: it holds less than [`Config::fold_fraction`] of the catalogue.
    Saved(DeltaSaveReport),
    /// Folded it into a new segment.
    Folded(RebuildReport),
}

/// Validate `items` for a bulk load as [`Store::upsert_items`] would, with the tag names'
/// hashes (see [`model::BulkTags`]), the second half on a thread of its own (a million items
/// take about a second on one core). The error is the first invalid item's.
fn validate_bulk_in_two(items: &[Item], max_tags: usize) -> Result<model::BulkTags<'_>> {
    if items.len() < 10_000 {
        return model::BulkTags::validate(items, max_tags);
    }
    let (a, b) = items.split_at(items.len() / 2);
    let (a, b) = std::thread::scope(|s| {
        let later = s.spawn(|| model::BulkTags::validate(b, max_tags));
        let first = model::BulkTags::validate(a, max_tags);
        // A panic in validation is a bug; re-raise it here rather than hide it.
        let later = later
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (first, later)
    });
    let mut all = a?;
    all.append(b?);
    Ok(all)
}

/// Items a bulk load may update that the store already holds (or held: a deleted name gets
/// its old id back). They are written a key each in the load's one atomic sled batch, and
/// sled handles such batches poorly as they grow (a million keys in one batch took 22 s and
/// 8 GB in a separate program; 10,000 take milliseconds), so past this the call is refused.
pub const BULK_LOAD_MAX_UPDATES: usize = 100_000;

/// What a bulk load did ([`Store::bulk_load_items`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BulkLoadReport {
    /// Records written: the input's items less repeats of one id (the last one counts).
    pub items: usize,
    /// Of those, items new to the store, written as bulk chunks.
    pub new_items: usize,
    /// The segment generation the load published (it folds the delta too).
    pub generation: u64,
    /// Size of that segment file in bytes.
    pub bytes: usize,
    /// Wall time of the whole load, seconds.
    pub seconds: f64,
}

/// A summary of the store's size and state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Live items.
    pub items: usize,
    /// Live users.
    pub users: usize,
    /// Distinct tag names ever written.
    pub tags: usize,
    /// Current segment generation.
    pub generation: u64,
    /// Bytes of the current segment file.
    pub segment_bytes: usize,
    /// Records changed since the segment that queries score from the in-memory delta: new,
    /// re-tagged and deleted items, and changed users. [`Config::rebuild_threshold`] bounds it.
    pub delta_records: usize,
    /// Items whose attributes alone (stock, price, title, category, members-only, creation
    /// time) changed since the segment. The segment's index still finds them, so they cost no
    /// query time; they are folded in by the next rebuild.
    pub attribute_overlay: usize,
    /// Runs in the delta's index: small in-memory segments of re-tagged records that queries
    /// search with the pruned engine ([`Config::delta_index_rows`]).
    pub delta_runs: usize,
    /// Re-tagged records written since the delta's index was last flushed: the ones each query
    /// scores one by one.
    pub delta_unindexed: usize,
    /// Heap bytes of the delta's index.
    pub delta_index_bytes: usize,
    /// Behaviour events recorded (ever, minus those of deleted users).
    pub events: u64,
    /// The store's clock: the newest event time (seconds since the epoch; 0 before any event).
    pub clock: u64,
    /// Lines (basket, item) in the bought-together index.
    pub bought_lines: u64,
    /// Lines (session, item) in the viewed-together index.
    pub viewed_lines: u64,
    /// Heap bytes of both indexes and of the dense basket counts beside them, estimated from
    /// their lengths.
    pub cooccurrence_bytes: u64,
    /// Impressions of served answers queued, recorded, dropped and lost since the store
    /// opened ([`Config::record_served_impressions`]).
    pub served_impressions: crate::impressions::ImpressionCounts,
    /// Cursors of paged asks held in memory ([`Config::max_cursors`] at most; expired ones
    /// count until newer ones push them out).
    pub cursors: usize,
    /// Page views held in memory (four times [`Config::max_cursors`] at most).
    pub page_views: usize,
}

/// The runs of `delta`'s index, by address: what tells a save that the index changed.
fn run_addresses(delta: &crate::delta::Delta) -> Vec<usize> {
    delta
        .runs
        .iter()
        .map(|r| Arc::as_ptr(r) as *const () as usize)
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of our locks cannot leave the guarded data half-updated (the
    // counters are written back only after the batch succeeds), so poison carries no meaning.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The sled tree holding every durable record.
    pub(crate) fn tree(&self) -> &crate::durable::Db {
        &self.inner.tree
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.shared.config
    }

    /// What every view of this store shares (counters the metrics export reads).
    #[cfg(feature = "admin")]
    pub(crate) fn shared(&self) -> &crate::view::Shared {
        &self.inner.shared
    }

    /// The ranking plugins of this store: load, swap, roll back and route them to slots
    /// while it serves. See [`crate::plugin`].
    pub fn plugins(&self) -> &crate::plugin::Plugins {
        &self.inner.shared.plugins
    }

    /// The current snapshot. Hold it for the length of one query; a newer one may be published
    /// meanwhile and this one stays valid.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    /// The store as it is now, for reading: every query runs on a [`View`]. Lock-free.
    pub fn view(&self) -> View {
        View::new(self.snapshot(), self.inner.shared.clone())
    }

    /// A view of `snap` (an older or a derived snapshot of this store) with this store's
    /// configuration, plugins and kept relations.
    pub(crate) fn view_of(&self, snap: Arc<Snapshot>) -> View {
        View::new(snap, self.inner.shared.clone())
    }

    /// Insert or replace one item.
    pub fn upsert_item(&self, item: &Item) -> Result<()> {
        self.upsert_items(std::slice::from_ref(item))
    }

    /// Insert or replace many items in one atomic batch: either all are stored or none.
    pub fn upsert_items(&self, items: &[Item]) -> Result<()> {
        let max = self.inner.shared.config.max_tags_per_record;
        let tags = items
            .iter()
            .map(|i| model::validate_item(i, max))
            .collect::<Result<Vec<_>>>()?;
        self.write(|p| {
            items
                .iter()
                .zip(&tags)
                .try_for_each(|(i, t)| p.upsert_item(i, t))
        })
    }

    /// Insert or replace one user.
    pub fn upsert_user(&self, user: &User) -> Result<()> {
        self.upsert_users(std::slice::from_ref(user))
    }

    /// Insert or replace many users in one atomic batch.
    pub fn upsert_users(&self, users: &[User]) -> Result<()> {
        let max = self.inner.shared.config.max_tags_per_record;
        let tags = users
            .iter()
            .map(|u| model::validate_user(u, max))
            .collect::<Result<Vec<_>>>()?;
        self.write(|p| {
            users
                .iter()
                .zip(&tags)
                .try_for_each(|(u, t)| p.upsert_user(u, t))
        })
    }

    /// Insert or replace many items in one atomic, durable step and leave the store in its
    /// fast state: the rows are folded straight into a new segment, with the delta, instead
    /// of passing through it, and items new to the store are written to sled in chunks of up
    /// to 1,024 (`L` keys, FORMAT.md) rather than a key each. The store's answers afterwards
    /// equal those of [`Store::upsert_items`] followed by [`Store::rebuild`].
    ///
    /// For loading a catalogue, not for the steady trickle of updates: each call writes a
    /// whole new segment, so it costs about as much as a rebuild. Items the store already
    /// holds are written a key each in the same batch, at most [`Config::bulk_load_max_updates`] of
    /// them ([`crate::Error::BulkLoadTooManyUpdates`] past that, with nothing stored): reload
    /// an existing catalogue's known items with [`Store::upsert_items`] in batches, as
    /// `import jsonl` does. Validation runs first, and
    /// an invalid item fails the call with nothing written. Returns once the records and the
    /// segment are durable, whatever [`crate::Durability`] says. Queries go on throughout;
    /// other writes, rebuilds and index flushes wait for it. After the first bulk load the
    /// store's format mark is 5, which binaries from before this call refuse to open.
    pub fn bulk_load_items(&self, items: &[Item]) -> Result<BulkLoadReport> {
        let max = self.inner.shared.config.max_tags_per_record;
        let tags = validate_bulk_in_two(items, max)?;
        if items.is_empty() {
            let seg = self.snapshot().segment.clone();
            return Ok(BulkLoadReport {
                items: 0,
                new_items: 0,
                generation: seg.generation(),
                bytes: seg.file_len(),
                seconds: 0.0,
            });
        }
        let report = self.inner.bulk_load_items(items, &tags)?;
        self.inner
            .shared
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(report)
    }

    /// Look up an item by id. Sees every write that has returned.
    pub fn get_item(&self, id: &str) -> Option<Item> {
        self.snapshot().item(id)
    }

    /// Look up a user by id.
    pub fn get_user(&self, id: &str) -> Option<User> {
        self.snapshot().user(id)
    }

    /// Delete an item. Returns whether it existed.
    pub fn delete_item(&self, id: &str) -> Result<bool> {
        Ok(self.delete_items(&[id])? == 1)
    }

    /// Delete many items in one batch. Returns how many existed.
    pub fn delete_items(&self, ids: &[&str]) -> Result<usize> {
        let mut n = 0;
        self.write(|p| {
            n = ids.iter().filter(|id| p.delete(Kind::Item, id)).count();
            Ok(())
        })?;
        Ok(n)
    }

    /// Delete a user ("forget me"). Returns whether it existed.
    ///
    /// The user's record, id mapping, behaviour state and event log leave sled in this call's
    /// batch, and their events are taken back out of the co-occurrence lists, so the user
    /// disappears at once from every read: user similarity, segments, "bought together". The copy inside the current segment file is erased by a rebuild,
    /// which this call starts in the background; call [`Store::rebuild`] to wait for erasure.
    /// Impressions of served answers still queued are written first, and deleted with the
    /// rest. [`Store::forget_users`] also makes their bytes leave sled's files and returns a
    /// receipt.
    pub fn delete_user(&self, id: &str) -> Result<bool> {
        Ok(self.delete_users(&[id])? == 1)
    }

    /// Delete many users in one batch. Returns how many existed. See [`Store::delete_user`].
    pub fn delete_users(&self, ids: &[&str]) -> Result<usize> {
        Ok(self.delete_users_with(ids, true)?.0.len())
    }

    /// [`Store::delete_users`], returning the ids that existed and what their deletion took
    /// back (the counts of a [`crate::DeletionReceipt`]); with `fold`, the fold that takes
    /// them out of the segment files starts in the background.
    pub(crate) fn delete_users_with(
        &self,
        ids: &[&str],
        fold: bool,
    ) -> Result<(Vec<String>, crate::forget::Taken)> {
        // Impressions of answers served before this deletion must not bring a user back: the
        // recorder is paused from the flush of what is queued to the end of the write.
        let tree = &self.inner.tree;
        let (deleted, taken) = self.deleting(ids, || {
            let mut deleted = Vec::new();
            let mut taken = crate::forget::Taken::default();
            self.write(|p| {
                for id in ids {
                    let uid = p.user_id(id);
                    if p.delete(Kind::User, id) {
                        deleted.push((*id).to_string());
                        if let Some(uid) = uid {
                            taken.add(&p.forget_activity(uid, tree)?);
                        }
                    }
                }
                Ok(())
            })?;
            Ok((deleted, taken))
        })?;
        let n = deleted.len();
        // The lists paged from their history go with them.
        self.inner.shared.pages.forget_users(ids);
        if n > 0 {
            // A deleted user must leave the segment files: a fold, not a save (the next
            // upkeep's, if the caller's own fold fails).
            self.inner.fold_wanted.store(true, Ordering::Release);
            if fold {
                self.rebuild_in_background();
            }
        }
        Ok((deleted, taken))
    }

    /// Write the behaviour state that event batches have left in the journal (see
    /// [`Config::checkpoint_events`]), so the next open has nothing to replay. Runs by itself
    /// when that many events pile up, and when the last handle closes.
    pub fn checkpoint(&self) -> Result<()> {
        // The A/B figures go with it, so `slot.stats` survives a restart.
        self.plugins().save_figures()?;
        self.write(|p| {
            p.checkpoint = true;
            Ok(())
        })
    }

    /// Close this handle and, when it is the last one, the store: wait for a running
    /// background rebuild, checkpoint the behaviour state (so the next open has no journal to
    /// replay) and flush sled. Returns the first error of that work, which dropping the last
    /// handle can only log.
    ///
    /// When other handles are still open (an admin socket's threads, a clone in another
    /// thread), this does the same work now and they stay usable: the store then closes again,
    /// quietly, when the last of them is dropped.
    pub fn close(mut self) -> Result<()> {
        self.closed = true;
        self.inner.handles.fetch_sub(1, Ordering::AcqRel);
        self.inner.stop_recorder();
        self.inner.close()
    }

    /// Make every write that has returned durable (fsync). After this returns, those writes
    /// survive `kill -9` and power loss. See [`Durability`] for the automatic alternatives.
    pub fn flush(&self) -> Result<()> {
        self.inner.tree.flush()?;
        Ok(())
    }

    pub(crate) fn write(&self, stage: impl FnOnce(&mut Pending<'_>) -> Result<()>) -> Result<()> {
        let (pressure, unindexed, records, live) = self.inner.write(stage)?;
        self.inner
            .shared
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config = &self.inner.shared.config;
        let fold_due = self.inner.fold_point(live).is_some_and(|p| records >= p);
        if config
            .rebuild_threshold
            .is_some_and(|t| pressure >= self.inner.upkeep_due_at(t) || fold_due)
        {
            self.rebuild_in_background();
        } else if config.delta_index_rows > 0 && unindexed >= config.delta_index_rows {
            self.index_in_background();
        }
        if let Some(growth) = config.reclaim_growth {
            let pacer = &self.inner.reclaim_pacer;
            if pacer.check_due()
                && pacer.calls_for(
                    self.inner.tree.file_bytes(),
                    growth,
                    config.reclaim_min_bytes,
                )
            {
                self.background(Job::Reclaim);
            }
        }
        if let Some(keep) = config.event_log_retention_secs {
            let latest = self.inner.snapshot.load().activity.totals().latest_ts;
            if self.inner.prune_pacer.due(latest, keep) {
                self.background(Job::Prune);
            }
        }
        Ok(())
    }

    /// Index the delta's re-tagged records now: the ones written since the last flush go into
    /// a run of the delta's index, merged with the newest runs of no more than twice its size
    /// (see [`Config::delta_index_rows`], which makes this happen in the background). Queries
    /// then search them with the pruned engine instead of scoring each. Returns how many rows
    /// the new run holds (0: nothing to index).
    pub fn index_delta(&self) -> Result<usize> {
        self.inner.index_delta()
    }

    fn index_in_background(&self) {
        self.background(Job::Index);
    }

    /// Fold the delta into a new segment now and publish it; returns when it is live. Readers
    /// keep using the old segment until they finish; its file is deleted when the last lets go.
    pub fn rebuild(&self) -> Result<RebuildReport> {
        self.inner.rebuild()
    }

    /// Save the delta (every write since the segment was built, and the runs of its index)
    /// to the current generation's delta file, so that the next open reads it back in one
    /// piece instead of looking up each changed record in sled and indexing the re-tagged
    /// ones again. Work in proportion to the delta, not the catalogue; the segment, the
    /// delta and every answer stay as they are. Writes go on meanwhile.
    ///
    /// The background work does this by itself when the delta has grown by
    /// [`Config::rebuild_threshold`] and holds less than [`Config::fold_fraction`] of the
    /// catalogue, and closing the store does it for a delta of more than
    /// [`Config::delta_index_rows`] records. A rebuild makes the file obsolete and deletes it.
    pub fn save_delta(&self) -> Result<DeltaSaveReport> {
        self.inner.save_delta()
    }

    fn rebuild_in_background(&self) {
        self.background(Job::Rebuild);
    }

    /// Run `job` on a thread of its own unless one is already at it; the handle is kept, so
    /// closing can wait for it.
    fn background(&self, job: Job) {
        if self.inner.job_running(job).swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name(job.thread_name().into())
            .spawn(move || loop {
                let done = match job {
                    Job::Rebuild => inner.upkeep().map(drop),
                    Job::Reclaim => inner.reclaim().map(drop),
                    Job::Prune => match inner.shared.config.event_log_retention_secs {
                        Some(keep) => inner.prune_event_log(keep).map(drop),
                        None => Ok(()),
                    },
                    // Writes that landed during a flush may already call for the next one,
                    // and with no write to follow nothing else would start it.
                    Job::Index => (|| loop {
                        let rows = inner.shared.config.delta_index_rows;
                        if inner.index_delta()? == 0
                            || inner.snapshot.load().delta.unindexed.len() < rows.max(1)
                        {
                            return Ok(());
                        }
                    })(),
                };
                if let Err(e) = done {
                    tracing::error!(error = %e, "background {} failed; the delta keeps serving reads", job.thread_name());
                }
                inner.job_running(job).store(false, Ordering::Release);
                // A fold asked for (by a deletion) after the upkeep's last look, by a caller
                // that found this thread still running and so started none: take it now.
                let asked = matches!(job, Job::Rebuild) && inner.fold_wanted.load(Ordering::Acquire);
                if !asked || inner.job_running(job).swap(true, Ordering::AcqRel) {
                    return;
                }
            });
        match spawned {
            Ok(h) => {
                if let Some(old) = lock(self.inner.job_thread(job)).replace(h) {
                    let _ = old.join();
                }
            }
            Err(e) => {
                self.inner.job_running(job).store(false, Ordering::Release);
                tracing::error!(error = %e, "could not start the {} thread", job.thread_name());
            }
        }
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Stats {
        let s = self.snapshot();
        Stats {
            items: s.live_items(),
            users: s.live_users(),
            tags: s.tag_id_bound() as usize,
            generation: s.segment.generation(),
            segment_bytes: s.segment.file_len(),
            delta_records: s.delta.changed(),
            attribute_overlay: s.delta.overlaid(),
            delta_runs: s.delta.runs.len(),
            delta_unindexed: s.delta.unindexed.len(),
            delta_index_bytes: s.delta.runs.iter().map(|r| r.bytes()).sum(),
            events: s.activity.totals().events,
            clock: s.activity.now(),
            bought_lines: s.activity.bought.lines(),
            viewed_lines: s.activity.viewed.lines(),
            cooccurrence_bytes: s.activity.bought.approx_bytes()
                + s.activity.viewed.approx_bytes()
                + s.activity.held.approx_bytes() as u64,
            served_impressions: self.impression_counts(),
            cursors: self.inner.shared.pages.held().0,
            page_views: self.inner.shared.pages.held().1,
        }
    }

    /// How many queries and scenario answers this handle served, and how fast (since open).
    pub fn latency_stats(&self) -> crate::metrics::Latency {
        self.inner.shared.latency.latency()
    }

    /// Run `f` with writes and rebuilds held off, after a flush: the durable records, the
    /// current segment and its neighbour file do not change until it returns. Readers are not
    /// held. Lock order as in `Inner::rebuild`: rebuild lock, then writer.
    pub(crate) fn paused<T>(
        &self,
        f: impl FnOnce(&crate::durable::Db, &Snapshot, &Path) -> Result<T>,
    ) -> Result<T> {
        let _rebuild = lock(&self.inner.rebuild_lock);
        let mut writes = lock(&self.inner.writer);
        // A checkpoint running on its own thread would change sled under the reader.
        let w = &mut *writes;
        w.background.settle(&mut w.unsaved);
        self.inner.tree.flush()?;
        let snap = self.inner.snapshot.load_full();
        f(&self.inner.tree, &snap, &self.inner.seg_dir)
    }

    /// This store's id (see [`crate::segment::format::Footer::store`]).
    pub(crate) fn store_tag(&self) -> u32 {
        self.inner.store_tag
    }

    /// Recompute the current segment's full checksum: the quick check (see
    /// [`Store::verify_deep`] for the whole store).
    pub fn verify(&self) -> Result<()> {
        self.snapshot().segment.verify_checksum()
    }
}

/// Work a store does on a thread of its own.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// The delta's upkeep: save it, or fold it into a new segment (`Inner::upkeep`).
    Rebuild,
    /// Flush the delta's re-tagged rows into its index.
    Index,
    /// Rewrite sled's live data into fresh files.
    Reclaim,
    /// Take events older than the retention out of the event log.
    Prune,
}

impl Job {
    fn thread_name(self) -> &'static str {
        match self {
            Job::Rebuild => "recostore-rebuild",
            Job::Index => "recostore-index",
            Job::Reclaim => "recostore-reclaim",
            Job::Prune => "recostore-prune",
        }
    }
}

impl Inner {
    fn job_running(&self, job: Job) -> &AtomicBool {
        match job {
            Job::Rebuild => &self.rebuild_running,
            Job::Index => &self.index_running,
            Job::Reclaim => &self.reclaim_running,
            Job::Prune => &self.prune_running,
        }
    }

    fn job_thread(&self, job: Job) -> &Mutex<Option<JoinHandle<()>>> {
        match job {
            Job::Rebuild => &self.rebuild_thread,
            Job::Index => &self.index_thread,
            Job::Reclaim => &self.reclaim_thread,
            Job::Prune => &self.prune_thread,
        }
    }

    /// Flush the delta's index (see [`Store::index_delta`]). Serialised with rebuilds by the
    /// rebuild lock, so the runs it planned on are the runs it publishes over.
    fn index_delta(&self) -> Result<usize> {
        let _one_at_a_time = lock(&self.rebuild_lock);
        let base = self.snapshot.load_full();
        let Some(flush) = crate::delta::index::flush(&base.delta)? else {
            return Ok(0);
        };
        let rows = flush.indexed.len();
        let writer = lock(&self.writer);
        let cur = self.snapshot.load_full();
        let mut delta = cur.delta.clone();
        if !Arc::ptr_eq(&cur.segment, &base.segment) || !delta.apply_flush(&base.delta.runs, flush)
        {
            return Ok(0);
        }
        tracing::debug!(rows, runs = delta.runs.len(), "delta index flushed");
        self.snapshot.store(Arc::new(Snapshot {
            segment: cur.segment.clone(),
            delta,
            seq: cur.seq,
            activity: cur.activity.clone(),
        }));
        drop(writer);
        Ok(rows)
    }

    /// Stage, apply and publish one write; returns the delta's pressure (what the rebuild
    /// threshold is compared with, `Delta::pressure`), its rows to scan (what
    /// `Config::delta_index_rows` is compared with), its records and the segment's live items
    /// (what the fold point is compared with).
    fn write(
        &self,
        stage: impl FnOnce(&mut Pending<'_>) -> Result<()>,
    ) -> Result<(usize, usize, usize, u64)> {
        let inner = self;
        let changed = {
            let mut writer = lock(&inner.writer);
            let base = inner.snapshot.load_full();
            let w = &mut *writer;
            w.background.reap(&mut w.unsaved);
            let mut p = Pending::new(&base, w.counters, &inner.shared.config);
            p.carried = std::mem::take(&mut w.carried);
            stage(&mut p)?;
            if !p.replayed {
                // The journal's replay re-applies what was admitted before.
                inner.check_records_quota(&base, &p)?;
            }
            if p.must_checkpoint() {
                // An older checkpoint must land first, or its values would overwrite newer ones.
                w.background.settle(&mut w.unsaved);
            }
            let mut staged = p.finish(&w.unsaved, w.background.busy())?;
            if staged.is_noop(&writer.counters) {
                writer.carried = std::mem::take(&mut staged.carried);
                return Ok((
                    base.delta.pressure(),
                    base.delta.unindexed.len(),
                    base.delta.records(),
                    base.segment.data().items.live_count.to_native(),
                ));
            }
            let carried = std::mem::take(&mut staged.carried);
            let next = staged.counters;
            let delta = staged.delta;
            inner.tree.apply_batch(staged.batch)?;
            // Applied: from here on the write is in sled, so the writer's state and the
            // snapshot must follow it even if the flush below fails (or the next write would
            // reuse its ids and sequence numbers).
            writer.counters = next;
            writer.unsaved.applied(staged.saved);
            writer.carried = carried;
            let changed = (
                delta.pressure(),
                delta.unindexed.len(),
                delta.records(),
                base.segment.data().items.live_count.to_native(),
            );
            let activity = staged.activity.unwrap_or_else(|| base.activity.clone());
            if staged.background {
                let w = &mut *writer;
                let unsaved = std::mem::take(&mut w.unsaved);
                let act = activity.clone();
                if let Some(back) = w.background.start(inner.tree.clone(), act, unsaved) {
                    w.unsaved = back;
                }
            }
            inner.snapshot.store(Arc::new(Snapshot {
                segment: base.segment.clone(),
                delta,
                seq: next.seq,
                activity,
            }));
            if inner.shared.config.durability == Durability::Immediate {
                inner.tree.flush()?;
            }
            changed
        };
        Ok(changed)
    }

    /// The closing work: wait for the background rebuild, checkpoint, flush. Safe to run more
    /// than once (a second run finds nothing to checkpoint and nothing to flush).
    fn close(&self) -> Result<()> {
        let mut namespace_error = None;
        if self.handles.load(Ordering::Acquire) == 0 {
            // The namespaces opened through this store close with it, unless an app still
            // holds a handle of one: that one stays usable (on the same sled) and closes
            // when that handle goes. The first error of a namespace's close is this close's.
            let open: Vec<Store> = lock(&self.namespaces).drain().map(|(_, s)| s).collect();
            for ns in open {
                if ns.inner.handles.load(Ordering::Acquire) == 1 {
                    if let Err(e) = ns.close() {
                        tracing::error!(error = %e, "closing a namespace failed: its next open replays its journal");
                        namespace_error.get_or_insert(e);
                    }
                }
            }
        }
        for job in [Job::Rebuild, Job::Index, Job::Reclaim, Job::Prune] {
            let running = lock(self.job_thread(job)).take();
            if let Some(h) = running {
                // Work that panicked has already logged; the delta still serves its records.
                let _ = h.join();
            }
        }
        // A queued shadow ranking holds this store's snapshot and registry; none may
        // outlive the last handle and keep its files open. While other handles serve, the
        // shadows go on.
        if self.handles.load(Ordering::Acquire) == 0 {
            self.shared.plugins.close_shadows();
        }
        if self.tree.is_read_only() {
            // A replica's state is the leader's; it has nothing of its own to save.
            return Ok(());
        }
        self.shared.plugins.save_figures()?;
        self.write(|p| {
            p.checkpoint = true;
            Ok(())
        })?;
        self.tree.flush()?;
        // A delta worth indexing is worth saving: the next open reads it back in one piece.
        // Derived data, so a failure costs that open time, not a record.
        let snap = self.snapshot.load();
        if self.save_on_close.load(Ordering::Acquire)
            && snap.delta.records() > self.shared.config.delta_index_rows
            && !self.saved_holds(&snap)
        {
            drop(snap);
            if let Err(e) = self.save_delta() {
                tracing::warn!(error = %e, "could not save the delta on close; the next open reads it from the dirty log");
            }
        }
        match namespace_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The pressure at which the background work is due: `threshold` past what the last save
    /// left (and at least half as much again, so that a delta saved whole each time costs
    /// amortised work in proportion to the writes, however large it grows).
    fn upkeep_due_at(&self, threshold: usize) -> usize {
        let saved = self.saved_pressure.load(Ordering::Relaxed);
        saved.saturating_add(threshold.max(saved / 2))
    }

    /// The delta's size in records at which the background upkeep folds rather than saves,
    /// for a segment of `live` items: `Config::fold_fraction` of them, and never below
    /// `Config::rebuild_threshold` (a small catalogue folds as it did before delta files).
    /// `None` when the fraction is not positive (NaN, zero or less: every upkeep folds).
    fn fold_point(&self, live: u64) -> Option<usize> {
        let config = &self.shared.config;
        let fraction = config.fold_fraction;
        // NaN compares false with everything: it folds every time, as zero does.
        if fraction.is_nan() || fraction <= 0.0 {
            return None;
        }
        let share = crate::narrow::usize_from_f64(fraction.min(1.0) * live as f64);
        Some(share.max(config.rebuild_threshold.unwrap_or(0)))
    }

    /// The background work a grown delta calls for: a save below the fold point, a fold
    /// (rebuild) at or past it, or when one is wanted (a deletion); again if a fold was asked
    /// for meanwhile.
    pub(crate) fn upkeep(&self) -> Result<Upkeep> {
        loop {
            let forced = self.fold_wanted.swap(false, Ordering::AcqRel);
            let snap = self.snapshot.load_full();
            let live = snap.segment.data().items.live_count.to_native();
            let save = !forced
                && self
                    .fold_point(live)
                    .is_some_and(|p| snap.delta.records() < p);
            let pressure = snap.delta.pressure();
            drop(snap);
            let done = if save {
                self.save_delta().map(Upkeep::Saved).inspect_err(|_| {
                    // Not again at the next write: when `rebuild_threshold` more have come.
                    self.saved_pressure.store(pressure, Ordering::Relaxed);
                })?
            } else {
                self.rebuild().map(Upkeep::Folded)?
            };
            if !self.fold_wanted.load(Ordering::Acquire) {
                return Ok(done);
            }
        }
    }

    /// Whether the delta file already holds `snap`'s delta: every write, and the same runs.
    fn saved_holds(&self, snap: &Snapshot) -> bool {
        let saved = lock(&self.delta_saved);
        saved.0 > 0 && snap.seq <= saved.0 && saved.1 == run_addresses(&snap.delta)
    }

    fn save_delta(&self) -> Result<DeltaSaveReport> {
        let _one_at_a_time = lock(&self.rebuild_lock);
        let started = std::time::Instant::now();
        let snap = self.snapshot.load_full();
        let generation = snap.segment.generation();
        let mut report = DeltaSaveReport {
            generation,
            seq: lock(&self.delta_saved).0,
            records: snap.delta.records(),
            runs: snap.delta.runs.len(),
            bytes: 0,
            written: false,
            seconds: 0.0,
        };
        if snap.delta.records() == 0 || self.saved_holds(&snap) {
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        // The file must never hold a write that sled could still lose (module note of
        // `crate::delta::file`).
        self.tree.flush()?;
        report.bytes = crate::delta::file::write(
            &self.seg_dir,
            self.store_tag,
            generation,
            snap.seq,
            &snap.delta,
        )?;
        report.seq = snap.seq;
        report.written = true;
        *lock(&self.delta_saved) = (snap.seq, run_addresses(&snap.delta));
        self.saved_pressure
            .store(snap.delta.pressure(), Ordering::Relaxed);
        report.seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            generation,
            seq = snap.seq,
            records = report.records,
            runs = report.runs,
            bytes = report.bytes,
            seconds = report.seconds,
            "delta saved"
        );
        Ok(report)
    }

    /// The store has moved on from segment `old` (a rebuild or a bulk load published the
    /// next generation): retire its files, the delta file included, which no open will read
    /// again.
    fn moved_on(&self, old: &crate::segment::Segment) {
        old.retire();
        let path = self
            .seg_dir
            .join(crate::delta::file::file_name(old.generation()));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // The next open removes it as a stray file.
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not delete the old generation's delta file")
            }
        }
        *lock(&self.delta_saved) = (0, Vec::new());
        self.saved_pressure.store(0, Ordering::Relaxed);
    }

    /// Rewrite sled's live data into fresh files (see [`crate::reclaim`]). `None`: the durable
    /// layer has no files (the tests' simulated disk).
    fn reclaim(&self) -> Result<Option<crate::reclaim::ReclaimReport>> {
        let started = std::time::Instant::now();
        let Some(r) = self.tree.reclaim()? else {
            return Ok(None);
        };
        self.reclaim_pacer.reclaimed(r.bytes_after);
        let report = crate::reclaim::ReclaimReport {
            bytes_before: r.bytes_before,
            bytes_after: r.bytes_after,
            keys: r.keys,
            live_bytes: r.live_bytes,
            seconds: started.elapsed().as_secs_f64(),
            writes_held_seconds: r.writes_held.as_secs_f64(),
        };
        tracing::info!(
            bytes_before = report.bytes_before,
            bytes_after = report.bytes_after,
            keys = report.keys,
            seconds = report.seconds,
            writes_held_seconds = report.writes_held_seconds,
            "reclaimed sled's space"
        );
        Ok(Some(report))
    }

    /// Take the events older than `keep` seconds of store time out of the event log (see
    /// [`crate::retention`]): one read of the log without a lock, the entries it finds taken
    /// out [`crate::retention::KEYS_PER_WRITE`] at a time as it goes, each group under the
    /// writer.
    fn prune_event_log(&self, keep: u64) -> Result<crate::PruneReport> {
        use crate::retention;
        let started = std::time::Instant::now();
        let latest = self.snapshot.load().activity.totals().latest_ts;
        let horizon = retention::horizon(latest, keep);
        let mut report = crate::PruneReport {
            horizon,
            ..Default::default()
        };
        let mut held = std::time::Duration::ZERO;
        retention::in_groups(&self.tree, horizon, &mut report, |group, report| {
            let _writer = lock(&self.writer);
            let t = std::time::Instant::now();
            let floor = retention::journal_floor(&self.tree)?;
            let mut batch = crate::durable::Batch::default();
            retention::take_out(&self.tree, group, horizon, floor, &mut batch, report)?;
            self.tree.apply_batch(batch)?;
            if self.shared.config.durability == Durability::Immediate {
                self.tree.flush()?;
            }
            held += t.elapsed();
            Ok(())
        })?;
        self.prune_pacer.pruned(horizon);
        report.seconds = started.elapsed().as_secs_f64();
        report.writes_held_seconds = held.as_secs_f64();
        tracing::info!(
            horizon,
            events = report.events,
            chunks = report.chunks,
            users = report.users,
            left_in_journal = report.journaled_chunks,
            seconds = report.seconds,
            "pruned the event log"
        );
        Ok(report)
    }

    fn rebuild(&self) -> Result<RebuildReport> {
        self.rebuild_dropping(&std::collections::HashSet::new())
    }

    /// Drop the names of the tags that no live record and no user's profile uses: their `T`
    /// keys leave the durable records, and a rebuild leaves them out of the segment (their ids
    /// stay handed out, as empty slots). Returns how many. Only for a store that nothing else
    /// writes meanwhile (`Store::compact` holds it alone): a write racing this could name a
    /// tag whose name is being dropped.
    pub(crate) fn forget_unused_tags(&self) -> Result<u64> {
        let unused = self.snapshot.load_full().unused_tags();
        if unused.is_empty() {
            return Ok(0);
        }
        // The segment without the names first, then the keys: a crash between the two leaves
        // names in sled that the segment lacks (harmless: open reads `T` keys only past the
        // segment's slots, a write naming such a tag gets a new id, and the next compaction
        // removes them). The other order left a segment holding names that sled had lost, and
        // a write reusing one wrote no key for it.
        let dropped: std::collections::HashSet<u32> = unused.iter().copied().collect();
        self.rebuild_dropping(&dropped)?;
        let mut batch = crate::durable::Batch::default();
        for &t in &unused {
            batch.remove(codec::tag_key(t));
        }
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        tracing::info!(tags = unused.len(), "unused tag names removed");
        Ok(unused.len() as u64)
    }

    /// See [`Store::bulk_load_items`]. Holds the rebuild lock and the writer throughout, so
    /// the segment it builds from the snapshot and the rows is the whole store at its commit.
    ///
    /// Commit order: the chunks of the items new to the store, the `T` keys of new tag names
    /// and the format mark are written to sled and flushed while the segment file is written
    /// and synced, under a generation no record names yet; then one sled batch carries the
    /// rest (`I` keys, counters with `M chunked` past the new chunks and `M next_tag` past the
    /// new names, a behaviour checkpoint and the new generation). A crash before that batch
    /// leaves an unnamed file, chunks at or above `M chunked` and `T` keys at or above
    /// `M next_tag`, which open deletes; after it, the load is whole.
    fn bulk_load_items(
        &self,
        items: &[Item],
        tags: &model::BulkTags<'_>,
    ) -> Result<BulkLoadReport> {
        let started = std::time::Instant::now();
        let _one_at_a_time = lock(&self.rebuild_lock);
        let mut writer = lock(&self.writer);
        let base = self.snapshot.load_full();
        let w = &mut *writer;
        w.background.reap(&mut w.unsaved);
        // An older checkpoint must land first, or its values would overwrite newer ones.
        w.background.settle(&mut w.unsaved);
        let mut p = Pending::new(&base, w.counters, &self.shared.config);
        let crate::write::BulkRows {
            rows,
            first_fresh,
            new_tags,
        } = p.bulk_items(items, tags)?;
        let fresh = rows.partition_point(|(id, _)| *id < first_fresh);
        // New to the store, or named before and deleted since: both add a record.
        let revived = rows[..fresh]
            .iter()
            .filter(|(id, _)| match base.delta.items.get(id) {
                Some(e) => e.row.is_none(),
                None => !base.seg().items.is_live(*id),
            })
            .count();
        self.check_bulk_records_quota(&base, rows.len() - fresh + revived)?;
        let limit = self.shared.config.bulk_load_max_updates;
        if fresh > limit {
            return Err(crate::error::Error::BulkLoadTooManyUpdates {
                updates: fresh,
                limit,
            });
        }
        let (written, new_items) = (rows.len(), rows.len() - fresh);
        // What a load that never committed left (see `crate::chunks::remove_uncommitted_load`):
        // gone before this load's keys could be taken for committed ones.
        crate::chunks::remove_uncommitted_load(
            &self.tree,
            w.counters.chunked,
            w.counters.next_tag,
        )?;
        if let Some((last, _)) = rows.last() {
            if *last >= first_fresh {
                p.counters.chunked = p.counters.chunked.max(last + 1);
                p.batch
                    .insert(codec::META_CHUNKED, p.counters.chunked.to_be_bytes());
                p.batch.insert(
                    codec::META_FORMAT,
                    codec::raised_format(&self.tree, codec::CHUNKED_FORMAT)?,
                );
            }
        }
        let mut staged = p.finish(&w.unsaved, false)?;
        let max_seq = staged.counters.seq;
        // The snapshot the segment folds: the base with this call's tag names.
        let folded = Snapshot {
            segment: base.segment.clone(),
            delta: staged.delta.clone(),
            seq: max_seq,
            activity: base.activity.clone(),
        };
        let generation = base.segment.generation() + 1;
        // The chunks go to sled while the segment is built: both are mostly waiting on the
        // disk. Chunks hold fresh ids at or above `M chunked` until the commit below moves
        // it past them, so until then they are garbage to every reader, and removed as such.
        let tree = self.tree.clone();
        let fresh_rows = &rows[fresh..];
        let (chunks_written, seg) = std::thread::scope(|s| {
            let writing = s.spawn(move || {
                let chunks = crate::chunks::bulk_chunks(fresh_rows)?;
                let mut batch = crate::durable::Batch::default();
                if !chunks.is_empty() || !new_tags.is_empty() {
                    // Binaries from before the format mark 5 would take tag names past the
                    // committed counter for real ones, so a load that crashes before its
                    // commit still leaves a store that only this format's readers open.
                    batch.insert(
                        codec::META_FORMAT,
                        codec::raised_format(&tree, codec::CHUNKED_FORMAT)?,
                    );
                }
                for (k, v) in chunks.into_iter().chain(new_tags) {
                    batch.insert(k, v);
                }
                tree.apply_batch(batch).and_then(|()| tree.flush())
            });
            let data = rebuild::from_snapshot_with(
                &folded,
                generation,
                max_seq,
                &std::collections::HashSet::new(),
                &rows,
            );
            let seg = rebuild::publish(&self.seg_dir, &data, &self.shared.config, self.store_tag);
            drop(data);
            let wrote = writing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (wrote, seg)
        });
        drop(folded);
        drop(rows);
        let failed = match (chunks_written, seg) {
            (Ok(()), Ok(seg)) => Ok(seg),
            (Err(e), Ok(seg)) => {
                seg.retire();
                Err(e)
            }
            (_, Err(e)) => Err(e),
        };
        // A failed load takes back what it wrote ahead of the commit (chunks and tag names
        // past the committed counters, which are still the writer's), so that `verify` does
        // not meet them; if this fails too, the next bulk load or open removes them.
        let (chunked, next_tag) = (w.counters.chunked, w.counters.next_tag);
        let undo = |e: crate::error::Error| {
            if let Err(undo_err) =
                crate::chunks::remove_uncommitted_load(&self.tree, chunked, next_tag)
            {
                tracing::warn!(error = %undo_err, "could not remove the chunks of a failed bulk load; the next bulk load or open removes them");
            }
            e
        };
        let seg = failed.map_err(undo)?;
        let seg = Arc::new(seg);
        staged
            .batch
            .insert(codec::META_GENERATION, generation.to_be_bytes());
        if let Err(e) = self.tree.apply_batch(staged.batch) {
            seg.retire();
            return Err(undo(e));
        }
        // Applied: the writer's state and the snapshot must follow it even if the flush
        // fails (see `Inner::write`).
        let tag_slots = crate::narrow::u32_from(seg.data().tags.len());
        let delta = staged.delta.since(max_seq, tag_slots, &seg.data().items);
        w.counters = staged.counters;
        w.unsaved.applied(staged.saved);
        w.carried = Carried::default();
        self.snapshot.store(Arc::new(Snapshot {
            segment: seg.clone(),
            delta,
            seq: max_seq,
            activity: staged.activity.unwrap_or_else(|| base.activity.clone()),
        }));
        let flushed = self.tree.flush();
        drop(writer);
        // The old file is the one a crash would come back to until the commit is on disk.
        flushed?;
        self.moved_on(&base.segment);
        // Housekeeping (open ignores entries at or below the segment's seq): the load has
        // committed, so a failure here is not the caller's error.
        if let Err(e) = rebuild::clean_dirty_log(&self.tree, max_seq) {
            tracing::warn!(error = %e, "bulk load committed; removing its folded dirty-log entries failed, the next rebuild retries");
        }
        let report = BulkLoadReport {
            items: written,
            new_items,
            generation,
            bytes: seg.file_len(),
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok(report)
    }

    /// See [`crate::chunks::prune_chunks`]: under the writer, so no write lands between a chunk's
    /// read and its rewrite.
    pub(crate) fn prune_chunks(&self) -> Result<(u64, u64)> {
        let _one_at_a_time = lock(&self.rebuild_lock);
        let _writer = lock(&self.writer);
        let pruned = crate::chunks::prune_chunks(&self.tree)?;
        if pruned != (0, 0) {
            tracing::info!(
                records = pruned.0,
                tombstones = pruned.1,
                "bulk chunks pruned of replaced records"
            );
        }
        Ok(pruned)
    }

    /// A rebuild that leaves the names of the tags in `dropped` out of the new segment.
    fn rebuild_dropping(&self, dropped: &std::collections::HashSet<u32>) -> Result<RebuildReport> {
        let _one_at_a_time = lock(&self.rebuild_lock);
        let base = self.snapshot.load_full();
        let generation = base.segment.generation() + 1;
        let data = rebuild::from_snapshot_dropping(&base, generation, dropped);
        let seg = rebuild::publish(&self.seg_dir, &data, &self.shared.config, self.store_tag);
        drop(data);
        let seg = Arc::new(seg?);
        let tag_slots = crate::narrow::u32_from(seg.data().tags.len());
        let writer = lock(&self.writer);
        let cur = self.snapshot.load_full();
        // Generation first, durably: from here on, dirty entries <= base.seq are ignored on open.
        self.tree
            .insert(codec::META_GENERATION, generation.to_be_bytes())?;
        self.tree.flush()?;
        let bytes = seg.file_len();
        let delta = cur.delta.since(base.seq, tag_slots, &seg.data().items);
        self.snapshot.store(Arc::new(Snapshot {
            segment: seg,
            delta,
            seq: writer.counters.seq,
            activity: cur.activity.clone(),
        }));
        drop(writer);
        self.moved_on(&cur.segment);
        rebuild::clean_dirty_log(&self.tree, base.seq)?;
        tracing::info!(
            generation,
            folded = base.delta.records(),
            bytes,
            "segment rebuilt"
        );
        Ok(RebuildReport {
            generation,
            folded: base.delta.records(),
            bytes,
        })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Exactly one handle sees the count go from 1 to 0, however many are dropped at once.
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        self.inner.stop_recorder();
        if let Err(e) = self.inner.close() {
            tracing::error!(error = %e, "closing the store failed: the next open replays the journal, and writes since the last flush may be lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn journal_batches(dir: &Path) -> usize {
        let tree = crate::durable::open_sled(dir, &Config::default()).expect("reopen");
        crate::activity::log::read_journal(&tree)
            .expect("journal")
            .1
            .len()
    }

    fn store_with_journal(dir: &Path) -> Store {
        let store = Store::open(dir).expect("open");
        let items: Vec<Item> = ["i1", "i2"]
            .iter()
            .map(|id| Item::new(*id, [("red", 1.0)]))
            .collect();
        store.upsert_items(&items).expect("items");
        store
            .record_events(&[Event::view("u1", "i1", 10), Event::view("u1", "i2", 11)])
            .expect("events");
        store
    }

    /// The old close checked `strong_count == 1` on each drop: two handles dropped at the same
    /// moment both saw 2 and neither checkpointed. Many rounds, so the race has its chances.
    #[test]
    fn handles_dropped_at_once_from_many_threads_close_the_store_exactly_once() {
        for round in 0..100 {
            let tmp = tempfile::tempdir().expect("tempdir");
            let store = store_with_journal(tmp.path());
            // Two handles is the case; more threads give the race more chances on a
            // machine with few cores.
            let mut handles = vec![store.clone(); 7];
            handles.push(store);
            let gate = Arc::new(std::sync::Barrier::new(handles.len()));
            let threads: Vec<_> = handles
                .into_iter()
                .map(|h| {
                    let gate = gate.clone();
                    std::thread::spawn(move || {
                        gate.wait();
                        drop(h);
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("dropping thread");
            }
            assert_eq!(
                journal_batches(tmp.path()),
                0,
                "round {round}: no handle closed"
            );
        }
    }

    #[test]
    fn dropping_a_clone_does_no_closing_work_and_close_reports() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = store_with_journal(tmp.path());
        drop(store.clone());
        // The clone's drop left the journal alone; the store is still open and writable.
        store
            .record_event(&Event::view("u2", "i1", 12))
            .expect("still writable");
        store.close().expect("close");
        assert_eq!(journal_batches(tmp.path()), 0);
    }
}
