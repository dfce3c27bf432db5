//! Exposure memory: what each user was shown, and when, for the asks that leave out or demote
//! what a shopper has already seen on the page ([`crate::Ask::not_shown_within`],
//! [`crate::Ask::cap`], [`crate::Ask::demote_shown`]).
//!
//! **What it holds.** Every impression event (sent by the app, or recorded by the store for a
//! served answer that names a user and a slot) adds one show per distinct item it lists, at
//! the event's time. A user keeps the newest [`crate::Config::exposure_memory`] shows; older
//! ones drop out, so a cap counts shows within that memory (a bound the docs state). The
//! memory is part of the behaviour state: derived from the event log like the rest, written
//! by checkpoints under its own key (`X` user), replayed from the journal, and removed with
//! the user.
//!
//! **Why times as offsets.** A show is an item id and a time. Times are kept as `u32` seconds
//! past the oldest show kept (`base`), 8 bytes a show instead of 16: 200 shows cost 1.6 kB per
//! user. Shows more than `u32::MAX` seconds (136 years) older than the newest one are dropped,
//! which only a hostile or mistaken time can cause.
//!
//! **Decay.** A show's weight halves every [`crate::Config::exposure_half_life_secs`]; the
//! demotion divides a score by `1 + Σ weights` of the item's shows (see [`Exposure::weights`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The shows one user remembers: `(item, seconds past base)`, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    base: u64,
    shows: Vec<(u32, u32)>,
}

/// What the memory says about one item for one user at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shown {
    /// Shows remembered within the window asked about.
    pub times: u32,
    /// Time of the newest show remembered.
    pub last: u64,
    /// `Σ 2^(−age / half-life)` over the item's shows remembered.
    pub weight: f64,
}

impl Exposure {
    /// Shows remembered.
    pub fn len(&self) -> usize {
        self.shows.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.shows.is_empty()
    }

    /// Every show remembered, `(item, time)`, oldest first (equal times in the order they
    /// were recorded).
    pub fn shows(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.shows
            .iter()
            .map(|&(i, off)| (i, self.base.saturating_add(u64::from(off))))
    }

    /// Remember that `items` were shown at `ts`, keeping the newest `cap` shows. An item listed
    /// twice in one impression is one show; an impression longer than `cap` keeps its first
    /// `cap` items (the top of the list). Shows more than `u32::MAX` seconds older than the
    /// newest are dropped.
    pub(crate) fn record(&mut self, items: &[u32], ts: u64, cap: usize) {
        if cap == 0 || items.is_empty() {
            return;
        }
        let mut all: Vec<(u32, u64)> = self.shows().collect();
        // Sorted already, unless the record was damaged on disk: order it rather than trust it.
        all.sort_by_key(|s| s.1);
        // After every show at or before `ts`: equal times keep their recording order.
        let at = all.partition_point(|&(_, t)| t <= ts);
        let mut fresh: Vec<u32> = Vec::with_capacity(items.len().min(cap));
        for &i in items {
            if fresh.len() == cap {
                break;
            }
            if !fresh.contains(&i) {
                fresh.push(i);
            }
        }
        all.splice(at..at, fresh.into_iter().map(|i| (i, ts)));
        let over = all.len().saturating_sub(cap);
        all.drain(..over);
        let newest = all.last().map_or(0, |s| s.1);
        let keep_from =
            all.partition_point(|&(_, t)| newest.saturating_sub(t) > u64::from(u32::MAX));
        all.drain(..keep_from);
        self.base = all.first().map_or(0, |s| s.1);
        let base = self.base;
        self.shows = all
            .into_iter()
            .map(|(i, t)| (i, u32::try_from(t.saturating_sub(base)).unwrap_or(u32::MAX)))
            .collect();
    }

    /// Per item, its shows no older than `within` seconds at `now` (every show when `within`
    /// is `None`), with their decayed weight at `now` (half-life `half_life_secs`). A show
    /// at or after `now` has age 0. An item with no show in the window is absent.
    pub(crate) fn weights(
        &self,
        now: u64,
        within: Option<u64>,
        half_life_secs: f64,
    ) -> HashMap<u32, Shown> {
        let mut out: HashMap<u32, Shown> = HashMap::new();
        for (item, ts) in self.shows() {
            let age = now.saturating_sub(ts);
            if within.is_some_and(|w| age >= w) {
                continue;
            }
            let w = f64::from(super::user::decay(1.0, ts, now, half_life_secs));
            let e = out.entry(item).or_insert(Shown {
                times: 0,
                last: ts,
                weight: 0.0,
            });
            e.times = e.times.saturating_add(1);
            e.last = e.last.max(ts);
            e.weight += w;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_in_time_order() {
        let mut e = Exposure::default();
        e.record(&[1, 2, 2, 3], 100, 5);
        assert_eq!(
            e.len(),
            3,
            "an item listed twice in one impression is one show"
        );
        e.record(&[4], 50, 5); // a late, older impression goes first
        e.record(&[5, 6], 100, 5); // after the earlier shows at 100
        let got: Vec<(u32, u64)> = e.shows().collect();
        // Six shows, room for five: the oldest (4 at 50) went.
        assert_eq!(got, vec![(1, 100), (2, 100), (3, 100), (5, 100), (6, 100)]);
        e.record(&[7, 8, 9, 10, 11, 12, 13], 200, 5);
        let got: Vec<u32> = e.shows().map(|s| s.0).collect();
        assert_eq!(got, vec![7, 8, 9, 10, 11], "a long list keeps its top");
        e.record(&[], 300, 5);
        e.record(&[1], 300, 0);
        assert_eq!(e.len(), 5, "nothing to add");
    }

    #[test]
    fn far_apart_times_drop_the_older_shows() {
        let mut e = Exposure::default();
        e.record(&[1], 10, 8);
        e.record(&[2], u64::MAX, 8);
        let got: Vec<(u32, u64)> = e.shows().collect();
        assert_eq!(
            got,
            vec![(2, u64::MAX)],
            "136 years apart cannot both be kept"
        );
        let mut e = Exposure::default();
        e.record(&[1], 1_000, 8);
        e.record(&[2], 1_000 + u64::from(u32::MAX), 8);
        assert_eq!(e.len(), 2, "exactly u32::MAX apart fits");
        e.record(&[3], 0, 8);
        // 3 at 0 is more than u32::MAX before the newest: the oldest shows go.
        let got: Vec<(u32, u64)> = e.shows().collect();
        assert_eq!(got, vec![(1, 1_000), (2, 1_000 + u64::from(u32::MAX))]);
    }

    #[test]
    fn weights_count_and_decay_within_the_window() {
        let mut e = Exposure::default();
        e.record(&[1, 2], 1_000, 10);
        e.record(&[1], 2_000, 10);
        e.record(&[3], 5_000, 10); // after `now`: age 0
        let w = e.weights(3_000, None, 1_000.0);
        let one = w[&1];
        assert_eq!((one.times, one.last), (2, 2_000));
        assert!((one.weight - (0.25 + 0.5)).abs() < 1e-6, "{one:?}");
        assert!((w[&3].weight - 1.0).abs() < 1e-9);
        let w = e.weights(3_000, Some(2_000), 1_000.0);
        assert_eq!(w[&1].times, 1, "the show at 1000 is 2000 s old: outside");
        assert!(!w.contains_key(&2));
        assert!(w.contains_key(&3));
    }
}
