//! How strongly two items go together under one relation: the exact support counted from the
//! basket index ([`super::baskets`]), confidence and lift, and the measure scenarios rank by.
//!
//! **Exact, or labelled a bound.** `support(a, b)` is the number of kept baskets holding both.
//! While the index holds every basket `a` was ever in ([`super::Activity::complete`]) it is the
//! exact figure for the events the store holds; once `Config::cooccurrence_lines` has made
//! the index drop old baskets it is a lower bound, and [`Pair::exact`] says so. Confidence and
//! lift are computed from the support and the all-time counts, so they are then lower bounds
//! too (each grows with the support).
//!
//! **The ranking measure** is [`association`]: the cosine of the two items' basket sets,
//! shrunk by the support (see there).

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Serialize;

use super::{Activity, Relation};

/// The association of "b given a" under one relation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pair {
    /// Baskets (or sessions) holding both: exact when [`Pair::exact`], a lower bound otherwise.
    pub support: u32,
    /// Whether `support` (and with it confidence and lift) is the exact figure. False only
    /// when the index has dropped some of `a`'s baskets (`Config::cooccurrence_lines`).
    pub exact: bool,
    /// P(b | a): support / baskets holding a.
    pub confidence: f32,
    /// P(b | a) / P(b): above 1 means "more often together than chance".
    pub lift: f32,
    /// The ranking measure, [`association`].
    pub score: f32,
}

impl Pair {
    /// The measures of a pair seen together `support` times, where `n_a` and `n_b` baskets hold
    /// each item and `total` baskets exist.
    pub fn new(support: u32, n_a: u32, n_b: u32, total: u64, exact: bool) -> Pair {
        // Counts can only disagree in a damaged store; clamp so the measures stay finite.
        let s = f64::from(support);
        let na = f64::from(n_a.max(support).max(1));
        let nb = f64::from(n_b.max(support).max(1));
        let total = (total as f64).max(na).max(nb);
        Pair {
            support,
            exact,
            confidence: (s / na) as f32,
            lift: (s * total / (na * nb)) as f32,
            score: association(support, n_a, n_b, total as u64),
        }
    }
}

/// The support at which [`association`] keeps half of a pair's cosine.
pub const SUPPORT_SHRINK: f64 = 2.0;

/// The ranking measure of a pair: **the cosine of the two items' basket sets, shrunk by the
/// support**, `s / sqrt(n_a · n_b) · s / (s + 2)` ([`SUPPORT_SHRINK`]).
///
/// The cosine neither favours best sellers (as confidence does) nor one-offs (as lift does:
/// one basket shared by two items bought once has lift in the thousands); the shrink factor
/// (the significance weighting of item-based collaborative filtering) pulls thinly supported
/// pairs towards 0, so a pair seen once between rarities scores a third of its cosine and one
/// seen in a hundred baskets keeps 98% of it. Chosen on the real data sets with
/// `recostore eval --scenario cart` and `for-user` against shrunk lift (a Gamma–Poisson
/// posterior mean of lift, times `√s`), plain counts, and lift (bench/RESULTS.md).
pub fn association(support: u32, n_a: u32, n_b: u32, _total: u64) -> f32 {
    if support == 0 {
        return 0.0;
    }
    let s = f64::from(support);
    let na = f64::from(n_a.max(support));
    let nb = f64::from(n_b.max(support));
    (s / (na * nb).sqrt() * s / (s + SUPPORT_SHRINK)) as f32
}

/// Pseudo-baskets of the prior in [`shrunk_lift`].
pub const PRIOR_BASKETS: f64 = 4.0;

/// Lift shrunk towards 1: `(s + m) / (e + m)`, `e = n_a·n_b/N` the support expected by chance
/// and `m` = [`PRIOR_BASKETS`] pseudo-baskets at lift 1 (a Gamma–Poisson posterior mean, as in
/// DuMouchel's screening of drug pairs). A pair seen once between rarities gets `5/4`, one seen
/// in hundreds of baskets almost its full lift. It says whether two items are bought together
/// *more than chance*, which is what tells complements from substitutes
/// ([`crate::scenario::relations`]).
pub fn shrunk_lift(support: u32, n_a: u32, n_b: u32, total: u64) -> f64 {
    let s = f64::from(support);
    let expected =
        f64::from(n_a.max(support)) * f64::from(n_b.max(support)) / (total.max(1) as f64);
    (s + PRIOR_BASKETS) / (expected + PRIOR_BASKETS)
}

/// Item ids above this are counted in a map rather than the dense per-thread arrays, so a
/// damaged id cannot make the arrays huge.
const DENSE_IDS: usize = 1 << 26;

/// Per-thread scratch of the partner walk, reset to zeros after each use.
#[derive(Default)]
struct Scratch {
    /// Partner counts of the seed being walked, by item id.
    counts: Vec<u32>,
    /// Ids with a non-zero count.
    touched: Vec<u32>,
    /// `holding + 1` of items looked up during one call (0: not looked up yet).
    holding: Vec<u32>,
    /// Ids with a `holding` entry.
    held: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Grow `v` so that index `at` exists (it stays below [`DENSE_IDS`]).
fn reach(v: &mut Vec<u32>, at: usize) {
    if at >= v.len() {
        v.resize((at + 1).next_power_of_two().min(DENSE_IDS), 0);
    }
}

/// For each of `seeds` in turn, every partner under `rel` with its pair measures (exact
/// counts, [`Pair::new`]), handed to `f(seed, partners)` in no particular order; `f` may
/// reorder or drain the vector. Walking a seed costs one step per line of its baskets; the
/// counts of baskets holding each partner are looked up once per call, not once per pair.
pub(crate) fn each_partners(
    act: &Activity,
    rel: Relation,
    seeds: &[u32],
    mut f: impl FnMut(u32, &mut Vec<(u32, Pair)>),
) {
    let index = act.baskets(rel);
    let total = act.total(rel);
    let mut pairs = Vec::new();
    SCRATCH.with_borrow_mut(|sc| {
        for &seed in seeds {
            let mut sparse: HashMap<u32, u32> = HashMap::new();
            index.baskets_of(seed, |basket| {
                for &j in basket {
                    let at = j as usize;
                    if j == seed {
                        continue;
                    }
                    if at >= DENSE_IDS {
                        *sparse.entry(j).or_default() += 1;
                        continue;
                    }
                    reach(&mut sc.counts, at);
                    if sc.counts[at] == 0 {
                        sc.touched.push(j);
                    }
                    sc.counts[at] += 1;
                }
            });
            let (n_a, exact) = (act.holding(rel, seed), act.complete(rel, seed));
            pairs.clear();
            let mut holding = |b: u32| -> u32 {
                let at = b as usize;
                if at >= DENSE_IDS {
                    return act.holding(rel, b);
                }
                reach(&mut sc.holding, at);
                if sc.holding[at] == 0 {
                    sc.holding[at] = act.holding(rel, b).saturating_add(1);
                    sc.held.push(b);
                }
                sc.holding[at] - 1
            };
            for j in sc.touched.drain(..) {
                let s = std::mem::take(&mut sc.counts[j as usize]);
                pairs.push((j, Pair::new(s, n_a, holding(j), total, exact)));
            }
            for (j, s) in sparse {
                pairs.push((j, Pair::new(s, n_a, holding(j), total, exact)));
            }
            f(seed, &mut pairs);
        }
        for b in sc.held.drain(..) {
            sc.holding[b as usize] = 0;
        }
    });
}

/// One candidate of a weighted walk ([`seeded_partners`]): its summed score and the single
/// pair that explains it best.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Evidence {
    /// The candidate item.
    pub item: u32,
    /// Σ over seeds of `weight × pair score`.
    pub score: f32,
    /// The seed of its strongest pair.
    pub seed: u32,
    /// Baskets among `baskets` holding the seed and the candidate: exact.
    pub support: u32,
    /// How many of the seed's newest baskets were walked (all of them when the seed is in no
    /// more than the walk's limit).
    pub baskets: u32,
    /// Whether `baskets` are all the baskets the seed was ever in (see [`Pair::exact`]).
    pub all: bool,
}

/// Per-thread scratch of [`seeded_partners`], reset after each use.
#[derive(Default)]
struct Walk {
    counts: Vec<u32>,
    touched: Vec<u32>,
    score: Vec<f32>,
    /// Strength, seed, support and baskets of each candidate's best pair.
    best: Vec<(f32, u32, u32, u32, bool)>,
    seen: Vec<u32>,
    holding: Vec<u32>,
}

thread_local! {
    static WALK: RefCell<Walk> = RefCell::new(Walk::default());
}

/// The partners of weighted `seeds` under `rel`, for the blends (`for-user`, `cart`,
/// `after-purchase`): each seed's newest `newest` baskets are walked, so a popular seed costs
/// no more than a rare one and what goes with it *now* counts, and a partner found in `c` of
/// the `r` baskets walked scores `Σ weight × association(c, r, n_b)` ([`association`] over the
/// window). Returns the `keep` best, best first (ties: lower id), each with the exact figures
/// of its strongest pair over the baskets walked.
pub(crate) fn seeded_partners(
    act: &Activity,
    rel: Relation,
    seeds: &[(u32, f32)],
    newest: usize,
    keep: usize,
) -> Vec<Evidence> {
    let index = act.baskets(rel);
    let total = act.total(rel);
    WALK.with_borrow_mut(|w| {
        for &(seed, weight) in seeds {
            let held = act.holding(rel, seed);
            let kept = index.count(seed);
            let walked = (kept as usize).min(newest) as u32;
            let all = walked >= held;
            index.newest_baskets_of(seed, newest, |basket| {
                for &j in basket {
                    let at = j as usize;
                    if j == seed || at >= DENSE_IDS {
                        continue;
                    }
                    reach(&mut w.counts, at);
                    if w.counts[at] == 0 {
                        w.touched.push(j);
                    }
                    w.counts[at] += 1;
                }
            });
            for j in w.touched.drain(..) {
                let at = j as usize;
                let c = std::mem::take(&mut w.counts[at]);
                if at >= w.score.len() {
                    let len = w.counts.len();
                    w.score.resize(len, 0.0);
                    w.best.resize(len, (0.0, 0, 0, 0, false));
                    w.holding.resize(len, 0);
                }
                if w.holding[at] == 0 {
                    w.holding[at] = act.holding(rel, j).saturating_add(1);
                    w.seen.push(j);
                }
                let n_b = w.holding[at] - 1;
                w.score[at] += weight * association(c, walked, n_b, total);
                // The same order as `Reason::strength`: support, then confidence.
                let strength = c as f32 + c as f32 / walked.max(1) as f32;
                if strength > w.best[at].0 {
                    w.best[at] = (strength, seed, c, walked, all);
                }
            }
        }
        let mut out: Vec<Evidence> = w
            .seen
            .drain(..)
            .map(|j| {
                let at = j as usize;
                let (_, seed, support, baskets, all) = std::mem::take(&mut w.best[at]);
                w.holding[at] = 0;
                Evidence {
                    item: j,
                    score: std::mem::take(&mut w.score[at]),
                    seed,
                    support,
                    baskets,
                    all,
                }
            })
            .filter(|e| e.score > 0.0)
            .collect();
        let order =
            |a: &Evidence, b: &Evidence| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item));
        if out.len() > keep && keep > 0 {
            out.select_nth_unstable_by(keep - 1, order);
            out.truncate(keep);
        }
        out.sort_unstable_by(order);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures() {
        let p = Pair::new(10, 20, 40, 1000, true);
        assert!((p.confidence - 0.5).abs() < 1e-6);
        assert!((p.lift - 12.5).abs() < 1e-4);
        let odd = Pair::new(5, 0, 0, 0, true);
        assert!(odd.lift.is_finite() && odd.confidence <= 1.0);
    }

    #[test]
    fn a_one_off_ranks_below_a_strong_frequent_pair() {
        // One shared basket with an item bought once (lift 9,268) against 457 baskets shared
        // with an item in 1,100 (lift 3.9), for the same item in 1,978 baskets.
        let one_off = association(1, 1978, 1, 18_536);
        let strong = association(457, 1978, 1_100, 18_536);
        assert!(strong > 10.0 * one_off, "{strong} vs {one_off}");
        // Among equal supports, the partner in fewer baskets ranks higher.
        assert!(association(20, 100, 100, 10_000) > association(20, 100, 1_000, 10_000));
        // More evidence at the same cosine ranks higher.
        assert!(association(50, 100, 100, 10_000) > association(1, 2, 2, 10_000));
        assert_eq!(association(0, 5, 5, 10), 0.0);
        // Shrunk lift: a one-off between rarities is barely above chance.
        assert!(shrunk_lift(1, 1, 1, 18_536) < 1.3);
        assert!(shrunk_lift(457, 1978, 1_100, 18_536) > 3.0);
    }

    #[test]
    fn partner_counts_are_exact() {
        let mut act = Activity::default();
        for (id, items) in [[1u32, 2, 3], [1, 2, 9], [2, 3, 1], [4, 5, 6]]
            .iter()
            .enumerate()
        {
            for &i in items {
                act.bought.add(id as u64, 0, i);
            }
        }
        let mut got = Vec::new();
        each_partners(&act, Relation::Bought, &[1, 7, 2], |seed, pairs| {
            let mut counts: Vec<(u32, u32)> = pairs.iter().map(|(b, p)| (*b, p.support)).collect();
            counts.sort_unstable();
            got.push((seed, counts));
        });
        assert_eq!(
            got,
            vec![
                (1, vec![(2, 3), (3, 2), (9, 1)]),
                (7, vec![]),
                (2, vec![(1, 3), (3, 2), (9, 1)]),
            ]
        );
    }
}
