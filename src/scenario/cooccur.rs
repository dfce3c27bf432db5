//! Scenarios answered from co-occurrence: bought together, viewed together, after-purchase
//! follow-ups, and the co-occurrence part of the `for-user` and `cart` blends. Every figure
//! comes from the exact counts of [`crate::activity::cooccur`], and candidates are ranked by
//! its association measure.

use super::rank::{add_reason, offer, Cands};
use super::Reason;
use crate::activity::{Pair, Relation};
use crate::snapshot::Snapshot;

/// The reason naming `with` as the item a candidate goes with under `rel`.
pub(crate) fn reason(snap: &Snapshot, rel: Relation, with: u32, p: &Pair) -> Reason {
    let with = snap.item_name(with).unwrap_or_default();
    match rel {
        Relation::Bought => Reason::BoughtTogether {
            with,
            support: p.support,
            exact: p.exact,
            newest: None,
            confidence: p.confidence,
            lift: p.lift,
        },
        Relation::Viewed => Reason::ViewedTogether {
            with,
            support: p.support,
            exact: p.exact,
            newest: None,
            confidence: p.confidence,
            lift: p.lift,
        },
    }
}

/// Items co-occurring with `item` under `rel`, scored by their association with it. Only the
/// `keep` strongest that `ask`'s filter allows become candidates (all of them when the ask has
/// boosts, which can lift any): a best seller has thousands of partners, and scoring and
/// explaining each cost more than counting them (see
/// [`crate::activity::cooccur::top_partners`]).
pub(crate) fn related(
    snap: &Snapshot,
    ask: &super::Ask,
    item: u32,
    rel: Relation,
    excluded: &[u32],
) -> Cands {
    let pairs = if ask.boosts.is_empty() {
        let mut filter = crate::search::filter::Compiled::new(snap, &ask.filter, None);
        filter.exclude_all(excluded);
        crate::activity::cooccur::top_partners(&snap.activity, rel, item, keep(ask), |b| {
            filter.allows(snap, b)
        })
    } else {
        snap.activity.partners(rel, item)
    };
    let mut out = Cands::new();
    for (b, p) in pairs {
        offer(&mut out, b, p.score, reason(snap, rel, item, &p));
    }
    out
}

/// How many candidates a scenario keeps for the ranking tail: enough for MMR (which picks from
/// four times `k`) and for a plugin's re-ranking depth.
pub(crate) fn keep(ask: &super::Ask) -> usize {
    (ask.k * 4).max(crate::plugin::PluginLimits::default().rerank_depth.max(200))
}

/// Baskets (or sessions) of each seed a blend walks, newest first. Chosen on the real data sets with
/// `recostore eval` (bench/RESULTS.md): 10, 15 and 20 were within 0.002 of each other in
/// recall@10 on both, all baskets ranked worse on Online Retail, and 10 is the cheapest.
pub const NEWEST_BASKETS: usize = 10;
/// Candidates a blend keeps from one relation: measured, 500 lost 0.001 of recall@10 on both
/// data sets against 1,000.
pub(crate) const KEEP: usize = 1_000;

/// Add the `rel` partners of each weighted seed to `out`, scored by the seeds' newest baskets
/// and explained by each partner's strongest pair over them.
pub(crate) fn add_partners(snap: &Snapshot, seeds: &[(u32, f32)], rel: Relation, out: &mut Cands) {
    let act = &snap.activity;
    for e in crate::activity::cooccur::seeded_partners(act, rel, seeds, NEWEST_BASKETS, KEEP) {
        let scope = (!e.all).then_some(e.baskets);
        let pair = Pair::new(
            e.support,
            e.baskets,
            act.holding(rel, e.item),
            act.total(rel),
            true,
        );
        let with = snap.item_name(e.seed).unwrap_or_default();
        let reason = match rel {
            Relation::Bought => Reason::BoughtTogether {
                with,
                support: e.support,
                exact: true,
                newest: scope,
                confidence: pair.confidence,
                lift: pair.lift,
            },
            Relation::Viewed => Reason::ViewedTogether {
                with,
                support: e.support,
                exact: true,
                newest: scope,
                confidence: pair.confidence,
                lift: pair.lift,
            },
        };
        let c = out.entry(e.item).or_default();
        c.score += e.score;
        add_reason(c, reason);
    }
}

/// Follow-ups to a basket (`after-purchase`): what is bought with its items, then, below every
/// one of those, what is viewed with them, so a basket of rarely-bought items still gets
/// answers without browsing evidence outranking buying evidence on a receipt. (`cart` also
/// weighs the shopper's history: [`super::personal::cart`].)
pub(crate) fn basket(snap: &Snapshot, items: &[u32]) -> Cands {
    let seeds: Vec<(u32, f32)> = items.iter().map(|&s| (s, 1.0)).collect();
    let mut out = Cands::new();
    add_partners(snap, &seeds, Relation::Bought, &mut out);
    let mut viewed = Cands::new();
    add_partners(snap, &seeds, Relation::Viewed, &mut viewed);
    viewed.retain(|id, _| !out.contains_key(id));
    let floor = out.values().map(|c| c.score).fold(f32::INFINITY, f32::min);
    let top = viewed.values().map(|c| c.score).fold(0.0f32, f32::max);
    // Scale the viewed-only candidates into (0, floor / 2]: their order is kept, and each
    // stays below the weakest bought-together one.
    let scale = if floor.is_finite() && top > 0.0 {
        floor / (2.0 * top)
    } else {
        1.0
    };
    for (id, mut c) in viewed {
        c.score *= scale;
        out.insert(id, c);
    }
    out
}
