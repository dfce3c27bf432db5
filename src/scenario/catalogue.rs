//! Scenarios about the catalogue as a whole: trending items, gift guides, and re-ranking a
//! search engine's result list.

use super::personal::profile;
use super::rank::{Cand, Cands};
use super::{Ask, Reason};
use crate::config::Config;
use crate::error::Result;
use crate::search::filter::Compiled;
use crate::search::{self, Filter, Query, MAX_K};
use crate::segment::builder::l2_norm;
use crate::snapshot::{Row, Snapshot};

/// The `pool` most popular items (popularity decayed to the store's clock) that pass the ask's
/// filter and are not `excluded`. Filtering here, before the cut, is what lets "trending in
/// kitchen" return k items when only a few of the overall top items are kitchen items; cutting
/// here keeps the shared tail's work at `pool` items whatever the catalogue size.
pub(crate) fn trending(
    snap: &Snapshot,
    cfg: &Config,
    ask: &Ask,
    excluded: &[u32],
    pool: usize,
) -> Cands {
    let now = snap.activity.now();
    let half_life = cfg.popularity_half_life_secs();
    let mut filter = Compiled::new(snap, &ask.filter, None);
    filter.exclude_all(excluded);
    // Walk the popularity index from the top until `pool` items pass the filter: O(pool) for
    // plain trending, longer only as far as a selective filter forces.
    snap.activity
        .most_popular()
        .filter(|&id| filter.allows(snap, id))
        .take(pool)
        .filter_map(|id| {
            let p = snap.activity.item(id)?.popularity(now, half_life);
            Some((
                id,
                Cand {
                    score: p,
                    matched: Vec::new(),
                    reasons: vec![Reason::Popular {
                        popularity: p,
                        no_history: false,
                    }],
                },
            ))
        })
        .collect()
}

/// How many candidates a scenario gathers before the shared tail: exactly `k` when nothing
/// re-orders them, more when boosts, members-first, a demotion of what was shown or
/// diversity may promote lower ones, and `plugin_depth` when a ranking plugin will re-order
/// them.
pub(crate) fn pool(ask: &Ask, plugin_depth: Option<usize>) -> usize {
    let reranked =
        ask.diversity.is_some() || !ask.boosts.is_empty() || ask.members_first || ask.demote_shown;
    if let Some(depth) = plugin_depth {
        depth.max(ask.k).min(MAX_K)
    } else if reranked {
        (ask.k * 4).clamp(50, MAX_K)
    } else {
        ask.k
    }
}

/// A gift guide: items tagged `for:<recipient>` (and passing the filter, typically a price
/// range), ranked by popularity (scaled to 1) plus rating (out of 5, scaled to 1), so a good
/// gift nobody has bought yet still shows.
pub(crate) fn gift(snap: &Snapshot, cfg: &Config, ask: &Ask, recipient: &str) -> Result<Cands> {
    let tag = format!("for:{recipient}");
    let q = Query::profile([(tag.clone(), 1.0)])
        .k((ask.k * 20).clamp(200, MAX_K))
        .filter(Filter {
            must_tags: vec![tag],
            ..ask.filter.clone()
        });
    let (recs, _) = search::run(snap, &q)?;
    let now = snap.activity.now();
    let half_life = cfg.popularity_half_life_secs();
    let ids: Vec<(u32, Vec<(String, f32)>)> = recs
        .into_iter()
        .filter_map(|r| Some((snap.item_id(&r.id)?, r.matched)))
        .collect();
    let pops: Vec<f32> = ids
        .iter()
        .map(|(id, _)| {
            snap.activity
                .item(*id)
                .map_or(0.0, |s| s.popularity(now, half_life))
        })
        .collect();
    let max_pop = pops.iter().copied().fold(0.0f32, f32::max);
    Ok(ids
        .into_iter()
        .zip(pops)
        .map(|((id, matched), pop)| {
            let rating = snap
                .activity
                .item(id)
                .and_then(|s| s.rating())
                .unwrap_or(0.0);
            let pop_part = if max_pop > 0.0 { pop / max_pop } else { 0.0 };
            let mut reasons = Vec::new();
            if pop > 0.0 {
                reasons.push(Reason::Popular {
                    popularity: pop,
                    no_history: false,
                });
            }
            (
                id,
                Cand {
                    // The small constant keeps every matching gift rankable (score > 0).
                    score: 0.01 + pop_part + rating / 5.0,
                    matched,
                    reasons,
                },
            )
        })
        .collect())
}

/// Weights of the search re-rank: keyword match, user match, social proof.
const W_KEYWORDS: f32 = 0.5;
const W_USER: f32 = 0.3;
const W_SOCIAL: f32 = 0.2;

/// Whether `keyword` (lower-case) matches a tag: the tag's value (after the namespace) contains it.
fn keyword_matches_tag(tag: &str, keyword: &str) -> bool {
    let value = tag.rsplit(':').next().unwrap_or(tag);
    value.to_lowercase().contains(keyword)
}

/// Re-rank a search result list: the share of keywords an item matches (in its tags or
/// title), its match with the user's tag profile, and social proof (sales and reviews, log
/// scaled), blended 0.5 / 0.3 / 0.2. Items the store does not know are dropped; a tiny bonus
/// for the original position keeps the engine's order among equals.
pub(crate) fn search_rerank(
    snap: &Snapshot,
    cfg: &Config,
    user: Option<u32>,
    items: &[String],
    keywords: &[String],
) -> Cands {
    let keywords: Vec<String> = keywords
        .iter()
        .map(|k| k.trim().to_lowercase())
        .filter(|k| !k.is_empty())
        .collect();
    let prof = user.map(|u| profile(snap, cfg, u)).unwrap_or_default();
    let prof_norm = l2_norm(prof.iter().map(|p| p.1));
    let social = |id: u32| {
        snap.activity
            .item(id)
            .map_or(0.0, |s| ((s.orders + s.reviews + s.ratings) as f32).ln_1p())
    };
    let known: Vec<(usize, u32)> = items
        .iter()
        .enumerate()
        .filter_map(|(pos, n)| {
            Some((
                pos,
                snap.item_id(n).filter(|&i| snap.item_row(i).is_some())?,
            ))
        })
        .collect();
    let max_social = known
        .iter()
        .map(|&(_, id)| social(id))
        .fold(0.0f32, f32::max);
    let n = items.len().max(1) as f32;
    let mut out = Cands::new();
    for (pos, id) in known {
        let (tags, title) = match snap.item_row(id) {
            Some(Row::Delta(r)) => (r.tags.clone(), r.title.clone()),
            Some(Row::Segment(i)) => {
                let t = &snap.seg().items;
                (
                    t.forward.row_vec(i),
                    t.titles.get(i).unwrap_or("").to_string(),
                )
            }
            None => continue,
        };
        let title = title.to_lowercase();
        let names: Vec<&str> = tags.iter().filter_map(|&(t, _)| snap.tag_name(t)).collect();
        let matched_kw: Vec<String> = keywords
            .iter()
            .filter(|k| {
                title.contains(k.as_str()) || names.iter().any(|t| keyword_matches_tag(t, k))
            })
            .cloned()
            .collect();
        let kw = if keywords.is_empty() {
            0.0
        } else {
            matched_kw.len() as f32 / keywords.len() as f32
        };
        let norm = l2_norm(tags.iter().map(|p| p.1));
        let mut matched = Vec::new();
        let mut user_part = 0.0;
        if prof_norm > 0.0 && norm > 0.0 {
            for &(t, w) in &tags {
                if let Ok(at) = prof.binary_search_by_key(&t, |p| p.0) {
                    let c = prof[at].1 * w / (prof_norm * norm);
                    user_part += c;
                    if let Some(name) = snap.tag_name(t) {
                        matched.push((name.to_string(), c));
                    }
                }
            }
            matched.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            matched.truncate(crate::search::explain::EXPLAIN_TAGS);
        }
        let social_part = if max_social > 0.0 {
            social(id) / max_social
        } else {
            0.0
        };
        let mut reasons = Vec::new();
        if !matched_kw.is_empty() {
            reasons.push(Reason::Keywords {
                matched: matched_kw,
            });
        }
        if user_part > 0.0 {
            reasons.push(Reason::Profile {
                similarity: user_part,
            });
        }
        let order_bonus = 1e-3 * (1.0 - pos as f32 / n);
        out.insert(
            id,
            Cand {
                score: W_KEYWORDS * kw + W_USER * user_part + W_SOCIAL * social_part + order_bonus,
                matched,
                reasons,
            },
        );
    }
    out
}
