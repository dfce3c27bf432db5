//! Similar items by tag cosine, by exhaustive scan.
//!
//! This is the simple, obviously-correct scorer: it visits every live item. The pruned engine
//! is measured against exactly this answer. Order: score descending, then dense item id
//! ascending (that is, earlier-created items win ties), so results are deterministic.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::snapshot::{Row, Snapshot};
use crate::store::Store;

/// One recommended item with the reason it was recommended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// The item's id.
    pub id: String,
    /// Its title (may be empty).
    pub title: String,
    /// Similarity score (cosine in `0..=1`).
    pub score: f32,
    /// The shared tags that contributed most, with their contribution to the score.
    pub matched: Vec<(String, f32)>,
}

/// How many contributing tags an explanation lists.
const EXPLAIN_TAGS: usize = 5;

#[derive(PartialEq)]
struct Hit {
    score: f32,
    id: u32,
}
impl Eq for Hit {}
impl Ord for Hit {
    // "Greater" = better; the heap keeps the worst on top via Reverse.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then(o.id.cmp(&self.id))
    }
}
impl PartialOrd for Hit {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Dot product of two tag lists sorted by tag id.
fn dot(a: &[(u32, f32)], bt: impl Iterator<Item = (u32, f32)>) -> f32 {
    let mut s = 0.0;
    let mut i = 0;
    for (t, w) in bt {
        while i < a.len() && a[i].0 < t {
            i += 1;
        }
        if i == a.len() {
            break;
        }
        if a[i].0 == t {
            s += a[i].1 * w;
        }
    }
    s
}

fn norm(v: &[(u32, f32)]) -> f32 {
    v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt()
}

/// Top `k` items by cosine to the tag vector `query` (sorted by tag id), skipping `exclude`.
pub fn top_k_cosine(
    snap: &Snapshot,
    query: &[(u32, f32)],
    k: usize,
    exclude: Option<u32>,
) -> Vec<(u32, f32)> {
    let qn = norm(query);
    if k == 0 || qn == 0.0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<std::cmp::Reverse<Hit>> = BinaryHeap::with_capacity(k + 1);
    let mut offer = |id: u32, score: f32| {
        if score > 0.0 && Some(id) != exclude {
            heap.push(std::cmp::Reverse(Hit { score, id }));
            if heap.len() > k {
                heap.pop();
            }
        }
    };
    let items = &snap.seg().items;
    for id in 0..items.slots() as u32 {
        if !items.is_live(id) || snap.delta.item_shadow.get(id) {
            continue;
        }
        let (t, w) = items.forward.row(id);
        let n = items.forward.norm(id);
        if n > 0.0 {
            let d = dot(
                query,
                t.iter().zip(w).map(|(t, w)| (t.to_native(), w.to_native())),
            );
            offer(id, d / (qn * n));
        }
    }
    for (&id, e) in snap.delta.items.iter() {
        if let Some(row) = &e.row {
            let n = norm(&row.tags);
            if n > 0.0 {
                offer(id, dot(query, row.tags.iter().copied()) / (qn * n));
            }
        }
    }
    let mut out: Vec<Hit> = heap.into_iter().map(|r| r.0).collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.into_iter().map(|h| (h.id, h.score)).collect()
}

/// Turn scored ids into [`Recommendation`]s with the shared tags as explanation.
pub fn explain(snap: &Snapshot, query: &[(u32, f32)], hits: &[(u32, f32)]) -> Vec<Recommendation> {
    let qn = norm(query);
    hits.iter()
        .filter_map(|&(id, score)| {
            let row = snap.stored_item(id)?;
            let n = norm(&row.tags);
            let mut matched: Vec<(String, f32)> = row
                .tags
                .iter()
                .filter_map(|&(t, w)| {
                    let q = query
                        .binary_search_by_key(&t, |p| p.0)
                        .ok()
                        .map(|i| query[i].1)?;
                    Some((snap.tag_name(t)?.to_string(), q * w / (qn * n)))
                })
                .collect();
            matched.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            matched.truncate(EXPLAIN_TAGS);
            Some(Recommendation {
                id: row.name,
                title: row.title,
                score,
                matched,
            })
        })
        .collect()
}

impl Store {
    /// The `k` items most similar to item `id` by tag cosine ("more like this"), best first.
    pub fn similar_items(&self, id: &str, k: usize) -> Result<Vec<Recommendation>> {
        let snap = self.snapshot();
        let not_found = || Error::NotFound {
            what: "item",
            id: crate::model::display_id(id),
        };
        let dense = snap.item_id(id).ok_or_else(not_found)?;
        let tags = match snap.item_row(dense).ok_or_else(not_found)? {
            Row::Delta(r) => r.tags.clone(),
            Row::Segment(i) => snap.seg().items.forward.row_vec(i),
        };
        let hits = top_k_cosine(&snap, &tags, k, Some(dense));
        Ok(explain(&snap, &tags, &hits))
    }

    /// The `k` items that best match a weighted tag profile (e.g. a user's tags), best first.
    /// Tags unknown to the store are ignored.
    pub fn profile_items(&self, tags: &[(String, f32)], k: usize) -> Result<Vec<Recommendation>> {
        let snap = self.snapshot();
        let mut q: Vec<(u32, f32)> = tags
            .iter()
            .filter(|(_, w)| w.is_finite() && *w > 0.0)
            .filter_map(|(n, w)| Some((snap.tag_id(n)?, *w)))
            .collect();
        q.sort_unstable_by_key(|p| p.0);
        q.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1 += b.1;
            }
            same
        });
        let hits = top_k_cosine(&snap, &q, k, None);
        Ok(explain(&snap, &q, &hits))
    }
}
