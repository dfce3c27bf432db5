//! An A9-like ranker: how well the item matches the shopper's tags, times how well it
//! converts, times what its reviews say. See README.md.

use recostore_plugin_sdk::{export_strategy, Candidates, Config, Context, Feature, Strategy};

/// The weights, from the config (`{"match_weight": 1, "similarity_weight": 0.5, ...}`).
pub struct A9Match {
    match_weight: f32,
    similarity_weight: f32,
    conversion_prior: f32,
    unrated: f32,
}

impl Default for A9Match {
    fn default() -> Self {
        A9Match {
            match_weight: 1.0,
            similarity_weight: 0.5,
            conversion_prior: 0.02,
            unrated: 3.5,
        }
    }
}

impl A9Match {
    /// The relevance part: the user's tag match plus the scenario's own score.
    fn relevance(&self, c: &Candidates, i: usize) -> f32 {
        0.01 + self.match_weight * c.get(Feature::TagMatch, i)
            + self.similarity_weight * c.get(Feature::Similarity, i)
    }

    /// The conversion part: the item's conversion rate, smoothed by a prior so an item
    /// nobody viewed is not zeroed out.
    fn conversion(&self, c: &Candidates, i: usize) -> f32 {
        self.conversion_prior + c.get(Feature::ConversionRate, i)
    }

    /// The review part: the rating (or a neutral one when unrated) out of 5, trusted more
    /// the more reviews back it.
    fn reviews(&self, c: &Candidates, i: usize) -> f32 {
        let rating = match c.get(Feature::Rating, i) {
            r if r > 0.0 => r,
            _ => self.unrated,
        };
        (rating / 5.0) * (1.0 + c.get(Feature::ReviewCount, i)).ln_1p()
    }
}

impl Strategy for A9Match {
    const FEATURES: &'static [Feature] = &[
        Feature::Similarity,
        Feature::TagMatch,
        Feature::ConversionRate,
        Feature::ReviewCount,
        Feature::Rating,
    ];

    fn new(config: &Config) -> Result<Self, String> {
        let d = A9Match::default();
        let s = A9Match {
            match_weight: config.get_number("match_weight")?.unwrap_or(d.match_weight),
            similarity_weight: config
                .get_number("similarity_weight")?
                .unwrap_or(d.similarity_weight),
            conversion_prior: config
                .get_number("conversion_prior")?
                .unwrap_or(d.conversion_prior),
            unrated: config.get_number("unrated_rating")?.unwrap_or(d.unrated),
        };
        if s.conversion_prior <= 0.0 {
            return Err("conversion_prior must be above 0".into());
        }
        Ok(s)
    }

    fn score(&self, _ctx: &Context, c: &Candidates, scores: &mut [f32]) {
        for (i, s) in scores.iter_mut().enumerate() {
            *s = self.relevance(c, i) * self.conversion(c, i) * self.reviews(c, i);
        }
    }
}

export_strategy!(A9Match);
