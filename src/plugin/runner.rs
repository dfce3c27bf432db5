//! Run a plugin once on a JSON input, without a store: what `recostore plugin run` prints,
//! and what strategy authors test against.
//!
//! The input names candidates by id with whatever features they have (missing ones are 0):
//!
//! ```json
//! {"context": {"k": 3, "scenario": 5, "slot": 1, "tier": 1, "spend_band": 3, "segment": 2},
//!  "config": {"members_boost": 2.0},
//!  "candidates": [{"id": 1, "name": "tent", "similarity": 0.9, "price": 120, "rating": 4.5}]}
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::abi::{Context, Feature};
use super::host::{Host, LogLine};
use super::version::{Input, PluginVersion};
use super::PluginLimits;
use crate::error::{Error, Result};

/// One candidate of a runner input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunCandidate {
    /// The id handed to the plugin.
    pub id: u32,
    /// A display name for the printed order (defaults to the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Feature values by name (see [`Feature::name`]); missing ones are 0.
    #[serde(flatten)]
    pub features: BTreeMap<String, f32>,
}

/// A runner input file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// The user-context block.
    #[serde(default)]
    pub context: Context,
    /// The plugin's config, handed to `recostore_init` as JSON text.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// The candidates, in the order the scenario produced them.
    pub candidates: Vec<RunCandidate>,
}

/// A scored candidate in the runner's output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// Its position in the ranking (1-based).
    pub rank: usize,
    /// The candidate id.
    pub id: u32,
    /// Its display name.
    pub name: String,
    /// The score the plugin gave.
    pub score: f32,
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// The feature columns the plugin read.
    pub features: Vec<&'static str>,
    /// Candidates in ranked order (NaN last, ties by input order).
    pub ranked: Vec<Scored>,
    /// Scores in input order.
    pub scores: Vec<f32>,
    /// Fuel burnt by the first scoring call.
    pub fuel_used: Option<u64>,
    /// Linear memory after the call, in bytes.
    pub memory_bytes: usize,
    /// Lines the plugin logged on its first call.
    pub logs: Vec<LogLine>,
    /// Lines dropped by the rate limit.
    pub logs_dropped: u64,
    /// Median wall time of a call with a warm instance, over the repeats, in microseconds.
    pub median_us: f64,
    /// How many calls the median is over.
    pub repeats: usize,
}

/// A score as ranking sees it: NaN lowest of all, infinities clamped to the finite range.
pub fn rank_key(score: f32) -> f32 {
    if score.is_nan() {
        f32::NEG_INFINITY
    } else {
        score.clamp(f32::MIN, f32::MAX)
    }
}

/// Positions of `scores` best first: by [`rank_key`], ties by position.
pub fn ranked_positions(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        rank_key(scores[b])
            .total_cmp(&rank_key(scores[a]))
            .then(a.cmp(&b))
    });
    order
}

/// Load `wasm` under `limits` and score `input` once, then `repeats - 1` more times for the
/// timing. Load failures and faults come back as errors that name the cause.
pub fn run(
    wasm: &[u8],
    input: &RunInput,
    limits: PluginLimits,
    repeats: usize,
) -> Result<RunReport> {
    let host: Arc<Host> = Host::new(limits)?;
    let config = match &input.config {
        Some(v) => serde_json::to_vec(v).map_err(|e| Error::InvalidQuery {
            reason: format!("config: {e}"),
        })?,
        None => Vec::new(),
    };
    let v = PluginVersion::load(&host, "runner", 1, wasm, &config, true, None)?;
    let mut unknown = input
        .candidates
        .iter()
        .flat_map(|c| c.features.keys())
        .filter(|k| Feature::from_name(k).is_none());
    if let Some(k) = unknown.next() {
        return Err(Error::InvalidQuery {
            reason: format!(
                "unknown feature `{k}` in the input; features are: {}",
                Feature::ALL.map(Feature::name).join(", ")
            ),
        });
    }
    let columns = v
        .features()
        .iter()
        .map(|f| {
            input
                .candidates
                .iter()
                .map(|c| c.features.get(f.name()).copied().unwrap_or(0.0))
                .collect()
        })
        .collect();
    let call = Input {
        context: input.context,
        ids: input.candidates.iter().map(|c| c.id).collect(),
        columns,
    };
    let fault = |f: super::Fault| Error::PluginRejected {
        name: "runner".into(),
        reason: format!("the plugin {f} on this input"),
    };
    let first = v.run(&call).map_err(fault)?;
    let mut times: Vec<Duration> = vec![first.elapsed];
    for _ in 1..repeats.max(1) {
        times.push(v.run(&call).map_err(fault)?.elapsed);
    }
    times.sort_unstable();
    let median = times[times.len() / 2];
    let ranked = ranked_positions(&first.scores)
        .into_iter()
        .enumerate()
        .map(|(r, i)| {
            let c = &input.candidates[i];
            Scored {
                rank: r + 1,
                id: c.id,
                name: c.name.clone().unwrap_or_else(|| c.id.to_string()),
                score: first.scores[i],
            }
        })
        .collect();
    Ok(RunReport {
        features: v.features().iter().map(Feature::name).collect(),
        ranked,
        scores: first.scores,
        fuel_used: first.fuel_used,
        memory_bytes: first.memory_bytes,
        logs: first.logs,
        logs_dropped: first.logs_dropped,
        median_us: median.as_secs_f64() * 1e6,
        repeats: times.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_ranks_last_and_ties_keep_input_order() {
        let s = [1.0, f32::NAN, f32::INFINITY, 1.0, f32::NEG_INFINITY];
        assert_eq!(ranked_positions(&s), [2, 0, 3, 4, 1]);
    }
}
