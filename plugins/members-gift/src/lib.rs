//! Members first, and gift guides: members see members-only items ahead of the rest; a gift
//! guide favours well-rated, popular items inside the budget. See README.md.

use recostore_plugin_sdk::{
    export_strategy, Candidates, Config, Context, Feature, Scenario, Strategy,
};

/// Settings from the config (`{"member_bonus": 1000, "budget": 50}`).
pub struct MembersGift {
    member_bonus: f32,
    budget: f32,
}

impl Default for MembersGift {
    fn default() -> Self {
        MembersGift {
            member_bonus: 1000.0,
            budget: 0.0,
        }
    }
}

impl MembersGift {
    /// A gift: rating (neutral when unrated) times social proof, halved over budget.
    fn gift(&self, c: &Candidates, i: usize) -> f32 {
        let rating = match c.get(Feature::Rating, i) {
            r if r > 0.0 => r,
            _ => 3.0,
        };
        let proof = (1.0 + c.get(Feature::Popularity, i) + c.get(Feature::Sales, i)).ln();
        let price = c.get(Feature::Price, i);
        let fits = self.budget <= 0.0 || price <= self.budget;
        rating * (0.1 + proof) * if fits { 1.0 } else { 0.5 }
    }
}

impl Strategy for MembersGift {
    const FEATURES: &'static [Feature] = &[
        Feature::Similarity,
        Feature::Popularity,
        Feature::Sales,
        Feature::Rating,
        Feature::Price,
        Feature::Stock,
        Feature::MembersOnly,
    ];

    fn new(config: &Config) -> Result<Self, String> {
        let d = MembersGift::default();
        Ok(MembersGift {
            member_bonus: config.get_number("member_bonus")?.unwrap_or(d.member_bonus),
            budget: config.get_number("budget")?.unwrap_or(d.budget),
        })
    }

    fn score(&self, ctx: &Context, c: &Candidates, scores: &mut [f32]) {
        let member = ctx.tier >= 1;
        for (i, s) in scores.iter_mut().enumerate() {
            let base = if ctx.scenario == Scenario::Gift {
                self.gift(c, i)
            } else {
                c.get(Feature::Similarity, i)
            };
            // Nobody can buy what is not in stock, members or not.
            let stock = if c.get(Feature::Stock, i) > 0.0 {
                1.0
            } else {
                0.2
            };
            let members_only = c.get(Feature::MembersOnly, i) > 0.0;
            *s = base * stock
                + match (members_only, member) {
                    (true, true) => self.member_bonus,
                    // A non-member is not shown members-only items ahead of what they can buy.
                    (true, false) => -self.member_bonus,
                    _ => 0.0,
                };
        }
    }
}

export_strategy!(MembersGift);
