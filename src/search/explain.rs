//! Turning scored ids into [`Recommendation`]s that say why each item was recommended.

use serde::Serialize;

use super::score::Scorer;
use super::topk::Hit;
use crate::segment::builder::l2_norm;
use crate::snapshot::Snapshot;

/// One recommended item with the reason it was recommended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// The item's id.
    pub id: String,
    /// Its title (may be empty).
    pub title: String,
    /// Similarity score under the query's [`super::Similarity`].
    pub score: f32,
    /// The shared tags that contributed most, with each one's share of `score`, largest first.
    pub matched: Vec<(String, f32)>,
}

/// How many contributing tags an explanation lists.
pub const EXPLAIN_TAGS: usize = 5;

/// Look up names and titles for `hits` and attach the top contributing tags.
pub(crate) fn explain(snap: &Snapshot, scorer: &Scorer<'_>, hits: &[Hit]) -> Vec<Recommendation> {
    hits.iter()
        .filter_map(|h| {
            let row = snap.stored_item(h.id)?;
            let norm = l2_norm(row.tags.iter().map(|p| p.1));
            let mut matched: Vec<(String, f32)> = scorer
                .contributions(&row.tags, norm)
                .into_iter()
                .filter_map(|(t, c)| Some((snap.tag_name(t)?.to_string(), c)))
                .collect();
            matched.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            matched.truncate(EXPLAIN_TAGS);
            Some(Recommendation {
                id: row.name,
                title: row.title,
                score: h.score,
                matched,
            })
        })
        .collect()
}
