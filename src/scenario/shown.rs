//! The exposure options of an ask: which items [`Ask::not_shown_within`] and [`Ask::cap`]
//! leave out, and how much [`Ask::demote_shown`] demotes the rest, read from the asking
//! user's exposure memory ([`crate::activity::exposure`]) at the ask's time.

use std::collections::HashMap;

use super::{Ask, Reason};
use crate::snapshot::Snapshot;

/// What the exposure options do to one answer.
#[derive(Debug, Default)]
pub(crate) struct Shown {
    /// Items to leave out.
    pub excluded: Vec<u32>,
    /// Items to demote: the factor and the reason that says so.
    pub demoted: HashMap<u32, (f32, Reason)>,
}

/// The ask's time: [`Ask::at`], else the store's clock.
pub(crate) fn ask_time(snap: &Snapshot, ask: &Ask) -> u64 {
    ask.at.unwrap_or_else(|| snap.activity.now())
}

/// What `ask`'s exposure options do for `user` (nothing for a user never shown anything).
pub(crate) fn read(snap: &Snapshot, ask: &Ask, user: Option<u32>, half_life_secs: u64) -> Shown {
    let mut out = Shown::default();
    let Some(memory) = user.and_then(|u| snap.activity.exposure(u)) else {
        return out;
    };
    let now = ask_time(snap, ask);
    let half_life = half_life_secs as f64;
    if let Some(w) = ask.not_shown_within_secs {
        out.excluded
            .extend(memory.weights(now, Some(w), half_life).into_keys());
    }
    if let Some(cap) = ask.cap {
        out.excluded.extend(
            memory
                .weights(now, Some(cap.within_secs), half_life)
                .into_iter()
                .filter(|(_, s)| s.times >= cap.times)
                .map(|(i, _)| i),
        );
    }
    if ask.demote_shown {
        for (item, s) in memory.weights(now, None, half_life) {
            let factor = crate::narrow::f32_from(1.0 / (1.0 + s.weight));
            // Shows decayed to nothing (the f32 factor rounds to 1 after about 25 half-lives)
            // demote nothing: no reason then.
            if factor >= 1.0 {
                continue;
            }
            let reason = Reason::ShownBefore {
                times: s.times,
                last_secs_ago: now.saturating_sub(s.last),
                factor,
            };
            out.demoted.insert(item, (factor, reason));
        }
    }
    out
}
