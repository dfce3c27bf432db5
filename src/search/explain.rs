//! Turning scored ids into [`Recommendation`]s that say why each item was recommended.

use super::score::Scorer;
use super::topk::Hit;
use crate::segment::builder::l2_norm;
use crate::snapshot::{Row, Snapshot};

pub use crate::recommendation::Recommendation;

/// How many contributing tags an explanation lists.
pub const EXPLAIN_TAGS: usize = 5;

/// Look up names and titles for `hits` and attach the top contributing tags. Reads only the
/// columns it needs (no full record copy): on the neighbour-list path this is most of the work.
pub(crate) fn explain(snap: &Snapshot, scorer: &Scorer<'_>, hits: &[Hit]) -> Vec<Recommendation> {
    hits.iter()
        .filter_map(|h| {
            let (id, title, tags, norm) = match snap.item_row(h.id)? {
                Row::Delta(r) => {
                    let norm = l2_norm(r.tags.iter().map(|p| p.1));
                    (r.name.clone(), r.title.clone(), r.tags.clone(), norm)
                }
                Row::Segment(i) => {
                    let t = &snap.seg().items;
                    (
                        t.names.get(i)?.to_string(),
                        t.titles.get(i).unwrap_or("").to_string(),
                        t.forward.row_vec(i),
                        t.forward.norm(i),
                    )
                }
            };
            let mut matched: Vec<(String, f32)> = scorer
                .contributions(&tags, norm)
                .into_iter()
                .filter_map(|(t, c)| Some((snap.tag_name(t)?.to_string(), c)))
                .collect();
            matched.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            matched.truncate(EXPLAIN_TAGS);
            Some(Recommendation {
                id,
                title,
                score: h.score,
                matched,
                reasons: Vec::new(),
            })
        })
        .collect()
}
