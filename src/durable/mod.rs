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

mod sled_backend;

#[cfg(test)]
pub(crate) mod faulty;

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::error::{Error, Result};

pub(crate) use sled_backend::open as open_sled;

/// A stored value or key handed out by a backend. Cheap to clone; sled's own buffers are kept
/// as they are (no copy on read).
#[derive(Clone)]
pub(crate) struct Value(Repr);

#[derive(Clone)]
enum Repr {
    Sled(sled::IVec),
    #[cfg(test)]
    Shared(Arc<[u8]>),
}

#[cfg(test)]
impl Value {
    pub(crate) fn shared(bytes: Arc<[u8]>) -> Value {
        Value(Repr::Shared(bytes))
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Sled(v) => v,
            #[cfg(test)]
            Repr::Shared(v) => v,
        }
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

/// What a durable store must do for recostore; see the module docs for the crash contract.
pub(crate) trait Backend: Send + Sync {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Value>>;
    /// Pairs with `start <= key < end` (`end` `None`: to the last key), in key order.
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Iter<'_>;
    /// Apply `batch` atomically.
    fn apply(&self, batch: Batch) -> Result<()>;
    /// Set `key` to `new` (or remove it) only if it now holds `old` (`None`: absent).
    /// `Ok(false)`: it held something else, nothing was written.
    fn compare_and_swap(&self, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool>;
    /// Make every applied batch durable.
    fn flush(&self) -> Result<()>;
}

/// The handle every module holds: a shared [`Backend`] plus the conveniences built on its five
/// operations.
#[derive(Clone)]
pub(crate) struct Db(Arc<dyn Backend>);

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Wrap a backend.
    pub(crate) fn new(backend: Arc<dyn Backend>) -> Db {
        Db(backend)
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.0.get(key.as_ref())
    }

    /// Whether `key` holds a value.
    pub(crate) fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Every pair whose key starts with `prefix`, in key order.
    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter<'_> {
        let prefix = prefix.as_ref();
        let end = prefix_end(prefix);
        self.0.range(prefix, end.as_deref())
    }

    /// Pairs with `start <= key < end`, in key order.
    pub(crate) fn range(&self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> Iter<'_> {
        self.0.range(start.as_ref(), Some(end.as_ref()))
    }

    /// Every pair, in key order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        self.0.range(&[], None)
    }

    /// Apply `batch` atomically.
    pub(crate) fn apply_batch(&self, batch: Batch) -> Result<()> {
        self.0.apply(batch)
    }

    /// Set one key (a batch of one).
    pub(crate) fn insert(&self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) -> Result<()> {
        let mut b = Batch::default();
        b.insert(key, value);
        self.0.apply(b)
    }

    /// Remove one key (a batch of one).
    pub(crate) fn remove(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let mut b = Batch::default();
        b.remove(key);
        self.0.apply(b)
    }

    /// See [`Backend::compare_and_swap`].
    pub(crate) fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool> {
        self.0.compare_and_swap(key, old, new)
    }

    /// Make every applied batch durable.
    pub(crate) fn flush(&self) -> Result<()> {
        self.0.flush()
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
