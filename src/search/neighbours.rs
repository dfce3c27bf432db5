//! Precomputed neighbour lists: built with each segment, used to answer "more like this" for
//! an unchanged segment item without a search.
//!
//! Serving stays exact. The list of item `x` holds its best `per_item` segment neighbours with
//! their exact cosine scores, and every segment item missing from a full list ranks after the
//! list's last entry (see [`crate::segment::neighbours`]). A query drops entries the filter
//! rejects or the delta has overridden, adds the delta's own hits, and keeps the best `k`. If
//! all `k` rank at or before the list's last entry (or the list is complete), nothing outside
//! the list can beat them, so that is the exact answer; otherwise the caller searches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::filter::Compiled;
use super::pruned::Search;
use super::score::{Scorer, Similarity, Weighting};
use super::topk::{Floor, Hit, TopK};
use crate::progress::{Meter, Progress};
use crate::segment::neighbours::NeighbourData;
use crate::segment::Segment;

/// The stage name neighbour-list builds report progress under.
pub const STAGE: &str = "neighbour lists";

/// Items per claim when threads share the build.
const CLAIM: usize = 64;

/// Compute the lists of every live item of `seg` with `threads` threads, reporting items done
/// to `progress` (stage [`STAGE`]).
pub(crate) fn build(
    seg: &Segment,
    per_item: usize,
    threads: usize,
    progress: Option<&Progress>,
) -> NeighbourData {
    let items = &seg.data().items;
    let slots = items.slots();
    let bar = Meter::new(progress, STAGE, slots as u64);
    let next = AtomicUsize::new(0);
    let chunks: Mutex<Vec<(usize, Vec<Vec<Hit>>)>> = Mutex::new(Vec::new());
    let threads = threads.max(1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let first = next.fetch_add(CLAIM, Ordering::Relaxed);
                if first >= slots {
                    break;
                }
                let end = (first + CLAIM).min(slots);
                let lists: Vec<Vec<Hit>> = (crate::narrow::u32_from(first)
                    ..crate::narrow::u32_from(end))
                    .map(|id| list_for(seg, id, per_item))
                    .collect();
                bar.add((end - first) as u64);
                chunks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((first, lists));
            });
        }
    });
    bar.finish();
    let mut chunks = chunks.into_inner().unwrap_or_else(|p| p.into_inner());
    chunks.sort_unstable_by_key(|c| c.0);
    let mut data = NeighbourData {
        generation: seg.generation(),
        per_item: crate::narrow::u32_from(per_item),
        offsets: Vec::with_capacity(slots + 1),
        ids: Vec::new(),
        scores: Vec::new(),
    };
    data.offsets.push(0);
    for (_, lists) in chunks {
        for l in lists {
            for h in l {
                data.ids.push(h.id);
                data.scores.push(h.score);
            }
            data.offsets.push(data.ids.len() as u64);
        }
    }
    data
}

/// The list of one item: an exact pruned search over the bare segment.
fn list_for(seg: &Segment, id: u32, per_item: usize) -> Vec<Hit> {
    let items = &seg.data().items;
    if !items.is_live(id) {
        return Vec::new();
    }
    let query = items.forward.row_vec(id);
    let scorer = Scorer::new(&query, Similarity::Cosine, Weighting::None, items);
    let mut filter = Compiled::bare(items, None);
    filter.exclude(id);
    let search = Search {
        items,
        scorer: &scorer,
        filter: &filter,
        prime: true,
    };
    search.run(per_item, 1, &Floor::default()).0.into_sorted()
}

/// Answer from the list of segment item `id` if that is provably exact. `top` already holds
/// the delta's hits; segment entries are offered on top. `None` means "search instead".
pub(crate) fn serve(seg: &Segment, id: u32, filter: &Compiled<'_>, top: &mut TopK) -> Option<u64> {
    let n = seg.neighbours()?;
    if !n.covers(id) || !seg.data().items.is_live(id) {
        return None;
    }
    let (ids, scores) = n.list(id);
    let mut offered = 0;
    for (i, s) in ids.iter().zip(scores) {
        let i = i.to_native();
        if filter.allows_segment(i) {
            offered += 1;
            top.offer(i, s.to_native());
        }
    }
    let complete = ids.len() < n.per_item();
    let last = ids.len().checked_sub(1).map(|j| Hit {
        id: ids[j].to_native(),
        score: scores[j].to_native(),
    });
    match (complete, top.worst_if_full(), last) {
        (true, _, _) => Some(offered),
        (false, Some(worst), Some(last)) if worst >= last => Some(offered),
        _ => None,
    }
}
