//! Per-item behaviour statistics and the derived figures ranking uses.

use serde::{Deserialize, Serialize};

use super::user::decay;

/// Counters of what shoppers did with one item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemStats {
    /// Product-page views.
    pub views: u64,
    /// Clicks in lists.
    pub clicks: u64,
    /// Wish-list saves.
    pub favourites: u64,
    /// Add-to-carts.
    pub carts: u64,
    /// Purchase events (order lines).
    pub orders: u64,
    /// Units sold.
    pub units: u64,
    /// Revenue (units × unit price).
    pub revenue: f64,
    /// Written reviews.
    pub reviews: u64,
    /// Ratings given.
    pub ratings: u64,
    /// Sum of the ratings (average = `rating_sum / ratings`).
    pub rating_sum: f64,
    /// Times shown in an impression.
    pub impressions: u64,
    /// Purchase baskets holding it (the denominator of bought-together measures).
    pub baskets: u32,
    /// Sessions holding it (the denominator of viewed-together measures).
    pub sessions: u32,
    /// Event-weighted popularity as of `pop_at`; decays with `Config::popularity_half_life_days`.
    pub pop: f32,
    /// Reference time of `pop`.
    pub pop_at: u64,
}

impl ItemStats {
    /// Purchases per view (or click), 0 when it was never viewed. Shops whose feed has only
    /// purchases (such as the Online Retail data) get 0 for every item, which ranks neutrally.
    pub fn conversion(&self) -> f32 {
        let looks = self.views + self.clicks;
        if looks == 0 {
            0.0
        } else {
            crate::narrow::f32_from((self.orders as f64 / looks as f64).min(1.0))
        }
    }

    /// Average rating, if rated.
    pub fn rating(&self) -> Option<f32> {
        (self.ratings > 0).then(|| crate::narrow::f32_from(self.rating_sum / self.ratings as f64))
    }

    /// Popularity decayed to time `now`.
    pub fn popularity(&self, now: u64, half_life_secs: f64) -> f32 {
        decay(self.pop, self.pop_at, now, half_life_secs)
    }

    /// A key that orders items by popularity at *any* common time, so an index sorted by it
    /// never needs re-sorting as time passes: decay multiplies every item by the same factor, so
    /// `ln(pop) + pop_at·ln2/half_life` ranks them as their decayed values do. `None` at zero.
    pub fn popularity_key(&self, half_life_secs: f64) -> Option<u64> {
        if self.pop <= 0.0 || half_life_secs <= 0.0 || !half_life_secs.is_finite() {
            return None;
        }
        let k =
            f64::from(self.pop).ln() + self.pop_at as f64 * std::f64::consts::LN_2 / half_life_secs;
        // Map the f64 onto u64 so that integer order is numeric order (negative keys included).
        let bits = k.to_bits();
        Some(if k.is_sign_negative() {
            !bits
        } else {
            bits | (1 << 63)
        })
    }

    /// Add `w` to the popularity at time `ts` (lazy decay: the stored value is moved to the
    /// newer of the two times, and an older event counts for less).
    pub(crate) fn add_popularity(&mut self, w: f32, ts: u64, half_life_secs: f64) {
        if ts >= self.pop_at {
            self.pop = decay(self.pop, self.pop_at, ts, half_life_secs) + w;
            self.pop_at = ts;
        } else {
            self.pop += decay(w, ts, self.pop_at, half_life_secs);
        }
        self.pop = self.pop.max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popularity_halves_per_half_life() {
        let mut s = ItemStats::default();
        s.add_popularity(8.0, 1000, 100.0);
        assert!((s.popularity(1100, 100.0) - 4.0).abs() < 1e-4);
        // An event older than the reference time counts for less, not more.
        s.add_popularity(8.0, 900, 100.0);
        assert!((s.popularity(1000, 100.0) - 12.0).abs() < 1e-3);
    }

    #[test]
    fn popularity_key_orders_like_decayed_popularity() {
        let hl = 100.0;
        let mut old_big = ItemStats::default();
        old_big.add_popularity(100.0, 0, hl);
        let mut new_small = ItemStats::default();
        new_small.add_popularity(10.0, 500, hl); // 5 half-lives later: 100 decays to 3.1
        let (a, b) = (old_big.popularity_key(hl), new_small.popularity_key(hl));
        assert!(b > a, "the newer item is more popular at any later time");
        assert!(old_big.popularity(500, hl) < new_small.popularity(500, hl));
        assert_eq!(ItemStats::default().popularity_key(hl), None);
    }

    #[test]
    fn conversion_is_bounded() {
        let s = ItemStats {
            views: 4,
            orders: 1,
            ..ItemStats::default()
        };
        assert!((s.conversion() - 0.25).abs() < 1e-6);
        assert_eq!(ItemStats::default().conversion(), 0.0);
    }
}
