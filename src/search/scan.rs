//! Exact scans: score every candidate in a set with [`Scorer::score`], no pruning.
//!
//! * [`all_segment`] visits every segment item: the brute-force oracle the tests hold the
//!   pruned engine to, and the baseline the benchmarks measure against.
//! * [`ids`] scores a short candidate list named by a selective filter ("few candidates are
//!   scored directly").
//! * [`delta`] scores the items re-tagged since the segment; they are few (the rebuild
//!   threshold bounds them) and have no inverted index. Attribute-only writes are not here:
//!   the segment's index still finds them.

use super::filter::Compiled;
use super::score::Scorer;
use super::topk::TopK;
use crate::segment::builder::l2_norm;
use crate::snapshot::Snapshot;

/// Offer every segment item that passes `filter`. Returns how many were scored.
pub(crate) fn all_segment(
    snap: &Snapshot,
    scorer: &Scorer<'_>,
    filter: &Compiled<'_>,
    top: &mut TopK,
) -> u64 {
    ids(
        snap,
        0..crate::narrow::u32_from(snap.seg().items.slots()),
        scorer,
        filter,
        top,
    )
}

/// Offer the segment items in `candidates` that pass `filter`.
pub(crate) fn ids(
    snap: &Snapshot,
    candidates: impl IntoIterator<Item = u32>,
    scorer: &Scorer<'_>,
    filter: &Compiled<'_>,
    top: &mut TopK,
) -> u64 {
    let items = &snap.seg().items;
    let mut scored = 0;
    for id in candidates {
        if filter.allows_segment(id) {
            scored += 1;
            let s = scorer.score_segment(items, id);
            if s > 0.0 {
                top.offer(id, s);
            }
        }
    }
    scored
}

/// Offer every live re-tagged delta item in `ids` that passes `filter`: all of them
/// (`delta.retagged`, the oracle) or those no run of the delta's index holds
/// (`delta.unindexed`).
pub(crate) fn delta(
    snap: &Snapshot,
    ids: &imbl::HashSet<u32>,
    scorer: &Scorer<'_>,
    filter: &Compiled<'_>,
    top: &mut TopK,
) -> u64 {
    let mut scored = 0;
    for &id in ids.iter() {
        let Some(row) = snap.delta.items.get(&id).and_then(|e| e.row.as_ref()) else {
            continue;
        };
        if filter.allows_row(id, row) {
            scored += 1;
            let norm = l2_norm(row.tags.iter().map(|p| p.1));
            let s = scorer.score(row.tags.iter().copied(), norm);
            if s > 0.0 {
                top.offer(id, s);
            }
        }
    }
    scored
}
