//! The tag → item inverted index: built from the forward rows, read through checked views.
//!
//! Lists are sorted by item id and cut into blocks of [`BLOCK_LEN`] postings. Each block keeps
//! its last item id and its largest weights, raw and divided by the item's L2 norm. The pruned
//! top-k (`crate::search::pruned`) uses them to bound what a range of items can score before it
//! reads a single posting there.

use rkyv::rend::{f32_le, u32_le, u64_le};

use super::format::{ArchivedIdLists, ArchivedPostings, Forward, IdLists, Postings, BLOCK_LEN};

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
    let total = sum as usize;
    let mut items = vec![0u32; total];
    let mut weights = vec![0f32; total];
    let mut fill: Vec<u64> = offsets[..tags].to_vec();
    for row in 0..forward.norms.len() {
        let (a, b) = (
            forward.offsets[row] as usize,
            forward.offsets[row + 1] as usize,
        );
        for j in a..b {
            let t = forward.tag_ids[j] as usize;
            if t < tags {
                let at = fill[t] as usize;
                items[at] = row as u32;
                weights[at] = forward.weights[j];
                fill[t] += 1;
            }
        }
    }
    let mut block_offsets = Vec::with_capacity(tags + 1);
    let mut block_last = Vec::new();
    let mut block_max = Vec::new();
    let mut block_max_cos = Vec::new();
    for t in 0..tags {
        block_offsets.push(block_last.len() as u64);
        let (a, b) = (offsets[t] as usize, offsets[t + 1] as usize);
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
            block_last.push(items[end - 1]);
            block_max.push(m);
            block_max_cos.push(mc);
        }
    }
    block_offsets.push(block_last.len() as u64);
    Postings {
        offsets,
        items,
        weights,
        block_offsets,
        block_last,
        block_max,
        block_max_cos,
    }
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
    let mut ids = vec![0u32; sum as usize];
    let mut fill = offsets[..groups].to_vec();
    for (i, &k) in keys.iter().enumerate() {
        if is_live(i) && (k as usize) < groups {
            ids[fill[k as usize] as usize] = i as u32;
            fill[k as usize] += 1;
        }
    }
    IdLists { offsets, ids }
}

fn range(offsets: &[u64_le], i: usize) -> Option<std::ops::Range<usize>> {
    let a = offsets.get(i)?.to_native() as usize;
    let b = offsets.get(i + 1)?.to_native() as usize;
    (a <= b).then_some(a..b)
}

/// One tag's posting list, with its block summaries.
#[derive(Clone, Copy)]
pub struct PostingList<'a> {
    /// Item ids, ascending.
    pub items: &'a [u32_le],
    /// Raw weights, parallel to `items`.
    pub weights: &'a [f32_le],
    /// Last item id of each block.
    pub block_last: &'a [u32_le],
    /// Largest raw weight of each block.
    pub block_max: &'a [f32_le],
    /// Largest `weight / norm` of each block.
    pub block_max_cos: &'a [f32_le],
}

impl PostingList<'_> {
    /// The empty list (unknown tag, or a damaged one).
    pub const EMPTY: PostingList<'static> = PostingList {
        items: &[],
        weights: &[],
        block_last: &[],
        block_max: &[],
        block_max_cos: &[],
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
            self.block_last.get(b.clone()),
            self.block_max.get(b.clone()),
            self.block_max_cos.get(b),
        ) {
            (
                Some(items),
                Some(weights),
                Some(block_last),
                Some(block_max),
                Some(block_max_cos),
            ) => PostingList {
                items,
                weights,
                block_last,
                block_max,
                block_max_cos,
            },
            _ => PostingList::EMPTY,
        }
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
    fn group_by_skips_dead_and_unknown() {
        let keys = [0, 1, 0, super::super::format::NONE, 1];
        let live = [0b10111u64];
        let g = group_by(&keys, &live, 2);
        assert_eq!(g.offsets, vec![0, 2, 4]);
        assert_eq!(g.ids, vec![0, 2, 1, 4]);
    }
}
