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
    /// The ranking measure, `association`.
    pub score: f32,
}

impl Pair {
    /// The measures of a pair seen together `support` times, where `n_a` and `n_b` baskets hold
    /// each item and `total` baskets exist.
    pub fn new(support: u32, n_a: u32, n_b: u32, total: u64, exact: bool) -> Pair {
        // Counts can only disagree in a damaged store; clamp so the measures stay finite.
        let s = f64::from(support);
        let (n_a, n_b) = (n_a.max(support).max(1), n_b.max(support).max(1));
        let total_n = total.max(u64::from(n_a)).max(u64::from(n_b));
        let (na, nb, total) = (f64::from(n_a), f64::from(n_b), total_n as f64);
        Pair {
            support,
            exact,
            confidence: crate::narrow::f32_from(s / na),
            lift: crate::narrow::f32_from(s * total / (na * nb)),
            score: association(support, n_a, n_b, total_n),
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
    crate::narrow::f32_from(s / (na * nb).sqrt() * s / (s + SUPPORT_SHRINK))
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
    /// Partner counts of the item being walked, by item id.
    counts: Vec<u32>,
    /// Ids with a non-zero count.
    touched: Vec<u32>,
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

/// Every partner of `a` under `rel` with the exact number of kept baskets holding both, in no
/// particular order. One step per line of `a`'s baskets, into a dense per-thread array.
pub(crate) fn counts(act: &Activity, rel: Relation, a: u32) -> Vec<(u32, u32)> {
    newest_counts(act, rel, a, usize::MAX)
}

/// [`counts`] over `a`'s newest `newest` kept baskets only.
fn newest_counts(act: &Activity, rel: Relation, a: u32, newest: usize) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    SCRATCH.with_borrow_mut(|sc| {
        let mut sparse: HashMap<u32, u32> = HashMap::new();
        act.baskets(rel).newest_baskets_of(a, newest, |basket| {
            for &j in basket {
                let at = j as usize;
                if j == a {
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
        out.reserve(sc.touched.len() + sparse.len());
        for j in sc.touched.drain(..) {
            out.push((j, std::mem::take(&mut sc.counts[j as usize])));
        }
        out.extend(sparse);
    });
    out
}

/// How many of `a`'s newest `newest` kept baskets (`usize::MAX`: all) hold each of `others`
/// too (in their order): one walk of `a`'s baskets, cheaper than an intersection per item
/// when `a` is a best seller.
pub(crate) fn supports(
    act: &Activity,
    rel: Relation,
    a: u32,
    others: &[u32],
    newest: usize,
) -> Vec<u32> {
    let mut out = Vec::with_capacity(others.len());
    SCRATCH.with_borrow_mut(|sc| {
        let mut sparse: HashMap<u32, u32> = HashMap::new();
        act.baskets(rel).newest_baskets_of(a, newest, |basket| {
            for &j in basket {
                let at = j as usize;
                if j == a {
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
        for &b in others {
            out.push(if (b as usize) < DENSE_IDS {
                sc.counts.get(b as usize).copied().unwrap_or(0)
            } else {
                sparse.get(&b).copied().unwrap_or(0)
            });
        }
        for j in sc.touched.drain(..) {
            sc.counts[j as usize] = 0;
        }
    });
    out
}

/// The `n` partners of `a` under `rel` that `allow` lets through with the highest
/// [`association`], best first (ties: lower id first), with their exact pair measures.
///
/// Exact, without a pair for every partner: a best seller has a hundred thousand partners and
/// most share one or two baskets with it. Since `n_b ≥ s`, a partner seen in `s` baskets scores
/// at most `association(s, n_a, s)`, which grows with `s`; partners are taken in falling `s`
/// (a counting sort) and the walk stops once that bound is below the `n`-th best score. So
/// `allow` and the count look-ups run only for the partners that could still make the cut.
pub(crate) fn top_partners(
    act: &Activity,
    rel: Relation,
    a: u32,
    n: usize,
    allow: impl FnMut(u32) -> bool,
) -> Vec<(u32, Pair)> {
    top_partners_newest(act, rel, a, n, usize::MAX, allow)
}

/// [`top_partners`] over `a`'s newest `newest` kept baskets only: when `a` is in more, its
/// side of every measure is that window (`n_a = newest`), as in [`seeded_partners`].
pub(crate) fn top_partners_newest(
    act: &Activity,
    rel: Relation,
    a: u32,
    n: usize,
    newest: usize,
    mut allow: impl FnMut(u32) -> bool,
) -> Vec<(u32, Pair)> {
    let counts = newest_counts(act, rel, a, newest);
    if n == 0 || counts.is_empty() {
        return Vec::new();
    }
    // Counting sort by support, falling.
    let top = counts.iter().map(|c| c.1).max().unwrap_or(0) as usize;
    let mut starts = vec![0u32; top + 2];
    for &(_, s) in &counts {
        starts[top - s as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut sorted = vec![(0u32, 0u32); counts.len()];
    for &(b, s) in &counts {
        let at = &mut starts[top - s as usize];
        sorted[*at as usize] = (b, s);
        *at += 1;
    }
    let windowed = act.baskets(rel).count(a) as usize > newest;
    let n_a = if windowed {
        crate::narrow::u32_from(newest)
    } else {
        act.holding(rel, a)
    };
    let (total, exact) = (act.total(rel), act.complete(rel, a));
    let order =
        |x: &(u32, Pair), y: &(u32, Pair)| y.1.score.total_cmp(&x.1.score).then(x.0.cmp(&y.0));
    let mut best: Vec<(u32, Pair)> = Vec::with_capacity(n + 1);
    // The n-th best score so far, once there are n.
    let mut cut = f32::NEG_INFINITY;
    let mut last_s = u32::MAX;
    for (b, s) in sorted {
        if s != last_s {
            last_s = s;
            // A hair above the bound, so rounding can only keep a partner, never drop one.
            let bound = association(s, n_a, s, total) * (1.0 + 1e-6);
            if best.len() >= n && bound < cut {
                break;
            }
        }
        if !allow(b) {
            continue;
        }
        let p = Pair::new(s, n_a, act.holding(rel, b), total, exact);
        if best.len() >= n && p.score < cut {
            continue;
        }
        best.push((b, p));
        if best.len() >= 2 * n {
            best.select_nth_unstable_by(n - 1, order);
            best.truncate(n);
            cut = best.iter().map(|x| x.1.score).fold(f32::INFINITY, f32::min);
        }
    }
    best.sort_unstable_by(order);
    best.truncate(n);
    best
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
            let walked = crate::narrow::u32_from((kept as usize).min(newest));
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

    fn shop() -> Activity {
        let mut act = Activity::default();
        for (id, items) in [[1u32, 2, 3], [1, 2, 9], [2, 3, 1], [4, 5, 6]]
            .iter()
            .enumerate()
        {
            for &i in items {
                act.bought.add(id as u64, 0, i);
            }
        }
        act
    }

    #[test]
    fn partner_counts_are_exact() {
        let act = shop();
        let mut got = counts(&act, Relation::Bought, 1);
        got.sort_unstable();
        assert_eq!(got, vec![(2, 3), (3, 2), (9, 1)]);
        assert!(counts(&act, Relation::Bought, 7).is_empty());
    }

    #[test]
    fn top_partners_equal_ranking_every_pair() {
        // Item 0 with partners of every support from 1 to 40, each partner in a different
        // number of baskets of its own, so scores and supports disagree in order.
        let mut act = Activity::default();
        let mut id = 0u64;
        for p in 1..=40u32 {
            for _ in 0..(41 - p) {
                act.bought.add(id, 0, 0);
                act.bought.add(id, 0, p);
                id += 1;
            }
            for _ in 0..(p * p % 23) {
                act.bought.add(id, 0, p);
                id += 1;
            }
        }
        for b in 0..=40 {
            let n = act.bought.count(b);
            act.items.insert(
                b,
                std::sync::Arc::new(crate::activity::ItemStats {
                    baskets: n,
                    ..Default::default()
                }),
            );
        }
        act.totals.baskets = id;
        let mut all = act.partners(Relation::Bought, 0);
        all.sort_by(|x, y| y.1.score.total_cmp(&x.1.score).then(x.0.cmp(&y.0)));
        for n in [1, 3, 10, 40, 100] {
            let top = top_partners(&act, Relation::Bought, 0, n, |_| true);
            assert_eq!(
                top,
                all.iter().take(n).copied().collect::<Vec<_>>(),
                "n = {n}"
            );
        }
        let odd = top_partners(&act, Relation::Bought, 0, 5, |b| b % 2 == 1);
        let want: Vec<_> = all
            .iter()
            .filter(|x| x.0 % 2 == 1)
            .take(5)
            .copied()
            .collect();
        assert_eq!(odd, want);
    }
}
