//! The durable layer behind one narrow seam: an ordered key-value map with atomic batches,
//! prefix scans, compare-and-swap and an explicit flush.
//!
//! Every module that reads or writes durable records goes through [`Db`]; none of them names
//! sled. Two implementations sit behind the [`Backend`] trait:
//!
//! * `sled_backend`: the real one, a sled tree;
//! * `faulty` (tests only): an in-memory map that simulates power loss. It keeps what the last
//!   completed flush made durable, and at a chosen flush "loses power": it keeps a random
//!   prefix of the batches applied since (sled recovers a prefix of its writes, never a
//!   subset with holes) and fails every call after. This is how the crash loop in
//!   `store/crash_tests.rs` checks durability without relying on the page cache, which survives
//!   a `kill -9` and so cannot catch a missing flush.
//!
//! The contract every backend keeps, and the store relies on:
//! 1. a batch is applied whole or not at all, also across a crash;
//! 2. after a crash, the state is that of some prefix of the applied batches, and that prefix
//!    includes every batch applied before the last flush that returned `Ok`;
//! 3. reads see every batch applied before them (read-your-writes, no flush needed).
//!
//! Reclaiming space ([`Db::reclaim`]): sled frees the pages of replaced values lazily, and
//! under a steady stream of small writes its files grow far past the live data. A backend with
//! files can start a [`Rewrite`]: fresh, empty files. [`Db`] holds every write off, copies
//! every pair into them, commits them (makes them the ones a crash recovers) and swaps the new
//! backend in. Readers never wait: the backend sits behind an `ArcSwap`, they read the old
//! files (which hold the same pairs) until the swap, and a scan in flight keeps the old backend
//! alive until it ends.
//!
//! Why writes wait for the copy instead of going on against the old files while a journal
//! of them is replayed on top (which would give the same contents): sled 0.34 shares one
//! concurrency lock and one I/O thread pool among every database in a process. Built that
//! way (2026-12-04), four threads overwriting keys in the old files while reclaims ran back to
//! back deadlocked sled within seconds: a writer holding the old files' segment accountant
//! waited for a file truncation queued behind I/O threads that waited for that accountant,
//! and the copy's batch waited for the writer. The same writes without a copy ran clean for
//! 40 s, and so did a copy with one writer, and this design with four (`sled_backend`'s
//! `writes_during_reclaims_are_not_lost`). A store writes from more than one thread (the
//! writer, the background checkpoint, plugin records), so the copy runs alone.

#[cfg(feature = "replication")]
pub(crate) mod memory;
mod sled_backend;

#[cfg(test)]
pub(crate) mod faulty;

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arc_swap::ArcSwap;

use crate::error::{Error, Result};

pub(crate) use sled_backend::{exists as sled_exists, open as open_sled, replaced_dirs};

/// A stored value or key handed out by a backend. Cheap to clone; sled's own buffers are kept
/// as they are (no copy on read).
#[derive(Clone)]
pub(crate) struct Value(Repr);

#[derive(Clone)]
enum Repr {
    Sled(sled::IVec),
    #[cfg(any(test, feature = "replication"))]
    Shared(Arc<[u8]>),
    /// Bytes `start..end` of a mapped, immutable file (a replica's pair files, see
    /// [`memory`]).
    #[cfg(feature = "replication")]
    Mapped {
        map: Arc<memmap2::Mmap>,
        start: usize,
        end: usize,
    },
}

#[cfg(any(test, feature = "replication"))]
impl Value {
    pub(crate) fn shared(bytes: Arc<[u8]>) -> Value {
        Value(Repr::Shared(bytes))
    }
}

#[cfg(feature = "replication")]
impl Value {
    /// Bytes `range` of `map`; `None` when the range is not inside it.
    pub(crate) fn mapped(map: &Arc<memmap2::Mmap>, range: std::ops::Range<usize>) -> Option<Value> {
        (range.start <= range.end && range.end <= map.len()).then(|| {
            Value(Repr::Mapped {
                map: map.clone(),
                start: range.start,
                end: range.end,
            })
        })
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Sled(v) => v,
            #[cfg(any(test, feature = "replication"))]
            Repr::Shared(v) => v,
            #[cfg(feature = "replication")]
            Repr::Mapped { map, start, end } => &map[*start..*end],
        }
    }
}

impl Value {
    /// The bytes from `n` on (a namespaced key without its prefix); sled's buffer is shared,
    /// not copied.
    fn tail(self, n: usize) -> Value {
        let n = n.min(self.len());
        match self.0 {
            Repr::Sled(v) => {
                let len = v.len() - n;
                Value(Repr::Sled(v.subslice(n, len)))
            }
            #[cfg(any(test, feature = "replication"))]
            Repr::Shared(v) => Value(Repr::Shared(Arc::from(&v[n..]))),
            #[cfg(feature = "replication")]
            Repr::Mapped { map, start, end } => Value(Repr::Mapped {
                map,
                start: start + n,
                end,
            }),
        }
    }
}

impl std::borrow::Borrow<[u8]> for Value {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// By bytes, as keys sort in every backend (and as `Borrow<[u8]>` requires).
impl Ord for Value {
    fn cmp(&self, other: &Value) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &**self)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        **self == **other
    }
}

impl From<Value> for Vec<u8> {
    fn from(v: Value) -> Vec<u8> {
        v.to_vec()
    }
}

/// Writes applied together: all of them or none, also across a crash.
#[derive(Debug, Default, Clone)]
pub(crate) struct Batch {
    /// In call order; a later write of a key overrides an earlier one.
    pub(crate) ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    /// Set `key` to `value`.
    pub(crate) fn insert(&mut self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.as_ref().to_vec(), Some(value.into())));
    }

    /// Remove `key` (nothing if absent).
    pub(crate) fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.ops.push((key.as_ref().to_vec(), None));
    }
}

/// Key-value pairs in key order.
pub(crate) type Iter<'a> = Box<dyn Iterator<Item = Result<(Value, Value)>> + Send + 'a>;

/// Fresh files being filled by a reclaim (see [`Backend::begin_rewrite`]). Dropped without
/// [`Rewrite::commit`], they are removed and the old files stay the store's.
pub(crate) trait Rewrite: Send {
    /// Apply `batch` to the fresh files.
    fn apply(&self, batch: Batch) -> Result<()>;
    /// Make the fresh files the durable records, the ones a crash recovers, and return the
    /// backend on them. The old backend's files are removed once it is dropped. On `Err` the
    /// old files are still the store's, and the fresh ones are removed.
    fn commit(self: Box<Self>) -> Result<Box<dyn Backend>>;
}

/// What [`Db::reclaim`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reclaimed {
    /// Bytes of the backend's files before.
    pub(crate) bytes_before: u64,
    /// Bytes of the fresh files.
    pub(crate) bytes_after: u64,
    /// Pairs copied.
    pub(crate) keys: u64,
    /// Bytes of those keys and values.
    pub(crate) live_bytes: u64,
    /// How long writes were held off: the whole copy and the commit.
    pub(crate) writes_held: std::time::Duration,
}

/// Bytes of pairs per batch when a reclaim copies them: large enough that the backend's
/// per-batch cost vanishes, small enough that the copy's memory stays small.
const COPY_BATCH_BYTES: usize = 4 << 20;

/// What a durable store must do for recostore; see the module docs for the crash contract.
pub(crate) trait Backend: Send + Sync {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Value>>;
    /// Pairs with `start <= key < end` (`end` `None`: to the last key), in key order. The
    /// iterator owns what it reads from, so a scan may outlive a swap of backends.
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Iter<'static>;
    /// Apply `batch` atomically.
    fn apply(&self, batch: Batch) -> Result<()>;
    /// Set `key` to `new` (or remove it) only if it now holds `old` (`None`: absent).
    /// `Ok(false)`: it held something else, nothing was written.
    fn compare_and_swap(&self, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool>;
    /// Make every applied batch durable.
    fn flush(&self) -> Result<()>;
    /// Bytes of the files behind this backend (0: it has none).
    fn file_bytes(&self) -> u64 {
        0
    }
    /// Fresh, empty files to copy this backend's pairs into (see [`Rewrite`]). `Ok(None)`:
    /// a backend without files has nothing to reclaim.
    fn begin_rewrite(&self) -> Result<Option<Box<dyn Rewrite>>> {
        Ok(None)
    }
}

/// The handle every module holds: a shared [`Backend`] plus the conveniences built on its five
/// operations.
///
/// A handle may be narrowed to a *namespace* ([`Db::namespace`]): every key it reads or writes
/// is then the namespace's prefix plus the key its caller names, and what it hands back has
/// the prefix taken off. The store code above never knows which it holds, which is how one
/// sled carries several shops whose same ids never meet (FORMAT.md, "Namespaces").
#[derive(Clone)]
pub(crate) struct Db {
    shared: Arc<Shared>,
    /// Prepended to every key: empty for the default namespace, [`namespace_prefix`] for the
    /// others.
    prefix: Arc<[u8]>,
}

/// The first byte of every key of a named namespace. No key of the default namespace starts
/// with it (they all start with an ASCII letter), so the default namespace's scans skip the
/// named ones by starting past it.
pub(crate) const NAMESPACE_BYTE: u8 = 0x00;

/// The key prefix of namespace `name`: [`NAMESPACE_BYTE`], the name, and a zero byte. Names
/// hold no zero byte ([`crate::namespace::validate_name`]), so no prefix is the start of
/// another (`shop` and `shop-a` differ at the byte after `shop`).
pub(crate) fn namespace_prefix(name: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(name.len() + 2);
    p.push(NAMESPACE_BYTE);
    p.extend_from_slice(name.as_bytes());
    p.push(0);
    p
}

struct Shared {
    /// The backend now; replaced whole by [`Db::reclaim`].
    backend: ArcSwap<Box<dyn Backend>>,
    /// Every write call holds this shared; a reclaim holds it exclusively from the copy's
    /// first read to the swap. Held only for one backend call, never across two, so it cannot
    /// take part in a lock cycle.
    writes: RwLock<()>,
    /// Set on a replica's store once it has opened: every write is refused with
    /// [`Error::ReadOnlyReplica`] naming this directory. The seam every durable write passes
    /// is the one place that cannot be forgotten by a new write path.
    read_only: std::sync::OnceLock<std::path::PathBuf>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Wrap a backend.
    pub(crate) fn new(backend: Box<dyn Backend>) -> Db {
        Db {
            shared: Arc::new(Shared {
                backend: ArcSwap::from_pointee(backend),
                writes: RwLock::new(()),
                read_only: std::sync::OnceLock::new(),
            }),
            prefix: Arc::from(&[][..]),
        }
    }

    /// The same records narrowed to namespace `name` (see the type's docs). Only from the
    /// default namespace's handle: namespaces do not nest.
    pub(crate) fn namespace(&self, name: &str) -> Db {
        debug_assert!(self.prefix.is_empty(), "namespaces do not nest");
        Db {
            shared: self.shared.clone(),
            prefix: Arc::from(namespace_prefix(name)),
        }
    }

    /// The same records seen from the default namespace (the whole store's own keys): for
    /// what belongs to the store rather than to one namespace, such as its backup log.
    pub(crate) fn root(&self) -> Db {
        Db {
            shared: self.shared.clone(),
            prefix: Arc::from(&[][..]),
        }
    }

    /// Whether this handle is narrowed to a named namespace.
    pub(crate) fn is_namespace(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// The names of the namespaces that have written a key, in byte order: one seek per name,
    /// not a scan of their keys.
    pub(crate) fn namespace_names(&self) -> Result<Vec<String>> {
        let backend = self.shared.backend.load_full();
        let mut names = Vec::new();
        let mut from = vec![NAMESPACE_BYTE];
        let end = [NAMESPACE_BYTE + 1];
        while let Some(kv) = backend.range(&from, Some(&end)).next() {
            let (k, _) = kv?;
            let Some(len) = k[1..].iter().position(|&b| b == 0) else {
                return Err(failed(std::io::Error::other(
                    "a namespace key without the zero byte that ends its name",
                )));
            };
            let name = String::from_utf8_lossy(&k[1..1 + len]).into_owned();
            // Past every key of this namespace: its prefix with the zero byte raised to one.
            from = k[..=len].to_vec();
            from.push(1);
            names.push(name);
        }
        Ok(names)
    }

    /// Every pair of every named namespace, keys whole (prefix included): what a backup of
    /// the whole store copies besides the default namespace's [`Db::iter`].
    pub(crate) fn namespace_pairs(&self) -> Iter<'_> {
        self.range_raw(&[NAMESPACE_BYTE], Some(&[NAMESPACE_BYTE + 1]))
    }

    /// Run `f` with every write call of every namespace held off (a consistent copy of
    /// several namespaces' keys).
    pub(crate) fn with_writes_held<T>(&self, f: impl FnOnce() -> T) -> T {
        let _all = self.all_writes_held();
        f()
    }

    /// `key` with this handle's prefix.
    fn full_key<'k>(&self, key: &'k [u8]) -> std::borrow::Cow<'k, [u8]> {
        if self.prefix.is_empty() {
            std::borrow::Cow::Borrowed(key)
        } else {
            let mut k = Vec::with_capacity(self.prefix.len() + key.len());
            k.extend_from_slice(&self.prefix);
            k.extend_from_slice(key);
            std::borrow::Cow::Owned(k)
        }
    }

    /// Refuse every write from now on (a replica's store, see `crate::replica`); `dir` is
    /// the directory the refusal names.
    #[cfg(feature = "replication")]
    pub(crate) fn set_read_only(&self, dir: std::path::PathBuf) {
        let _ = self.shared.read_only.set(dir);
    }

    /// Whether writes are refused (see [`Db::set_read_only`]).
    pub(crate) fn is_read_only(&self) -> bool {
        self.shared.read_only.get().is_some()
    }

    /// `Err` on a read-only store.
    fn writable(&self) -> Result<()> {
        match self.shared.read_only.get() {
            Some(dir) => Err(Error::ReadOnlyReplica { dir: dir.clone() }),
            None => Ok(()),
        }
    }

    /// Shared hold on writes: held for one backend call. A panic elsewhere cannot have left
    /// the unit value behind the lock in a bad state, so a poisoned lock is taken as it is.
    fn writing(&self) -> RwLockReadGuard<'_, ()> {
        self.shared.writes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn all_writes_held(&self) -> RwLockWriteGuard<'_, ()> {
        self.shared
            .writes
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Pairs with `start <= key < end` of the whole backend, keys as stored.
    fn range_raw(&self, start: &[u8], end: Option<&[u8]>) -> Iter<'static> {
        let backend = self.shared.backend.load_full();
        let pairs = backend.range(start, end);
        // The scan holds the backend it reads, so a reclaim that swaps it meanwhile does not
        // remove its files before the scan is done.
        Box::new(pairs.inspect(move |_| {
            let _keep = &backend;
        }))
    }

    /// Pairs with `start <= key < end` of this handle's namespace (`end` `None`: to its last
    /// key), keys without the prefix.
    fn range_owned(&self, start: &[u8], end: Option<&[u8]>) -> Iter<'static> {
        if self.prefix.is_empty() {
            // The default namespace's keys all lie past the named namespaces' (see
            // `NAMESPACE_BYTE`).
            let floor = [NAMESPACE_BYTE + 1];
            let start = if start < &floor[..] {
                &floor[..]
            } else {
                start
            };
            return self.range_raw(start, end);
        }
        let start = self.full_key(start);
        let end = match end {
            Some(e) => Some(self.full_key(e).into_owned()),
            None => prefix_end(&self.prefix),
        };
        let n = self.prefix.len();
        Box::new(
            self.range_raw(&start, end.as_deref())
                .map(move |kv| kv.map(|(k, v)| (k.tail(n), v))),
        )
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.shared.backend.load().get(&self.full_key(key.as_ref()))
    }

    /// Whether `key` holds a value.
    pub(crate) fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Every pair whose key starts with `prefix`, in key order.
    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter<'_> {
        let prefix = prefix.as_ref();
        let end = prefix_end(prefix);
        self.range_owned(prefix, end.as_deref())
    }

    /// Pairs with `start <= key < end`, in key order.
    pub(crate) fn range(&self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> Iter<'_> {
        self.range_owned(start.as_ref(), Some(end.as_ref()))
    }

    /// Every pair, in key order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        self.range_owned(&[], None)
    }

    /// Apply `batch` atomically.
    pub(crate) fn apply_batch(&self, mut batch: Batch) -> Result<()> {
        self.writable()?;
        if !self.prefix.is_empty() {
            for (k, _) in &mut batch.ops {
                *k = self.full_key(k).into_owned();
            }
        }
        let _w = self.writing();
        self.shared.backend.load().apply(batch)
    }

    /// Set one key (a batch of one).
    pub(crate) fn insert(&self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) -> Result<()> {
        let mut b = Batch::default();
        b.insert(key, value);
        self.apply_batch(b)
    }

    /// Remove one key (a batch of one).
    pub(crate) fn remove(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let mut b = Batch::default();
        b.remove(key);
        self.apply_batch(b)
    }

    /// See [`Backend::compare_and_swap`].
    pub(crate) fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool> {
        self.writable()?;
        let _w = self.writing();
        self.shared
            .backend
            .load()
            .compare_and_swap(&self.full_key(key), old, new)
    }

    /// Make every applied batch durable.
    pub(crate) fn flush(&self) -> Result<()> {
        let _w = self.writing();
        self.shared.backend.load().flush()
    }

    /// Bytes of the files behind the durable records (0: none, as in the tests' simulation).
    pub(crate) fn file_bytes(&self) -> u64 {
        self.shared.backend.load().file_bytes()
    }

    /// Rewrite the live pairs into fresh files and serve from those (see the module docs).
    /// Reads go on meanwhile, on the old files; writes wait until the new files are in place
    /// (about two seconds per 100 MB of live data). `Ok(None)`: the backend has no files to
    /// reclaim. On `Err` the old files keep serving, unchanged.
    pub(crate) fn reclaim(&self) -> Result<Option<Reclaimed>> {
        let _all = self.all_writes_held();
        let held = std::time::Instant::now();
        let current = self.shared.backend.load_full();
        let bytes_before = current.file_bytes();
        let Some(fresh) = current.begin_rewrite()? else {
            return Ok(None);
        };
        let (mut keys, mut live) = (0u64, 0u64);
        let mut batch = Batch::default();
        let mut pending = 0usize;
        for kv in current.range(&[], None) {
            let (k, v) = kv?;
            keys += 1;
            live += (k.len() + v.len()) as u64;
            pending += k.len() + v.len();
            batch.insert(&*k, v.to_vec());
            if pending >= COPY_BATCH_BYTES {
                fresh.apply(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        fresh.apply(batch)?;
        let new = fresh.commit()?;
        self.shared.backend.store(Arc::new(new));
        let writes_held = held.elapsed();
        drop(_all);
        // Dropping the old backend (sled's last flush, the removal of its files) after writes
        // go on again.
        drop(current);
        Ok(Some(Reclaimed {
            bytes_before,
            bytes_after: self.file_bytes(),
            keys,
            live_bytes: live,
            writes_held,
        }))
    }
}

/// The smallest key above every key that starts with `prefix` (`None`: there is none, the
/// scan runs to the end).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// An in-memory durable layer for unit tests (a simulated disk that never loses power).
#[cfg(test)]
pub(crate) fn memory() -> Db {
    faulty::Disk::new(u64::MAX, 1).db()
}

/// A failure of the layer under the store, as the public [`Error`] carries it.
pub(crate) fn failed(source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Durable {
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end(b"T"), Some(b"U".to_vec()));
        assert_eq!(prefix_end(&[b'L', 0xff]), Some(b"M".to_vec()));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    /// The same operations against sled and the fault-free simulation give the same answers:
    /// the simulation used by the crash loop models the real thing.
    #[test]
    fn sled_and_the_simulation_agree() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
        let real = open_sled(dir.path(), &crate::config::Config::default())?;
        let sim = faulty::Disk::new(u64::MAX, 1).db();
        for db in [&real, &sim] {
            let mut b = Batch::default();
            for k in [&b"a1"[..], b"a2", b"a\xff", b"b", b"\xff\xff"] {
                b.insert(k, k.to_vec());
            }
            b.remove(b"b");
            db.apply_batch(b)?;
            assert!(db.compare_and_swap(b"a1", Some(b"a1"), Some(b"x"))?);
            assert!(!db.compare_and_swap(b"a1", Some(b"a1"), None)?);
            assert!(db.compare_and_swap(b"new", None, Some(b"n"))?);
            db.flush()?;
        }
        let dump = |db: &Db, p: &[u8]| -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            db.scan_prefix(p)
                .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect()
        };
        for p in [&b""[..], b"a", b"\xff", b"b", b"n"] {
            assert_eq!(dump(&real, p)?, dump(&sim, p)?, "prefix {p:?}");
        }
        assert_eq!(real.get(b"a1")?, sim.get(b"a1")?);
        Ok(())
    }
}
