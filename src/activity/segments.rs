//! User segments: RFM scores and lifecycle stages, computed on read from the counters that
//! events keep, so they never go stale and need no batch job.

use serde::Serialize;

use super::{Activity, UserState};
use crate::config::LifecycleDays;

/// Where a user is in their life as a customer, relative to the store's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// First seen recently, at most one order.
    New,
    /// Seen recently.
    Active,
    /// Not seen for a while.
    Dormant,
    /// Not seen for a long time.
    Churned,
}

impl Lifecycle {
    /// The stage of `u` at time `now`.
    pub fn of(u: &UserState, now: u64, days: &LifecycleDays) -> Lifecycle {
        let ago = |t: u64| now.saturating_sub(t) / 86_400;
        if ago(u.first_seen) <= u64::from(days.new) && u.orders <= 1 {
            Lifecycle::New
        } else if ago(u.last_seen) <= u64::from(days.active) {
            Lifecycle::Active
        } else if ago(u.last_seen) <= u64::from(days.dormant) {
            Lifecycle::Dormant
        } else {
            Lifecycle::Churned
        }
    }
}

/// Recency, frequency and monetary scores, each 1 (worst fifth of buyers) to 5 (best fifth);
/// all 0 for a user who never bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rfm {
    /// How recently they last bought.
    pub recency: u8,
    /// How many orders.
    pub frequency: u8,
    /// How much they spent.
    pub monetary: u8,
}

/// Quintile cut points over the buyers of one activity version.
#[derive(Debug, Clone, Default)]
pub(crate) struct RfmBounds {
    recency_days: [u64; 4],
    frequency: [u32; 4],
    monetary: [f64; 4],
}

fn cuts<T: Copy + PartialOrd>(mut v: Vec<T>) -> Option<[T; 4]> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let at = |q: usize| v[(v.len() * q / 5).min(v.len() - 1)];
    Some([at(1), at(2), at(3), at(4)])
}

impl RfmBounds {
    fn compute(act: &Activity) -> RfmBounds {
        let now = act.now();
        let buyers: Vec<&UserState> = act
            .users()
            .map(|(_, u)| u)
            .filter(|u| u.orders > 0)
            .collect();
        RfmBounds {
            recency_days: cuts(
                buyers
                    .iter()
                    .map(|u| now.saturating_sub(u.last_order) / 86_400)
                    .collect(),
            )
            .unwrap_or_default(),
            frequency: cuts(buyers.iter().map(|u| u.orders).collect()).unwrap_or_default(),
            monetary: cuts(buyers.iter().map(|u| u.spend).collect()).unwrap_or_default(),
        }
    }

    fn score(&self, u: &UserState, now: u64) -> Rfm {
        if u.orders == 0 {
            return Rfm {
                recency: 0,
                frequency: 0,
                monetary: 0,
            };
        }
        let days = now.saturating_sub(u.last_order) / 86_400;
        // Each count is of thresholds, at most 4.
        let above = |n: usize| 1 + u8::try_from(n).unwrap_or(4).min(4);
        Rfm {
            recency: 5 - u8::try_from(self.recency_days.iter().filter(|&&c| days > c).count())
                .unwrap_or(4)
                .min(4),
            frequency: above(self.frequency.iter().filter(|&&c| u.orders > c).count()),
            monetary: above(self.monetary.iter().filter(|&&c| u.spend > c).count()),
        }
    }
}

impl Activity {
    /// The RFM score of `u` among this store's buyers.
    pub fn rfm(&self, u: &UserState) -> Rfm {
        self.rfm
            .get_or_init(|| RfmBounds::compute(self))
            .score(u, self.now())
    }
}

/// The segments `recostore query segment <name>` knows, with what each means.
pub const SEGMENTS: &[(&str, &str)] = &[
    (
        "new",
        "lifecycle: first seen within Config::lifecycle.new days, at most one order",
    ),
    (
        "active",
        "lifecycle: seen within Config::lifecycle.active days",
    ),
    (
        "dormant",
        "lifecycle: last seen within Config::lifecycle.dormant days",
    ),
    ("churned", "lifecycle: not seen for longer than that"),
    (
        "champions",
        "RFM: recency, frequency and monetary all 4 or 5",
    ),
    ("loyal", "RFM: frequency 4 or 5, not a champion"),
    ("big-spenders", "RFM: monetary 5"),
    ("at-risk", "RFM: frequency 3 or more but recency 1 or 2"),
    (
        "hibernating",
        "RFM: bought, but recency and frequency both 1 or 2",
    ),
    ("buyers", "everyone with at least one order"),
];

/// Whether a user with `rfm` and `stage` is in segment `name`; `None` if the name is unknown.
pub fn in_segment(name: &str, rfm: Rfm, stage: Lifecycle) -> Option<bool> {
    let champion = rfm.recency >= 4 && rfm.frequency >= 4 && rfm.monetary >= 4;
    Some(match name {
        "new" => stage == Lifecycle::New,
        "active" => stage == Lifecycle::Active,
        "dormant" => stage == Lifecycle::Dormant,
        "churned" => stage == Lifecycle::Churned,
        "champions" => champion,
        "loyal" => rfm.frequency >= 4 && !champion,
        "big-spenders" => rfm.monetary == 5,
        "at-risk" => rfm.frequency >= 3 && (1..=2).contains(&rfm.recency),
        "hibernating" => (1..=2).contains(&rfm.recency) && (1..=2).contains(&rfm.frequency),
        "buyers" => rfm.frequency > 0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quintile_scores() {
        let b = RfmBounds {
            recency_days: [10, 20, 30, 40],
            frequency: [1, 2, 3, 4],
            monetary: [10.0, 20.0, 30.0, 40.0],
        };
        let mut u = UserState {
            orders: 5,
            spend: 100.0,
            last_order: 100 * 86_400,
            ..UserState::default()
        };
        let r = b.score(&u, 105 * 86_400);
        assert_eq!((r.recency, r.frequency, r.monetary), (5, 5, 5));
        u.orders = 1;
        u.spend = 5.0;
        let r = b.score(&u, 200 * 86_400);
        assert_eq!((r.recency, r.frequency, r.monetary), (1, 1, 1));
        assert!(in_segment("hibernating", r, Lifecycle::Churned).unwrap_or(false));
        assert_eq!(in_segment("no-such", r, Lifecycle::New), None);
    }

    #[test]
    fn lifecycle_stages() {
        let d = LifecycleDays::default();
        let day = 86_400;
        let u = UserState {
            first_seen: 0,
            last_seen: 100 * day,
            orders: 3,
            ..UserState::default()
        };
        assert_eq!(Lifecycle::of(&u, 110 * day, &d), Lifecycle::Active);
        assert_eq!(Lifecycle::of(&u, 200 * day, &d), Lifecycle::Dormant);
        assert_eq!(Lifecycle::of(&u, 400 * day, &d), Lifecycle::Churned);
        let fresh = UserState {
            first_seen: 100 * day,
            last_seen: 100 * day,
            ..UserState::default()
        };
        assert_eq!(Lifecycle::of(&fresh, 101 * day, &d), Lifecycle::New);
    }
}
