//! A strategy that panics on purpose when asked for exactly 13 results, and otherwise ranks by
//! the scenario's own score: what a bug in a real strategy looks like to the host. The tests
//! use it to check that the panic's message and location reach `plugin run`, a query's
//! fallback reason and the log (the SDK's panic hook). Not an example to copy.

use recostore_plugin_sdk::{export_strategy, Candidates, Context, Feature, Strategy};

/// See the crate doc.
#[derive(Default)]
pub struct FaultDemo;

impl Strategy for FaultDemo {
    const FEATURES: &'static [Feature] = &[Feature::Similarity];

    fn score(&self, ctx: &Context, c: &Candidates, scores: &mut [f32]) {
        if ctx.k == 13 {
            panic!("deliberate panic: asked for {} results", ctx.k);
        }
        scores.copy_from_slice(c.column(Feature::Similarity));
    }
}

export_strategy!(FaultDemo);
