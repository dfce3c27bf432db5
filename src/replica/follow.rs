//! A replica: poll the manifests, fetch what is missing, verify it, switch atomically.
//!
//! The replica's directory:
//!
//! ```text
//! REPLICA.lock                 held while a replica has the directory open
//! objects/<hash>-<size>        verified objects; `.part` while downloading
//! gens/<generation>/           an assembled, verified generation (segments, plugins; not a
//!                              store: its records are the pair files in `objects/`)
//! gens/<generation>.partial/   one being assembled; removed on open
//! ```
//!
//! An object is downloaded to `<name>.part`, checked against the size and checksum its name
//! and the manifest give, synced and renamed: so `objects/` holds only verified bytes, and a
//! download killed part-way resumes at the next poll by fetching that object again (objects
//! already verified are kept). A generation is assembled in `.partial` (segment files linked
//! from the cache, being immutable; plugin modules copied), synced, and renamed: a directory
//! under `gens/` without the suffix is whole. Then it is opened read-only on its records, the
//! pair files mapped from the cache and checked against the manifest again (`PairSet`), and
//! swapped in. Any failure on the way leaves the current generation serving, and a generation
//! that fails to open is removed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use super::pair_set::PairSet;
use super::{block_on, file_checksum, newest, os_error, under};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::store::Store;
use crate::view::View;

/// The file an assembled generation keeps its manifest in, beside the store's own files.
const MANIFEST_FILE: &str = crate::store::open::REPLICA_MANIFEST;

/// Where a replica follows from, and how. Make one with [`ReplicaSource::new`] or
/// [`ReplicaSource::from_url`], then set the fields that differ from the defaults.
#[derive(Clone)]
#[non_exhaustive]
pub struct ReplicaSource {
    /// The object store the leader publishes to.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix under it.
    pub prefix: ObjPath,
    /// How often the background poll looks for a new generation (`None`: only when
    /// [`Replica::poll`] is called).
    pub poll_every: Option<Duration>,
    /// The configuration each generation's store is opened with.
    pub config: Config,
    /// How long a poll waits for the manifests before it counts as failed (the replica is
    /// then stale until one succeeds). Downloads are not bounded by it: a large generation
    /// takes as long as it takes, and a failed one resumes at the next poll.
    pub poll_timeout: Duration,
}

impl std::fmt::Debug for ReplicaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSource")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .field("poll_every", &self.poll_every)
            .finish_non_exhaustive()
    }
}

impl ReplicaSource {
    /// A source from an address (`file:///dir`, a path, `memory:///`, or a cloud URL where
    /// this build reaches one; see [`super::object_store_from_url`]), polled every second.
    pub fn from_url(address: &str) -> Result<ReplicaSource> {
        let (store, prefix) = super::object_store_from_url(address)?;
        Ok(ReplicaSource::new(store, prefix))
    }

    /// A source under `prefix` of `store` (one the app built: credentials, endpoint, retry
    /// settings), with the defaults: a poll every second, 30 s for a poll to answer, the
    /// default [`Config`].
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjPath) -> ReplicaSource {
        ReplicaSource {
            store,
            prefix,
            poll_every: Some(Duration::from_secs(1)),
            config: Config::default(),
            poll_timeout: Duration::from_secs(30),
        }
    }
}

/// Where a replica stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaStatus {
    /// The generation it serves.
    pub generation: u64,
    /// When the leader published it (ms since the Unix epoch, the leader's clock).
    pub published_at_ms: u64,
    /// The highest generation any poll has listed (also one whose download or open then
    /// failed).
    pub newest_seen: u64,
    /// Generations it is behind that: 0 once the newest is served.
    pub behind: u64,
    /// When a poll last succeeded: listed the manifests and, if there was a newer one,
    /// downloaded, opened and switched to it (ms since the Unix epoch; `None`: never, it
    /// opened from what it had verified before).
    pub last_poll_ok_ms: Option<u64>,
    /// The last poll's failure, if it failed; cleared by a successful poll.
    pub last_error: Option<String>,
    /// The last poll failed: what it serves may be older than the newest published.
    pub stale: bool,
}

/// One open generation.
struct Current {
    manifest: Manifest,
    store: Store,
    /// Its records, when it has pair files: the next generation starts from them.
    pairs: Option<PairSet>,
}

struct Poll {
    newest_seen: u64,
    last_ok_ms: Option<u64>,
    last_error: Option<String>,
    /// Generations swapped out, with their directories: removed once nothing holds them.
    retired: Vec<(Weak<Current>, PathBuf)>,
}

struct Inner {
    dir: PathBuf,
    source: ReplicaSource,
    current: ArcSwap<Current>,
    /// Held by a poll from its listing to its clean-up: one poll at a time.
    polling: Mutex<()>,
    /// What `status` reports; held only for a moment, so `status` (the admin socket's
    /// `stats`) answers while a long download runs.
    poll: Mutex<Poll>,
    /// Set, and notified, when the last handle goes: the background poll ends.
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// The directory lock, released on drop.
    _lock: std::fs::File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let (flag, cv) = &*self.stop;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }
}

/// A read-only store that follows a leader's published generations
/// ([`Store::open_replica`]). Cheap to clone; the background poll ends with the last clone.
///
/// Every read goes to the generation it serves now: take a [`Replica::view`] (or
/// [`Replica::store`]) per request and ask it everything, as on a leader. A switch to a new
/// generation is one atomic swap; a view taken before it keeps answering from the old one.
/// Writes to the store it hands out fail with [`Error::ReadOnlyReplica`].
#[derive(Clone)]
pub struct Replica {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("dir", &self.inner.dir)
            .field("generation", &self.inner.current.load().manifest.generation)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Take the directory's lock file, or say who holds it.
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("REPLICA.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    // SAFETY: `flock` on a descriptor this function owns (the `File` lives on in the result,
    // so the lock is held until it is dropped); no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Locked {
            dir: dir.to_path_buf(),
        });
    }
    Ok(file)
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing", dir, e))
}

impl Replica {
    pub(crate) fn open(dir: &Path, source: ReplicaSource) -> Result<Replica> {
        std::fs::create_dir_all(dir.join("objects"))
            .and_then(|()| std::fs::create_dir_all(dir.join("gens")))
            .map_err(|e| Error::io("creating the replica directory", dir, e))?;
        let lock_file = lock_dir(dir)?;
        clear_leftovers(dir)?;
        let mut poll = Poll {
            newest_seen: 0,
            last_ok_ms: None,
            last_error: None,
            retired: Vec::new(),
        };
        let config = source.config.clone();
        let (current, store, pairs) = match newest_within(&source) {
            Ok(Some(m)) => {
                poll.newest_seen = m.generation;
                poll.last_ok_ms = Some(now_ms());
                match open_newest(dir, &source, &m) {
                    Ok(opened) => opened,
                    Err(e) => {
                        // The newest generation cannot be served: serve what was verified
                        // before, if anything, stale.
                        let Ok(Some(opened)) = open_local(dir, &config) else {
                            return Err(e);
                        };
                        tracing::warn!(error = %e, generation = opened.0.manifest.generation, "the newest generation could not be opened; serving the one verified before, stale until a poll succeeds");
                        poll.last_error = Some(e.to_string());
                        opened
                    }
                }
            }
            fetched => {
                // Unreachable or damaged, or a prefix emptied under a replica that verified a
                // generation before: serve what was verified before, if anything, stale.
                let e = match fetched {
                    Err(e) => e,
                    Ok(_) => Error::NothingPublished {
                        prefix: source.prefix.to_string(),
                    },
                };
                let opened = match open_local(dir, &config) {
                    Ok(Some(opened)) => opened,
                    Ok(None) => return Err(e),
                    // What is here is damaged: that, not the object store, is what to fix.
                    Err(local) => {
                        tracing::warn!(error = %e, "the object store could not be read either");
                        return Err(local);
                    }
                };
                tracing::warn!(error = %e, generation = opened.0.manifest.generation, "the object store could not be read; serving the generation verified before, stale until a poll succeeds");
                poll.last_error = Some(e.to_string());
                opened
            }
        };
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            current: ArcSwap::from_pointee(Current {
                manifest: current.manifest,
                store,
                pairs,
            }),
            polling: Mutex::new(()),
            poll: Mutex::new(poll),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            source,
            _lock: lock_file,
        });
        let replica = Replica { inner };
        replica.remove_unused()?;
        if let Some(every) = replica.inner.source.poll_every {
            spawn_poller(
                Arc::downgrade(&replica.inner),
                replica.inner.stop.clone(),
                every,
            );
        }
        Ok(replica)
    }

    /// The current generation, for reading. Lock-free.
    pub fn view(&self) -> View {
        self.inner.current.load().store.view()
    }

    /// The current generation's store, read-only: every query, scenario, plugin and slot,
    /// and writes refused with [`Error::ReadOnlyReplica`]. Hold it for one request; the next
    /// request should ask again, to see the next generation.
    pub fn store(&self) -> Store {
        self.inner.current.load().store.clone()
    }

    /// The manifest of the generation served now.
    pub fn manifest(&self) -> Manifest {
        self.inner.current.load().manifest.clone()
    }

    /// The replica's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Where the replica stands: generation, lag, the last poll.
    pub fn status(&self) -> ReplicaStatus {
        let cur = self.inner.current.load();
        let poll = lock(&self.inner.poll);
        let generation = cur.manifest.generation;
        ReplicaStatus {
            generation,
            published_at_ms: cur.manifest.published_at_ms,
            newest_seen: poll.newest_seen.max(generation),
            behind: poll.newest_seen.saturating_sub(generation),
            last_poll_ok_ms: poll.last_ok_ms,
            last_error: poll.last_error.clone(),
            stale: poll.last_error.is_some(),
        }
    }

    /// Look for a newer generation now, and switch to it once it is downloaded, verified and
    /// open. Returns the generation switched to (`None`: nothing newer). On `Err` the replica
    /// keeps serving what it served, and [`Replica::status`] reports the failure.
    pub fn poll(&self) -> Result<Option<u64>> {
        let _one = lock(&self.inner.polling);
        let result = self.poll_locked();
        let mut poll = lock(&self.inner.poll);
        match &result {
            Ok(_) => {
                poll.last_ok_ms = Some(now_ms());
                poll.last_error = None;
            }
            Err(e) => poll.last_error = Some(e.to_string()),
        }
        drop(poll);
        if matches!(result, Ok(Some(_))) {
            // Still under `polling`: no other poll is assembling into `gens/` meanwhile.
            if let Err(e) = self.remove_unused() {
                tracing::warn!(error = %e, "could not remove a replica's unused files; they are retried at the next switch");
            }
        }
        result
    }

    /// One poll; the caller holds `polling`.
    fn poll_locked(&self) -> Result<Option<u64>> {
        let source = &self.inner.source;
        let Some(m) = newest_within(source)? else {
            // The prefix held the generation served, and holds none now: wiped, or the wrong
            // place. Not a state to call healthy.
            return Err(Error::NothingPublished {
                prefix: source.prefix.to_string(),
            });
        };
        {
            let mut poll = lock(&self.inner.poll);
            poll.newest_seen = poll.newest_seen.max(m.generation);
        }
        let cur = self.inner.current.load_full();
        if m.generation <= cur.manifest.generation {
            return Ok(None);
        }
        let have = assemble(&self.inner.dir, source, &m)?;
        let (store, pairs) = match open_generation(
            &self.inner.dir,
            &have,
            &source.config,
            cur.pairs.as_ref(),
        ) {
            Ok(opened) => opened,
            Err(e) => {
                // Assembled but not servable (its pair files lie, or the cache was
                // damaged): not left where a restart would take it for whole.
                if let Err(err) = std::fs::remove_dir_all(&have.dir) {
                    tracing::warn!(path = %have.dir.display(), error = %err, "could not remove a generation that failed to open");
                }
                return Err(e);
            }
        };
        store.absorb_figures(&cur.store);
        let generation = m.generation;
        let old = self.inner.current.swap(Arc::new(Current {
            manifest: m,
            store,
            pairs,
        }));
        lock(&self.inner.poll).retired.push((
            Arc::downgrade(&old),
            gen_dir(&self.inner.dir, old.manifest.generation),
        ));
        drop(old);
        tracing::info!(generation, "replica switched to a new generation");
        Ok(Some(generation))
    }

    /// Remove retired generations nothing holds any more, and cached objects the current
    /// generation does not name. Called with `polling` held (or before any poll can run).
    fn remove_unused(&self) -> Result<()> {
        let dir = &self.inner.dir;
        let cur = self.inner.current.load_full();
        let mut poll = lock(&self.inner.poll);
        poll.retired.retain(|(held, path)| {
            if held.strong_count() > 0 {
                return true;
            }
            if let Err(e) = std::fs::remove_dir_all(path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a retired generation");
            }
            false
        });
        let live: Vec<PathBuf> = poll.retired.iter().map(|(_, p)| p.clone()).collect();
        drop(poll);
        let keep: std::collections::HashSet<&str> = cur
            .manifest
            .files
            .iter()
            .filter_map(|f| f.object.strip_prefix("objects/"))
            .collect();
        for entry in read_dir(&dir.join("objects"))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(name.as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let current_dir = gen_dir(dir, cur.manifest.generation);
        for entry in read_dir(&dir.join("gens"))? {
            let path = entry.path();
            if path != current_dir && !live.contains(&path) {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        Ok(())
    }
}

/// The newest manifest under the source, or a failure once `poll_timeout` has passed.
pub(super) fn newest_within(source: &ReplicaSource) -> Result<Option<Manifest>> {
    let limit = source.poll_timeout;
    block_on(async {
        match tokio::time::timeout(limit, newest(&*source.store, &source.prefix)).await {
            Ok(found) => found,
            Err(_) => Err(Error::ObjectStore {
                action: "polling",
                location: source.prefix.to_string(),
                source: format!("no answer within {} s", limit.as_secs_f64()).into(),
            }),
        }
    })?
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    std::fs::read_dir(dir)
        .and_then(|it| it.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| Error::io("listing", dir, e))
}

fn gen_dir(dir: &Path, generation: u64) -> PathBuf {
    dir.join("gens").join(generation.to_string())
}

/// Remove what a killed replica left half-done: partial generations and partial objects.
fn clear_leftovers(dir: &Path) -> Result<()> {
    for entry in read_dir(&dir.join("gens"))? {
        if entry.file_name().to_string_lossy().ends_with(".partial") {
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| Error::io("removing a partial generation", entry.path(), e))?;
        }
    }
    for entry in read_dir(&dir.join("objects"))? {
        if entry.file_name().to_string_lossy().ends_with(".part") {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io("removing a partial download", entry.path(), e))?;
        }
    }
    Ok(())
}

/// An assembled generation on disk: its manifest, read back and checked.
struct Local {
    manifest: Manifest,
    dir: PathBuf,
}

fn local_generation(dir: &Path, generation: u64) -> Option<Local> {
    let at = gen_dir(dir, generation);
    let bytes = std::fs::read(at.join(MANIFEST_FILE)).ok()?;
    let manifest = Manifest::decode(MANIFEST_FILE, &bytes, generation).ok()?;
    Some(Local { manifest, dir: at })
}

/// Open the newest generation `m`: from this directory when it is there whole, assembled
/// otherwise; a cached object found damaged on the way (and removed) is fetched again once.
/// A generation that still fails is removed, so a restart does not take it for whole.
fn open_newest(
    dir: &Path,
    source: &ReplicaSource,
    m: &Manifest,
) -> Result<(Local, Store, Option<PairSet>)> {
    let attempt = || -> Result<(Local, Store, Option<PairSet>)> {
        let have = match local_generation(dir, m.generation) {
            Some(have) if have.manifest == *m && cached(dir, m) => have,
            _ => assemble(dir, source, m)?,
        };
        match open_generation(dir, &have, &source.config, None) {
            Ok((store, pairs)) => Ok((have, store, pairs)),
            Err(Error::BadObject { .. }) => {
                let again = assemble(dir, source, m)?;
                let (store, pairs) = open_generation(dir, &again, &source.config, None)?;
                Ok((again, store, pairs))
            }
            Err(e) => Err(e),
        }
    };
    let opened = attempt();
    if opened.is_err() {
        let _ = std::fs::remove_dir_all(gen_dir(dir, m.generation));
    }
    opened
}

/// The newest generation this directory holds that opens (a newer one that does not is
/// passed over, and kept for a look). `Err`: there were generations and none opened (the
/// newest one's failure); `Ok(None)`: there were none.
#[allow(clippy::type_complexity)]
fn open_local(dir: &Path, config: &Config) -> Result<Option<(Local, Store, Option<PairSet>)>> {
    let mut gens: Vec<u64> = read_dir(&dir.join("gens"))?
        .iter()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    gens.sort_unstable();
    let mut failed = None;
    for g in gens.into_iter().rev() {
        let Some(have) = local_generation(dir, g) else {
            continue;
        };
        match open_generation(dir, &have, config, None) {
            Ok((store, pairs)) => return Ok(Some((have, store, pairs))),
            Err(e) => {
                tracing::warn!(generation = g, error = %e, "a generation verified before does not open");
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Whether the cache holds every object `m` names (pair files are read from there on open).
fn cached(dir: &Path, m: &Manifest) -> bool {
    m.files.iter().all(|f| {
        dir.join("objects")
            .join(f.object.trim_start_matches("objects/"))
            .exists()
    })
}

/// Download into the cache `objects` every object `m` names that it lacks, each verified
/// against the manifest; returns the bytes downloaded.
pub(super) fn fetch_missing(objects: &Path, source: &ReplicaSource, m: &Manifest) -> Result<u64> {
    block_on(async {
        let mut fetched = 0u64;
        for f in &m.files {
            let cached = objects.join(f.object.trim_start_matches("objects/"));
            if cached.exists() {
                continue;
            }
            download(
                &*source.store,
                &under(&source.prefix, &f.object),
                &cached,
                f,
            )
            .await?;
            fetched += f.size;
        }
        Ok::<u64, Error>(fetched)
    })?
}

/// Download what `m` names and the cache lacks, verify it, and assemble the generation.
fn assemble(dir: &Path, source: &ReplicaSource, m: &Manifest) -> Result<Local> {
    let objects = dir.join("objects");
    fetch_missing(&objects, source, m)?;
    // The renames into the cache made durable: a format-2 generation's records live there.
    sync_dir(&objects)?;
    let partial = dir.join("gens").join(format!("{}.partial", m.generation));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| Error::io("removing", &partial, e))?;
    }
    std::fs::create_dir_all(&partial).map_err(|e| Error::io("creating", &partial, e))?;
    // Pair files stay in the cache: the generation's records are read from there when it is
    // opened (`PairSet`).
    for f in m.files.iter().filter(|f| !m.is_pairs(f)) {
        let from = objects.join(f.object.trim_start_matches("objects/"));
        let to = partial.join(&f.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        }
        // Segment and neighbour files are never written once made, so the cache's copy can be
        // shared; everything else (plugin modules; sled's files in the first format) is
        // written by the store that opens it.
        let shared = f.path.starts_with("segments/");
        let made = if shared {
            std::fs::hard_link(&from, &to).or_else(|_| std::fs::copy(&from, &to).map(|_| ()))
        } else {
            std::fs::copy(&from, &to).map(|_| ())
        };
        made.map_err(|e| Error::io("assembling a generation at", &to, e))?;
        if !shared {
            // The copy is checked against the manifest, not just the cache it came from: a
            // cached object damaged on this disk since its download is caught here.
            let (sum, size) = file_checksum(&to)?;
            if size != f.size || format!("{sum:032x}") != f.xxh3_128 {
                let _ = std::fs::remove_file(&from);
                let _ = std::fs::remove_dir_all(&partial);
                return Err(Error::BadObject {
                    location: from.display().to_string(),
                    reason: "the cached copy differs from the manifest (damaged on this disk since it was verified)".into(),
                    remedy: "It is removed; the next poll fetches it again, and the replica serves its last verified generation meanwhile",
                });
            }
            std::fs::File::open(&to)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io("syncing", &to, e))?;
        }
    }
    std::fs::create_dir_all(&partial).map_err(|e| Error::io("creating", &partial, e))?;
    let marker = partial.join(MANIFEST_FILE);
    std::fs::write(&marker, m.encode()?)
        .and_then(|()| std::fs::File::open(&marker)?.sync_all())
        .map_err(|e| Error::io("writing", &marker, e))?;
    for sub in [partial.clone(), partial.join("segments")] {
        if sub.exists() {
            sync_dir(&sub)?;
        }
    }
    let whole = gen_dir(dir, m.generation);
    if whole.exists() {
        std::fs::remove_dir_all(&whole).map_err(|e| Error::io("removing", &whole, e))?;
    }
    std::fs::rename(&partial, &whole).map_err(|e| Error::io("renaming", &partial, e))?;
    sync_dir(&dir.join("gens"))?;
    Ok(Local {
        manifest: m.clone(),
        dir: whole,
    })
}

/// Fetch one object to `to`, refusing bytes whose size or checksum differ from the manifest's.
async fn download(
    store: &dyn ObjectStore,
    at: &ObjPath,
    to: &Path,
    f: &super::ManifestFile,
) -> Result<()> {
    use futures::StreamExt;
    use std::io::Write;
    let part = to.with_extension("part");
    let mut out = std::fs::File::create(&part).map_err(|e| Error::io("writing", &part, e))?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut size = 0u64;
    let got = store
        .get(at)
        .await
        .map_err(|e| os_error("downloading", at, e))?;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| os_error("downloading", at, e))?;
        size += chunk.len() as u64;
        if size > f.size {
            break;
        }
        h.update(&chunk);
        out.write_all(&chunk)
            .map_err(|e| Error::io("writing", &part, e))?;
    }
    let sum = format!("{:032x}", h.digest128());
    if size != f.size || sum != f.xxh3_128 {
        drop(out);
        let _ = std::fs::remove_file(&part);
        let reason = if size != f.size {
            format!("{size} bytes or more arrived, the manifest says {}", f.size)
        } else {
            format!("its checksum is {sum}, the manifest says {}", f.xxh3_128)
        };
        return Err(Error::BadObject {
            location: at.to_string(),
            reason,
            remedy: "The replica keeps serving its last verified generation. Delete that object from the object store: the leader's next publish uploads it again",
        });
    }
    out.sync_all().map_err(|e| Error::io("syncing", &part, e))?;
    drop(out);
    std::fs::rename(&part, to).map_err(|e| Error::io("renaming", &part, e))?;
    Ok(())
}

/// Open an assembled generation read-only. Its files were checked as it was assembled; a
/// generation of the first format opened before has since been written by its own store
/// (sled's files), as any store directory is, and the store's own open checks it. A
/// generation with pair files is opened on its [`PairSet`], built from `earlier`'s where it
/// can be.
fn open_generation(
    dir: &Path,
    have: &Local,
    config: &Config,
    earlier: Option<&PairSet>,
) -> Result<(Store, Option<PairSet>)> {
    if have.manifest.format == crate::manifest::MANIFEST_FORMAT {
        let set = PairSet::build(&dir.join("objects"), &have.manifest, earlier)?;
        let db = crate::durable::memory::db(set.pairs.clone());
        let store = Store::open_on(have.dir.clone(), config.clone(), db)?;
        store.set_read_only(&have.dir);
        // The records name the store they came from; a manifest that names another (or
        // records without one, which open as a new, empty store) is not this leader's state.
        let tag = format!("{:08x}", store.store_tag());
        if tag != have.manifest.leader {
            return Err(Error::BadObject {
                location: crate::manifest::manifest_name(have.manifest.generation),
                reason: format!(
                    "its records are store {tag}'s, and it says it was published by {}",
                    crate::error::display_id(&have.manifest.leader)
                ),
                remedy: crate::manifest::BAD_MANIFEST,
            });
        }
        return Ok((store, Some(set)));
    }
    if !crate::durable::sled_exists(&have.dir) {
        return Err(Error::NoStore {
            dir: have.dir.clone(),
        });
    }
    let store = Store::open_replica_generation(&have.dir, config.clone())?;
    store.set_read_only(&have.dir);
    Ok((store, None))
}

fn spawn_poller(inner: Weak<Inner>, stop: Arc<(Mutex<bool>, Condvar)>, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("recostore-replica-poll".into())
        .spawn(move || loop {
            {
                let (flag, cv) = &*stop;
                let guard = lock(flag);
                let (guard, _) = cv
                    .wait_timeout_while(guard, every, |stopped| !*stopped)
                    .unwrap_or_else(|p| p.into_inner());
                if *guard {
                    return;
                }
            }
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let replica = Replica { inner };
            if let Err(e) = replica.poll() {
                tracing::warn!(error = %e, "replica poll failed; serving the last verified generation");
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the replica's poll thread; call Replica::poll to follow");
    }
}
