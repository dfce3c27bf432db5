//! Exact top-k over the inverted index with windowed block-max MaxScore.
//!
//! The item id space is walked in windows of up to [`WINDOW`] ids. For each window:
//!
//! 1. Every query tag gets an upper bound on what it can add to any item in the window: its
//!    query factor times the largest weight of the posting blocks that overlap the window
//!    (zero if it has no postings there).
//! 2. Tags are split MaxScore-style. The *non-essential* ones have bounds summing below the
//!    current threshold θ (the k-th best score so far), so an item matching only them cannot
//!    make the top-k and they are not read. We fill that set with the longest lists first,
//!    since those are the expensive ones to read. If every tag fits, the window is skipped.
//! 3. The essential lists' postings in the window are summed into a small accumulator. An item
//!    whose partial sum plus the non-essential bounds cannot reach θ is dropped; every other
//!    candidate is checked against the non-essential lists one by one, and if it still may
//!    reach θ and passes the filter it is scored *exactly* from its forward row (the same
//!    [`Scorer::score`] the oracle uses) and offered to the heap. Two bounds are tried per
//!    item: the window's (block maxima of `weight / norm`) and, for cosine, the item's own
//!    (block maxima of the raw weight divided by this item's norm), which is tighter for the
//!    many items whose norm is above the window's smallest.
//! 4. Windows where the essential lists are dense (popular tags) are *swept*: no per-posting
//!    bookkeeping of which slots were touched; afterwards 64 slots at a time are compared
//!    with the bound in a branch-free loop, and only the few that pass are looked at. At 1M
//!    Zipf items this halved the candidate work (see `bench/RESULTS.md`).
//! 5. Tags that most items carry also have a *dense column* in the segment: one byte per item,
//!    the weight quantised upwards. In a swept window an essential list with a column is
//!    summed from it (a vectorised pass, several columns at a time) instead of scattering its
//!    postings, and a non-essential one answers a candidate's probe with one byte instead of a
//!    seek. Quantised weights only ever raise a bound, and every survivor is scored exactly,
//!    so the answer stays exact. The two passes over whole windows (columns, and the sweep's
//!    test) are compiled for AVX2 and AVX-512 too and picked at run time (`multiversion`),
//!    since a default build targets the oldest x86-64.
//!
//! θ starts from a priming pass (the exact scores of the items on the query's rarest tags,
//! which are cheap to read and likely to be good) and from whatever the caller already holds
//! (the delta's hits), and rises as the heap fills. Pruning only ever drops items whose upper
//! bound is below θ, with [`SLACK`](super::topk::SLACK) for float rounding, so the result is
//! the exact top-k. Windows can be handed to several threads; they share θ through
//! [`Floor`].

use std::sync::atomic::{AtomicUsize, Ordering};

use super::cursor::Cursor;
use super::filter::Compiled;
use super::kernels::{accumulate, add_columns, sweep_cuts, sweep_mask, COLUMN_BATCH, SWEEP_WORDS};
use super::score::{Scorer, Similarity};
use super::topk::{prunable, Floor, TopK};
use crate::segment::format::{ArchivedItemTable, BLOCK_LEN};
use crate::segment::postings::PostingList;

/// Largest number of item ids per window. The accumulator (128 KiB) stays in L2; the cost per
/// window (bounding every list, choosing the essential ones) is paid 31 times at 1M items.
/// With dense columns the bounds of popular tags are loose anyway, so wider windows lose
/// little pruning: at 1M Zipf items 4096 / 8192 / 16384 / 32768 / 65536 measured about
/// 2.8 / 2.3 / 2.2 / 2.1 / 2.1 ms p50 (ad-hoc runs before the sweep was vectorised).
/// Small segments use smaller windows (see [`window_for`]).
pub(crate) const WINDOW: usize = 32768;

/// Window size for a segment of `slots` items: about 16 windows, between 64 and [`WINDOW`],
/// a power of two.
fn window_for(slots: usize) -> usize {
    (slots / 16).next_power_of_two().clamp(64, WINDOW)
}
/// Windows a thread claims at a time when a query is split across threads.
const WINDOWS_PER_CLAIM: usize = 4;
/// Lists at most this long are read in the priming pass.
const PRIME_LIST: usize = 4096;
/// The priming pass stops after this many candidates.
const PRIME_BUDGET: usize = 8192;

/// Work done by one query, for [`super::QueryStats`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Work {
    /// Items scored exactly.
    pub scored: u64,
    /// Postings read into accumulators.
    pub postings: u64,
    /// Windows skipped without reading a posting.
    pub windows_skipped: u64,
    /// Windows whose accumulator was swept whole instead of tracking touched items.
    pub windows_swept: u64,
    /// Item slots summed from dense columns instead of postings.
    pub column_slots: u64,
}

impl Work {
    fn add(&mut self, o: Work) {
        self.scored += o.scored;
        self.postings += o.postings;
        self.windows_skipped += o.windows_skipped;
        self.windows_swept += o.windows_swept;
        self.column_slots += o.column_slots;
    }
}

/// Per-thread state: window scratch plus this thread's heap and work counters.
struct Scratch {
    top: TopK,
    work: Work,
    /// Slots per window; `acc` and `seen` have room for the largest window.
    window: usize,
    acc: Box<[f32; WINDOW]>,
    seen: Box<[u64; WINDOW / 64]>,
    order: Vec<usize>,
    ne: Vec<usize>,
    /// Dense columns failed to prune for this query (see [`COLUMN_GIVE_UP`]): lists are read
    /// from their exact postings from here on.
    no_columns: bool,
}

/// An accumulator and its touched-slot bits, at rest all zero.
type Slots = (Box<[f32; WINDOW]>, Box<[u64; WINDOW / 64]>);

/// The priming pass's buffers: gathered postings, then per-item partial scores.
type PrimeBuffers = (Vec<(u32, f32)>, Vec<(f32, u32)>);

thread_local! {
    /// The last query's accumulator on this thread. Allocating and zeroing 128 KiB per query
    /// would cost a small store more than its whole scan.
    static SPARE: std::cell::RefCell<Option<Slots>> = const { std::cell::RefCell::new(None) };
    /// The priming pass's buffers, kept between queries. Growing them afresh each query
    /// reallocates a few times up to 64 KiB, and in a long-lived process with a fragmented
    /// glibc heap those reallocations were measured at a quarter of a 1M-item query's time.
    static PRIME_SPARE: std::cell::RefCell<PrimeBuffers> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

impl Scratch {
    fn new(window: usize, k: usize) -> Scratch {
        let (acc, seen) = match SPARE.with(|s| s.borrow_mut().take()) {
            // Windows leave their slots zero, so this is insurance: clearing the part this
            // query uses costs little next to its scan, and no sum can leak between queries.
            Some((mut acc, mut seen)) => {
                acc[..window].fill(0.0);
                seen.fill(0);
                (acc, seen)
            }
            None => (Box::new([0.0; WINDOW]), Box::new([0; WINDOW / 64])),
        };
        Scratch {
            top: TopK::new(k),
            work: Work::default(),
            window,
            acc,
            seen,
            order: Vec::new(),
            ne: Vec::new(),
            no_columns: false,
        }
    }

    /// This thread's heap and counters; the slots go back for the next query.
    fn finish(self) -> (TopK, Work) {
        SPARE.with(|s| *s.borrow_mut() = Some((self.acc, self.seen)));
        (self.top, self.work)
    }
}

/// Everything the scan of one query needs, shared by its threads.
pub(crate) struct Search<'s, 'a> {
    pub items: &'a ArchivedItemTable,
    pub scorer: &'s Scorer<'a>,
    pub filter: &'s Compiled<'a>,
    /// Prime the floor by scoring the most promising few first. Worth it when the floor
    /// starts low; a run of the delta's index searched after the segment already has a floor
    /// near the final one, and priming a small table would read most of its short lists.
    pub prime: bool,
}

impl Search<'_, '_> {
    fn cursors(&self) -> Vec<Cursor<'_>> {
        // Sized up front: a filtered iterator would grow the vector by reallocation.
        let mut cursors = Vec::with_capacity(self.scorer.terms.len());
        cursors.extend(
            self.scorer
                .terms
                .iter()
                .map(|&term| Cursor {
                    list: self.items.postings.list(term.tag),
                    term,
                    pos: 0,
                    blk: 0,
                    ub: 0.0,
                    ub_raw: 0.0,
                    count: 0,
                    cost: 0,
                    essential: false,
                })
                .filter(|c| !c.list.is_empty()),
        );
        cursors
    }

    /// Raise `floor` to the k-th best exact score among items on the query's rarest tags:
    /// gather their postings, rank the items by the partial score those tags give, and score
    /// the most promising few exactly. Any real item's exact score is a valid floor.
    fn prime(&self, k: usize, floor: &Floor, work: &mut Work) {
        PRIME_SPARE.with(|spare| match spare.try_borrow_mut() {
            Ok(mut bufs) => {
                let (gathered, partial) = &mut *bufs;
                self.prime_with(k, floor, work, gathered, partial);
            }
            // Only a re-entrant query on this thread finds them taken; it pays for its own.
            Err(_) => self.prime_with(k, floor, work, &mut Vec::new(), &mut Vec::new()),
        });
    }

    fn prime_with(
        &self,
        k: usize,
        floor: &Floor,
        work: &mut Work,
        gathered: &mut Vec<(u32, f32)>,
        partial: &mut Vec<(f32, u32)>,
    ) {
        gathered.clear();
        partial.clear();
        let sim = self.scorer.sim;
        let mut lists: Vec<(PostingList<'_>, super::score::Term)> =
            Vec::with_capacity(self.scorer.terms.len());
        lists.extend(
            self.scorer
                .terms
                .iter()
                .map(|&t| (self.items.postings.list(t.tag), t))
                .filter(|(l, _)| !l.is_empty() && l.len() <= PRIME_LIST),
        );
        lists.sort_by_key(|(l, _)| l.len());
        for (l, term) in lists {
            if gathered.len() + l.len() > PRIME_BUDGET {
                break;
            }
            let c = Cursor {
                list: l,
                term,
                pos: 0,
                blk: 0,
                ub: 0.0,
                ub_raw: 0.0,
                count: 0,
                cost: 0,
                essential: true,
            };
            gathered.extend(
                l.items
                    .iter()
                    .zip(l.weights)
                    .map(|(i, w)| (i.to_native(), c.contribution(sim, w.to_native()))),
            );
        }
        gathered.sort_unstable_by_key(|p| p.0);
        let norms = &self.items.forward.norms;
        for run in gathered.chunk_by(|a, b| a.0 == b.0) {
            let id = run[0].0;
            let sum: f32 = run.iter().map(|p| p.1).sum();
            let n = match sim {
                Similarity::Cosine => norms.get(id as usize).map_or(0.0, |n| n.to_native()),
                _ => 1.0,
            };
            if n > 0.0 {
                partial.push((sum / n, id));
            }
        }
        let keep = (4 * k + 64).min(partial.len());
        if keep < partial.len() {
            partial.select_nth_unstable_by(keep, |a, b| b.0.total_cmp(&a.0));
            partial.truncate(keep);
        }
        let mut top = TopK::new(k);
        for &(_, id) in partial.iter() {
            if self.filter.allows_segment(id) {
                work.scored += 1;
                let s = self.scorer.score_segment(self.items, id);
                if s > 0.0 {
                    top.offer(id, s);
                }
            }
        }
        floor.raise(top.threshold());
    }

    /// The exact top-`k` of the segment, using `threads` threads (at least 1). `floor` may
    /// already hold a threshold known from elsewhere (the delta's hits).
    pub fn run(&self, k: usize, threads: usize, floor: &Floor) -> (TopK, Work) {
        let mut work = Work::default();
        if k == 0 || self.scorer.is_empty() {
            return (TopK::new(k), work);
        }
        if self.prime {
            self.prime(k, floor, &mut work);
        }
        let window = window_for(self.items.slots());
        let windows = self.items.slots().div_ceil(window);
        let next = AtomicUsize::new(0);
        let threads = threads.clamp(1, windows.max(1));
        if threads == 1 {
            let (top, w) = self.worker(k, window, windows, &next, floor);
            work.add(w);
            return (top, work);
        }
        let results: Vec<(TopK, Work)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| s.spawn(|| self.worker(k, window, windows, &next, floor)))
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(r) => r,
                    Err(p) => std::panic::resume_unwind(p),
                })
                .collect()
        });
        let mut top = TopK::new(k);
        for (t, w) in results {
            top.merge(t);
            work.add(w);
        }
        (top, work)
    }

    /// Claim runs of windows until none are left; return this thread's heap.
    fn worker(
        &self,
        k: usize,
        window: usize,
        windows: usize,
        next: &AtomicUsize,
        floor: &Floor,
    ) -> (TopK, Work) {
        let mut cursors = self.cursors();
        let mut scratch = Scratch::new(window, k);
        loop {
            let first = next.fetch_add(WINDOWS_PER_CLAIM, Ordering::Relaxed);
            if first >= windows {
                break;
            }
            for w in first..(first + WINDOWS_PER_CLAIM).min(windows) {
                let lo = crate::narrow::u32_from(w * window);
                let hi = lo.saturating_add(crate::narrow::u32_from(window));
                self.window(lo, hi, &mut cursors, &mut scratch, floor);
            }
        }
        scratch.finish()
    }

    fn window(
        &self,
        lo: u32,
        hi: u32,
        cursors: &mut [Cursor<'_>],
        sc: &mut Scratch,
        floor: &Floor,
    ) {
        let sim = self.scorer.sim;
        let mut theta = floor.get().max(sc.top.threshold());

        // 1. Bounds for this window, and what reading each list here costs.
        let slots = self.items.slots().max(1);
        let len = (hi.min(crate::narrow::u32_from(slots)).max(lo) - lo) as usize;
        let sweepable = self.sweep_bound(lo, len).is_some();
        let columns = !sc.no_columns;
        for c in cursors.iter_mut() {
            c.bound_window(sim, lo, hi, self.scorer.q_l1);
            c.cost = match c.list.column {
                Some(_) if columns && sweepable && c.count > 0 => len / COLUMN_COST,
                _ => c.count,
            };
        }
        // 2. Non-essential set: longest lists first while their bounds stay below β·θ. The
        //    gap (1-β)·θ left over lets most items found by a single essential list be dropped
        //    on the spot; the rest are checked against the non-essential lists one by one.
        sc.order.clear();
        sc.order
            .extend((0..cursors.len()).filter(|&i| cursors[i].count > 0));
        sc.order
            .sort_unstable_by(|&a, &b| cursors[b].cost.cmp(&cursors[a].cost));
        let mut ne_sum = 0.0f32;
        let mut ne_raw = 0.0f32;
        let mut any_essential = false;
        let budget = theta * NE_SHARE;
        sc.ne.clear();
        for &i in &sc.order {
            let c = &mut cursors[i];
            if prunable(ne_sum + c.ub, budget) {
                ne_sum += c.ub;
                ne_raw += c.ub_raw;
                c.essential = false;
                sc.ne.push(i);
            } else {
                c.essential = true;
                any_essential = true;
            }
        }
        if !any_essential {
            sc.work.windows_skipped += 1;
            return;
        }
        // Probe the non-essential lists with the largest bounds first: they cut bounds fastest.
        sc.ne
            .sort_unstable_by(|&a, &b| cursors[b].ub.total_cmp(&cursors[a].ub));
        for &i in &sc.ne {
            let c = &mut cursors[i];
            if columns && c.list.column.is_some() {
                continue;
            }
            let items = c.list.items;
            let mut p = c.pos.max(c.blk * BLOCK_LEN);
            while p < items.len() && items[p].to_native() < lo {
                p += 1;
            }
            c.pos = p;
        }
        // 3. Accumulate the essential lists. When they are dense in this window (the usual
        //    case for a query with popular tags), tracking which slots were touched costs more
        //    than sweeping the whole accumulator afterwards, so dense windows skip it.
        //    Block counts overstate sparse lists (one block can span many windows), so the
        //    estimate assumes each list is spread evenly over the id space. An essential list
        //    with a dense column is summed from the column, which only a swept window can do.
        let expected: usize = sc
            .order
            .iter()
            .filter(|&&i| cursors[i].essential)
            .map(|&i| match cursors[i].list.column {
                Some(_) if columns && sweepable => len,
                _ => cursors[i].list.len() * len / slots,
            })
            .sum();
        let sweep = if expected * DENSE_SHARE >= len {
            self.sweep_bound(lo, len)
        } else {
            None
        };
        sc.work.windows_swept += u64::from(sweep.is_some());
        // Columns are summed a few at a time, so the accumulator is loaded and stored once per
        // batch rather than once per column. Their sums only bound (the weights round up);
        // survivors are scored exactly.
        let mut batch: [(&[u8], f32); COLUMN_BATCH] = [(&[], 0.0); COLUMN_BATCH];
        let mut batched = 0;
        let mut summed_columns = false;
        for &i in &sc.order {
            let c = &mut cursors[i];
            if !c.essential {
                continue;
            }
            if let (Some(_), Some(col), true) = (&sweep, &c.list.column, columns) {
                if let Some(q) = col.q.get(lo as usize..lo as usize + len) {
                    batch[batched] = (q, c.term.factor * col.scale);
                    batched += 1;
                    summed_columns = true;
                    if batched == COLUMN_BATCH {
                        add_columns(&mut sc.acc[..len], &batch);
                        batched = 0;
                    }
                    sc.work.column_slots += len as u64;
                    continue;
                }
            }
            let items = c.list.items;
            let weights = c.list.weights;
            let mut p = c.pos.max(c.blk * BLOCK_LEN);
            while p < items.len() && items[p].to_native() < lo {
                p += 1;
            }
            let (Some(items), Some(weights)) = (items.get(p..), weights.get(p..)) else {
                continue;
            };
            let (factor, idf) = (c.term.factor, c.term.idf);
            let acc = (&mut *sc.acc, &mut *sc.seen);
            // One monomorphised loop per similarity and mode: no branch on them per posting.
            let read = match (sim, sweep.is_some()) {
                (Similarity::Cosine | Similarity::Dot, false) => {
                    accumulate::<true>(items, weights, (lo, hi), acc, |w| factor * w)
                }
                (Similarity::Cosine | Similarity::Dot, true) => {
                    accumulate::<false>(items, weights, (lo, hi), acc, |w| factor * w)
                }
                (Similarity::Jaccard, false) => {
                    accumulate::<true>(items, weights, (lo, hi), acc, |w| idf * factor.min(w))
                }
                (Similarity::Jaccard, true) => {
                    accumulate::<false>(items, weights, (lo, hi), acc, |w| idf * factor.min(w))
                }
            };
            sc.work.postings += read as u64;
            c.pos = p + read;
        }
        add_columns(&mut sc.acc[..len], &batch[..batched]);
        let scored_before = sc.work.scored;
        // 4. Candidates in id order (so non-essential cursors only move forward): bound,
        //    refine against the non-essential lists, filter, score exactly. A dense window
        //    first sweeps 64 slots at a time into a bitmask of those whose bound can reach θ
        //    (a branch-free loop the compiler vectorises), then clears them.
        let words = if sweep.is_some() {
            len.div_ceil(64)
        } else {
            sc.window.div_ceil(64)
        };
        for chunk in (0..words).step_by(SWEEP_WORDS) {
            let chunk = chunk..(chunk + SWEEP_WORDS).min(words);
            let span = chunk.start * 64..(chunk.end * 64).min(len);
            if let Some(per_slot) = &sweep {
                // The cut follows θ as it rises, one chunk at a time.
                let (cut, whole) = sweep_cuts(theta, ne_sum);
                sweep_mask(
                    &sc.acc[span.clone()],
                    &per_slot[span.clone()],
                    (cut, whole, ne_raw),
                    &mut sc.seen[chunk.clone()],
                );
            }
            for word in chunk {
                let mut bits = std::mem::take(&mut sc.seen[word]);
                while bits != 0 {
                    let l = word * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let acc = std::mem::take(&mut sc.acc[l]);
                    let id = lo + crate::narrow::u32_from(l);
                    let cand = self.candidate(id, acc, (ne_sum, ne_raw), theta, cursors, &sc.ne);
                    if let Some(s) = cand {
                        sc.work.scored += 1;
                        if sc.top.offer(id, s) {
                            let t = sc.top.threshold();
                            if t > theta {
                                theta = t;
                                floor.raise(t);
                            }
                        }
                    }
                }
            }
            if sweep.is_some() {
                sc.acc[span].fill(0.0);
            }
        }
        // 5. A column's byte per item bounds its weight to within a 255th of the list's
        //    largest. When the best items crowd into that last step (heavy-tailed weights:
        //    many items whose one dominant tag is the query's), every one of them passes the
        //    bound and is scored exactly, at far more than reading the list's postings costs.
        if summed_columns && (sc.work.scored - scored_before) * COLUMN_GIVE_UP as u64 > len as u64 {
            sc.no_columns = true;
        }
    }

    /// What a dense window compares each slot's accumulated sum with, per unit of the sweep
    /// cut: the item norms for cosine (so no division per slot), ones for dot products. `None`
    /// keeps the window tracked: Jaccard's bound does not factor per slot this way, and a
    /// short norms column (a damaged file) must not be swept past its end.
    ///
    /// The norms are read as archived `f32`s, 4 MB a query at 1M items when every window is
    /// swept. Halving that with bfloat16 floors of the norms, derived once per segment, was
    /// built and measured in one process, the two variants alternating over 20 rounds of
    /// 400 queries (`cargo bench --bench shapes`): p50 1.60 against 1.52 ms on the Zipf
    /// catalogue, 0.53 against 0.54 ms on the retail one. The norms stay in cache between
    /// queries, so the bytes saved did not pay for the conversion; it was not kept.
    fn sweep_bound(&self, lo: u32, len: usize) -> Option<&[rkyv::rend::f32_le]> {
        let lo = lo as usize;
        match self.scorer.sim {
            Similarity::Cosine => self.items.forward.norms.get(lo..lo + len),
            Similarity::Dot => ONES.get(..len),
            Similarity::Jaccard => None,
        }
    }

    /// Refine one candidate's bound against the non-essential lists, filter it, and return its
    /// exact score if it may still make the top-k. Two bounds are kept: the window's (`ne_sum`,
    /// from `ub`) and, for cosine and dot, the item's own (`ne_raw` from `ub_raw`, divided by
    /// its norm); the item is dropped as soon as either is below θ.
    #[inline]
    fn candidate(
        &self,
        id: u32,
        acc: f32,
        (ne_sum, ne_raw): (f32, f32),
        theta: f32,
        cursors: &mut [Cursor<'_>],
        ne: &[usize],
    ) -> Option<f32> {
        let sim = self.scorer.sim;
        let q_l1 = self.scorer.q_l1;
        let scale = match sim {
            Similarity::Cosine => {
                let n = self.items.forward.norm(id);
                if n > 0.0 {
                    1.0 / n
                } else {
                    0.0
                }
            }
            Similarity::Dot => 1.0,
            Similarity::Jaccard if q_l1 > 0.0 => 1.0 / q_l1,
            Similarity::Jaccard => 0.0,
        };
        let mut bound = acc * scale + ne_sum;
        let mut own = match sim {
            Similarity::Cosine | Similarity::Dot => (acc + ne_raw) * scale,
            Similarity::Jaccard => f32::INFINITY,
        };
        if prunable(bound.min(own), theta) {
            return None;
        }
        for &i in ne {
            let c = &mut cursors[i];
            let add = c.bound_item(sim, id) * scale;
            bound += add - c.ub;
            own += add - c.ub_raw * scale;
            if prunable(bound.min(own), theta) {
                return None;
            }
        }
        if !self.filter.allows_segment(id) {
            return None;
        }
        let s = self.scorer.score_segment(self.items, id);
        (s > 0.0).then_some(s)
    }
}

/// `1.0` per slot: the sweep's per-slot factor for dot products.
static ONES: [rkyv::rend::f32_le; WINDOW] = [rkyv::rend::f32_le::from_native(1.0); WINDOW];

/// Essential postings expected in a window, times this, at or above the window's length make
/// the window dense (swept rather than tracked).
const DENSE_SHARE: usize = 4;

/// A window summed from dense columns that scores more than one slot in this many exactly
/// turns columns off for the rest of the query (per thread): an exact score reads the item's
/// forward row (a cache miss and a merge, ~100 ns), dozens of posting reads. Measured at 1M
/// items with heavy-tailed weights (`cargo bench --bench shapes`, sparse-skewed): queries on
/// the most popular tag scored 70,000 items exactly for a top-10.
const COLUMN_GIVE_UP: usize = 32;

/// Slots of a dense column summed for the cost of one posting read: the column is a
/// vectorised pass over a byte per slot, a posting a dependent scatter into the accumulator.
const COLUMN_COST: usize = 8;

/// Share of θ the non-essential bounds may take (β). At β = 1 (textbook MaxScore) almost
/// every candidate has to be checked against the non-essential lists; lower β reads more
/// postings but drops most candidates on the first comparison. Measured at 1M Zipf items
/// (ad-hoc runs of four similar-item queries): β 0.6 / 0.4 / 0.25 gave 10.2 / 9.4 /
/// 9.3 ms mean over four queries, against 12+ ms at 1.0; 0.4 reads fewer postings than 0.25
/// for the same time. On the Online Retail tags replicated to 1M items (5.5 tags per item,
/// `cargo bench --bench shapes`, `RECOSTORE_BENCH_PROFILE=all`), β = 1 read 30× fewer column
/// slots (19,833 against 592,707 a query) and 40% fewer postings, for about the same p50
/// (0.50 against 0.51 ms, two processes back to back): each surviving candidate then probes
/// a column byte at a random id (15% of the profile at β = 1), and those probes cost what
/// the sums saved.
const NE_SHARE: f32 = 0.4;
