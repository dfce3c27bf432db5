//! The ranking tail every scenario shares: filters and exclusions, campaign boosts,
//! members first, the MMR diversity re-rank, and turning ids into [`Recommendation`]s.

use std::collections::HashMap;

use super::{Ask, Reason};
use crate::config::Config;
use crate::plugin::registry::Choice;
use crate::plugin::Fault;
use crate::search::filter::Compiled;
use crate::search::Recommendation;
use crate::snapshot::{Row, Snapshot};

/// A scored candidate on its way to becoming a [`Recommendation`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Cand {
    pub score: f32,
    pub matched: Vec<(String, f32)>,
    pub reasons: Vec<Reason>,
}

/// Candidates by dense item id, accumulated from several sources.
pub(crate) type Cands = HashMap<u32, Cand>;

/// Items [`Ask::demote_shown`] demotes: the factor, and the reason that says so.
pub(crate) type Demoted = HashMap<u32, (f32, Reason)>;

/// Add `score` to candidate `id`, keeping `reason` if it is the candidate's strongest so far
/// of its kind (the explanation names the best source, not all of them).
pub(crate) fn offer(c: &mut Cands, id: u32, score: f32, reason: Reason) {
    let e = c.entry(id).or_default();
    e.score += score;
    add_reason(e, reason);
}

/// Keep `reason` on `e` if it is the strongest of its kind so far.
pub(crate) fn add_reason(e: &mut Cand, reason: Reason) {
    match e.reasons.iter_mut().find(|r| r.same_kind(&reason)) {
        Some(r) if reason.strength() > r.strength() => *r = reason,
        Some(_) => {}
        None => e.reasons.push(reason),
    }
}

/// The category path of item `id`.
fn category(snap: &Snapshot, id: u32) -> String {
    match snap.item_row(id) {
        Some(Row::Delta(r)) => r.category.clone(),
        Some(Row::Segment(i)) => snap.seg().items.category_of(i).to_string(),
        None => String::new(),
    }
}

fn members_only(snap: &Snapshot, id: u32) -> bool {
    match snap.item_row(id) {
        Some(Row::Delta(r)) => r.members_only,
        Some(Row::Segment(i)) => {
            crate::segment::read::bit(&snap.seg().items.members_only, i as usize)
        }
        None => false,
    }
}

fn has_tag(snap: &Snapshot, id: u32, tag: u32) -> bool {
    match snap.item_row(id) {
        Some(Row::Delta(r)) => r.tags.binary_search_by_key(&tag, |p| p.0).is_ok(),
        Some(Row::Segment(i)) => {
            let (tags, _) = snap.seg().items.forward.row(i);
            tags.binary_search_by_key(&tag, |v| v.to_native()).is_ok()
        }
        None => false,
    }
}

/// How alike two categories are for diversity: 1 the same path, 0.5 the same top level.
fn category_similarity(a: &str, b: &str) -> f32 {
    if a == b {
        1.0
    } else if !a.is_empty() && a.split('/').next() == b.split('/').next() {
        0.5
    } else {
        0.0
    }
}

/// The plugin that re-ranks, with what it needs to build its input.
pub(crate) struct Plug<'a> {
    pub cfg: &'a Config,
    pub user: Option<u32>,
    pub choice: &'a Choice,
}

/// Filter, boost, demote what was shown, re-rank with a plugin if one was chosen, order, diversify and cut `cands`
/// to `ask.k` recommendations. `excluded` are dense ids never to return (the user's
/// purchases, the basket, the query item). Returns the fault if the plugin failed (the
/// built-in order then stands).
pub(crate) fn finish(
    snap: &Snapshot,
    ask: &Ask,
    cands: Cands,
    excluded: &[u32],
    demoted: &Demoted,
    plug: Option<Plug<'_>>,
) -> (Vec<Recommendation>, Option<Fault>) {
    let mut filter = Compiled::new(snap, &ask.filter, None);
    filter.exclude_all(excluded);
    let boosts: Vec<(u32, &str, f32)> = ask
        .boosts
        .iter()
        .filter_map(|b| Some((snap.tag_id(&b.tag)?, b.tag.as_str(), b.factor)))
        .collect();
    let mut list: Vec<(u32, Cand, bool)> = cands
        .into_iter()
        .filter(|(id, c)| c.score.is_finite() && c.score > 0.0 && filter.allows(snap, *id))
        .map(|(id, mut c)| {
            for &(t, name, factor) in &boosts {
                if has_tag(snap, id, t) {
                    c.score *= factor;
                    c.reasons.push(Reason::Boost {
                        tag: name.to_string(),
                        factor,
                    });
                }
            }
            // Before the plugin, which sees the demoted score as the scenario's.
            if let Some((factor, reason)) = demoted.get(&id) {
                c.score *= factor;
                c.reasons.push(reason.clone());
            }
            let member = ask.members_first && members_only(snap, id);
            if member {
                c.reasons.push(Reason::MembersOnly);
            }
            (id, c, member)
        })
        .collect();
    // Members-only items first (for members), then score, then id: a total, documented order.
    // A plugin's ties keep the scenario's order, which `rerank` sorted the list into.
    let mut by_id = true;
    let fault = match plug {
        Some(p) => {
            let f = super::strategy::rerank(snap, p.cfg, ask, p.user, p.choice, &mut list);
            by_id = f.is_some();
            f
        }
        None => None,
    };
    list.sort_by(|a, b| {
        let o = b.2.cmp(&a.2).then(b.1.score.total_cmp(&a.1.score));
        if by_id {
            o.then(a.0.cmp(&b.0))
        } else {
            o
        }
    });
    let picked = match ask.diversity {
        Some(lambda) if list.len() > 1 => mmr(snap, list, ask.k, lambda),
        _ => {
            list.truncate(ask.k);
            list
        }
    };
    let recs = picked
        .into_iter()
        .filter_map(|(id, c, _)| {
            let (name, title) = match snap.item_row(id)? {
                Row::Delta(r) => (r.name.clone(), r.title.clone()),
                Row::Segment(i) => {
                    let t = &snap.seg().items;
                    (
                        t.names.get(i)?.to_string(),
                        t.titles.get(i).unwrap_or("").to_string(),
                    )
                }
            };
            Some(Recommendation {
                id: name,
                title,
                score: c.score,
                matched: c.matched,
                reasons: c.reasons,
            })
        })
        .collect();
    (recs, fault)
}

/// Maximal marginal relevance over categories: repeatedly take the candidate maximising
/// `λ·score/max − (1−λ)·(similarity to the closest already taken)`. Members-first order is
/// kept: members-only items are diversified among themselves first.
fn mmr(
    snap: &Snapshot,
    list: Vec<(u32, Cand, bool)>,
    k: usize,
    lambda: f32,
) -> Vec<(u32, Cand, bool)> {
    let lambda = lambda.clamp(0.0, 1.0);
    let max = list
        .iter()
        .map(|c| c.1.score)
        .fold(f32::MIN_POSITIVE, f32::max);
    let cats: Vec<String> = list.iter().map(|c| category(snap, c.0)).collect();
    let mut rest: Vec<usize> = (0..list.len()).collect();
    let mut taken: Vec<usize> = Vec::with_capacity(k);
    while taken.len() < k && !rest.is_empty() {
        let member_left = rest.iter().any(|&i| list[i].2);
        let value = |i: usize| {
            let closest = taken
                .iter()
                .map(|&t| category_similarity(&cats[i], &cats[t]))
                .fold(0.0, f32::max);
            lambda * list[i].1.score / max - (1.0 - lambda) * closest
        };
        let best = rest
            .iter()
            .enumerate()
            .filter(|(_, &i)| !member_left || list[i].2)
            .max_by(|(_, &a), (_, &b)| value(a).total_cmp(&value(b)).then(b.cmp(&a)))
            .map(|(pos, _)| pos);
        let Some(pos) = best else { break };
        taken.push(rest.remove(pos));
    }
    let mut slots: Vec<Option<(u32, Cand, bool)>> = list.into_iter().map(Some).collect();
    taken.into_iter().filter_map(|i| slots[i].take()).collect()
}
