//! Opening a store: sled, the format mark (and upgrades), the segment (repaired from sled if
//! it is missing or damaged), the delta from the dirty log, the behaviour state and the
//! journal replay.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::{Inner, Store, Writer};
use crate::activity::background::Background;
use crate::activity::checkpoint::Unsaved;
use crate::codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::rebuild;
use crate::segment::{self, Segment};
use crate::snapshot::Snapshot;
use crate::write::{Carried, Counters};

/// The file a replica writes into each generation it assembles (the manifest it was assembled
/// from): a directory holding it is not a store of its own.
pub(crate) const REPLICA_MANIFEST: &str = "REPLICA-MANIFEST.json";

/// An id counter: a value past the u32 id space is damage, not a number to wrap.
pub(super) fn meta_u32(tree: &crate::durable::Db, key: &[u8]) -> Result<u32> {
    u32::try_from(meta_u64(tree, key)?)
        .map_err(|_| codec::corrupt(key, "an id counter past the u32 id space"))
}

pub(super) fn meta_u64(tree: &crate::durable::Db, key: &[u8]) -> Result<u64> {
    match tree.get(key)? {
        None => Ok(0),
        Some(v) if v.len() == 4 => Ok(u64::from(codec::decode_u32(key, Some(&v))?)),
        Some(v) => codec::decode_u64(key, &v),
    }
}

/// The store's id: read, or on a store's first open by a build that has ids, drawn at
/// random (non-zero) and written durably.
fn store_id(tree: &crate::durable::Db) -> Result<u32> {
    if let Some(v) = tree.get(codec::META_STORE_ID)? {
        return codec::decode_u32(codec::META_STORE_ID, Some(&v));
    }
    // std's `RandomState` is keyed from the OS's randomness: enough to tell stores apart
    // (the id guards against mixing up segment files, it is not a secret).
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    // The low half of a random 64-bit hash is as random as the whole.
    let id = u32::try_from(h.finish() >> 32).unwrap_or(1).max(1);
    tree.insert(codec::META_STORE_ID, id.to_be_bytes())?;
    tree.flush()?;
    Ok(id)
}

/// Check the store's format mark: write it on a new store, refuse a newer one. Returns the
/// format of an older store, whose behaviour state [`Store::upgrade_activity`] derives again.
fn check_format(tree: &crate::durable::Db, dir: &Path, cfg: &Config) -> Result<Option<u32>> {
    match tree.get(codec::META_FORMAT)? {
        None => {
            // A new store: its exposure memory covers its (empty) log from the start, if it
            // keeps one (see `activity::reload::load`).
            if cfg.exposure_memory > 0 {
                tree.insert(crate::activity::checkpoint::META_EXPOSURE, [1u8])?;
            }
            tree.insert(codec::META_FORMAT, codec::STORE_FORMAT.to_be_bytes())?;
            Ok(None)
        }
        Some(v) => {
            let found = codec::decode_u32(codec::META_FORMAT, Some(&v))?;
            if (1..codec::STORE_FORMAT).contains(&found) {
                Ok(Some(found))
            } else if (codec::STORE_FORMAT..=codec::NAMESPACED_FORMAT).contains(&found) {
                Ok(None)
            } else {
                Err(Error::IncompatibleStore {
                    dir: dir.to_path_buf(),
                    found,
                    expected: codec::NAMESPACED_FORMAT,
                })
            }
        }
    }
}

impl Store {
    /// Open (or create) the store in `dir` with default [`Config`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, Config::default())
    }

    /// Open the store in `dir`, which must already hold one: a read-only tool pointed at a
    /// mistyped directory gets [`Error::NoStore`] and creates nothing, where [`Store::open`]
    /// would create an empty store there and answer with zeros.
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_existing_with(dir, Config::default())
    }

    /// [`Store::open_existing`] with `config`.
    pub fn open_existing_with(dir: impl AsRef<Path>, config: Config) -> Result<Store> {
        let dir = dir.as_ref();
        // sled's directory is the store: every store has it from its first open on.
        if !crate::durable::sled_exists(dir) {
            return Err(Error::NoStore {
                dir: dir.to_path_buf(),
            });
        }
        Store::open_with(dir, config)
    }

    /// Open (or create) the store in `dir`.
    ///
    /// Only one `Store` may have a directory open; if another holds it, this waits up to 2 s
    /// for it to close (a drop releases sled's lock a moment later) and then fails with
    /// [`Error::Locked`].
    ///
    /// Recovery: the segment named by sled's meta is mapped and validated; if it is missing or
    /// damaged it is rebuilt from sled (unless `config.repair_segments` is off, then
    /// [`Error::CorruptSegment`]). Writes newer than the segment are replayed from sled's dirty
    /// log into the delta, so everything acknowledged before a crash is visible again.
    pub fn open_with(dir: impl AsRef<Path>, config: Config) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        if dir.join(crate::backup::INCOMPLETE_MARKER).exists() {
            return Err(Error::IncompleteBackup { dir });
        }
        if dir.join(REPLICA_MANIFEST).exists() {
            return Err(Error::ReplicaGeneration { dir });
        }
        if let Some(err) = namespace_directory(&dir) {
            return Err(err);
        }
        let seg_dir = dir.join("segments");
        std::fs::create_dir_all(&seg_dir)
            .map_err(|e| Error::io("creating store directory", &seg_dir, e))?;
        let db = crate::durable::open_sled(&dir, &config)?;
        Store::open_on(dir, config, db)
    }

    /// [`Store::open_with`] without the check that `dir` is not a replica's generation: how
    /// a replica opens a generation of the first format, whose sled files it holds.
    #[cfg(feature = "replication")]
    pub(crate) fn open_replica_generation(dir: &Path, config: Config) -> Result<Store> {
        let dir = dir.to_path_buf();
        let db = crate::durable::open_sled(&dir, &config)?;
        Store::open_on(dir, config, db)
    }

    /// Open the store in `dir` on the durable layer `db` (sled in [`Store::open_with`], a
    /// simulated disk in the crash tests).
    pub(crate) fn open_on(
        dir: std::path::PathBuf,
        config: Config,
        tree: crate::durable::Db,
    ) -> Result<Store> {
        Store::open_in(dir, config, tree, None, None)
    }

    /// [`Store::open_on`] for namespace `namespace` (`None`: the default one): `tree` is
    /// narrowed to it and `dir` is its own directory; `config.quota` is its quota.
    pub(crate) fn open_in(
        dir: std::path::PathBuf,
        config: Config,
        tree: crate::durable::Db,
        namespace: Option<&str>,
        parent: Option<&Store>,
    ) -> Result<Store> {
        config
            .quota
            .validate(namespace.unwrap_or(crate::namespace::DEFAULT))?;
        // The quotas of every namespace are checked when the store opens, not when each
        // namespace first does.
        for (name, quota) in &config.namespaces {
            if name == crate::namespace::DEFAULT {
                return Err(Error::Namespace {
                    name: name.clone(),
                    reason: "the default namespace's quota is Config::quota (`[store.quota]`), not an entry of Config::namespaces".into(),
                });
            }
            crate::namespace::validate_name(name)?;
            quota.validate(name)?;
        }
        let seg_dir = dir.join("segments");
        std::fs::create_dir_all(&seg_dir)
            .map_err(|e| Error::io("creating store directory", &seg_dir, e))?;

        let older = check_format(&tree, &dir, &config)?;
        let counters = Counters {
            next_item: meta_u32(&tree, codec::META_NEXT_ITEM)?,
            next_user: meta_u32(&tree, codec::META_NEXT_USER)?,
            next_tag: meta_u32(&tree, codec::META_NEXT_TAG)?,
            seq: meta_u64(&tree, codec::META_SEQ)?,
            chunked: meta_u32(&tree, codec::META_CHUNKED)?,
        };
        // Before anything reads chunks or tag names: those of a bulk load that never
        // committed go.
        crate::chunks::remove_uncommitted_load(&tree, counters.chunked, counters.next_tag)?;
        let generation = meta_u64(&tree, codec::META_GENERATION)?;
        let store_tag = store_id(&tree)?;
        let segment = Arc::new(Self::recover_segment(
            &tree,
            &seg_dir,
            generation,
            counters.seq,
            &config,
            store_tag,
        )?);
        if segment.generation() != generation {
            // Record the repaired generation and drop dirty entries it already contains.
            tree.insert(codec::META_GENERATION, segment.generation().to_be_bytes())?;
            tree.flush()?;
            rebuild::clean_dirty_log(&tree, segment.data().max_seq.to_native())?;
        }
        remove_stray_files(&seg_dir, segment.generation());
        let bounds = crate::delta::file::Bounds {
            next_item: counters.next_item,
            next_user: counters.next_user,
            seq: counters.seq,
        };
        let (delta, saved_seq) = match crate::delta::file::read(
            &seg_dir, &segment, store_tag, bounds,
        ) {
            Ok(Some(saved)) => (
                rebuild::replay_dirty_log(&tree, &segment, saved.delta, saved.seq)?,
                saved.seq,
            ),
            Ok(None) => (rebuild::delta_from_dirty_log(&tree, &segment)?, 0),
            Err(e) => {
                // Derived data: sled's dirty log holds the same, only slower to read.
                tracing::warn!(error = %e, "delta file unusable; reading the delta from the dirty log instead");
                let path = seg_dir.join(crate::delta::file::file_name(segment.generation()));
                if let Err(err) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %err, "could not remove the unusable delta file");
                }
                (rebuild::delta_from_dirty_log(&tree, &segment)?, 0)
            }
        };
        // The background work saves the delta again once it has grown past what was saved.
        let saved_pressure = if saved_seq > 0 { delta.pressure() } else { 0 };
        let saved_runs = if saved_seq > 0 {
            super::run_addresses(&delta)
        } else {
            Vec::new()
        };
        tracing::info!(
            dir = %dir.display(),
            generation = segment.generation(),
            delta = delta.changed(),
            attribute_overlay = delta.overlaid(),
            "store opened"
        );
        let activity = match older {
            // Written in an older layout: derived again from the log below.
            Some(_) => crate::activity::Activity::default(),
            None => crate::activity::reload::load(&tree, &config)?,
        };
        let snapshot = Snapshot {
            segment,
            delta,
            seq: counters.seq,
            activity,
        };
        let mut limits = config.plugins.clone();
        if let Some(b) = config.quota.plugin_memory_bytes {
            limits.memory_bytes = limits.memory_bytes.min(b);
        }
        let plugins = crate::plugin::Plugins::new(limits);
        let pace = crate::namespace::Pace::new(
            namespace.unwrap_or(crate::namespace::DEFAULT),
            &config.quota,
        );
        plugins.attach(tree.clone(), &dir)?;
        let durable_bytes = tree.file_bytes();
        // A replica's state is the leader's: it records nothing of its own.
        let impressions = (config.record_served_impressions && !tree.is_read_only())
            .then(crate::impressions::Queue::default);
        let pages = crate::pages::Pages::new(
            std::time::Duration::from_secs(config.cursor_ttl_secs),
            config.max_cursors,
        );
        let shared = Arc::new(crate::view::Shared {
            impressions,
            pages,
            config,
            plugins,
            latency: crate::metrics::Histogram::default(),
            by_scenario: Default::default(),
            writes: Default::default(),
            derived: Default::default(),
        });
        let store = Store {
            closed: false,
            inner: Arc::new(Inner {
                handles: AtomicUsize::new(1),
                dir,
                seg_dir,
                store_tag,
                tree,
                snapshot: ArcSwap::from_pointee(snapshot),
                writer: Mutex::new(Writer {
                    counters,
                    unsaved: Unsaved::default(),
                    carried: Carried::default(),
                    background: Background::default(),
                }),
                rebuild_lock: Mutex::new(()),
                rebuild_running: AtomicBool::new(false),
                rebuild_thread: Mutex::new(None),
                index_running: AtomicBool::new(false),
                reclaim_running: parent.map_or_else(
                    || Arc::new(AtomicBool::new(false)),
                    |p| p.inner.reclaim_running.clone(),
                ),
                reclaim_thread: Mutex::new(None),
                reclaim_pacer: parent.map_or_else(
                    || Arc::new(crate::reclaim::Pacer::new(durable_bytes)),
                    |p| p.inner.reclaim_pacer.clone(),
                ),
                prune_running: AtomicBool::new(false),
                prune_thread: Mutex::new(None),
                prune_pacer: crate::retention::Pacer::new(),
                index_thread: Mutex::new(None),
                delta_saved: Mutex::new((saved_seq, saved_runs)),
                fold_wanted: AtomicBool::new(false),
                save_on_close: AtomicBool::new(true),
                saved_pressure: AtomicUsize::new(saved_pressure),
                #[cfg(feature = "replication")]
                publishing: Mutex::new(()),
                shared,
                recorder_thread: Mutex::new(None),
                deleted_users: Mutex::new(Default::default()),
                namespace: namespace.map(str::to_string),
                namespaces: Mutex::new(Default::default()),
                pace,
            }),
        };
        match older {
            Some(found) => store.upgrade_activity(found)?,
            None => store.replay_journal()?,
        }
        // The delta's index is derived and lives in memory: a delta read back from the dirty
        // log is indexed again, off the opening thread.
        let rows = store.inner.shared.config.delta_index_rows;
        if rows > 0 && store.snapshot().delta.unindexed.len() >= rows {
            store.index_in_background();
        }
        store.start_recorder();
        Ok(store)
    }

    /// Raise an older store (format `found`) to the current format: its behaviour state is
    /// derived again by replaying the whole event log (see [`crate::activity::reload`]), and
    /// written with the removal of the old state and the new format mark in one atomic batch
    /// (a crash before it leaves the old layout and mark, and the next open upgrades again).
    /// After it, an older binary refuses the store instead of misreading it.
    fn upgrade_activity(&self, found: u32) -> Result<()> {
        let tree = &self.inner.tree;
        let events = crate::activity::reload::whole_log(tree)?;
        let old_keys = crate::activity::reload::old_state_keys(tree)?;
        let count = events.len();
        let started = std::time::Instant::now();
        self.write(|p| p.upgrade_activity(events, old_keys))?;
        self.inner.tree.flush()?;
        tracing::info!(
            from = found,
            to = codec::STORE_FORMAT,
            events = count,
            seconds = started.elapsed().as_secs_f64(),
            "store format upgraded in place: behaviour state derived again from the event log"
        );
        Ok(())
    }

    fn recover_segment(
        tree: &crate::durable::Db,
        seg_dir: &Path,
        generation: u64,
        seq: u64,
        config: &Config,
        store_tag: u32,
    ) -> Result<Segment> {
        if generation > 0 {
            let path = seg_dir.join(segment::file::file_name(generation));
            // A segment of another store (copied in under the right generation) is as wrong
            // as a damaged one. 0: written before stores had ids, bound at the next rebuild.
            let bound = |s: Segment| match s.store_tag() {
                0 => Ok(s),
                t if t == store_tag => Ok(s),
                t => Err(Error::CorruptSegment {
                    path: path.clone(),
                    reason: format!(
                        "it belongs to another store (store id {t:08x}, this store is \
                         {store_tag:08x})"
                    ),
                }),
            };
            match Segment::open(&path, config.segment_verify).and_then(bound) {
                Ok(s) => return Ok(rebuild::attach_neighbours(s, seg_dir, config)),
                Err(e @ (Error::CorruptSegment { .. } | Error::Io { .. }))
                    if config.repair_segments =>
                {
                    tracing::warn!(error = %e, "segment unusable; rebuilding it from the durable records");
                }
                Err(e) => return Err(e),
            }
        }
        // Pick a generation above every file present, so the repair never collides with one.
        let next = highest_generation_on_disk(seg_dir).max(generation) + 1;
        let data = rebuild::from_sled(tree, next, seq)?;
        rebuild::publish(seg_dir, &data, config, store_tag)
    }

    /// Re-apply the event batches the journal names (recorded after the last checkpoint, before
    /// a crash), in arrival order, and checkpoint the result.
    fn replay_journal(&self) -> Result<()> {
        let (events, entries) = crate::activity::log::read_journal(&self.inner.tree)?;
        if entries.is_empty() {
            return Ok(());
        }
        tracing::info!(
            batches = entries.len(),
            events = events.len(),
            "replaying the event journal"
        );
        self.write(|p| p.replay(events, &entries))
    }
}

/// `Some` when `dir` is a namespace's directory inside a store (`<store>/ns/<name>`): its
/// records are in the store's sled, so opening it as a store of its own would make an empty
/// one beside them.
fn namespace_directory(dir: &Path) -> Option<Error> {
    let parent = dir.parent()?;
    let store = parent.parent()?;
    let name = dir.file_name()?.to_str()?;
    (parent.file_name()? == crate::namespace::DIR && crate::durable::sled_exists(store)).then(|| {
        Error::Namespace {
            name: name.to_string(),
            reason: format!(
                "{} is this namespace's directory inside the store at {}, not a store: open that store and call namespace(\"{name}\") (CLI: --dir {} --ns {name})",
                dir.display(),
                store.display(),
                store.display()
            ),
        }
    })
}

fn highest_generation_on_disk(seg_dir: &Path) -> u64 {
    std::fs::read_dir(seg_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(segment::file::parse_file_name)
        })
        .max()
        .unwrap_or(0)
}

/// Delete segment, neighbour and delta files other than generation `keep`'s (older
/// generations, unfinished temporaries). A file still mapped by this process cannot exist
/// here: this runs before any snapshot is shared.
fn remove_stray_files(seg_dir: &Path, keep: u64) {
    for e in std::fs::read_dir(seg_dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let current = segment::file::parse_file_name(&name) == Some(keep)
            || name == segment::neighbours::file_name(keep)
            || name == crate::delta::file::file_name(keep);
        if !current
            && (name.ends_with(".seg")
                || name.ends_with(".nbr")
                || name.ends_with(".dlt")
                || name.ends_with(".tmp"))
        {
            if let Err(err) = std::fs::remove_file(e.path()) {
                tracing::warn!(file = %name, error = %err, "could not remove stale segment file");
            }
        }
    }
}
