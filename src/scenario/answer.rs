//! The one JSON shape of every answer: what the admin socket's `query` and `users.like` send,
//! and what the CLI prints with `--json`, so a client parses one object whatever asked.
//!
//! ```json
//! {"scenario": "together", "results": [...], "ranked_by": {"strategy": "builtin", ...}, "micros": 84}
//! ```

use std::time::Duration;

use serde::Serialize;

use super::{RankedBy, Served};
use crate::search::{QueryStats, Recommendation};

/// An answer as it goes over the wire: the scenario's name, the results best first, who
/// ranked them, and how long the store took. `results` holds [`Recommendation`]s for item
/// scenarios and [`super::UserMatch`]es for `users-like`.
///
/// Build one with [`Served::answer`] or [`Answer::builtin`]; it only borrows.
#[derive(Debug, Clone, Serialize)]
pub struct Answer<'a, T> {
    /// The scenario's name as the CLI and the socket spell it (`together`, `users-like`, …).
    pub scenario: &'a str,
    /// The results, best first.
    pub results: &'a [T],
    /// Who ranked them; the built-in ranker for what plugins do not rank (`users-like`,
    /// `similar`, `profile`).
    pub ranked_by: RankedBy,
    /// Microseconds the store took to answer.
    pub micros: u64,
    /// How the tag search ran, for `similar` and `profile` asked through
    /// [`crate::Store::query_with_stats`]; absent (not `null`) everywhere else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<QueryStats>,
    /// What became of the answer's impression (`"queued"`, or `{"dropped": {"reason": …}}`)
    /// when the store records it; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impression: Option<crate::impressions::Recording>,
    /// The cursor of the next page of a paged ask; `null` when there is none (the ask was not
    /// paged, or this was the last page).
    pub next_cursor: Option<String>,
}

impl<'a, T> Answer<'a, T> {
    /// An answer ranked by the built-in ranker, with no plugin or slot involved.
    pub fn builtin(scenario: &'a str, results: &'a [T], took: Duration) -> Self {
        Answer {
            scenario,
            results,
            ranked_by: RankedBy::builtin(),
            micros: micros(took),
            stats: None,
            impression: None,
            next_cursor: None,
        }
    }

    /// The same answer, carrying how the tag search ran.
    pub fn with_stats(mut self, stats: QueryStats) -> Self {
        self.stats = Some(stats);
        self
    }
}

impl Served {
    /// This answer in the shape the socket and the CLI print, under `scenario`'s name (see
    /// [`super::Scenario::name`]), `took` being the time it took.
    pub fn answer<'a>(&'a self, scenario: &'a str, took: Duration) -> Answer<'a, Recommendation> {
        Answer {
            scenario,
            results: &self.items,
            ranked_by: self.ranked_by.clone(),
            micros: micros(took),
            stats: None,
            impression: self.impression.clone(),
            next_cursor: self.next_cursor.clone(),
        }
    }
}

impl RankedBy {
    /// The built-in ranker, asked directly (no plugin, no slot, no fallback).
    pub fn builtin() -> Self {
        RankedBy {
            strategy: "builtin".to_string(),
            version: None,
            slot: None,
            fallback: None,
            interleaved: None,
        }
    }
}

/// Whole microseconds, saturating (an answer does not take 584,000 years).
fn micros(took: Duration) -> u64 {
    u64::try_from(took.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_has_the_same_keys() {
        let served = Served {
            items: Vec::new(),
            ranked_by: RankedBy::builtin(),
            impression: None,
            next_cursor: None,
        };
        let a = serde_json::to_value(served.answer("together", Duration::from_micros(84)))
            .expect("json");
        let b = serde_json::to_value(Answer::<Recommendation>::builtin(
            "users-like",
            &[],
            Duration::from_micros(3),
        ))
        .expect("json");
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&a),
            ["micros", "next_cursor", "ranked_by", "results", "scenario"]
        );
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(a["micros"], 84);
        assert_eq!(a["ranked_by"]["strategy"], "builtin");
    }
}
