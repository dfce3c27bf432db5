//! Liked by the same people: item-item cosine over whole user histories.
//!
//! Co-occurrence (`activity::cooccur`) pairs items inside one basket or one session window. It
//! misses taste that spans sessions: two films rated by the same people months apart, or the
//! staples a shop's regulars reorder on different days. This relation compares two items by
//! the users whose history ([`UserState::seen`](crate::activity::UserState)) holds them, the
//! item-item cosine of classic collaborative filtering (and of `implicit`'s
//! `CosineRecommender`), with each user's vote damped by how much they hold ([`vote`]):
//! `Σ_{u ∈ U_i ∩ U_j} v_u / sqrt(Σ_{u ∈ U_i} v_u · Σ_{u ∈ U_j} v_u)`, `v_u = 1/sqrt(|history
//! of u|)`. Equal votes would make it `|U_i ∩ U_j| / sqrt(|U_i| · |U_j|)`. Each item keeps its
//! best [`PER_ITEM`] partners.
//!
//! It is derived data. The first `for-user` or `cart` query that needs it builds it from the
//! snapshot's behaviour state (`Σ |history|²` steps, with histories capped at [`MAX_HISTORY`]);
//! the store keeps it for later queries until a user is forgotten or the event count has
//! grown by an eighth ([`History::serves`]). Building is lock-free like every read: two
//! queries may both build one, and the later store wins.

use std::sync::Arc;

use super::rank::{offer, Cands};
use super::Reason;
use crate::activity::Activity;
use crate::snapshot::Snapshot;

/// Partners kept per item (implicit's item-item models keep 20 by default; more costs little
/// and lets a long history reach further).
pub(crate) const PER_ITEM: usize = 50;
/// At most this many items of one user's history count, so one heavy user costs at most
/// `MAX_HISTORY²` steps.
pub(crate) const MAX_HISTORY: usize = 2_000;
/// How much one user's co-holding counts towards the similarity of two items: the inverse
/// square root of the length of their history. A wholesaler who has bought three thousand
/// items "links" every pair among them, and as plain cosine counts it that is as strong a
/// sign as a shopper who bought just those two; damping by activity (the inverse user
/// frequency of Breese et al., in the `1/sqrt` form) keeps broad histories from flattening
/// the relation. Measured in bench/RESULTS.md: on Online Retail it lifts both `for-user` and
/// `cart`, on MovieLens it lifts `cart` recall and costs `for-user` a little.
fn vote(history_len: usize) -> f64 {
    1.0 / (history_len.max(1) as f64).sqrt()
}

/// Events that may arrive after a build before the next query rebuilds, whatever the size.
const MIN_REBUILD_EVENTS: u64 = 1_024;

/// One partner of an item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Partner {
    /// The partner's dense item id.
    pub item: u32,
    /// Cosine of the two items' user sets, each user's vote damped by [`vote`].
    pub cosine: f32,
    /// Users whose history holds both.
    pub shared: u32,
}

/// The best partners of every item, in CSR form.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// `Totals::events` of the state it was built from.
    events: u64,
    /// `Activity::forgotten` of that state: a forgotten user invalidates it at once.
    forgotten: u64,
    /// `items + 1` offsets into `partners`.
    offsets: Vec<u32>,
    /// Partners of each item, best first (cosine descending, then id ascending).
    partners: Vec<Partner>,
}

impl History {
    /// Build from every user's history in `act`.
    pub(crate) fn build(act: &Activity) -> History {
        let histories: Vec<&[u32]> = act
            .users()
            .map(|(_, s)| &s.seen[..s.seen.len().min(MAX_HISTORY)])
            .filter(|h| !h.is_empty())
            .collect();
        let bound = histories
            .iter()
            .flat_map(|h| h.iter())
            .max()
            .map_or(0, |&m| m as usize + 1);
        // Item → the users (indices into `histories`) that hold it.
        let mut holders = vec![0u32; bound + 1];
        for h in &histories {
            for &i in h.iter() {
                holders[i as usize + 1] += 1;
            }
        }
        let users_of: Vec<u32> = holders[1..].to_vec();
        // A user's vote on a pair weighs 1/sqrt(history length): see `vote`.
        let votes: Vec<f64> = histories.iter().map(|h| vote(h.len())).collect();
        // Squared norm of each item's weighted user vector.
        let mut norm2 = vec![0f64; bound];
        for (u, h) in histories.iter().enumerate() {
            for &i in h.iter() {
                norm2[i as usize] += votes[u];
            }
        }
        let mut dot = vec![0f64; bound];
        for i in 1..holders.len() {
            holders[i] += holders[i - 1];
        }
        let mut fill = holders.clone();
        let mut by_item = vec![0u32; holders[bound] as usize];
        for (u, h) in histories.iter().enumerate() {
            for &i in h.iter() {
                by_item[fill[i as usize] as usize] = crate::narrow::u32_from(u);
                fill[i as usize] += 1;
            }
        }
        let mut offsets = Vec::with_capacity(bound + 1);
        let mut partners = Vec::new();
        let mut shared = vec![0u32; bound];
        let mut touched: Vec<u32> = Vec::new();
        let mut best: Vec<Partner> = Vec::new();
        for i in 0..bound {
            offsets.push(crate::narrow::u32_from(partners.len()));
            let n_i = users_of[i];
            if n_i == 0 {
                continue;
            }
            for &u in &by_item[holders[i] as usize..holders[i + 1] as usize] {
                for &j in histories[u as usize] {
                    if j as usize == i {
                        continue;
                    }
                    let c = &mut shared[j as usize];
                    if *c == 0 {
                        touched.push(j);
                    }
                    *c += 1;
                    dot[j as usize] += votes[u as usize];
                }
            }
            best.clear();
            for &j in &touched {
                let both = std::mem::take(&mut shared[j as usize]);
                let d = std::mem::take(&mut dot[j as usize]);
                best.push(Partner {
                    item: j,
                    cosine: crate::narrow::f32_from(d / (norm2[i] * norm2[j as usize]).sqrt()),
                    shared: both,
                });
            }
            touched.clear();
            let order =
                |a: &Partner, b: &Partner| b.cosine.total_cmp(&a.cosine).then(a.item.cmp(&b.item));
            if best.len() > PER_ITEM {
                best.select_nth_unstable_by(PER_ITEM - 1, order);
                best.truncate(PER_ITEM);
            }
            best.sort_unstable_by(order);
            partners.extend_from_slice(&best);
        }
        offsets.push(crate::narrow::u32_from(partners.len()));
        History {
            events: act.totals().events,
            forgotten: act.forgotten,
            offsets,
            partners,
        }
    }

    /// Whether this relation may answer for `act`: no user forgotten since it was built, and
    /// not more than an eighth (or [`MIN_REBUILD_EVENTS`]) new events.
    pub(crate) fn serves(&self, act: &Activity) -> bool {
        let now = act.totals().events;
        act.forgotten == self.forgotten
            && now >= self.events
            && now - self.events <= self.events / 8 + MIN_REBUILD_EVENTS
    }

    /// Add the partners of each of `seeds` (weighted) to `out`, scored by weight × cosine and
    /// explained by the seed with the strongest cosine.
    pub(crate) fn add_partners(&self, snap: &Snapshot, seeds: &[(u32, f32)], out: &mut Cands) {
        for &(src, w) in seeds {
            let partners = self.partners(src);
            if partners.is_empty() {
                continue;
            }
            let with = snap.item_name(src).unwrap_or_default();
            for p in partners {
                let reason = Reason::LikedTogether {
                    with: with.clone(),
                    shared: p.shared,
                    similarity: p.cosine,
                };
                offer(out, p.item, w * p.cosine, reason);
            }
        }
    }

    /// The partners of `item`, best first.
    pub(crate) fn partners(&self, item: u32) -> &[Partner] {
        let i = item as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => self.partners.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

impl super::Derivations {
    /// The history relation for `snap`: the kept one if it still serves, else a new one, kept
    /// for later queries and built once however many queries want it at the same time.
    pub(crate) fn history(&self, snap: &Snapshot) -> Arc<History> {
        self.history.get_or_build(
            |h| h.serves(&snap.activity),
            || History::build(&snap.activity),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(users: &[&[u32]]) -> History {
        let mut act = Activity::default();
        for (u, seen) in users.iter().enumerate() {
            let s = crate::activity::UserState {
                seen: seen.to_vec(),
                ..Default::default()
            };
            act.users.insert(u as u32, Arc::new(s));
        }
        History::build(&act)
    }

    /// The similarity of two items is the damped votes of their shared users over the root of
    /// each item's damped votes, and partners come best first.
    #[test]
    fn damped_cosine_over_user_sets() {
        let h = build(&[&[0, 1, 2], &[0, 1], &[0, 2], &[1, 3]]);
        // Item 0: users {0,1,2}; item 1: {0,1,3}; item 2: {0,2}; item 3: {3}.
        let (v3, v2) = (1.0 / 3f32.sqrt(), 1.0 / 2f32.sqrt());
        let (n0, n1, n2) = (v3 + 2.0 * v2, v3 + 2.0 * v2, v3 + v2);
        let p0 = h.partners(0);
        assert_eq!(p0.len(), 2);
        assert_eq!((p0[0].item, p0[0].shared), (2, 2));
        assert!((p0[0].cosine - (v3 + v2) / (n0 * n2).sqrt()).abs() < 1e-6);
        assert_eq!((p0[1].item, p0[1].shared), (1, 2));
        assert!((p0[1].cosine - (v3 + v2) / (n0 * n1).sqrt()).abs() < 1e-6);
        let p3 = h.partners(3);
        assert_eq!(p3.len(), 1);
        assert_eq!(p3[0].item, 1);
        assert!(h.partners(99).is_empty());
    }

    /// A pair linked by a shopper who holds two items outranks one linked by a wholesaler
    /// who holds a hundred; with equal votes they would tie.
    #[test]
    fn a_broad_history_links_pairs_more_weakly() {
        let wholesaler: Vec<u32> = std::iter::once(0).chain(10..109).collect();
        let h = build(&[&[0, 1], &wholesaler]);
        // Item 0 is held by both; item 1 only by the shopper, item 10 only by the wholesaler.
        let p0 = h.partners(0);
        let rank = |item: u32| p0.iter().position(|p| p.item == item);
        assert_eq!(rank(1), Some(0), "{p0:?}");
        assert!(rank(10).is_some_and(|r| r > 0), "{p0:?}");
        let of = |item: u32| p0.iter().find(|p| p.item == item).map_or(0.0, |p| p.cosine);
        assert!(of(1) > 2.0 * of(10), "{} vs {}", of(1), of(10));
    }
}
