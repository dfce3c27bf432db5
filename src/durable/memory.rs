//! Pairs held in memory: the durable layer of a replica's generation.
//!
//! A replica never writes records (its store refuses writes at the seam once open), and what
//! it serves comes whole from the leader's pair files. So its generations need no sled: the
//! pairs sit in a persistent ordered map whose values point into the mapped pair files of the
//! replica's cache (zero-copy), and the next generation is this one's map with the pairs of
//! departed files taken out and those of arrived files put in, sharing everything else: the
//! records of a switch cost what changed, not the store (the store's own open work, its
//! activity state and dirty log, comes on top, as on a leader).
//!
//! The few writes a store makes while it opens (derived keys it repairs) land in the map only:
//! they are derived again at every open, and nothing here is ever made durable.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use imbl::OrdMap;

use super::{Backend, Batch, Db, Iter, Value};
use crate::error::Result;

/// The pairs of one generation, shared between generations where they agree.
pub(crate) type Pairs = OrdMap<Value, Value>;

/// A [`Backend`] over [`Pairs`].
struct Memory {
    pairs: RwLock<Pairs>,
}

/// A durable layer serving `pairs` (and holding later writes in memory only).
pub(crate) fn db(pairs: Pairs) -> Db {
    Db::new(Box::new(Memory {
        pairs: RwLock::new(pairs),
    }))
}

impl Memory {
    fn read(&self) -> Pairs {
        // A clone of a persistent map is a pointer copy; a poisoned lock still holds a whole
        // map, since every write replaces it in one assignment.
        self.pairs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Pairs> {
        self.pairs.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Owned bytes as a stored value.
fn owned(bytes: &[u8]) -> Value {
    Value::shared(Arc::from(bytes))
}

impl Backend for Memory {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        Ok(self
            .pairs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned())
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Iter<'static> {
        Box::new(Scan {
            pairs: self.read(),
            from: Bound::Included(start.to_vec()),
            end: end.map(<[u8]>::to_vec),
            ready: VecDeque::new(),
            done: false,
        })
    }

    fn apply(&self, batch: Batch) -> Result<()> {
        // The write guard is held from the copy to the assignment: `Db` lets writers run side
        // by side (its lock is shared for writes), and two batches each applied to a copy of
        // the same map would lose one of them. Readers keep the map they cloned meanwhile.
        let mut pairs = self.write();
        let mut next = pairs.clone();
        for (k, v) in batch.ops {
            match v {
                Some(v) => {
                    next.insert(owned(&k), owned(&v));
                }
                None => {
                    next.remove(k.as_slice());
                }
            }
        }
        *pairs = next;
        Ok(())
    }

    fn compare_and_swap(&self, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
        let mut pairs = self.write();
        if pairs.get(key).map(|v| &**v) != old {
            return Ok(false);
        }
        match new {
            Some(v) => {
                pairs.insert(owned(key), owned(v));
            }
            None => {
                pairs.remove(key);
            }
        }
        Ok(true)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// A scan that owns its map (a pointer copy), so it outlives the backend, and reads it a
/// block of pairs at a time.
struct Scan {
    pairs: Pairs,
    from: Bound<Vec<u8>>,
    end: Option<Vec<u8>>,
    ready: VecDeque<(Value, Value)>,
    done: bool,
}

/// Pairs read per step of a scan: a step costs one descent of the map.
const SCAN_BLOCK: usize = 256;

impl Iterator for Scan {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ready.is_empty() && !self.done {
            let from = match &self.from {
                Bound::Included(k) => Bound::Included(k.as_slice()),
                Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
                Bound::Unbounded => Bound::Unbounded,
            };
            let end = match &self.end {
                Some(e) => Bound::Excluded(e.as_slice()),
                None => Bound::Unbounded,
            };
            if matches!((from, end), (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b)) if a >= b)
            {
                self.done = true;
                return None;
            }
            self.ready.extend(
                self.pairs
                    .range::<_, [u8]>((from, end))
                    .take(SCAN_BLOCK)
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            match self.ready.back() {
                Some((k, _)) if self.ready.len() == SCAN_BLOCK => {
                    self.from = Bound::Excluded(k.to_vec());
                }
                _ => self.done = true,
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same operations against this and sled give the same answers.
    #[test]
    fn memory_and_sled_agree() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", "", e))?;
        let real = super::super::open_sled(dir.path(), &crate::config::Config::default())?;
        let mem = db(Pairs::new());
        for d in [&real, &mem] {
            let mut b = Batch::default();
            for i in 0..1000u32 {
                b.insert(format!("k{i:05}"), i.to_be_bytes().to_vec());
            }
            b.insert(b"\xff\xff", b"top".to_vec());
            b.remove(b"k00007");
            d.apply_batch(b)?;
            assert!(d.compare_and_swap(b"k00001", Some(&1u32.to_be_bytes()), Some(b"x"))?);
            assert!(!d.compare_and_swap(b"k00001", None, None)?);
            assert!(d.compare_and_swap(b"new", None, Some(b"n"))?);
        }
        let dump = |d: &Db, p: &[u8]| -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            d.scan_prefix(p)
                .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect()
        };
        for p in [&b""[..], b"k", b"k00", b"k0099", b"\xff", b"n", b"z"] {
            assert_eq!(dump(&real, p)?, dump(&mem, p)?, "prefix {p:?}");
        }
        let r = |d: &Db| -> Result<Vec<Vec<u8>>> {
            d.range(b"k00250", b"k00777")
                .map(|kv| kv.map(|(k, _)| k.to_vec()))
                .collect()
        };
        assert_eq!(r(&real)?, r(&mem)?);
        assert_eq!(real.get(b"k00001")?, mem.get(b"k00001")?);
        // A scan keeps reading the map it started on.
        let scan = mem.scan_prefix(b"k");
        mem.remove(b"k00500")?;
        assert_eq!(scan.count(), 999);
        Ok(())
    }
}
