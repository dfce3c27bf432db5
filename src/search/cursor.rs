//! A query tag's cursor over its posting list in the pruned engine ([`super::pruned`]): where
//! it stands, and the bounds it gives on a window of item ids and on one item.

use super::kernels::seek;
use super::score::{Similarity, Term};
use crate::segment::format::BLOCK_LEN;
use crate::segment::postings::PostingList;

/// One query tag's position in its list.
pub(super) struct Cursor<'a> {
    pub(super) list: PostingList<'a>,
    pub(super) term: Term,
    /// Next posting to read.
    pub(super) pos: usize,
    /// First block that may still overlap the current window.
    pub(super) blk: usize,
    /// Bound for the current window, and postings it may have there.
    pub(super) ub: f32,
    /// Cosine only: the query factor times the largest *raw* weight in the window. Divided by
    /// one item's own norm it bounds that item's share, often tighter than `ub`, which must
    /// allow for the smallest norm in the window.
    pub(super) ub_raw: f32,
    pub(super) count: usize,
    /// What reading the list in the current window costs, in postings: its count, or a
    /// fraction of the window for a list with a dense column in a swept window.
    pub(super) cost: usize,
    pub(super) essential: bool,
}

impl Cursor<'_> {
    #[inline]
    pub(super) fn contribution(&self, sim: Similarity, w: f32) -> f32 {
        match sim {
            Similarity::Cosine | Similarity::Dot => self.term.factor * w,
            Similarity::Jaccard => self.term.idf * self.term.factor.min(w),
        }
    }

    /// An upper bound on what this list adds to item `id` (0 if the item is not on it), and
    /// the list's position moved to `id`. A list with a dense column answers from the column
    /// (its quantised weight rounds up, so the bound holds) without moving through postings.
    #[inline]
    pub(super) fn bound_item(&mut self, sim: Similarity, id: u32) -> f32 {
        if let Some(col) = &self.list.column {
            return match col.q.get(id as usize) {
                Some(&q) if q > 0 => self.contribution(sim, f32::from(q) * col.scale),
                Some(_) => 0.0,
                None => self.contribution(sim, f32::INFINITY),
            };
        }
        self.pos = seek(self.list.items, self.pos, id);
        if self
            .list
            .items
            .get(self.pos)
            .is_some_and(|v| v.to_native() == id)
        {
            self.contribution(sim, self.list.weights[self.pos].to_native())
        } else {
            0.0
        }
    }

    /// Bound this list's contribution in `[lo, hi)` and count the postings that may lie there.
    #[inline]
    pub(super) fn bound_window(&mut self, sim: Similarity, lo: u32, hi: u32, q_l1: f32) {
        let l = &self.list;
        let nblk = l.block_last.len();
        // Windows move forward a little at a time, so gallop from the last block rather than
        // binary-search the whole rest of the list (a chain of cache misses per window).
        self.blk = seek(l.block_last, self.blk, lo);
        let maxima = match sim {
            Similarity::Cosine => l.block_max_cos,
            _ => l.block_max,
        };
        let mut m = 0.0f32;
        let mut m_raw = 0.0f32;
        let mut count = 0;
        let mut b = self.blk;
        while b < nblk {
            let first = b * BLOCK_LEN;
            if l.block_first[b].to_native() >= hi {
                break;
            }
            m = m.max(maxima[b].to_native());
            m_raw = m_raw.max(l.block_max[b].to_native());
            count += BLOCK_LEN.min(l.items.len() - first);
            if l.block_last[b].to_native() >= hi {
                break;
            }
            b += 1;
        }
        self.count = count;
        self.ub_raw = self.term.factor * m_raw;
        self.ub = match sim {
            Similarity::Cosine | Similarity::Dot => self.term.factor * m,
            Similarity::Jaccard if q_l1 > 0.0 => self.term.idf * self.term.factor.min(m) / q_l1,
            Similarity::Jaccard => 0.0,
        };
    }
}
