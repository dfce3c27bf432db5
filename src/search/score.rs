//! The exact score of one item against a query: the single definition every path shares.
//!
//! The pruned engine, the direct scan, the neighbour lists and the brute-force oracle all call
//! `Scorer::score` on the same row and therefore get the same `f32`, bit for bit. Pruning
//! only decides *which* items get scored; it never computes a final score another way. That is
//! what makes "the same top-k as the oracle" an exact, testable statement.
//!
//! Summation runs over the item's tags in ascending tag id, in `f32`, always in that order.

use serde::{Deserialize, Serialize};

use crate::segment::format::ArchivedItemTable;

/// How an item's tags are compared with the query's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Similarity {
    /// Cosine of the two weight vectors, in `0..=1`. Insensitive to how many tags an item has.
    #[default]
    Cosine,
    /// Dot product of the weight vectors. Items with more, heavier tags score higher.
    Dot,
    /// Weighted Jaccard: `Σ min(q, w) / Σ max(q, w)` over the union of tags, in `0..=1`.
    Jaccard,
}

/// How much each tag counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// Weights as stored.
    #[default]
    None,
    /// Rare tags count more: each tag `t` gets BM25's `idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))`,
    /// where `N` is the number of items in the current segment and `df` the number that carry
    /// `t` (so the statistics move at each rebuild). Cosine and dot product multiply the query's
    /// weights by it, as BM25 does; Jaccard weighs each tag's `min` and `max` by it.
    Idf,
}

/// BM25's idf, never negative.
pub(crate) fn idf(n: u64, df: usize) -> f32 {
    let (n, df) = (n as f64, df as f64);
    crate::narrow::f32_from((1.0 + (n - df + 0.5).max(0.0) / (df + 0.5)).ln())
}

/// One query tag, prepared for scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Term {
    /// Tag id.
    pub tag: u32,
    /// Cosine: `q·idf / ‖q·idf‖₂`. Dot: `q·idf`. Jaccard: `q`.
    pub factor: f32,
    /// Jaccard: the tag's idf (1 without weighting). Unused otherwise.
    pub idf: f32,
}

/// A prepared query: terms sorted by tag id plus what the similarity needs.
#[derive(Clone)]
pub(crate) struct Scorer<'a> {
    pub sim: Similarity,
    pub terms: Vec<Term>,
    /// Jaccard: `Σ idf·q` over the query.
    pub q_l1: f32,
    /// Jaccard with IDF: document frequencies come from here, for the item's other tags.
    idf_source: Option<(&'a ArchivedItemTable, u64)>,
}

impl<'a> Scorer<'a> {
    /// Prepare `query` (tag id, weight > 0, sorted by tag id, unique) against `items`.
    pub fn new(
        query: &[(u32, f32)],
        sim: Similarity,
        weighting: Weighting,
        items: &'a ArchivedItemTable,
    ) -> Scorer<'a> {
        let n = items.live_count.to_native();
        let tag_idf = |t: u32| match weighting {
            Weighting::None => 1.0,
            Weighting::Idf => idf(n, items.postings.df(t)),
        };
        let mut terms: Vec<Term> = query
            .iter()
            .map(|&(tag, q)| {
                let i = tag_idf(tag);
                match sim {
                    Similarity::Jaccard => Term {
                        tag,
                        factor: q,
                        idf: i,
                    },
                    _ => Term {
                        tag,
                        factor: q * i,
                        idf: 1.0,
                    },
                }
            })
            .filter(|t| t.factor > 0.0 && t.idf > 0.0)
            .collect();
        let mut q_l1 = 0.0;
        match sim {
            Similarity::Cosine => {
                let norm = crate::segment::builder::l2_norm(terms.iter().map(|t| t.factor));
                if norm > 0.0 {
                    for t in &mut terms {
                        t.factor /= norm;
                    }
                } else {
                    terms.clear();
                }
            }
            Similarity::Dot => {}
            Similarity::Jaccard => q_l1 = terms.iter().map(|t| t.idf * t.factor).sum(),
        }
        Scorer {
            sim,
            terms,
            q_l1,
            idf_source: (sim == Similarity::Jaccard && weighting == Weighting::Idf)
                .then_some((items, n)),
        }
    }

    /// True when nothing can score above zero (no usable query tags).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    fn doc_idf(&self, t: u32) -> f32 {
        match self.idf_source {
            Some((items, n)) => idf(n, items.postings.df(t)),
            None => 1.0,
        }
    }

    /// Score a row given as `(tag, weight)` pairs in ascending tag id, with its L2 norm.
    /// `each` sees every matched tag's contribution before the final normalisation.
    #[inline]
    fn run(
        &self,
        row: impl Iterator<Item = (u32, f32)>,
        norm: f32,
        mut each: impl FnMut(u32, f32),
    ) -> (f32, f32) {
        let terms = &self.terms;
        let mut i = 0;
        let mut sum = 0.0f32;
        let mut doc_mass = 0.0f32;
        let jaccard = self.sim == Similarity::Jaccard;
        for (t, w) in row {
            if jaccard {
                doc_mass += self.doc_idf(t) * w;
            }
            while i < terms.len() && terms[i].tag < t {
                i += 1;
            }
            if i == terms.len() {
                if jaccard {
                    continue;
                }
                break;
            }
            let term = terms[i];
            if term.tag == t {
                let c = match self.sim {
                    Similarity::Cosine | Similarity::Dot => term.factor * w,
                    Similarity::Jaccard => term.idf * term.factor.min(w),
                };
                sum += c;
                each(t, c);
            }
        }
        let denom = match self.sim {
            Similarity::Cosine => norm,
            Similarity::Dot => 1.0,
            Similarity::Jaccard => self.q_l1 + doc_mass - sum,
        };
        (sum, denom)
    }

    /// The exact score of a row (`(tag, weight)` ascending by tag) whose L2 norm is `norm`.
    #[inline]
    pub fn score(&self, row: impl Iterator<Item = (u32, f32)>, norm: f32) -> f32 {
        let (sum, denom) = self.run(row, norm, |_, _| {});
        if denom > 0.0 && sum > 0.0 {
            sum / denom
        } else {
            0.0
        }
    }

    /// The exact score of segment item `id`.
    #[inline]
    pub fn score_segment(&self, items: &ArchivedItemTable, id: u32) -> f32 {
        let (t, w) = items.forward.row(id);
        self.score(
            t.iter().zip(w).map(|(t, w)| (t.to_native(), w.to_native())),
            items.forward.norm(id),
        )
    }

    /// Each matched tag's share of the final score, in the row's tag order.
    pub fn contributions(&self, row: &[(u32, f32)], norm: f32) -> Vec<(u32, f32)> {
        let mut out = Vec::new();
        let (_, denom) = self.run(row.iter().copied(), norm, |t, c| out.push((t, c)));
        if denom > 0.0 {
            for c in &mut out {
                c.1 /= denom;
            }
        } else {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idf_favours_rare_tags_and_stays_positive() {
        assert!(idf(1000, 1) > idf(1000, 100));
        assert!(idf(1000, 1000) > 0.0);
        assert!(idf(10, 50) >= 0.0);
    }
}
