//! Typed relations: **substitutes** ("instead of this") and **complements** ("goes with this").
//!
//! A product page wants substitutes: the items a shopper weighs against this one. The cart and
//! the receipt want complements: what completes the purchase. A list that mixes them loses on
//! both pages (a second kettle in the cart, a descaler on the kettle's page), so each scenario
//! keeps to one kind and every result says which kind it is and on what evidence
//! ([`Reason::Substitute`], [`Reason::Complement`]).
//!
//! **Substitutes of A.** Candidates: A's [`POOL`] strongest viewed-together partners (counted
//! in A's newest [`VIEWED_NEWEST`] sessions, and its bought-together counts in A's newest
//! [`BOUGHT_NEWEST`] baskets: a best seller's every session and basket cost milliseconds
//! at 1M items, and what shoppers compare it with *now* is what the page wants), and A's
//! nearest items by tag cosine: its neighbour list when the segment keeps one, otherwise (when
//! viewing gave fewer than `2k` candidates) the [`POOL`] nearest within its category, or the
//! whole catalogue if it has none. That search is the cost of a cold item in a catalogue too
//! large for neighbour lists (bench/RESULTS.md). A candidate must share A's category, have
//! been viewed with it, or match its tags by at least [`MIN_TAG_MATCH`]. Score:
//! `(t + v) / 2 / (1 + x)`, with `t` the tag cosine, `v` the viewed-together association scaled
//! to 0..1 by the strongest candidate's, and `x = max(0, shrunk bought-together lift − 1)`:
//! items bought together more often than chance go *with* each other, not instead of each
//! other. On a shop that records no views (Online Retail) `v` is 0 and tags lead.
//!
//! **Complements of A.** Candidates: A's bought-together partners. Score: their
//! association ([`crate::activity::cooccur::association`]) × `(1 − t)` (a close tag match is a
//! variant, not a complement) × [`SAME_CATEGORY`] when both share a category.
//!
//! Not built: "bought after" (the same customer's next basket) as complement evidence; the
//! basket index keeps owners, so it can be added when a shop's data shows it helps.

use std::collections::HashMap;

use super::rank::{Cand, Cands};
use super::Reason;
use crate::activity::cooccur::{shrunk_lift, supports, top_partners, top_partners_newest};
use crate::activity::{Pair, Relation};
use crate::error::Result;
use crate::search::{self, Filter, Query};
use crate::snapshot::{Row, Snapshot};

/// Candidates taken from each source.
pub const POOL: usize = 200;
/// The newest sessions of A that substitutes counts viewed-together partners in. Above it the
/// figures cover these sessions and the reason says so; every MovieLens film and every
/// Online Retail item is viewed in fewer, so there they cover every session.
pub const VIEWED_NEWEST: usize = 1_000;
/// The newest baskets of A that substitutes counts bought-together partners in (the penalty
/// for being bought *with* A), as [`VIEWED_NEWEST`] for sessions. Online Retail's best seller
/// is in 1,978 baskets, so there every basket counts.
pub const BOUGHT_NEWEST: usize = 5_000;
/// What a complement in A's own category keeps of its score.
pub const SAME_CATEGORY: f32 = 0.3;
/// A substitute needs some sign that it does the same job: A's category, a session where both
/// were viewed, or at least this tag match. Without the rule, items sharing only a price band
/// (Online Retail's "Bank Charges" for a cake stand) filled the tail.
pub const MIN_TAG_MATCH: f32 = 0.5;

/// Tag cosine between `item` (named `name`) and each of `ids`.
fn tag_matches(snap: &Snapshot, name: &str, ids: &[u32]) -> Result<HashMap<u32, f32>> {
    let q = Query::similar_to(name).k(ids.len().clamp(1, search::MAX_K));
    let mut out = HashMap::new();
    for chunk in ids.chunks(search::MAX_K) {
        out.extend(search::score_ids_only(snap, &q, chunk)?);
    }
    Ok(out)
}

fn category(snap: &Snapshot, id: u32) -> Option<String> {
    let c = match snap.item_row(id)? {
        Row::Delta(r) => r.category.clone(),
        Row::Segment(i) => snap.seg().items.category_of(i).to_string(),
    };
    (!c.is_empty()).then_some(c)
}

/// Items that could replace `item` (dense id `id`); `excluded` sorted.
pub(crate) fn substitutes(
    snap: &Snapshot,
    ask: &super::Ask,
    name: &str,
    id: u32,
    excluded: &[u32],
) -> Result<Cands> {
    let act = &snap.activity;
    let own = category(snap, id);
    // A's newest VIEWED_NEWEST sessions, not all of them: a best seller was viewed in hundreds
    // of thousands, and the walk over every one was most of this scenario's time (the reason
    // says how many were counted when it is not all of them).
    let viewed = top_partners_newest(act, Relation::Viewed, id, POOL, VIEWED_NEWEST, |b| {
        excluded.binary_search(&b).is_err()
    });
    // Tag-similar candidates. From the segment's neighbour list when it has one (microseconds);
    // otherwise only when viewing gave fewer than twice the answer, from A's own category (what
    // does the same job, and a search that scores one category's items, not the catalogue).
    let listed = snap
        .segment
        .neighbours()
        .filter(|n| n.covers(id))
        .map(|n| n.per_item());
    let search = match listed {
        Some(per_item) => Some(Query::similar_to(name).k(per_item)),
        None if viewed.len() < 2 * ask.k => {
            let q = Query::similar_to(name).k(POOL);
            Some(match &own {
                Some(c) => q.filter(Filter::new().category(c.clone())),
                None => q,
            })
        }
        None => None,
    };
    let similar = match search {
        Some(q) => search::run_excluding(snap, &q, excluded)?.0,
        None => Vec::new(),
    };
    let mut tags: HashMap<u32, f32> = similar
        .iter()
        .filter_map(|r| Some((snap.item_id(&r.id)?, r.score)))
        .collect();
    let missing: Vec<u32> = viewed
        .iter()
        .map(|(b, _)| *b)
        .filter(|b| !tags.contains_key(b))
        .collect();
    tags.extend(tag_matches(snap, name, &missing)?);
    let best_viewed = viewed.first().map_or(0.0, |(_, p)| p.score);
    // Sessions counted: all of A's when it has no more than the window, else the newest ones.
    let kept = act.baskets(Relation::Viewed).count(id);
    let window = (kept as usize > VIEWED_NEWEST).then_some(crate::narrow::u32_from(VIEWED_NEWEST));
    let viewed: HashMap<u32, Pair> = viewed.into_iter().collect();
    let exact = act.complete(Relation::Viewed, id) && act.complete(Relation::Bought, id);
    let bought_kept = act.baskets(Relation::Bought).count(id) as usize;
    let bought_window =
        (bought_kept > BOUGHT_NEWEST).then_some(crate::narrow::u32_from(BOUGHT_NEWEST));
    // Lift over the baskets counted: A's share is out of the window when there is one.
    let n_a = match bought_window {
        Some(w) => w,
        None => act.holding(Relation::Bought, id),
    };
    let total = act.total(Relation::Bought);
    let mut out = Cands::new();
    let mut candidates: Vec<u32> = tags.keys().chain(viewed.keys()).copied().collect();
    candidates.sort_unstable();
    candidates.dedup();
    // One walk of A's baskets gives every candidate's bought-together count.
    let bought: HashMap<u32, u32> = candidates
        .iter()
        .copied()
        .zip(supports(
            act,
            Relation::Bought,
            id,
            &candidates,
            BOUGHT_NEWEST,
        ))
        .collect();
    for b in candidates {
        if excluded.binary_search(&b).is_ok() {
            continue;
        }
        let t = tags.get(&b).copied().unwrap_or(0.0);
        let v = viewed.get(&b).copied();
        let kin = v.is_some() || t >= MIN_TAG_MATCH || (own.is_some() && own == category(snap, b));
        if !kin {
            continue;
        }
        let v_norm = match v {
            Some(p) if best_viewed > 0.0 => p.score / best_viewed,
            _ => 0.0,
        };
        let bought = bought.get(&b).copied().unwrap_or(0);
        let excess =
            (shrunk_lift(bought, n_a, act.holding(Relation::Bought, b), total) - 1.0).max(0.0);
        let score = (t + v_norm) / 2.0 / (1.0 + crate::narrow::f32_from(excess));
        if score <= 0.0 {
            continue;
        }
        out.insert(
            b,
            Cand {
                score,
                matched: Vec::new(),
                reasons: vec![Reason::Substitute {
                    with: name.to_string(),
                    tag_match: t,
                    viewed_together: v.map_or(0, |p| p.support),
                    viewed_newest: window,
                    bought_together: bought,
                    bought_newest: bought_window,
                    exact,
                }],
            },
        );
    }
    Ok(out)
}

/// Items that complete `item` (dense id `id`); `excluded` sorted.
pub(crate) fn complements(snap: &Snapshot, name: &str, id: u32, excluded: &[u32]) -> Result<Cands> {
    let act = &snap.activity;
    // Tag matches only for the strongest few: a best seller's partners run to thousands.
    let bought = top_partners(act, Relation::Bought, id, 2 * POOL, |b| {
        excluded.binary_search(&b).is_err()
    });
    let ids: Vec<u32> = bought.iter().map(|(b, _)| *b).collect();
    let tags = tag_matches(snap, name, &ids)?;
    let own = category(snap, id);
    let mut out = Cands::new();
    for (b, p) in bought {
        let t = tags.get(&b).copied().unwrap_or(0.0);
        let same = own.is_some() && own == category(snap, b);
        let score = p.score * (1.0 - t).max(0.0) * if same { SAME_CATEGORY } else { 1.0 };
        if score <= 0.0 {
            continue;
        }
        out.insert(
            b,
            Cand {
                score,
                matched: Vec::new(),
                reasons: vec![Reason::Complement {
                    with: name.to_string(),
                    bought_together: p.support,
                    exact: p.exact,
                    confidence: p.confidence,
                    lift: p.lift,
                    tag_match: t,
                }],
            },
        );
    }
    Ok(out)
}
