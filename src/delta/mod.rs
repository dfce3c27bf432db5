//! The in-memory overlay of writes made since the current segment was built.
//!
//! Each write publishes a *new* `Delta` inside a new snapshot, so readers holding the old one
//! keep a consistent view. To make that cheap the maps are persistent (`imbl`, structural
//! sharing: clone is O(1), insert O(log n)) and the shadow bitsets are copy-on-write in 4 KiB
//! chunks. A rebuild folds the delta into a segment and starts a smaller one.
//!
//! An item write is one of two kinds, told apart against the segment when it is put here:
//!
//! * **re-tagged**: a new item, a deletion, or tags that differ from the segment's row. The
//!   segment's postings for it are stale, so queries score it from this delta (a scan whose
//!   cost grows with the number of such records; `Config::rebuild_threshold` bounds it).
//! * **attribute-only**: the item is live in the segment with exactly these tags, and only
//!   stock, price, title, category, members-only or creation time changed. Its postings are
//!   still right, so the segment's engine keeps finding and scoring it; filters and the
//!   ranking step read its attributes from here. A shop's stock and price updates therefore
//!   never slow a query and never call for a re-index.

use std::sync::Arc;

use crate::codec::{StoredItem, StoredUser};
use crate::segment::format::ArchivedItemTable;

pub mod file;
pub mod index;

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

    /// Clear bit `i`.
    pub fn clear(&mut self, i: u32) {
        let i = i as usize;
        if let Some(Some(chunk)) = self.chunks.get_mut(i / CHUNK_BITS) {
            let w = (i % CHUNK_BITS) / 64;
            if chunk[w] >> (i % 64) & 1 == 1 {
                Arc::make_mut(chunk)[w] &= !(1 << (i % 64));
            }
        }
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

/// A dense copy-on-write column indexed by item id: a clone shares its chunks, and setting a
/// value copies one chunk at most. Unset slots read as `T::default()`.
#[derive(Debug, Clone, Default)]
pub struct CowColumn<T: Copy + Default> {
    chunks: Vec<Option<Arc<[T; COLUMN_CHUNK]>>>,
}

const COLUMN_CHUNK: usize = 512;

impl<T: Copy + Default> CowColumn<T> {
    /// Set slot `i`.
    pub fn set(&mut self, i: u32, v: T) {
        let i = i as usize;
        let c = i / COLUMN_CHUNK;
        if self.chunks.len() <= c {
            self.chunks.resize(c + 1, None);
        }
        let chunk = self.chunks[c].get_or_insert_with(|| Arc::new([T::default(); COLUMN_CHUNK]));
        Arc::make_mut(chunk)[i % COLUMN_CHUNK] = v;
    }

    /// Read slot `i`.
    #[inline]
    pub fn get(&self, i: u32) -> T {
        let i = i as usize;
        match self.chunks.get(i / COLUMN_CHUNK) {
            Some(Some(ch)) => ch[i % COLUMN_CHUNK],
            _ => T::default(),
        }
    }
}

/// What filters read of an attribute-only item, kept densely so that the pruned engine's
/// check of a candidate costs an array read rather than a map look-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attrs {
    /// The new price.
    pub price: f32,
    /// The new stock.
    pub stock: u32,
    /// The segment's id for the new category, or [`UNKNOWN_CATEGORY`] when the segment's
    /// dictionary lacks the name (a filter then reads the row).
    pub category: u32,
}

/// [`Attrs::category`] of a category name the segment does not know.
pub const UNKNOWN_CATEGORY: u32 = u32::MAX;

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
    /// Bit set for every item id whose segment row is overridden by `items` (record reads,
    /// filters and ranking read the delta's row).
    pub item_shadow: CowBits,
    /// The re-tagged items among `items` (see the module note): the ones queries score from
    /// the delta. The rest of `items` are attribute-only.
    pub retagged: imbl::HashSet<u32>,
    /// Bit set for every id in `retagged`: the segment's postings for it are stale.
    pub retag_shadow: CowBits,
    /// The sequence number of each changed item's newest write, by id (0: none): what tells
    /// a run's slot current or stale with an array read.
    pub latest: CowColumn<u64>,
    /// The filtered attributes of every attribute-only item, by id.
    pub attrs: CowColumn<Attrs>,
    /// Attribute-only items whose category differs from the segment's: the segment's
    /// category lists miss them, so a filter that names categories checks these too.
    pub recategorised: imbl::HashSet<u32>,
    /// The index of re-tagged rows ([`index`]), oldest run first.
    pub runs: Vec<Arc<index::Run>>,
    /// The live re-tagged items whose current row is in no run: the ones a query scans.
    pub unindexed: imbl::HashSet<u32>,
    /// Bit set for every user id whose segment row is overridden by `users`.
    pub user_shadow: CowBits,
}

impl Delta {
    /// Every record the delta holds: what a rebuild folds.
    pub fn records(&self) -> usize {
        self.items.len() + self.users.len()
    }

    /// Records the delta re-indexes: re-tagged items (which queries scan) and changed users.
    pub fn changed(&self) -> usize {
        self.retagged.len() + self.users.len()
    }

    /// Attribute-only item records: they cost memory, not query time.
    pub fn overlaid(&self) -> usize {
        self.items.len() - self.retagged.len()
    }

    /// What `Config::rebuild_threshold` is compared with: the records the delta re-indexes,
    /// plus attribute-only records at a tenth of the weight, so that a store receiving only
    /// stock and price updates still folds them in eventually (they hold memory) but ten
    /// times less often than one whose tags change.
    pub fn pressure(&self) -> usize {
        self.changed() + self.overlaid() / ATTRIBUTE_WEIGHT
    }

    /// Record an item write over the segment table `seg`, and classify it (module note).
    pub fn put_item(
        &mut self,
        id: u32,
        seq: u64,
        row: Option<Arc<StoredItem>>,
        seg: &ArchivedItemTable,
    ) {
        let attribute_only = row
            .as_deref()
            .is_some_and(|r| seg.is_live(id) && same_tags(seg, id, &r.tags));
        let moved = attribute_only
            && row
                .as_deref()
                .is_some_and(|r| r.category != seg.category_of(id));
        if let Some(r) = row.as_deref().filter(|_| attribute_only) {
            let category = seg
                .categories
                .lookup(&r.category)
                .unwrap_or(UNKNOWN_CATEGORY);
            self.attrs.set(
                id,
                Attrs {
                    price: r.price,
                    stock: r.stock,
                    category,
                },
            );
        }
        let live = row.is_some();
        self.items.insert(id, Entry { seq, row });
        self.item_shadow.set(id);
        self.latest.set(id, seq);
        if attribute_only {
            if self.retagged.remove(&id).is_some() {
                self.retag_shadow.clear(id);
            }
            self.unindexed.remove(&id);
        } else {
            self.retagged.insert(id);
            self.retag_shadow.set(id);
            // A deletion leaves nothing to score or index: the shadow bit is all it needs.
            if live {
                self.unindexed.insert(id);
            } else {
                self.unindexed.remove(&id);
            }
        }
        if moved {
            self.recategorised.insert(id);
        } else {
            self.recategorised.remove(&id);
        }
    }

    /// Publish a flush of the delta's index planned on a delta with the same runs as this
    /// one: the runs after `keep` give way to the new run, and each row it holds that is still
    /// current leaves the rows to scan. Returns `false` (and changes nothing) if the runs
    /// changed since the plan.
    pub fn apply_flush(&mut self, planned: &[Arc<index::Run>], f: index::Flush) -> bool {
        let same = planned.len() == self.runs.len()
            && planned
                .iter()
                .zip(&self.runs)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if !same {
            return false;
        }
        self.runs.truncate(f.keep);
        self.runs.push(f.run);
        for (id, seq) in f.indexed {
            if self.items.get(&id).is_some_and(|e| e.seq == seq) {
                self.unindexed.remove(&id);
            }
        }
        true
    }

    /// Record a user write.
    pub fn put_user(&mut self, id: u32, seq: u64, row: Option<Arc<StoredUser>>) {
        self.users.insert(id, Entry { seq, row });
        self.user_shadow.set(id);
    }

    /// The part of this delta written after `seq`, re-based onto a segment whose item table
    /// is `seg`, which has `tag_slots` tags and knows every name written up to `seq`. Items are
    /// classified again against the new segment.
    pub fn since(&self, seq: u64, tag_slots: u32, seg: &ArchivedItemTable) -> Delta {
        let mut d = Delta::default();
        for (id, e) in self.items.iter().filter(|(_, e)| e.seq > seq) {
            d.put_item(*id, e.seq, e.row.clone(), seg);
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

/// How many attribute-only records weigh as much as one re-indexed record in
/// [`Delta::pressure`].
pub const ATTRIBUTE_WEIGHT: usize = 10;

/// Are `tags` exactly the segment's row for item `id` (same ids, bit-identical weights)? Then
/// the segment's postings, norm and score for the item are what the row would give.
fn same_tags(seg: &ArchivedItemTable, id: u32, tags: &[(u32, f32)]) -> bool {
    let (ids, weights) = seg.forward.row(id);
    ids.len() == tags.len()
        && weights.len() == tags.len()
        && ids
            .iter()
            .zip(weights)
            .zip(tags)
            .all(|((t, w), &(tag, weight))| {
                t.to_native() == tag && w.to_native().to_bits() == weight.to_bits()
            })
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
        b.clear(3);
        b.clear(7);
        b.clear(u32::MAX);
        assert!(a.get(3) && !b.get(3) && b.get(4));
    }

    #[test]
    fn cow_column_clone_is_independent() {
        let mut a: CowColumn<u64> = CowColumn::default();
        a.set(5, 50);
        a.set(70_000, 7);
        let mut b = a.clone();
        b.set(5, 51);
        assert_eq!((a.get(5), a.get(70_000), a.get(6)), (50, 7, 0));
        assert_eq!((b.get(5), b.get(70_000)), (51, 7));
        assert_eq!(b.get(u32::MAX), 0);
    }
}
