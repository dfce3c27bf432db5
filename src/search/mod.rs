//! Top-k similarity queries: "more like this item" and "items for this tag profile".
//!
//! * [`score`] — the one exact scoring function and the similarity/weighting options.
//! * [`filter`] — filters, exclusions and their compiled column checks.
//! * `pruned` — the windowed block-max MaxScore engine over the inverted index.
//! * `scan` — exhaustive scans: the brute-force oracle, few-candidate direct scoring, delta.
//! * `neighbours` — building and serving the precomputed neighbour lists.
//! * `topk` — the bounded heap, the documented tie order, the shared threshold.
//! * [`explain`] — results with the tags that contributed most.
//!
//! A query loads one snapshot (a lock-free `ArcSwap` load) and runs entirely on it, so it sees
//! one consistent segment + delta and never waits for a writer or a rebuild.

mod cursor;
pub mod explain;
pub mod filter;
mod kernels;
mod neighbours;
mod pruned;
mod scan;
pub mod score;
mod topk;

use serde::{Deserialize, Serialize};

pub use explain::Recommendation;
pub use filter::Filter;
pub use score::{Similarity, Weighting};

pub(crate) use neighbours::build as build_neighbours;
pub use neighbours::STAGE as NEIGHBOUR_STAGE;

use crate::error::{Error, Result};
use crate::model::display_id;
use crate::snapshot::{Row, Snapshot};
use filter::Compiled;
use score::Scorer;
use topk::Floor;
pub(crate) use topk::TopK;

/// The largest `k` a query may ask for.
pub const MAX_K: usize = 10_000;

/// Below this many candidates named by the filter, they are scored directly.
const DIRECT_LIMIT: usize = 20_000;

/// What to find items similar to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// "More like this": the item's own tags are the query; the item itself is excluded.
    Item(String),
    /// A weighted tag profile: a user's tags, or tags taken from a search box. Tags the store
    /// has never seen are ignored; weights must be finite and non-negative.
    Profile(Vec<(String, f32)>),
}

/// Which algorithm answers. `Auto` is right for applications; the others exist so tests and
/// benchmarks can hold the fast paths to the exhaustive answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Neighbour list when it provably holds the answer, else direct scoring when the filter
    /// leaves few candidates, else the pruned engine.
    #[default]
    Auto,
    /// Always the pruned engine (no neighbour lists, no direct scoring).
    Pruned,
    /// Score every item. The reference answer; slow.
    Exhaustive,
}

/// The path that produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// Served from the precomputed neighbour list.
    Neighbours,
    /// The filter named few candidates; each was scored.
    Direct,
    /// The pruned engine over the inverted index.
    Pruned,
    /// Every item was scored.
    Exhaustive,
    /// Nothing could match (no usable query tags, or an unsatisfiable filter).
    Empty,
}

/// What a query cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueryStats {
    /// Which path answered.
    pub path: Path,
    /// Items whose exact score was computed (or list entries checked, for `Neighbours`).
    pub scored: u64,
    /// Postings read by the pruned engine.
    pub postings: u64,
    /// Id windows the pruned engine skipped entirely.
    pub windows_skipped: u64,
    /// Id windows the pruned engine read densely: the essential lists covered enough of the
    /// window that sweeping its whole accumulator was cheaper than tracking touched items.
    pub windows_swept: u64,
    /// Item slots the pruned engine summed from dense columns (one byte per item, for tags
    /// that most items carry) instead of reading postings.
    pub column_slots: u64,
}

/// A top-k similarity query. Build with [`Query::similar_to`] or [`Query::profile`] and the
/// setters; run with [`crate::Store::query`] (or [`crate::View::query`]).
///
/// ```
/// use recostore::{Filter, Item, Query, Store};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.upsert_items(&[
///     Item::new("mug-red", [("colour:red", 1.0), ("type:mug", 1.0)]).category("kitchen/mugs"),
///     Item::new("mug-blue", [("colour:blue", 1.0), ("type:mug", 1.0)]).category("kitchen/mugs"),
///     Item::new("cap-red", [("colour:red", 1.0), ("type:cap", 1.0)]).category("apparel"),
/// ])?;
/// let q = Query::similar_to("mug-red").k(5).filter(Filter::new().category("kitchen"));
/// let recs = store.query(&q)?;
/// assert_eq!(recs.len(), 1);
/// assert_eq!(recs[0].id, "mug-blue");
/// assert_eq!(recs[0].matched[0].0, "type:mug");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// What to compare against.
    pub target: Target,
    /// How many results (at most [`MAX_K`]). Default 10.
    pub k: usize,
    /// Default cosine.
    pub similarity: Similarity,
    /// Default none.
    pub weighting: Weighting,
    /// Default: everything allowed.
    pub filter: Filter,
    /// Default auto.
    pub method: Method,
    /// Threads to split one query's scan across. Default 1: a request thread should not fan
    /// out unless the shop has idle cores; throughput comes from concurrent queries.
    pub threads: usize,
}

impl Query {
    fn with(target: Target) -> Query {
        Query {
            target,
            k: 10,
            similarity: Similarity::default(),
            weighting: Weighting::default(),
            filter: Filter::default(),
            method: Method::default(),
            threads: 1,
        }
    }

    /// Items similar to item `id`.
    pub fn similar_to(id: impl Into<String>) -> Query {
        Query::with(Target::Item(id.into()))
    }

    /// Items matching a weighted tag profile.
    pub fn profile<S: Into<String>>(tags: impl IntoIterator<Item = (S, f32)>) -> Query {
        Query::with(Target::Profile(
            tags.into_iter().map(|(n, w)| (n.into(), w)).collect(),
        ))
    }

    /// Set `k`.
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Set the similarity.
    pub fn similarity(mut self, s: Similarity) -> Self {
        self.similarity = s;
        self
    }

    /// Set the tag weighting.
    pub fn weighting(mut self, w: Weighting) -> Self {
        self.weighting = w;
        self
    }

    /// Set the filter.
    pub fn filter(mut self, f: Filter) -> Self {
        self.filter = f;
        self
    }

    /// Force a method.
    pub fn method(mut self, m: Method) -> Self {
        self.method = m;
        self
    }

    /// Split the scan across `n` threads.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidQuery { reason });
        if self.k > MAX_K {
            return bad(format!("k = {} is above the limit of {MAX_K}", self.k));
        }
        if !(1..=256).contains(&self.threads) {
            return bad(format!(
                "threads = {} must be between 1 and 256",
                self.threads
            ));
        }
        if let Target::Profile(tags) = &self.target {
            if let Some((n, w)) = tags.iter().find(|(_, w)| !w.is_finite() || *w < 0.0) {
                return bad(format!(
                    "tag `{n}` has weight {w}; weights must be finite and >= 0"
                ));
            }
        }
        self.filter.validate()
    }
}

/// A query as `(tag id, weight)` pairs sorted by tag id, plus the item it came from (excluded
/// from its own results).
type QueryVector = (Vec<(u32, f32)>, Option<u32>);

/// Resolve the query's target to tag ids (sorted, merged) and the id to exclude.
fn query_vector(snap: &Snapshot, target: &Target) -> Result<QueryVector> {
    match target {
        Target::Item(name) => {
            let not_found = || Error::NotFound {
                what: "item",
                id: display_id(name),
            };
            let id = snap.item_id(name).ok_or_else(not_found)?;
            let tags = match snap.item_row(id).ok_or_else(not_found)? {
                Row::Delta(r) => r.tags.clone(),
                Row::Segment(i) => snap.seg().items.forward.row_vec(i),
            };
            Ok((tags, Some(id)))
        }
        Target::Profile(tags) => {
            let mut q: Vec<(u32, f32)> = tags
                .iter()
                .filter(|(_, w)| *w > 0.0)
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
            Ok((q, None))
        }
    }
}

/// Run `q` against one snapshot.
pub(crate) fn run(snap: &Snapshot, q: &Query) -> Result<(Vec<Recommendation>, QueryStats)> {
    run_excluding(snap, q, &[])
}

/// Run `q`, also excluding the dense item ids in `excluded` (a user's purchases, a basket).
pub(crate) fn run_excluding(
    snap: &Snapshot,
    q: &Query,
    excluded: &[u32],
) -> Result<(Vec<Recommendation>, QueryStats)> {
    q.validate()?;
    let items = &snap.seg().items;
    let (vector, self_id) = query_vector(snap, &q.target)?;
    let scorer = Scorer::new(&vector, q.similarity, q.weighting, items);
    let mut filter = Compiled::new(snap, &q.filter, self_id);
    if !excluded.is_empty() {
        filter.exclude_all(excluded);
    }
    let mut stats = QueryStats {
        path: Path::Empty,
        scored: 0,
        postings: 0,
        windows_skipped: 0,
        windows_swept: 0,
        column_slots: 0,
    };
    if scorer.is_empty() || filter.impossible() || q.k == 0 {
        return Ok((Vec::new(), stats));
    }
    let mut top = TopK::new(q.k);
    // Re-tagged delta rows: all of them for the oracle; for the fast paths the few written
    // since the index's last flush now, and its runs after the segment, whose answer gives
    // their pruning a high floor from the start.
    let rows = match q.method {
        Method::Exhaustive => &snap.delta.retagged,
        Method::Auto | Method::Pruned => &snap.delta.unindexed,
    };
    stats.scored += scan::delta(snap, rows, &scorer, &filter, &mut top);
    let mut hits = match q.method {
        Method::Exhaustive => {
            stats.path = Path::Exhaustive;
            stats.scored += scan::all_segment(snap, &scorer, &filter, &mut top);
            top
        }
        Method::Auto | Method::Pruned => {
            let auto = q.method == Method::Auto;
            let from_list = match self_id {
                Some(id)
                    if auto
                        && q.similarity == Similarity::Cosine
                        && q.weighting == Weighting::None
                        && !snap.delta.retag_shadow.get(id) =>
                {
                    let mut attempt = top.clone();
                    neighbours::serve(&snap.segment, id, &filter, &mut attempt)
                        .map(|n| (attempt, n))
                }
                _ => None,
            };
            if let Some((t, n)) = from_list {
                stats.path = Path::Neighbours;
                stats.scored += n;
                t
            } else if let Some(ids) = auto.then(|| filter.candidates(DIRECT_LIMIT)).flatten() {
                stats.path = Path::Direct;
                stats.scored += scan::ids(snap, ids, &scorer, &filter, &mut top);
                top
            } else {
                stats.path = Path::Pruned;
                let floor = Floor::default();
                floor.raise(top.threshold());
                let search = pruned::Search {
                    items,
                    scorer: &scorer,
                    filter: &filter,
                    prime: true,
                };
                let (seg_top, work) = search.run(q.k, q.threads, &floor);
                stats.scored += work.scored;
                stats.postings = work.postings;
                stats.windows_skipped = work.windows_skipped;
                stats.windows_swept = work.windows_swept;
                stats.column_slots = work.column_slots;
                top.merge(seg_top);
                top
            }
        }
    };
    if q.method != Method::Exhaustive {
        search_runs(snap, &scorer, &filter, q.k, &mut hits, &mut stats);
    }
    Ok((explain::explain(snap, &scorer, &hits.into_sorted()), stats))
}

/// Offer the items in the runs of the delta's index, each searched with the pruned engine, its
/// floor raised by what was found so far. A run's hits come back in local ids, ascending with
/// the global ones, so its top-`k` is exactly the share of the global top-`k` it holds.
fn search_runs(
    snap: &Snapshot,
    scorer: &Scorer<'_>,
    filter: &Compiled<'_>,
    k: usize,
    top: &mut TopK,
    stats: &mut QueryStats,
) {
    for run in &snap.delta.runs {
        let on_run = filter.for_run(&snap.delta, run);
        let floor = Floor::default();
        floor.raise(top.threshold());
        let search = pruned::Search {
            items: run.table(),
            scorer,
            filter: &on_run,
            prime: top.threshold() <= 0.0,
        };
        let (hits, work) = search.run(k, 1, &floor);
        stats.scored += work.scored;
        stats.postings += work.postings;
        for h in hits.into_sorted() {
            top.offer(run.global(h.id), h.score);
        }
    }
}

/// Score exactly the items `ids` (segment or delta) against `q`'s target, best first, with
/// `q`'s filter applied: for callers that already have a candidate set (a scenario re-scoring
/// its candidates against a profile). `q.k` is ignored; every scoring id is returned.
pub(crate) fn score_ids(snap: &Snapshot, q: &Query, ids: &[u32]) -> Result<Vec<Recommendation>> {
    q.validate()?;
    let items = &snap.seg().items;
    let (vector, self_id) = query_vector(snap, &q.target)?;
    let scorer = Scorer::new(&vector, q.similarity, q.weighting, items);
    let hits = scored_ids(snap, q, &scorer, self_id, ids);
    Ok(explain::explain(snap, &scorer, &hits))
}

/// The exact scores of `ids` against `q`'s target (those the filter allows and that score
/// above 0), best first, without the explanations [`score_ids`] builds: for callers that
/// need only the number (a substitute's or complement's tag match).
pub(crate) fn score_ids_only(snap: &Snapshot, q: &Query, ids: &[u32]) -> Result<Vec<(u32, f32)>> {
    q.validate()?;
    let items = &snap.seg().items;
    let (vector, self_id) = query_vector(snap, &q.target)?;
    let scorer = Scorer::new(&vector, q.similarity, q.weighting, items);
    Ok(scored_ids(snap, q, &scorer, self_id, ids)
        .into_iter()
        .map(|h| (h.id, h.score))
        .collect())
}

/// `ids` scored exactly against `scorer` (those `q`'s filter allows, above 0), best first.
fn scored_ids(
    snap: &Snapshot,
    q: &Query,
    scorer: &Scorer<'_>,
    self_id: Option<u32>,
    ids: &[u32],
) -> Vec<topk::Hit> {
    let items = &snap.seg().items;
    let filter = Compiled::new(snap, &q.filter, self_id);
    if scorer.is_empty() || ids.is_empty() {
        return Vec::new();
    }
    let mut top = TopK::new(ids.len());
    for &id in ids {
        let s = match snap.item_row(id) {
            Some(Row::Delta(r)) if filter.allows_row(id, &r) => scorer.score(
                r.tags.iter().copied(),
                crate::segment::builder::l2_norm(r.tags.iter().map(|p| p.1)),
            ),
            Some(Row::Segment(i)) if filter.allows_segment(i) => scorer.score_segment(items, i),
            _ => 0.0,
        };
        if s > 0.0 {
            top.offer(id, s);
        }
    }
    top.into_sorted()
}

impl Snapshot {
    /// Run a similarity query against this snapshot (what [`crate::Store::query_with_stats`] does
    /// with the current one).
    pub fn query(&self, q: &Query) -> Result<(Vec<Recommendation>, QueryStats)> {
        run(self, q)
    }
}
