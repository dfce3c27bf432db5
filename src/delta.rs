//! The in-memory overlay of writes made since the current segment was built.
//!
//! Each write publishes a *new* `Delta` inside a new snapshot, so readers holding the old one
//! keep a consistent view. To make that cheap the maps are persistent (`imbl`, structural
//! sharing: clone is O(1), insert O(log n)) and the shadow bitsets are copy-on-write in 4 KiB
//! chunks. A rebuild folds the delta into a segment and starts a smaller one.

use std::sync::Arc;

use crate::codec::{StoredItem, StoredUser};

/// One changed record: the sequence number of the write and the new row (`None` = deleted).
#[derive(Debug, Clone)]
pub struct Entry<T> {
    /// Write sequence number (monotonic per store).
    pub seq: u64,
    /// New contents, or `None` for a tombstone.
    pub row: Option<Arc<T>>,
}

const CHUNK_WORDS: usize = 512;
const CHUNK_BITS: usize = CHUNK_WORDS * 64;

/// A bitset whose clone shares 4 KiB chunks; setting a bit copies one chunk at most.
#[derive(Debug, Clone, Default)]
pub struct CowBits {
    chunks: Vec<Option<Arc<[u64; CHUNK_WORDS]>>>,
}

impl CowBits {
    /// Set bit `i`.
    pub fn set(&mut self, i: u32) {
        let i = i as usize;
        let c = i / CHUNK_BITS;
        if self.chunks.len() <= c {
            self.chunks.resize(c + 1, None);
        }
        let chunk = self.chunks[c].get_or_insert_with(|| Arc::new([0; CHUNK_WORDS]));
        let w = (i % CHUNK_BITS) / 64;
        Arc::make_mut(chunk)[w] |= 1 << (i % 64);
    }

    /// Test bit `i`.
    #[inline]
    pub fn get(&self, i: u32) -> bool {
        let i = i as usize;
        match self.chunks.get(i / CHUNK_BITS) {
            Some(Some(ch)) => ch[(i % CHUNK_BITS) / 64] >> (i % 64) & 1 == 1,
            _ => false,
        }
    }
}

/// Records, names and tags changed since the segment. `item_names`/`user_names`/`tags` hold
/// only names the segment does not know, so a look-up checks the delta first, then the segment.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    /// Changed items by dense id.
    pub items: imbl::HashMap<u32, Entry<StoredItem>>,
    /// Changed users by dense id.
    pub users: imbl::HashMap<u32, Entry<StoredUser>>,
    /// Item names new since the segment.
    pub item_names: imbl::HashMap<Arc<str>, u32>,
    /// User names new since the segment.
    pub user_names: imbl::HashMap<Arc<str>, u32>,
    /// Tag names new since the segment, name → id.
    pub tags: imbl::HashMap<Arc<str>, u32>,
    /// Tag names new since the segment, id → name.
    pub tag_names: imbl::HashMap<u32, Arc<str>>,
    /// Bit set for every item id whose segment row is overridden by `items`.
    pub item_shadow: CowBits,
    /// Bit set for every user id whose segment row is overridden by `users`.
    pub user_shadow: CowBits,
}

impl Delta {
    /// Number of changed records (what the rebuild threshold counts).
    pub fn changed(&self) -> usize {
        self.items.len() + self.users.len()
    }

    /// Record an item write.
    pub fn put_item(&mut self, id: u32, seq: u64, row: Option<Arc<StoredItem>>) {
        self.items.insert(id, Entry { seq, row });
        self.item_shadow.set(id);
    }

    /// Record a user write.
    pub fn put_user(&mut self, id: u32, seq: u64, row: Option<Arc<StoredUser>>) {
        self.users.insert(id, Entry { seq, row });
        self.user_shadow.set(id);
    }

    /// The part of this delta written after `seq`, re-based onto a segment that has
    /// `tag_slots` tags and knows every name written up to `seq`.
    pub fn since(&self, seq: u64, tag_slots: u32) -> Delta {
        let mut d = Delta::default();
        for (id, e) in self.items.iter().filter(|(_, e)| e.seq > seq) {
            d.put_item(*id, e.seq, e.row.clone());
        }
        for (id, e) in self.users.iter().filter(|(_, e)| e.seq > seq) {
            d.put_user(*id, e.seq, e.row.clone());
        }
        // Keep a name mapping only if its record changed after `seq`; older ones are now in
        // the new segment's dictionaries.
        d.item_names = self
            .item_names
            .iter()
            .filter(|(_, id)| d.items.contains_key(id))
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        d.user_names = self
            .user_names
            .iter()
            .filter(|(_, id)| d.users.contains_key(id))
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        d.tags = self
            .tags
            .iter()
            .filter(|(_, id)| **id >= tag_slots)
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        d.tag_names = self
            .tag_names
            .iter()
            .filter(|(id, _)| **id >= tag_slots)
            .map(|(i, n)| (*i, n.clone()))
            .collect();
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cow_bits_clone_is_independent() {
        let mut a = CowBits::default();
        a.set(3);
        a.set(100_000);
        let mut b = a.clone();
        b.set(4);
        assert!(a.get(3) && a.get(100_000) && !a.get(4));
        assert!(b.get(3) && b.get(4) && b.get(100_000));
        assert!(!b.get(u32::MAX));
    }
}
