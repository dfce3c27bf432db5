//! The tag → item inverted index: built from the forward rows, read through checked views.
//!
//! Lists are sorted by item id and cut into blocks of [`BLOCK_LEN`] postings. Each block keeps
//! its last item id and its largest weights, raw and divided by the item's L2 norm. The pruned
//! top-k (`crate::search::pruned`) uses them to bound what a range of items can score before it
//! reads a single posting there.

use rkyv::rend::{f32_le, u32_le, u64_le};

use super::format::{
    ArchivedIdLists, ArchivedPostings, Forward, IdLists, Postings, BLOCK_LEN, COLUMN_DENSITY, NONE,
};

/// Invert `forward` (rows sorted by id, tags sorted within rows) over `tags` tag ids.
pub(crate) fn build(forward: &Forward, tags: usize) -> Postings {
    let mut counts = vec![0u64; tags + 1];
    for &t in &forward.tag_ids {
        if let Some(c) = counts.get_mut(t as usize) {
            *c += 1;
        }
    }
    let mut offsets = Vec::with_capacity(tags + 1);
    let mut sum = 0u64;
    for &c in counts.iter().take(tags) {
        offsets.push(sum);
        sum += c;
    }
    offsets.push(sum);
    let total = crate::narrow::usize_from(sum);
    let mut items = vec![0u32; total];
    let mut weights = vec![0f32; total];
    let mut fill: Vec<u64> = offsets[..tags].to_vec();
    for row in 0..forward.norms.len() {
        let (a, b) = (
            crate::narrow::usize_from(forward.offsets[row]),
            crate::narrow::usize_from(forward.offsets[row + 1]),
        );
        for j in a..b {
            let t = forward.tag_ids[j] as usize;
            if t < tags {
                let at = crate::narrow::usize_from(fill[t]);
                items[at] = crate::narrow::u32_from(row);
                weights[at] = forward.weights[j];
                fill[t] += 1;
            }
        }
    }
    let mut block_offsets = Vec::with_capacity(tags + 1);
    let mut block_first = Vec::new();
    let mut block_last = Vec::new();
    let mut block_max = Vec::new();
    let mut block_max_cos = Vec::new();
    for t in 0..tags {
        block_offsets.push(block_last.len() as u64);
        let (a, b) = (
            crate::narrow::usize_from(offsets[t]),
            crate::narrow::usize_from(offsets[t + 1]),
        );
        for start in (a..b).step_by(BLOCK_LEN) {
            let end = (start + BLOCK_LEN).min(b);
            let mut m = 0f32;
            let mut mc = 0f32;
            for j in start..end {
                let w = weights[j];
                let n = forward.norms[items[j] as usize];
                m = m.max(w);
                if n > 0.0 {
                    mc = mc.max(w / n);
                }
            }
            block_first.push(items[start]);
            block_last.push(items[end - 1]);
            block_max.push(m);
            block_max_cos.push(mc);
        }
    }
    block_offsets.push(block_last.len() as u64);
    let slots = forward.norms.len();
    let mut column_of = vec![NONE; tags];
    let mut column_scale = Vec::new();
    let mut columns = Vec::new();
    for t in 0..tags {
        let list = crate::narrow::usize_from(offsets[t])..crate::narrow::usize_from(offsets[t + 1]);
        if list.is_empty() || list.len() * COLUMN_DENSITY < slots {
            continue;
        }
        let Some(scale) = column_step(&weights[list.clone()]) else {
            continue;
        };
        let base = columns.len();
        columns.resize(base + slots, 0u8);
        let whole = list.into_iter().all(|j| {
            let q = quantise_up(weights[j], scale);
            if let (Some(q), Some(slot)) = (q, columns.get_mut(base + items[j] as usize)) {
                *slot = q;
            }
            q.is_some()
        });
        if !whole {
            columns.truncate(base);
            continue;
        }
        column_of[t] = crate::narrow::u32_from(column_scale.len());
        column_scale.push(scale);
    }
    Postings {
        offsets,
        items,
        weights,
        block_offsets,
        block_first,
        block_last,
        block_max,
        block_max_cos,
        column_of,
        column_scale,
        column_len: slots as u64,
        columns,
    }
}

/// Relative headroom of quantised weights over the exact ones. The pruned engine multiplies a
/// quantised weight by a query factor in an order that differs from the exact score's, so each
/// step keeps a margin far above f32 rounding (≈ 6e-8 per operation) and far below what would
/// blunt the bound (one step is 1/255 of the list's largest weight).
const QUANT_HEADROOM: f32 = 1e-5;

/// The step of a column: 255 steps reach a little above the largest weight. `None` when the
/// weights are not positive and finite or the steps would overflow, so no column is built.
fn column_step(weights: &[f32]) -> Option<f32> {
    let max = weights.iter().copied().fold(0.0f32, f32::max);
    let scale = max * (1.0 + 4.0 * QUANT_HEADROOM) / 255.0;
    (scale > 0.0 && (scale * 255.0).is_finite()).then_some(scale)
}

/// The smallest step count `q ≥ 1` with `q · scale ≥ w · (1 + QUANT_HEADROOM)` in f32, so a
/// quantised weight is never below the exact one, whatever the rounding of later products.
/// `None` if 255 steps are not enough (then the list gets no column).
fn quantise_up(w: f32, scale: f32) -> Option<u8> {
    let want = w * (1.0 + QUANT_HEADROOM);
    #[expect(
        clippy::cast_possible_truncation,
        reason = "clamped to [1, 255] just before"
    )]
    let mut q = (want / scale).ceil().clamp(1.0, 255.0) as u8;
    while q < 255 && f32::from(q) * scale < want {
        q += 1;
    }
    (f32::from(q) * scale >= want).then_some(q)
}

/// Group live item ids by category id (`NONE` categories are left out).
pub(crate) fn group_by(keys: &[u32], live: &[u64], groups: usize) -> IdLists {
    let is_live = |i: usize| live.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1);
    let mut counts = vec![0u64; groups];
    for (i, &k) in keys.iter().enumerate() {
        if is_live(i) {
            if let Some(c) = counts.get_mut(k as usize) {
                *c += 1;
            }
        }
    }
    let mut offsets = Vec::with_capacity(groups + 1);
    let mut sum = 0;
    for c in &counts {
        offsets.push(sum);
        sum += c;
    }
    offsets.push(sum);
    let mut ids = vec![0u32; crate::narrow::usize_from(sum)];
    let mut fill = offsets[..groups].to_vec();
    for (i, &k) in keys.iter().enumerate() {
        if is_live(i) && (k as usize) < groups {
            ids[crate::narrow::usize_from(fill[k as usize])] = crate::narrow::u32_from(i);
            fill[k as usize] += 1;
        }
    }
    IdLists { offsets, ids }
}

fn range(offsets: &[u64_le], i: usize) -> Option<std::ops::Range<usize>> {
    let a = crate::narrow::usize_from(offsets.get(i)?.to_native());
    let b = crate::narrow::usize_from(offsets.get(i + 1)?.to_native());
    (a <= b).then_some(a..b)
}

/// One tag's posting list, with its block summaries.
#[derive(Clone, Copy)]
pub struct PostingList<'a> {
    /// Item ids, ascending.
    pub items: &'a [u32_le],
    /// Raw weights, parallel to `items`.
    pub weights: &'a [f32_le],
    /// First item id of each block.
    pub block_first: &'a [u32_le],
    /// Last item id of each block.
    pub block_last: &'a [u32_le],
    /// Largest raw weight of each block.
    pub block_max: &'a [f32_le],
    /// Largest `weight / norm` of each block.
    pub block_max_cos: &'a [f32_le],
    /// The list as a dense column of quantised weights, for lists that cover much of the id
    /// space (see [`COLUMN_DENSITY`]).
    pub column: Option<Column<'a>>,
}

/// A dense column: one byte per item slot, the item's weight for the tag in steps of `scale`,
/// rounded up (0: the item lacks the tag). Sums of `q · scale` bound exact sums from above.
#[derive(Clone, Copy)]
pub struct Column<'a> {
    /// Quantised weight per item slot.
    pub q: &'a [u8],
    /// Weight of one step.
    pub scale: f32,
}

impl PostingList<'_> {
    /// The empty list (unknown tag, or a damaged one).
    pub const EMPTY: PostingList<'static> = PostingList {
        items: &[],
        weights: &[],
        block_first: &[],
        block_last: &[],
        block_max: &[],
        block_max_cos: &[],
        column: None,
    };

    /// Number of postings (the tag's document frequency).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True for a list without postings.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl ArchivedPostings {
    /// Number of tag ids the index covers.
    pub fn tags(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// How many items carry tag `t` (0 for unknown tags).
    pub fn df(&self, t: u32) -> usize {
        range(&self.offsets, t as usize).map_or(0, |r| r.len())
    }

    /// The posting list of tag `t`. Empty when `t` is unknown or the columns disagree, so a
    /// damaged file degrades to missing results instead of a panic.
    pub fn list(&self, t: u32) -> PostingList<'_> {
        let (Some(p), Some(b)) = (
            range(&self.offsets, t as usize),
            range(&self.block_offsets, t as usize),
        ) else {
            return PostingList::EMPTY;
        };
        if b.len() != p.len().div_ceil(BLOCK_LEN) {
            return PostingList::EMPTY;
        }
        match (
            self.items.get(p.clone()),
            self.weights.get(p),
            self.block_first.get(b.clone()),
            self.block_last.get(b.clone()),
            self.block_max.get(b.clone()),
            self.block_max_cos.get(b),
        ) {
            (
                Some(items),
                Some(weights),
                Some(block_first),
                Some(block_last),
                Some(block_max),
                Some(block_max_cos),
            ) => PostingList {
                items,
                weights,
                block_first,
                block_last,
                block_max,
                block_max_cos,
                column: self.column(t),
            },
            _ => PostingList::EMPTY,
        }
    }

    /// Tag `t`'s dense column, if it has one and the file's columns are whole (a damaged file
    /// falls back to the postings, which hold the same weights).
    fn column(&self, t: u32) -> Option<Column<'_>> {
        let c = self.column_of.get(t as usize)?.to_native();
        if c == NONE {
            return None;
        }
        let len = usize::try_from(self.column_len.to_native()).ok()?;
        let start = (c as usize).checked_mul(len)?;
        Some(Column {
            q: self.columns.get(start..start.checked_add(len)?)?,
            scale: self.column_scale.get(c as usize)?.to_native(),
        })
    }
}

impl ArchivedIdLists {
    /// Number of keys.
    pub fn keys(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Ids under key `k` (empty if unknown).
    pub fn get(&self, k: u32) -> &[u32_le] {
        range(&self.offsets, k as usize)
            .and_then(|r| self.ids.get(r))
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_summarise_their_postings() {
        // 300 rows, each with tag 0 (weight grows with the row) and odd rows with tag 1.
        let mut f = Forward {
            offsets: vec![0],
            ..Forward::default()
        };
        for r in 0..300u32 {
            f.tag_ids.push(0);
            f.weights.push(r as f32 + 1.0);
            if r % 2 == 1 {
                f.tag_ids.push(1);
                f.weights.push(2.0);
            }
            f.offsets.push(f.tag_ids.len() as u64);
            let sq: f32 = (r as f32 + 1.0).powi(2) + if r % 2 == 1 { 4.0 } else { 0.0 };
            f.norms.push(sq.sqrt());
        }
        let p = build(&f, 2);
        assert_eq!(p.offsets, vec![0, 300, 450]);
        assert_eq!(p.block_offsets, vec![0, 3, 5]);
        assert_eq!(p.block_last[..3], [127, 255, 299]);
        assert_eq!(p.block_max[..3], [128.0, 256.0, 300.0]);
        assert_eq!(p.block_last[3..], [255, 299]);
        assert!(p.items[300..].iter().all(|i| i % 2 == 1));
        // The cosine bound of tag 1 is largest for the smallest-norm odd row (row 1).
        let expect = 2.0 / f.norms[1];
        assert!((p.block_max_cos[3] - expect).abs() < 1e-6);
    }

    #[test]
    fn dense_lists_get_columns_that_bound_their_weights() {
        // 64 rows: tag 0 on every row with varied weights, tag 1 on row 5 only.
        let mut f = Forward {
            offsets: vec![0],
            ..Forward::default()
        };
        for r in 0..64u32 {
            f.tag_ids.push(0);
            f.weights.push(0.01 + r as f32 * 0.37);
            if r == 5 {
                f.tag_ids.push(1);
                f.weights.push(1.0);
            }
            f.offsets.push(f.tag_ids.len() as u64);
            f.norms.push(1.0);
        }
        let p = build(&f, 2);
        assert_eq!(p.column_of, vec![0, NONE]);
        assert_eq!(p.column_len, 64);
        assert_eq!(p.columns.len(), 64);
        let scale = p.column_scale[0];
        for r in 0..64usize {
            let w = f.weights[f.offsets[r] as usize];
            let up = f32::from(p.columns[r]) * scale;
            assert!(up >= w, "row {r}: {up} < {w}");
            assert!(
                up <= w + 2.0 * scale,
                "row {r}: {up} is more than a step above {w}"
            );
        }
    }

    #[test]
    fn quantised_weights_never_round_down() {
        // Awkward maxima and weights across the f32 range, including the smallest positive.
        for max in [1e-30f32, 3e-7, 0.1, 1.0, 7.3, 1e20, f32::MAX / 300.0] {
            let ws: Vec<f32> = (0..2000)
                .map(|i| max * (i as f32 / 1999.0))
                .chain([max, f32::MIN_POSITIVE, max * 0.999_999])
                .filter(|&w| w > 0.0)
                .collect();
            let scale = column_step(&ws).expect("positive finite weights get a column");
            for &w in &ws {
                let q = quantise_up(w, scale).expect("255 steps reach the largest weight");
                assert!(q >= 1);
                assert!(
                    f32::from(q) * scale >= w * (1.0 + QUANT_HEADROOM),
                    "{w} -> {q}"
                );
            }
        }
        // Steps that would overflow give no column at all.
        assert!(column_step(&[f32::MAX]).is_none());
    }

    #[test]
    fn group_by_skips_dead_and_unknown() {
        let keys = [0, 1, 0, super::super::format::NONE, 1];
        let live = [0b10111u64];
        let g = group_by(&keys, &live, 2);
        assert_eq!(g.offsets, vec![0, 2, 4]);
        assert_eq!(g.ids, vec![0, 2, 1, 4]);
    }
}
