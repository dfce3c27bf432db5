//! Scenarios about a person: the home page blend (`for-user`), similar users (`users-like`),
//! and the tag profile both are built on.

use serde::Serialize;

use super::rank::{add_reason, Cand, Cands};
use super::{catalogue, cooccur, Ask, Reason, Scenario};
use crate::activity::Relation;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::display_id;
use crate::search::{self, Query, Recommendation, Target, MAX_K};
use crate::snapshot::{Row, Snapshot};
use crate::store::Store;

/// How many of the user's most recent items seed the co-occurrence part of `for-user`.
const SEED_ITEMS: usize = 50;
/// At most this many co-occurrence candidates are re-scored against the profile.
const RESCORE_LIMIT: usize = 500;
/// How many items of the user's older history (beyond the recent seeds) also seed it.
const HISTORY_SEEDS: usize = 200;
/// What each of those counts (the newest recent seed counts 1).
const HISTORY_WEIGHT: f32 = 0.3;
/// Each older seed counts this much less than the one after it.
const SEED_DECAY: f32 = 0.95;
/// Blend weights of `for-user`: co-occurrence, tag profile, popularity. Each part is scaled to
/// a maximum of 1 first, so the weights are the parts' relative say.
const W_COOCCUR: f32 = 1.0;
const W_PROFILE: f32 = 1.0;
const W_POPULAR: f32 = 1.0;
/// With at least this many co-occurrence candidates, the profile part re-scores candidates
/// instead of searching the catalogue.
const MIN_COOCCUR: usize = 20;
/// Viewed-together evidence counts this much of bought-together in the blend.
const W_VIEWED: f32 = 0.5;

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
    plug: Option<super::rank::Plug<'_>>,
) -> Result<(Vec<Recommendation>, Option<crate::plugin::Fault>)> {
    let target = match &ask.scenario {
        Scenario::Similar { item } => Target::Item(item.clone()),
        Scenario::Profile { tags } => Target::Profile(tags.clone()),
        _ => return Ok((Vec::new(), None)),
    };
    let reranked = ask.diversity.is_some() || !ask.boosts.is_empty() || ask.members_first;
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
    Ok(super::rank::finish(snap, ask, cands, excluded, plug))
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
) -> Result<Cands> {
    let Some(user) = user else {
        return Ok(Cands::new());
    };
    let mut out = Cands::new();
    // Co-occurrence with recent items, newest weighted most.
    if let Some(state) = snap.activity.user(user) {
        let mut seeds: Vec<(u32, f32)> = state
            .recent
            .iter()
            .rev()
            .take(SEED_ITEMS)
            .scan(1.0f32, |w, &(i, _)| {
                let this = *w;
                *w *= SEED_DECAY;
                Some((i, this))
            })
            .collect();
        // Older history counts too, evenly and less (long-range taste), up to a bound.
        let recent: std::collections::HashSet<u32> = seeds.iter().map(|s| s.0).collect();
        seeds.extend(
            state
                .seen
                .iter()
                .filter(|i| !recent.contains(i))
                .take(HISTORY_SEEDS)
                .map(|&i| (i, HISTORY_WEIGHT)),
        );
        let mut co = Cands::new();
        cooccur::add_partners(snap, &seeds, Relation::Bought, &mut co);
        let viewed: Vec<(u32, f32)> = seeds.iter().map(|&(i, w)| (i, w * W_VIEWED)).collect();
        cooccur::add_partners(snap, &viewed, Relation::Viewed, &mut co);
        blend_into(&mut out, co, W_COOCCUR);
    }
    let trending = catalogue::trending(snap, cfg, ask, excluded, (ask.k * 4).max(50));
    // Tag profile. With enough co-occurrence candidates it re-scores those and the trending
    // ones exactly (microseconds); a user with little history gets a search of the whole
    // catalogue instead, which is where the profile matters most.
    let prof = profile(snap, cfg, user);
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
    blend_into(&mut out, trending, W_POPULAR);
    Ok(out)
}

/// Add `part` to `out` with its scores scaled to a maximum of `weight`.
fn blend_into(out: &mut Cands, part: Cands, weight: f32) {
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

/// The asking user's profile, laid out for the scan over every other user: a bitset of its
/// tags (a few KiB, so it stays in L1 cache) in front of the dense weights (one float per tag
/// id, shifted by one so slot 0 is a constant zero). Most tags of other users are not in the
/// query, and for those only the bitset and slot 0 are read.
struct QueryTags {
    bits: Vec<u64>,
    dense: Vec<f32>,
}

impl QueryTags {
    fn new(q: &[(u32, f32)], tag_bound: u32) -> QueryTags {
        let n = tag_bound as usize;
        let mut t = QueryTags {
            bits: vec![0; n.div_ceil(64)],
            dense: vec![0.0; n + 1],
        };
        for &(tag, w) in q {
            if let (Some(d), Some(b)) = (
                t.dense.get_mut(tag as usize + 1),
                t.bits.get_mut(tag as usize / 64),
            ) {
                *d = w;
                *b |= 1 << (tag % 64);
            }
        }
        t
    }

    /// The query's weight of `tag` (0 if absent). Branch-free: whether another user's tag is
    /// in the query is a coin flip to the branch predictor, so a miss reads slot 0 (always
    /// 0.0, always cached) instead of jumping.
    #[inline]
    fn weight(&self, tag: u32) -> f32 {
        let i = tag as usize;
        let word = self.bits.get(i / 64).copied().unwrap_or(0);
        let slot = (i + 1) * (word >> (i % 64) & 1) as usize;
        self.dense.get(slot).copied().unwrap_or(0.0)
    }

    /// Dot product with the query and squared norm of `a + f·b` (both sorted by tag id).
    #[inline]
    fn dot_norm2(&self, a: &[(u32, f32)], b: &[(u32, f32)], f: f32) -> (f32, f32) {
        if a.is_empty() {
            // Derived tags only (most users): scale once instead of per tag.
            let (dot, n2) = b.iter().fold((0.0f32, 0.0f32), |(dot, n2), &(t, w)| {
                (dot + self.weight(t) * w, n2 + w * w)
            });
            return (dot * f, n2 * f * f);
        }
        crate::sparse::merge_sum(a, b, f).fold((0.0, 0.0), |(dot, norm2), (t, w)| {
            (dot + self.weight(t) * w, norm2 + w * w)
        })
    }
}

/// Users whose behaviour state is fetched together (see [`scan_users`]).
const BATCH: usize = 32;

/// The `k` users (other than `me`) whose profiles have the highest cosine with `query`,
/// best first, ties by id. Users with behaviour are visited by walking the behaviour map
/// (no hash look-up per user); users with only explicit tags are visited in a second pass
/// over the rows, skipping those already seen.
fn scan_users(
    snap: &Snapshot,
    me: u32,
    query: &QueryTags,
    half_life: f64,
    q_norm: f32,
    k: usize,
) -> Vec<(f32, u32)> {
    let now = snap.activity.now();
    let bound = snap.user_id_bound();
    let mut visited = vec![0u64; (bound as usize).div_ceil(64)];
    let mut top = crate::search::TopK::new(k);
    let mut scratch: Vec<(u32, f32)> = Vec::new();
    // Explicit tags straight from the segment row (or the delta), without allocating.
    let explicit = |snap: &Snapshot, id: u32, scratch: &mut Vec<(u32, f32)>| -> bool {
        scratch.clear();
        match snap.user_row(id) {
            Some(Row::Delta(r)) => scratch.extend_from_slice(&r.tags),
            Some(Row::Segment(i)) => {
                let (t, w) = snap.seg().users.forward.row(i);
                scratch.extend(t.iter().zip(w).map(|(t, w)| (t.to_native(), w.to_native())));
            }
            None => return false,
        }
        true
    };
    let mut offer = |id: u32, (dot, norm2): (f32, f32)| {
        if dot > 0.0 && norm2 > 0.0 {
            top.offer(id, dot / (q_norm * norm2.sqrt()));
        }
    };
    // Each user's state and tag list are separate heap objects, so the walk is a chain of
    // cache misses. Touching a batch of them before scoring lets the CPU fetch them in
    // parallel instead of one after another.
    let mut batch: Vec<(u32, &crate::activity::user::UserState)> = Vec::with_capacity(BATCH);
    let mut users = snap.activity.users.iter().peekable();
    while users.peek().is_some() {
        batch.clear();
        batch.extend(users.by_ref().take(BATCH).map(|(&id, s)| (id, &**s)));
        let touched = batch.iter().fold(0u64, |a, (_, s)| a ^ s.derived_at);
        let touched = batch.iter().fold(touched, |a, (_, s)| {
            a ^ s.derived.first().map_or(0, |p| u64::from(p.0))
        });
        std::hint::black_box(touched);
        for &(id, state) in &batch {
            if let Some(v) = visited.get_mut(id as usize / 64) {
                *v |= 1 << (id % 64);
            }
            if id == me || !explicit(snap, id, &mut scratch) {
                continue;
            }
            let f = crate::activity::user::decay(1.0, state.derived_at, now, half_life);
            offer(id, query.dot_norm2(&scratch, &state.derived, f));
        }
    }
    for id in 0..bound {
        let seen = visited
            .get(id as usize / 64)
            .is_some_and(|v| v >> (id % 64) & 1 == 1);
        if seen || id == me || !explicit(snap, id, &mut scratch) {
            continue;
        }
        offer(id, query.dot_norm2(&scratch, &[], 1.0));
    }
    top.into_sorted()
        .into_iter()
        .map(|h| (h.score, h.id))
        .collect()
}

/// A user similar to the asking one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserMatch {
    /// The other user's id.
    pub id: String,
    /// Cosine similarity of the two tag profiles.
    pub score: f32,
    /// The shared tags that contributed most, with each one's share of `score`.
    pub matched: Vec<(String, f32)>,
}

impl Store {
    /// The `k` users whose tag profiles (explicit plus derived) are most like `user`'s, best
    /// first (ties by id). An exact scan over every user with a profile.
    pub fn users_like(&self, user: &str, k: usize) -> Result<Vec<UserMatch>> {
        if k > MAX_K {
            return Err(Error::InvalidQuery {
                reason: format!("k = {k} is above the limit of {MAX_K}"),
            });
        }
        let snap = self.snapshot();
        let not_found = || Error::NotFound {
            what: "user",
            id: display_id(user),
        };
        let me = snap
            .user_id(user)
            .filter(|&u| snap.user_row(u).is_some())
            .ok_or_else(not_found)?;
        let cfg = self.config();
        let q = profile(&snap, cfg, me);
        let q_norm = crate::segment::builder::l2_norm(q.iter().map(|p| p.1));
        if q.is_empty() || q_norm <= 0.0 || k == 0 {
            return Ok(Vec::new());
        }
        let query = QueryTags::new(&q, snap.tag_id_bound());
        let top = scan_users(&snap, me, &query, cfg.user_half_life_secs(), q_norm, k);
        Ok(top
            .into_iter()
            .filter_map(|(score, id)| {
                let v = profile(&snap, cfg, id);
                let norm = crate::segment::builder::l2_norm(v.iter().map(|p| p.1));
                let mut matched: Vec<(String, f32)> = v
                    .iter()
                    .filter_map(|&(t, w)| {
                        let qw = query.weight(t);
                        (qw > 0.0).then(|| {
                            Some((snap.tag_name(t)?.to_string(), qw * w / (q_norm * norm)))
                        })?
                    })
                    .collect();
                matched.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                matched.truncate(crate::search::explain::EXPLAIN_TAGS);
                Some(UserMatch {
                    id: snap.user_name(id)?,
                    score,
                    matched,
                })
            })
            .collect())
    }
}
