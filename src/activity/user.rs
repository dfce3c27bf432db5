//! A user's behaviour state: derived tags with lazy decay, the items they touched, RFM counters
//! and their open sessions.

use serde::{Deserialize, Serialize};

/// `w` valued at time `at`, decayed to time `now` with half-life `half_life_secs`. Times before
/// `at` return `w` unchanged (decay never amplifies).
pub fn decay(w: f32, at: u64, now: u64, half_life_secs: f64) -> f32 {
    if now <= at || half_life_secs <= 0.0 || !half_life_secs.is_finite() {
        return w;
    }
    let halves = (now - at) as f64 / half_life_secs;
    crate::narrow::f32_from(f64::from(w) * (-halves * std::f64::consts::LN_2).exp())
}

/// The tags an event on an item passes to the user: the item's tags, plus `category:<path>` and
/// its price band unless it has such tags already, scaled to unit L2 norm (so every event adds
/// the same total weight whatever the item). `named` tells whether tag id `t`'s name starts
/// with a prefix; `id_of` finds (or, on the write path, creates) the id of a tag name, `None`
/// to leave the tag out.
pub(crate) fn passed_tags<E>(
    mut tags: Vec<(u32, f32)>,
    category: &str,
    price: f32,
    named: impl Fn(u32, &str) -> bool,
    mut id_of: impl FnMut(&str) -> Result<Option<u32>, E>,
) -> Result<Vec<(u32, f32)>, E> {
    let has = |tags: &[(u32, f32)], prefix: &str| tags.iter().any(|&(t, _)| named(t, prefix));
    let mut extra = Vec::new();
    if !category.is_empty() && !has(&tags, "category:") {
        extra.push(format!("category:{category}"));
    }
    if price > 0.0 && !has(&tags, "price:") {
        extra.push(crate::model::price_band(price).to_string());
    }
    for name in extra {
        if name.len() > crate::model::MAX_TAG_BYTES {
            continue;
        }
        if let Some(id) = id_of(&name)? {
            if let Err(at) = tags.binary_search_by_key(&id, |p| p.0) {
                tags.insert(at, (id, 1.0));
            }
        }
    }
    let norm = crate::segment::builder::l2_norm(tags.iter().map(|p| p.1));
    if norm > 0.0 {
        tags.iter_mut().for_each(|p| p.1 /= norm);
    }
    Ok(tags)
}

/// A session still open: its purchases form one basket, its other interest events one
/// viewed-together session. The items are in the basket indexes
/// (`activity::baskets`) under these ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenSession {
    /// xxh3 of the app's session id; 0 for the implicit (time-gap) session.
    pub key: u64,
    /// Time of its newest event.
    pub last_ts: u64,
    /// Id of its purchase basket, once it has a purchase.
    pub basket: Option<u64>,
    /// Id of its viewed-together session, once it has an interest event other than a
    /// purchase.
    pub viewed: Option<u64>,
}

/// Everything behaviour tells about one user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    /// Derived tags `(tag id, weight)` sorted by tag id, valued at `derived_at`.
    pub derived: Vec<(u32, f32)>,
    /// Reference time of `derived`.
    pub derived_at: u64,
    /// Most recent items with their times, newest last (at most `Config::max_recent_items`).
    pub recent: Vec<(u32, u64)>,
    /// Every item the user showed interest in, sorted (capped by `Config::max_seen_items`).
    pub seen: Vec<u32>,
    /// Every item the user bought, sorted (same cap).
    pub purchased: Vec<u32>,
    /// Id of the most recent purchase basket (its items are in the bought-together index).
    pub last_basket: Option<u64>,
    /// Time of the first event.
    pub first_seen: u64,
    /// Time of the newest event.
    pub last_seen: u64,
    /// Events recorded.
    pub events: u64,
    /// Purchase baskets (orders).
    pub orders: u32,
    /// Time of the newest purchase.
    pub last_order: u64,
    /// Money spent.
    pub spend: f64,
    /// Sessions still open for pairing (at most `OPEN_SESSIONS`).
    pub sessions: Vec<OpenSession>,
}

type Tags = Vec<(u32, f32)>;

thread_local! {
    /// Scratch space of [`UserState::add_tags`]: the merge, and the selection.
    static MERGE: std::cell::RefCell<(Tags, Tags)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Keep the `max` strongest of `tags` (sorted by id; ties in weight go to the smaller id), in
/// id order. Linear: one selection finds the weakest survivor instead of sorting by weight.
fn keep_strongest(tags: &mut Vec<(u32, f32)>, max: usize, scratch: &mut Vec<(u32, f32)>) {
    let Some(nth) = max.checked_sub(1) else {
        tags.clear();
        return;
    };
    // Stronger first; among equal weights, the smaller id first.
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    scratch.clear();
    scratch.extend_from_slice(tags);
    let (_, &mut last, _) = scratch.select_nth_unstable_by(nth, order);
    tags.retain(|t| order(t, &last).is_le());
}

/// How many sessions per user stay open for pairing; an event for a session beyond these (the
/// oldest is dropped) starts a fresh basket.
pub const OPEN_SESSIONS: usize = 4;

impl UserState {
    /// Derived tags decayed to `now`.
    pub fn derived_at_time(&self, now: u64, half_life_secs: f64) -> Vec<(u32, f32)> {
        let f = decay(1.0, self.derived_at, now, half_life_secs);
        self.derived.iter().map(|&(t, w)| (t, w * f)).collect()
    }

    /// Add `scale × weights` at time `ts`, keeping at most `max` tags (the smallest go) and
    /// dropping tags whose weight falls to zero or below (a low rating subtracts).
    pub(crate) fn add_tags(
        &mut self,
        weights: &[(u32, f32)],
        scale: f32,
        ts: u64,
        half_life_secs: f64,
        max: usize,
    ) {
        if scale == 0.0 || weights.is_empty() {
            return;
        }
        let scale = if ts >= self.derived_at {
            let f = decay(1.0, self.derived_at, ts, half_life_secs);
            if f != 1.0 {
                self.derived.iter_mut().for_each(|p| p.1 *= f);
            }
            self.derived_at = ts;
            scale
        } else {
            decay(scale, ts, self.derived_at, half_life_secs)
        };
        // Merge into a per-thread buffer and copy back: the state keeps its allocation, and
        // ingestion does this once per event.
        MERGE.with_borrow_mut(|(out, scratch)| {
            out.clear();
            out.extend(
                crate::sparse::merge_sum(&self.derived, weights, scale)
                    .filter(|p| p.1 > 1e-6 && p.1.is_finite()),
            );
            if out.len() > max {
                keep_strongest(out, max, scratch);
            }
            self.derived.clear();
            self.derived.extend_from_slice(out);
        });
    }

    /// Note an event at `ts` on `item` (if any).
    pub(crate) fn touch(&mut self, item: Option<u32>, ts: u64, max_recent: usize, max_seen: usize) {
        if self.events == 0 || ts < self.first_seen {
            self.first_seen = ts;
        }
        self.last_seen = self.last_seen.max(ts);
        self.events += 1;
        let Some(item) = item else { return };
        if let Some(at) = self.recent.iter().position(|&(i, _)| i == item) {
            self.recent.remove(at);
        }
        // Keep newest last even when events arrive out of order.
        let at = self.recent.partition_point(|&(_, t)| t <= ts);
        self.recent.insert(at, (item, ts));
        if self.recent.len() > max_recent {
            self.recent.drain(..self.recent.len() - max_recent);
        }
        insert_sorted(&mut self.seen, item, max_seen);
    }

    /// The open session an event at `ts` belongs to, creating it (and closing the oldest)
    /// if needed. `key` is 0 for events without a session id: they share an implicit session
    /// while less than `gap` seconds apart.
    pub(crate) fn session(&mut self, key: u64, ts: u64, gap: u64) -> &mut OpenSession {
        let found = self
            .sessions
            .iter()
            .position(|s| s.key == key && (key != 0 || ts.abs_diff(s.last_ts) <= gap));
        let at = match found {
            Some(at) => at,
            None => {
                if key == 0 {
                    self.sessions.retain(|s| s.key != 0);
                }
                if self.sessions.len() >= OPEN_SESSIONS {
                    if let Some(oldest) =
                        (0..self.sessions.len()).min_by_key(|&i| self.sessions[i].last_ts)
                    {
                        self.sessions.remove(oldest);
                    }
                }
                self.sessions.push(OpenSession {
                    key,
                    last_ts: ts,
                    ..OpenSession::default()
                });
                self.sessions.len() - 1
            }
        };
        let s = &mut self.sessions[at];
        s.last_ts = s.last_ts.max(ts);
        s
    }
}

/// Insert into a sorted set capped at `max` entries (beyond the cap new ids are not recorded;
/// the cap bounds the record, and "exclude seen" then misses only the heaviest users' oldest).
pub(crate) fn insert_sorted(set: &mut Vec<u32>, id: u32, max: usize) {
    if let Err(at) = set.binary_search(&id) {
        if set.len() < max {
            set.insert(at, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_strongest_matches_sorting_by_weight() {
        let mut rng = 0x9e37_79b9_u64;
        for case in 0..500 {
            let n = 1 + case % 90;
            let mut tags: Vec<(u32, f32)> = (0..n as u32)
                .map(|t| {
                    rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    // Few distinct weights, so ties are common.
                    (t * 3, ((rng >> 33) % 7) as f32)
                })
                .collect();
            let max = case % 70;
            let mut want: Vec<(u32, f32)> = tags.clone();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(max);
            want.sort_by_key(|p| p.0);
            if tags.len() > max {
                keep_strongest(&mut tags, max, &mut Vec::new());
            }
            assert_eq!(tags, want, "case {case}");
        }
    }

    #[test]
    fn decay_halves() {
        assert!((decay(8.0, 0, 10, 10.0) - 4.0).abs() < 1e-5);
        assert_eq!(decay(8.0, 10, 0, 10.0), 8.0);
    }

    #[test]
    fn new_preference_beats_old_after_half_lives() {
        let mut u = UserState::default();
        let hl = 100.0;
        u.add_tags(&[(1, 1.0)], 5.0, 0, hl, 64); // old: red, strongly
        u.add_tags(&[(2, 1.0)], 2.0, 300, hl, 64); // new: blue, mildly, 3 half-lives later
        let now = u.derived_at_time(300, hl);
        let red = now.iter().find(|p| p.0 == 1).map_or(0.0, |p| p.1);
        let blue = now.iter().find(|p| p.0 == 2).map_or(0.0, |p| p.1);
        assert!(blue > red, "red {red} blue {blue}");
    }

    #[test]
    fn tags_are_capped_by_weight_and_stay_sorted() {
        let mut u = UserState::default();
        u.add_tags(&[(1, 1.0), (2, 3.0), (3, 2.0)], 1.0, 0, 100.0, 2);
        assert_eq!(u.derived, vec![(2, 3.0), (3, 2.0)]);
        u.add_tags(&[(2, 1.0)], -10.0, 0, 100.0, 2); // a bad rating removes the tag
        assert_eq!(u.derived, vec![(3, 2.0)]);
    }

    #[test]
    fn implicit_sessions_split_on_gaps() {
        let mut u = UserState::default();
        u.session(0, 100, 60).viewed = Some(1);
        assert_eq!(u.session(0, 150, 60).viewed, Some(1));
        assert!(u.session(0, 1000, 60).viewed.is_none());
        for k in 1..10 {
            u.session(k, 2000 + k, 60);
        }
        assert_eq!(u.sessions.len(), OPEN_SESSIONS);
    }

    #[test]
    fn recent_is_newest_last_without_duplicates() {
        let mut u = UserState::default();
        for (i, t) in [(1, 10), (2, 20), (1, 30), (3, 5)] {
            u.touch(Some(i), t, 3, 10);
        }
        assert_eq!(u.recent, vec![(3, 5), (2, 20), (1, 30)]);
        assert_eq!(u.seen, vec![1, 2, 3]);
        assert_eq!((u.first_seen, u.last_seen, u.events), (5, 30, 4));
    }
}
