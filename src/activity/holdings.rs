//! Each item's basket and session counts (`ItemStats::baskets`, `ItemStats::sessions`) in a
//! dense array by item id: what every pair measure needs for the partner's side (`n_b`).
//!
//! **Why a copy.** Ranking an item's partners looks up `n_b` for each of them: a thousand for
//! a typical item at 1M items, a hundred thousand for a best seller. Through the statistics map
//! each look-up is a walk down a hash trie and then a jump to the item's statistics, several
//! cache misses in a row; a profile of `substitutes` at 1M items put most of its time there.
//! Here it is one load from a page.
//!
//! **Copy on write.** The array is split into pages of [`PAGE`] items behind `Arc`s, and the
//! page table behind one more, so a snapshot's copy costs a pointer, and a batch that changes
//! some items copies the pages it touches (16 KiB each) and the table (8 bytes a page), not
//! the array.
//!
//! **Consistency.** It is derived state, never stored: [`Holdings::sync`] copies the counts
//! of the items a write batch touched before the batch is published, and
//! [`Holdings::from_items`] builds it on open. An id it does not cover (past its end, or a
//! slot of a page made for a neighbour) reads from the map ([`super::Activity::holding`]), so
//! an `Activity` built without it (tests, `eval`) is still right, only slower.

use std::sync::Arc;

use super::item::ItemStats;

/// Items per page.
pub(crate) const PAGE: usize = 4096;

/// Bought and viewed counts of one item.
type Pair = [u32; 2];

/// A slot never set: its page was made for a neighbour. It reads as "not covered", so an
/// array that was not built for every item (one grown only by the write path from an empty
/// start) sends such an item to the map instead of answering 0.
const UNSET: Pair = [u32::MAX, u32::MAX];

/// The counts by item id; see the module doc.
#[derive(Debug, Clone, Default)]
pub(crate) struct Holdings {
    pages: Arc<Vec<Arc<Vec<Pair>>>>,
}

impl Holdings {
    /// The counts of item `id` (`[bought, viewed]`), or `None` where the array does not
    /// cover it (past its end, or a slot never set).
    #[inline]
    pub(crate) fn get(&self, id: u32) -> Option<Pair> {
        let id = id as usize;
        let c = self.pages.get(id / PAGE)?.get(id % PAGE).copied()?;
        (c != UNSET).then_some(c)
    }

    /// Set item `id`'s counts, copying its page (and the table) if a snapshot shares them.
    pub(crate) fn set(&mut self, id: u32, counts: Pair) {
        let id = id as usize;
        let (page, slot) = (id / PAGE, id % PAGE);
        let pages = Arc::make_mut(&mut self.pages);
        if pages.len() <= page {
            pages.resize_with(page + 1, || Arc::new(vec![UNSET; PAGE]));
        }
        if let Some(p) = pages.get_mut(page) {
            if let Some(c) = Arc::make_mut(p).get_mut(slot) {
                *c = counts;
            }
        }
    }

    /// Copy the counts of `items` from `stats` (an item without statistics counts 0).
    pub(crate) fn sync<'a>(
        &mut self,
        items: impl IntoIterator<Item = &'a u32>,
        stats: &imbl::HashMap<u32, Arc<ItemStats>>,
    ) {
        for &id in items {
            // Saturated at one below the mark of an unset slot.
            let counts = stats.get(&id).map_or([0, 0], |s| {
                [s.baskets.min(u32::MAX - 1), s.sessions.min(u32::MAX - 1)]
            });
            self.set(id, counts);
        }
    }

    /// The array for every item of `stats` (on open).
    pub(crate) fn from_items(stats: &imbl::HashMap<u32, Arc<ItemStats>>) -> Holdings {
        let mut h = Holdings::default();
        h.sync(stats.keys(), stats);
        h
    }

    /// Heap bytes held (for the store's memory estimate).
    pub(crate) fn approx_bytes(&self) -> usize {
        self.pages.len() * (PAGE * std::mem::size_of::<Pair>() + 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_does_not_see_later_writes() {
        let mut a = Holdings::default();
        a.set(5, [1, 2]);
        a.set(3 * PAGE as u32 + 1, [7, 8]);
        let b = a.clone();
        a.set(5, [9, 9]);
        assert_eq!((a.get(5), b.get(5)), (Some([9, 9]), Some([1, 2])));
        assert_eq!(b.get(3 * PAGE as u32 + 1), Some([7, 8]));
        assert_eq!(b.get(4 * PAGE as u32), None, "past the array");
        assert_eq!(b.get(6), None, "inside a page, never set: not covered");
        a.set(6, [0, 0]);
        assert_eq!(a.get(6), Some([0, 0]), "set to 0 is covered");
    }
}
