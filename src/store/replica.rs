//! The store's side of replication ([`crate::replica`]): publishing a generation, opening a
//! replica, and the read-only switch a replica's generations are opened with.

use std::path::Path;

use crate::error::Result;
use crate::replica::{self, PublishOptions, PublishReport, Replica, ReplicaSource};

use super::{lock, Store};

impl Store {
    /// Publish this store as the next generation under `prefix` of `to` (S3, GCS, Azure, a
    /// local directory: anything `object_store` reaches), for replicas to follow.
    ///
    /// The store is written as of one instant (writes wait for it, queries do not) into a
    /// hidden directory beside the store: its durable pairs as pair files (FORMAT.md, "Pair
    /// files", cut where the keys say, so unchanged records make unchanged files), its segment
    /// files hard-linked, its plugin modules; it needs free space for the pairs. Each file is
    /// uploaded under its checksum unless already there, then the manifest is committed with
    /// a conditional put. So:
    ///
    /// * a publish killed at any point leaves no manifest naming a missing or partial object,
    ///   and the next publish completes (objects already uploaded are not sent again);
    /// * two leaders committing one generation at once: one wins, the other gets
    ///   [`crate::Error::PublishConflict`];
    /// * a prefix whose newest generation another store published is refused
    ///   ([`crate::Error::ForeignLeader`]), so replicas never switch between two stores.
    ///
    /// One publish of this store runs at a time; a second waits for the first.
    pub fn publish(
        &self,
        to: &dyn replica::object_store::ObjectStore,
        prefix: &replica::object_store::path::Path,
    ) -> Result<PublishReport> {
        self.publish_with(to, prefix, &PublishOptions::default())
    }

    /// [`Store::publish`] with options: [`PublishOptions::take_over`] publishes as the
    /// successor of another store's generations.
    pub fn publish_with(
        &self,
        to: &dyn replica::object_store::ObjectStore,
        prefix: &replica::object_store::path::Path,
        opts: &PublishOptions,
    ) -> Result<PublishReport> {
        if let Some(name) = self.namespace_name() {
            // A namespace's keys are published by no one yet, and a replica of the store
            // would not carry them: refused rather than half-done.
            return Err(crate::Error::Namespace {
                name: name.to_string(),
                reason: "publishing a namespace to replicas is not supported yet; publish the default namespace, or serve this one from the leader".into(),
            });
        }
        let _one = lock(&self.inner.publishing);
        replica::publish(self, to, prefix, opts)
    }

    /// Publish this store every `every` on a thread of its own, until the returned
    /// [`replica::Publisher`] is stopped or dropped. The first round publishes at once; a round with
    /// no write, fold or plugin change since the last publish is skipped, and a failed one
    /// is logged and retried at the next. Each publish holds writes while it writes the pairs
    /// (see [`Store::publish`]), so `every` should be well above what one takes
    /// (bench/RESULTS.md, "Replicas").
    pub fn start_publisher(
        &self,
        to: std::sync::Arc<dyn replica::object_store::ObjectStore>,
        prefix: replica::object_store::path::Path,
        every: std::time::Duration,
        opts: PublishOptions,
    ) -> Result<replica::Publisher> {
        replica::Publisher::start(self.clone(), to, prefix, every, opts)
    }

    /// Open a replica in `dir` (created if missing; it holds a cache of downloaded objects and
    /// the generations assembled from them) following `source`, polling it every
    /// `source.poll_every` when that is set.
    ///
    /// The newest generation published under the source's prefix is downloaded, verified and
    /// opened. When the object store cannot be reached, the newest generation this directory
    /// verified before is served and the replica reports itself stale
    /// ([`Replica::status`]) until a poll succeeds. See [`Replica`].
    pub fn open_replica(dir: impl AsRef<Path>, source: ReplicaSource) -> Result<Replica> {
        Replica::open(dir.as_ref(), source)
    }

    /// Write what a publish uploads into the empty directory `work` (FORMAT.md, "Published
    /// generations"): every durable pair as pair files ([`crate::pairs`]), the segment files
    /// (hard-linked where possible) and the plugin modules. Writes and plugin changes wait
    /// for it, as for a backup; queries do not. Returns the segment generation.
    pub(crate) fn export_for_publish(&self, work: &Path) -> Result<u64> {
        let modules_from = self.dir().join(crate::plugin::MODULES_DIR);
        let seg_to = work.join("segments");
        std::fs::create_dir_all(&seg_to).map_err(|e| crate::Error::io("creating", &seg_to, e))?;
        self.plugins().hold_writes(|| {
            self.paused(|tree, snap, seg_dir| {
                let mut pairs = crate::pairs::Writer::new(work)?;
                for kv in tree.iter() {
                    let (k, v) = kv?;
                    pairs.push(&k, &v)?;
                }
                let (files, count, bytes) = pairs.finish()?;
                let (generation, _) =
                    crate::backup::copy_files(snap, seg_dir, &modules_from, work, &seg_to, true)?;
                tracing::debug!(
                    files,
                    pairs = count,
                    bytes,
                    generation,
                    "exported for a publish"
                );
                Ok(generation)
            })
        })
    }

    /// Make a store in `to` (a new or empty directory) of the newest generation published
    /// under `source`: downloaded and checked as a replica checks it, its pair files written
    /// into records of its own, opened once and checked to be the store the manifest names,
    /// then renamed into place (until then `to` holds nothing).
    ///
    /// The failover path: a new leader restored from what the old one last published (writes
    /// after that publish are not in it; the shop's queue replays them), then
    /// [`Store::publish`] to the same prefix. The restored store has the old leader's id, so it
    /// publishes there without a take-over; make sure the old leader is stopped first.
    pub fn restore_published(
        source: &ReplicaSource,
        to: impl AsRef<Path>,
    ) -> Result<replica::RestoreReport> {
        replica::restore(source, to.as_ref())
    }

    /// Carry on `earlier`'s query figures (latency histograms, write count) in this store's,
    /// so a replica's counters do not restart when it switches generation.
    pub(crate) fn absorb_figures(&self, earlier: &Store) {
        let (mine, theirs) = (&self.inner.shared, &earlier.inner.shared);
        mine.latency.absorb(&theirs.latency);
        for (m, t) in mine.by_scenario.iter().zip(theirs.by_scenario.iter()) {
            m.absorb(t);
        }
        mine.writes.fetch_add(
            theirs.writes.load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Refuse every write from now on, naming `dir` in the refusal; nothing is saved on close.
    pub(crate) fn set_read_only(&self, dir: &Path) {
        self.inner.tree.set_read_only(dir.to_path_buf());
        // A replica's answers are the leader's state: it records no impressions.
        self.stop_recording();
        self.inner
            .save_on_close
            .store(false, std::sync::atomic::Ordering::Release);
    }
}
