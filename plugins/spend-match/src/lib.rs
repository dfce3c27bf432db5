//! Spend match with category diversity: items priced in the shopper's usual band rank up,
//! and each further item from a category already ranked above it is damped. See README.md.

use recostore_plugin_sdk::{
    export_strategy, price_band, Candidates, Config, Context, Feature, Strategy,
};

/// Settings from the config (`{"band_penalty": 0.35, "repeat_damping": 0.7}`).
pub struct SpendMatch {
    band_penalty: f32,
    repeat_damping: f32,
}

impl Default for SpendMatch {
    fn default() -> Self {
        SpendMatch {
            band_penalty: 0.35,
            repeat_damping: 0.7,
        }
    }
}

impl Strategy for SpendMatch {
    const FEATURES: &'static [Feature] = &[Feature::Similarity, Feature::Price, Feature::Category];

    fn new(config: &Config) -> Result<Self, String> {
        let d = SpendMatch::default();
        let s = SpendMatch {
            band_penalty: config.get_number("band_penalty")?.unwrap_or(d.band_penalty),
            repeat_damping: config
                .get_number("repeat_damping")?
                .unwrap_or(d.repeat_damping),
        };
        if !(0.0..=1.0).contains(&s.repeat_damping) {
            return Err("repeat_damping must be between 0 and 1".into());
        }
        Ok(s)
    }

    fn score(&self, ctx: &Context, c: &Candidates, scores: &mut [f32]) {
        // Spend match: each band away from the user's usual band costs a factor.
        for (i, s) in scores.iter_mut().enumerate() {
            let base = c.get(Feature::Similarity, i).max(0.0);
            let band = price_band(c.get(Feature::Price, i));
            let fit = if ctx.spend_band == 0 || band == 0 {
                1.0
            } else {
                let away = band.abs_diff(ctx.spend_band) as f32;
                (1.0 - self.band_penalty).max(0.0).powf(away)
            };
            *s = base * fit;
        }
        // Diversity: walk best first and damp the n-th repeat of a category by damping^n.
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let mut seen: Vec<(f32, i32)> = Vec::new();
        for i in order {
            let cat = c.get(Feature::Category, i);
            if cat == 0.0 {
                continue;
            }
            let repeats = match seen.iter_mut().find(|(k, _)| *k == cat) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.push((cat, 0));
                    0
                }
            };
            scores[i] *= self.repeat_damping.powi(repeats);
        }
    }
}

export_strategy!(SpendMatch);
