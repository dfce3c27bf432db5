//! Name → id tables for one bulk load, keyed by the names' xxh3.
//!
//! A load of a million items repeats its tag names tens of millions of times. The store's
//! own maps (persistent, for snapshots) cost a chain of pointer hops per look-up, so a load
//! resolves names through these flat tables instead: hash a name once, with a fast hash, and
//! compare it once. Both tables are exact: a name whose hash another name already holds goes
//! to a plain map beside the table.

use std::collections::HashMap;

/// The xxh3 of `name`, the key of both tables.
#[inline]
pub(crate) fn hash(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// Names borrowed from the input, for names looked up about once each (item ids): the
/// compare on a hit reads the name where it sits in the input.
#[derive(Default)]
pub(crate) struct BorrowedNames<'i> {
    map: HashMap<u64, (&'i str, u32), std::hash::BuildHasherDefault<HashIsKey>>,
    collided: HashMap<&'i str, u32>,
}

impl<'i> BorrowedNames<'i> {
    /// A table sized for `n` names.
    pub(crate) fn with_capacity(n: usize) -> Self {
        BorrowedNames {
            map: HashMap::with_capacity_and_hasher(n, Default::default()),
            collided: HashMap::new(),
        }
    }

    /// The id of `name`, if inserted.
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        match self.map.get(&hash(name)) {
            Some(&(n, id)) if n == name => Some(id),
            Some(_) => self.collided.get(name).copied(),
            None => None,
        }
    }

    /// Give `name` the id `id` (the caller inserts each name once).
    pub(crate) fn insert(&mut self, name: &'i str, id: u32) {
        let slot = self.map.entry(hash(name)).or_insert((name, id));
        if slot.0 != name {
            self.collided.insert(name, id);
        }
    }
}

/// Names copied into one contiguous arena, for names looked up many times each (tag names):
/// a load's tag names sit scattered among millions of strings, and comparing against a name
/// where it first occurred in the input cost a cache miss per look-up (a tenth of a 1M-item
/// load). The caller passes the hash it computed.
#[derive(Default)]
pub(crate) struct ArenaNames {
    /// hash → (start in `arena`, end, id).
    map: HashMap<u64, (u32, u32, u32), std::hash::BuildHasherDefault<HashIsKey>>,
    arena: Vec<u8>,
    collided: HashMap<String, u32>,
}

impl ArenaNames {
    /// The id of `name`, whose hash is `hash`, if inserted.
    #[inline]
    pub(crate) fn get(&self, hash: u64, name: &str) -> Option<u32> {
        match self.map.get(&hash) {
            Some(&(a, b, id))
                if self.arena.get(a as usize..b as usize) == Some(name.as_bytes()) =>
            {
                Some(id)
            }
            Some(_) => self.collided.get(name).copied(),
            // A name past the arena's u32 offsets is only in the plain map.
            None if !self.collided.is_empty() => self.collided.get(name).copied(),
            None => None,
        }
    }

    /// Give `name` (hash `hash`) the id `id` (the caller inserts each name once).
    pub(crate) fn insert(&mut self, hash: u64, name: &str, id: u32) {
        if let Some(&(a, b, _)) = self.map.get(&hash) {
            if self.arena.get(a as usize..b as usize) != Some(name.as_bytes()) {
                self.collided.insert(name.to_owned(), id);
            }
            return;
        }
        // Offsets are u32: names past 4 GiB of arena (far beyond any vocabulary) go to the
        // plain map instead.
        let a = u32::try_from(self.arena.len());
        let b = u32::try_from(self.arena.len() + name.len());
        match (a, b) {
            (Ok(a), Ok(b)) => {
                self.arena.extend_from_slice(name.as_bytes());
                self.map.insert(hash, (a, b, id));
            }
            _ => {
                self.collided.insert(name.to_owned(), id);
            }
        }
    }
}

/// The hasher of a table whose keys are already hashes: it passes them through.
#[derive(Default)]
pub(crate) struct HashIsKey(u64);

impl std::hash::Hasher for HashIsKey {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys reach these tables; any other input still hashes, just not well.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::{ArenaNames, BorrowedNames};

    #[test]
    fn an_arena_table_stays_exact_when_two_names_share_a_hash() {
        let mut t = ArenaNames::default();
        t.insert(7, "red", 1);
        // A different name under the same hash (forced here; xxh3 collisions are rare, not
        // impossible) must neither find the first's id nor hide its own.
        assert_eq!(t.get(7, "blue"), None);
        t.insert(7, "blue", 2);
        assert_eq!(t.get(7, "red"), Some(1));
        assert_eq!(t.get(7, "blue"), Some(2));
        assert_eq!(t.get(8, "red"), None, "another hash is another entry");
        t.insert(8, "green", 3);
        assert_eq!(t.get(8, "green"), Some(3));
        assert_eq!(t.get(7, "green"), None);
    }

    #[test]
    fn a_borrowed_table_finds_what_it_holds_and_nothing_else() {
        let names: Vec<String> = (0..10_000).map(|i| format!("item-{i}")).collect();
        let mut t = BorrowedNames::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            t.insert(n, i as u32);
        }
        for (i, n) in names.iter().enumerate() {
            assert_eq!(t.get(n), Some(i as u32));
        }
        assert_eq!(t.get("item-10000"), None);
    }
}
