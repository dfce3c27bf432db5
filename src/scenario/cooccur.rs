//! Scenarios answered from co-occurrence: bought together, viewed together, cart cross-sell
//! and after-purchase follow-ups.

use super::rank::{offer, Cands};
use super::Reason;
use crate::activity::{Pair, Relation};
use crate::snapshot::Snapshot;

fn reason(snap: &Snapshot, rel: Relation, with: u32, p: &Pair) -> Reason {
    let with = snap.item_name(with).unwrap_or_default();
    match rel {
        Relation::Bought => Reason::BoughtTogether {
            with,
            support: p.support,
            confidence: p.confidence,
            lift: p.lift,
        },
        Relation::Viewed => Reason::ViewedTogether {
            with,
            support: p.support,
            confidence: p.confidence,
            lift: p.lift,
        },
    }
}

/// Shrinks the score of thinly supported pairs: a pair seen once between two items seen once
/// has cosine 1, the same as a pair seen in a hundred baskets. Multiplying by
/// `support / (support + SUPPORT_SHRINK)` (as item-item collaborative filtering does) lets
/// evidence count.
const SUPPORT_SHRINK: f32 = 2.0;

/// The ranking score of a pair: its cosine, shrunk by its support.
pub(crate) fn pair_score(p: &Pair) -> f32 {
    let s = p.support as f32;
    p.cosine * s / (s + SUPPORT_SHRINK)
}

/// Add the `rel` partners of each of `sources` (weighted) to `out`, scored by [`pair_score`].
pub(crate) fn add_partners(
    snap: &Snapshot,
    sources: &[(u32, f32)],
    rel: Relation,
    out: &mut Cands,
) {
    let act = &snap.activity;
    for &(src, w) in sources {
        let Some(list) = act.list(rel, src) else {
            continue;
        };
        for e in &list.entries {
            let p = act.pair_from_count(rel, src, e.item, e.count);
            offer(out, e.item, w * pair_score(&p), reason(snap, rel, src, &p));
        }
    }
}

/// Items co-occurring under `rel` with any of `sources`, each scored by its summed cosine.
pub(crate) fn related(snap: &Snapshot, sources: &[u32], rel: Relation) -> Cands {
    let mut out = Cands::new();
    let weighted: Vec<(u32, f32)> = sources.iter().map(|&s| (s, 1.0)).collect();
    add_partners(snap, &weighted, rel, &mut out);
    out
}

/// Weight of viewed-together evidence relative to bought-together in `after-purchase`.
const VIEWED_WEIGHT: f32 = 0.25;

/// Follow-ups to a basket (`after-purchase`): what is bought with its items, plus (weaker)
/// what is viewed with them, so a basket of rarely-bought items still gets answers. (`cart`
/// also weighs the shopper's history: [`super::personal::cart`].)
pub(crate) fn basket(snap: &Snapshot, items: &[u32]) -> Cands {
    let mut out = related(snap, items, Relation::Bought);
    let weighted: Vec<(u32, f32)> = items.iter().map(|&s| (s, VIEWED_WEIGHT)).collect();
    add_partners(snap, &weighted, Relation::Viewed, &mut out);
    out
}
