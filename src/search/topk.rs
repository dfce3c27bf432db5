//! The bounded top-k heap, its total order, and the threshold shared between scan threads.
//!
//! **Tie order.** Results are ordered by score, highest first; equal scores are ordered by
//! dense item id, lowest first (ids are handed out in creation order, so among equals the
//! older item wins). Every path, including the brute-force oracle, uses this one order, so
//! the top-k is a well-defined set even with ties at the cut.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

/// A scored item. `a > b` means `a` ranks before `b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Hit {
    pub score: f32,
    pub id: u32,
}

impl Eq for Hit {}

impl Ord for Hit {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.id.cmp(&self.id))
    }
}

impl PartialOrd for Hit {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Keeps the best `k` hits seen. The worst kept hit sits on top of a min-heap.
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Hit>>,
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
        }
    }

    /// Offer a hit; returns whether it was kept.
    #[inline]
    pub fn offer(&mut self, id: u32, score: f32) -> bool {
        let hit = Hit { score, id };
        if self.heap.len() < self.k {
            self.heap.push(Reverse(hit));
            return true;
        }
        match self.heap.peek() {
            Some(Reverse(worst)) if hit > *worst => {
                self.heap.pop();
                self.heap.push(Reverse(hit));
                true
            }
            _ => false,
        }
    }

    /// The worst kept hit, once `k` are kept.
    #[inline]
    pub fn worst_if_full(&self) -> Option<Hit> {
        if self.heap.len() >= self.k {
            self.heap.peek().map(|r| r.0)
        } else {
            None
        }
    }

    /// The score an item must reach to have a chance (0 until full).
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.worst_if_full().map_or(0.0, |h| h.score)
    }

    /// Fold another heap's hits in.
    pub fn merge(&mut self, other: TopK) {
        for Reverse(h) in other.heap {
            self.offer(h.id, h.score);
        }
    }

    /// Hits best first.
    pub fn into_sorted(self) -> Vec<Hit> {
        let mut v: Vec<Hit> = self.heap.into_iter().map(|r| r.0).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }
}

/// A score floor shared between threads scanning disjoint id ranges of one query: once any of
/// them holds `k` hits at or above `s`, no item below `s` can make the global top-k.
/// Scores are never negative, and for non-negative floats the IEEE bit pattern orders like the
/// value, so an atomic `fetch_max` on the bits is a lock-free monotone maximum.
#[derive(Debug, Default)]
pub(crate) struct Floor(AtomicU32);

impl Floor {
    #[inline]
    pub fn get(&self) -> f32 {
        f32::from_bits(self.0.load(AtomicOrdering::Relaxed))
    }

    #[inline]
    pub fn raise(&self, s: f32) {
        if s > 0.0 {
            self.0.fetch_max(s.to_bits(), AtomicOrdering::Relaxed);
        }
    }
}

/// Relative slack on upper bounds. Bounds and exact scores are summed in different orders in
/// `f32`; with at most a few thousand terms the difference is far below 1e-3 relative, so an
/// item is skipped only if even its slackened bound is below the threshold.
pub(crate) const SLACK: f32 = 1e-3;

/// Whether an item whose score is at most `bound` may be skipped under threshold `theta`.
#[inline]
pub(crate) fn prunable(bound: f32, theta: f32) -> bool {
    bound * (1.0 + SLACK) < theta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_lower_id() {
        let mut t = TopK::new(2);
        t.offer(7, 1.0);
        t.offer(3, 1.0);
        t.offer(5, 1.0);
        t.offer(9, 0.5);
        let ids: Vec<u32> = t.into_sorted().iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![3, 5]);
    }

    #[test]
    fn floor_only_rises() {
        let f = Floor::default();
        f.raise(0.5);
        f.raise(0.25);
        assert_eq!(f.get(), 0.5);
        f.raise(2.0);
        assert_eq!(f.get(), 2.0);
    }
}
