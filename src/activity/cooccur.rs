//! Bounded co-occurrence lists: for one item, the items seen with it most often.
//!
//! A list holds at most `capacity` entries and is maintained with the *space-saving* algorithm
//! (Metwally et al., 2005): a new pair that finds the list full takes over the entry with the
//! smallest count and inherits that count (+1), remembering it as `err`. So every pair whose
//! true count exceeds `total / capacity` is guaranteed to be in the list, and a count is never
//! under-reported (it may be over-reported by at most `err`). The list never grows, whatever
//! the traffic.

use serde::{Deserialize, Serialize};

/// One entry: the co-occurring item, how often (an upper bound), and the possible overcount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoEntry {
    /// Dense id of the other item.
    pub item: u32,
    /// Times seen together (space-saving upper bound).
    pub count: u32,
    /// How much of `count` may be inherited from an evicted entry.
    pub err: u32,
}

/// The co-occurrence list of one item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoList {
    /// Entries in no particular order (lists are short; a scan beats a map).
    pub entries: Vec<CoEntry>,
}

impl CoList {
    /// The count recorded for `item`, if it is in the list.
    pub fn count(&self, item: u32) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.item == item)
            .map(|e| e.count)
    }

    /// Count one more co-occurrence with `item`, keeping at most `capacity` entries.
    pub fn add(&mut self, item: u32, capacity: usize) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.item == item) {
            e.count = e.count.saturating_add(1);
            return;
        }
        if self.entries.len() < capacity {
            self.entries.push(CoEntry {
                item,
                count: 1,
                err: 0,
            });
            return;
        }
        // Space-saving: the smallest entry (ties: the lowest id, so replays are deterministic)
        // gives way and its count becomes the newcomer's error bound.
        if let Some(min) = self.entries.iter_mut().min_by_key(|e| (e.count, e.item)) {
            *min = CoEntry {
                item,
                count: min.count.saturating_add(1),
                err: min.count,
            };
        }
    }

    /// Take back one co-occurrence with `item` (a deleted user's). Entries reaching zero go.
    pub fn remove(&mut self, item: u32) {
        if let Some(at) = self.entries.iter().position(|e| e.item == item) {
            let e = &mut self.entries[at];
            e.count = e.count.saturating_sub(1);
            e.err = e.err.min(e.count);
            if e.count == 0 {
                self.entries.swap_remove(at);
            }
        }
    }
}

/// The association measures of "b given a".
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pair {
    /// Baskets (or sessions) holding both.
    pub support: u32,
    /// P(b | a): support / baskets holding a.
    pub confidence: f32,
    /// P(b | a) / P(b): above 1 means "more often together than chance".
    pub lift: f32,
    /// support / sqrt(n_a · n_b): the cosine of the two items' basket sets, the ranking score.
    /// It rewards strong pairs without favouring either best-sellers (as confidence does) or
    /// one-off rarities (as lift does).
    pub cosine: f32,
}

impl Pair {
    /// Measures from the pair count and the per-item and total basket counts.
    pub fn new(support: u32, n_a: u32, n_b: u32, total: u64) -> Pair {
        // Counts can be inconsistent after space-saving overcounts or a deleted user; clamp so
        // the measures stay finite and in range.
        let s = f64::from(support);
        let na = f64::from(n_a.max(support).max(1));
        let nb = f64::from(n_b.max(support).max(1));
        let total = (total as f64).max(na).max(nb);
        Pair {
            support,
            confidence: (s / na) as f32,
            lift: (s * total / (na * nb)) as f32,
            cosine: (s / (na * nb).sqrt()) as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequent_pairs_survive_a_full_list() {
        let mut l = CoList::default();
        for round in 0..200u32 {
            l.add(1, 4); // frequent
            l.add(100 + round, 4); // a stream of one-offs
        }
        assert_eq!(l.entries.len(), 4);
        assert_eq!(l.count(1), Some(200));
    }

    #[test]
    fn remove_undoes_add() {
        let mut l = CoList::default();
        l.add(7, 8);
        l.add(7, 8);
        l.remove(7);
        assert_eq!(l.count(7), Some(1));
        l.remove(7);
        assert_eq!(l.count(7), None);
        l.remove(7); // absent: no-op
    }

    #[test]
    fn measures() {
        let p = Pair::new(10, 20, 40, 1000);
        assert!((p.confidence - 0.5).abs() < 1e-6);
        assert!((p.lift - 12.5).abs() < 1e-4);
        assert!((p.cosine - 10.0 / 800f32.sqrt()).abs() < 1e-6);
        let odd = Pair::new(5, 0, 0, 0);
        assert!(odd.lift.is_finite() && odd.confidence <= 1.0);
    }
}
