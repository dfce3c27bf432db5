//! Scenarios about a person: the home page blend (`for-user`), cart cross-sell (the basket
//! read as the newest part of the shopper's history), and the tag profile `for-user` and
//! `users-like` ([`super::users_like`]) are built on.

use super::rank::{add_reason, Cand, Cands};
use super::{catalogue, cooccur, Ask, Reason, Scenario};
use crate::activity::Relation;
use crate::config::Config;
use crate::error::Result;
use crate::search::{self, Query, Recommendation, Target, MAX_K};
use crate::snapshot::{Row, Snapshot};

/// How many of the user's most recent items seed the co-occurrence part of `for-user`.
const SEED_ITEMS: usize = 50;
/// At most this many co-occurrence candidates are re-scored against the profile.
const RESCORE_LIMIT: usize = 500;
/// How many items of the user's older history (beyond the recent seeds) also seed it.
const HISTORY_SEEDS: usize = 200;
/// What each of those counts (the newest recent seed counts 1).
const HISTORY_WEIGHT: f32 = 0.3;
/// Each older moment of the user's history counts this much less than the one after it. A
/// moment is one timestamp: the lines of one invoice, or a burst of ratings sent together,
/// count the same, because nothing in the data says which of them came "last". Decaying by
/// position instead gave the 30th line of a basket a fifth of the first's weight. Chosen on
/// both real data sets (bench/RESULTS.md, "Choice of the seed weights").
const SEED_DECAY: f32 = 0.8;
/// Blend weights of `for-user`: co-occurrence, tag profile, popularity. Each part is scaled to
/// a maximum of 1 first, so the weights are the parts' relative say.
const W_COOCCUR: f32 = 1.0;
const W_PROFILE: f32 = 1.0;
const W_POPULAR: f32 = 1.0;
/// Popularity's weight for a user with no history: below the profile's, so the explicit tags
/// an app gave a new user lead and what is popular fills in after them.
const W_POPULAR_COLD: f32 = 0.5;
/// Popularity's weight in `cart`, beside the basket's and the history's parts (each scaled to
/// 1, weighted 1 and [`W_HISTORY`]): what is popular now breaks the ties of thin co-occurrence
/// evidence. Measured in bench/RESULTS.md: on Online Retail it lifts cart at every held-out
/// fraction; on MovieLens 0.5 keeps it level at 10% and 20% and costs a little at 30%, while
/// 0.7 and more cost it everywhere.
const W_POPULAR_CART: f32 = 0.5;
/// With at least this many co-occurrence candidates, the profile part re-scores candidates
/// instead of searching the catalogue.
const MIN_COOCCUR: usize = 20;
/// Viewed-together evidence counts this much of bought-together in the blend.
const W_VIEWED: f32 = 0.5;
/// Blend weight of liked-by-the-same-people ([`super::history`]).
const W_HISTORY: f32 = 2.0;

/// A user's tag profile: the tags the app set plus those derived from behaviour (decayed to
/// the store's clock), sorted by tag id.
pub(crate) fn profile(snap: &Snapshot, cfg: &Config, user: u32) -> Vec<(u32, f32)> {
    let explicit = match snap.user_row(user) {
        Some(Row::Delta(r)) => r.tags.clone(),
        Some(Row::Segment(i)) => snap.seg().users.forward.row_vec(i),
        None => return Vec::new(),
    };
    let derived = snap.derived_tags(user, cfg.user_half_life_secs());
    crate::sparse::merge_sum(&explicit, &derived, 1.0).collect()
}

fn names(snap: &Snapshot, v: &[(u32, f32)]) -> Vec<(String, f32)> {
    v.iter()
        .filter_map(|&(t, w)| Some((snap.tag_name(t)?.to_string(), w)))
        .collect()
}

/// `similar` and `profile` through the similarity engine, with the scenario options applied.
pub(crate) fn similarity(
    snap: &Snapshot,
    ask: &Ask,
    excluded: &[u32],
    demoted: &super::rank::Demoted,
    plug: Option<super::rank::Plug<'_>>,
) -> Result<(Vec<Recommendation>, Option<crate::plugin::Fault>)> {
    let target = match &ask.scenario {
        Scenario::Similar { item } => Target::Item(item.clone()),
        Scenario::Profile { tags } => Target::Profile(tags.clone()),
        _ => return Ok((Vec::new(), None)),
    };
    let reranked = ask.diversity.is_some()
        || !ask.boosts.is_empty()
        || ask.members_first
        || !demoted.is_empty();
    let k = if let Some(p) = &plug {
        p.cfg.plugins.rerank_depth.max(ask.k).min(MAX_K)
    } else if reranked {
        (ask.k * 4).clamp(50, MAX_K)
    } else {
        ask.k
    };
    let q = Query {
        target,
        k,
        ..Query::similar_to("")
    }
    .filter(ask.filter.clone());
    let (recs, _) = search::run_excluding(snap, &q, excluded)?;
    if !reranked && plug.is_none() {
        return Ok((recs, None));
    }
    let mut cands = Cands::new();
    for r in recs {
        if let Some(id) = snap.item_id(&r.id) {
            cands.insert(
                id,
                Cand {
                    score: r.score,
                    matched: r.matched,
                    reasons: Vec::new(),
                },
            );
        }
    }
    Ok(super::rank::finish(
        snap, ask, cands, excluded, demoted, plug,
    ))
}

/// The home page: co-occurrence with the user's recent items, their tag profile, and what is
/// trending, each scaled to 1 and blended. A user with no history gets the profile and
/// trending parts; one with no tags either gets trending.
pub(crate) fn for_user(
    snap: &Snapshot,
    cfg: &Config,
    ask: &Ask,
    user: Option<u32>,
    excluded: &[u32],
    history: impl FnOnce() -> std::sync::Arc<super::history::History>,
) -> Result<Cands> {
    // What goes with the user's history, newest items weighted most.
    let seeds = user
        .and_then(|u| snap.activity.user(u))
        .map(history_seeds)
        .unwrap_or_default();
    let mut out = if seeds.is_empty() {
        Cands::new()
    } else {
        seeded(snap, &seeds, &history())
    };
    let mut trending = catalogue::trending(snap, cfg, ask, excluded, (ask.k * 4).max(50));
    if seeds.is_empty() {
        // Cold start: the user's explicit tags (below) and what is popular; the reason says why.
        for c in trending.values_mut() {
            for r in &mut c.reasons {
                if let Reason::Popular { no_history, .. } = r {
                    *no_history = true;
                }
            }
        }
    }
    // Tag profile. With enough co-occurrence candidates it re-scores those and the trending
    // ones exactly (microseconds); a user with little history gets a search of the whole
    // catalogue instead, which is where the profile matters most.
    let prof = user.map(|u| profile(snap, cfg, u)).unwrap_or_default();
    if !prof.is_empty() {
        let q = Query::profile(names(snap, &prof))
            .k((ask.k * 4).clamp(50, MAX_K))
            .filter(ask.filter.clone());
        let recs = if out.len() >= (ask.k * 2).max(MIN_COOCCUR) {
            // The strongest co-occurrence candidates only: a long history can name thousands,
            // and the tail cannot reach the top k on co-occurrence alone.
            let mut strongest: Vec<(f32, u32)> = out.iter().map(|(&i, c)| (c.score, i)).collect();
            if strongest.len() > RESCORE_LIMIT {
                strongest.select_nth_unstable_by(RESCORE_LIMIT - 1, |a, b| {
                    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
                });
                strongest.truncate(RESCORE_LIMIT);
            }
            let mut ids: Vec<u32> = strongest
                .iter()
                .map(|&(_, i)| i)
                .chain(trending.keys().copied())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.retain(|i| excluded.binary_search(i).is_err());
            search::score_ids(snap, &q, &ids)?
        } else {
            search::run_excluding(snap, &q, excluded)?.0
        };
        let mut part = Cands::new();
        for r in recs {
            if let Some(id) = snap.item_id(&r.id) {
                part.insert(
                    id,
                    Cand {
                        score: r.score,
                        matched: r.matched,
                        reasons: vec![Reason::Profile {
                            similarity: r.score,
                        }],
                    },
                );
            }
        }
        blend_into(&mut out, part, W_PROFILE);
    }
    let w_popular = if seeds.is_empty() {
        W_POPULAR_COLD
    } else {
        W_POPULAR
    };
    blend_into(&mut out, trending, w_popular);
    Ok(out)
}

/// Whether `user` (none: a visitor the store has not seen) has no history to seed from.
pub(crate) fn no_history(snap: &Snapshot, user: Option<u32>) -> bool {
    user.and_then(|u| snap.activity.user(u))
        .is_none_or(|s| history_seeds(s).is_empty())
}

/// The seeds of a user's history-based parts: their recent items, newest weighted most (the
/// newest moment 1, each older moment [`SEED_DECAY`] less, items of one moment alike), then
/// up to [`HISTORY_SEEDS`] older items at [`HISTORY_WEIGHT`] each (long-range taste).
pub(crate) fn history_seeds(state: &crate::activity::UserState) -> Vec<(u32, f32)> {
    let mut seeds: Vec<(u32, f32)> = state
        .recent
        .iter()
        .rev()
        .take(SEED_ITEMS)
        .scan((1.0f32, None), |(w, moment), &(i, t)| {
            if moment.is_some_and(|m| m != t) {
                *w *= SEED_DECAY;
            }
            *moment = Some(t);
            Some((i, *w))
        })
        .collect();
    let recent: std::collections::HashSet<u32> = seeds.iter().map(|s| s.0).collect();
    seeds.extend(
        state
            .seen
            .iter()
            .filter(|i| !recent.contains(i))
            .take(HISTORY_SEEDS)
            .map(|&i| (i, HISTORY_WEIGHT)),
    );
    seeds
}

/// The parts of a blend that follow from items someone has shown interest in (`seeds`,
/// weighted): what is bought and (weaker) viewed with them, and what is liked by the same
/// people, each scaled to a maximum of 1 and weighted ([`W_COOCCUR`], [`W_HISTORY`]).
pub(crate) fn seeded(
    snap: &Snapshot,
    seeds: &[(u32, f32)],
    history: &super::history::History,
) -> Cands {
    let mut co = Cands::new();
    cooccur::add_partners(snap, seeds, Relation::Bought, &mut co);
    let viewed: Vec<(u32, f32)> = seeds.iter().map(|&(i, w)| (i, w * W_VIEWED)).collect();
    cooccur::add_partners(snap, &viewed, Relation::Viewed, &mut co);
    let mut liked = Cands::new();
    history.add_partners(snap, seeds, &mut liked);
    let mut out = Cands::new();
    blend_into(&mut out, co, W_COOCCUR);
    blend_into(&mut out, liked, W_HISTORY);
    out
}

/// Cross-sell for a basket. Its items are the strongest seeds (each counts as much as the
/// shopper's newest item); when the ask names the shopper, their own history follows as
/// weaker seeds ([`history_seeds`]), so the cart is read as the newest part of a known taste
/// rather than as a stranger's. What is popular now joins at [`W_POPULAR_CART`]. Measured in
/// bench/RESULTS.md: on Online Retail the history predicts the next order better than the
/// basket alone, and weighting the basket above the newest history item makes it worse.
pub(crate) fn cart(
    snap: &Snapshot,
    cfg: &Config,
    ask: &Ask,
    basket: &[u32],
    user: Option<u32>,
    excluded: &[u32],
    history: &super::history::History,
) -> Cands {
    let mut seeds: Vec<(u32, f32)> = basket.iter().map(|&i| (i, 1.0)).collect();
    if let Some(state) = user.and_then(|u| snap.activity.user(u)) {
        seeds.extend(
            history_seeds(state)
                .into_iter()
                .filter(|(i, _)| !basket.contains(i)),
        );
    }
    let mut out = seeded(snap, &seeds, history);
    let trending = catalogue::trending(snap, cfg, ask, excluded, (ask.k * 4).max(50));
    blend_into(&mut out, trending, W_POPULAR_CART);
    out
}

/// Add `part` to `out` with its scores scaled to a maximum of `weight`.
pub(crate) fn blend_into(out: &mut Cands, part: Cands, weight: f32) {
    let max = part.values().map(|c| c.score).fold(0.0f32, f32::max);
    if max <= 0.0 {
        return;
    }
    for (id, c) in part {
        let e = out.entry(id).or_default();
        if e.matched.is_empty() {
            e.matched = c.matched;
        }
        let score = weight * c.score / max;
        e.score += score;
        for r in c.reasons {
            add_reason(e, r);
        }
    }
}
