//! A/B slots: which strategy serves which user on a page slot, and what those users then did.
//!
//! A slot (`home`, `cart`…) holds weighted variants. A user is routed by a stable hash of
//! their id salted with the slot name, so they see the same variant on every visit and the
//! splits of different slots are independent. Each answer served through a slot counts its
//! items as impressions for the variant (strategy and version) that was routed to, and
//! remembers them per user and slot; a later click or purchase of one of those items is
//! attributed to that variant. A query that fell back to the built-in ranker stays in its
//! variant's figures (intention to treat) and is counted in `fallbacks`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_skiplist::SkipMap;
use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind};

/// The name that stands for the built-in ranker wherever a strategy is named.
pub const BUILTIN: &str = "builtin";

/// Who ranks: the built-in ranker or a loaded plugin, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Strategy {
    /// The built-in ranker (each scenario's own score).
    Builtin,
    /// The current version of the named plugin.
    Plugin(String),
}

impl From<String> for Strategy {
    fn from(s: String) -> Self {
        if s == BUILTIN {
            Strategy::Builtin
        } else {
            Strategy::Plugin(s)
        }
    }
}

impl From<Strategy> for String {
    fn from(s: Strategy) -> Self {
        s.name().to_string()
    }
}

impl Strategy {
    /// `builtin` or the plugin name.
    pub fn name(&self) -> &str {
        match self {
            Strategy::Builtin => BUILTIN,
            Strategy::Plugin(n) => n,
        }
    }
}

/// One arm of a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Who ranks for the users routed here.
    pub strategy: Strategy,
    /// Share of users, relative to the other variants' weights.
    pub weight: u32,
}

impl Variant {
    /// A variant of `strategy` with `weight`.
    pub fn new(strategy: impl Into<String>, weight: u32) -> Variant {
        Variant {
            strategy: Strategy::from(strategy.into()),
            weight,
        }
    }
}

/// A slot's variants with the precomputed routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub variants: Vec<Variant>,
    total: u64,
    seed: u64,
}

impl Slot {
    /// `None` if no variant has weight.
    pub(crate) fn new(name: &str, variants: Vec<Variant>) -> Option<Slot> {
        let total = variants.iter().map(|v| u64::from(v.weight)).sum();
        (total > 0).then(|| Slot {
            variants,
            total,
            seed: xxhash_rust::xxh3::xxh3_64(name.as_bytes()),
        })
    }

    /// The variant `user` is routed to: the same one every time for the same slot and
    /// weights. Anonymous traffic (`None`) all goes to one variant.
    pub(crate) fn route(&self, user: Option<&str>) -> &Variant {
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(user.unwrap_or("").as_bytes(), self.seed);
        let mut at = h % self.total;
        for v in &self.variants {
            let w = u64::from(v.weight);
            if at < w {
                return v;
            }
            at -= w;
        }
        // Unreachable while `total` is the sum of the weights; the first variant is a safe
        // answer all the same.
        &self.variants[0]
    }
}

/// What users routed to one variant did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantStats {
    /// The slot.
    pub slot: String,
    /// The strategy (`builtin` or a plugin name).
    pub strategy: String,
    /// The plugin version that served (0 for the built-in ranker).
    pub version: u32,
    /// Answers served.
    pub serves: u64,
    /// Items shown.
    pub impressions: u64,
    /// Clicks on items it showed.
    pub clicks: u64,
    /// Purchases of items it showed.
    pub purchases: u64,
    /// Answers that fell back to the built-in ranker after a plugin fault.
    pub fallbacks: u64,
    /// clicks / impressions.
    pub ctr: f64,
    /// purchases / impressions.
    pub conversion: f64,
}

#[derive(Debug, Default)]
struct Counts {
    serves: AtomicU64,
    impressions: AtomicU64,
    clicks: AtomicU64,
    purchases: AtomicU64,
    fallbacks: AtomicU64,
}

/// One variant's A/B counters as the store saves them (key `P` `a`, FORMAT.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedFigures {
    /// (slot, strategy, plugin version).
    pub key: (String, String, u32),
    /// Serves, impressions, clicks, purchases, fallbacks.
    pub counts: [u64; 5],
}

/// What one user was last shown on one slot.
#[derive(Debug)]
struct Shown {
    items: Vec<String>,
    counts: Arc<Counts>,
}

/// Lock-free attribution tables: queries and event ingestion update them concurrently.
#[derive(Debug)]
pub(crate) struct Attribution {
    /// (slot, strategy, version) → counters.
    variants: SkipMap<(String, String, u32), Arc<Counts>>,
    /// (user, slot) → what they were last shown there.
    shown: SkipMap<(String, String), Shown>,
    /// Most (user, slot) pairs remembered; beyond it the first in key order is forgotten.
    cap: usize,
}

impl Attribution {
    pub(crate) fn new(cap: usize) -> Attribution {
        Attribution {
            variants: SkipMap::new(),
            shown: SkipMap::new(),
            cap: cap.max(1),
        }
    }

    /// Count an answer served on `slot` by `strategy`/`version` to `user`.
    pub(crate) fn served(
        &self,
        slot: &str,
        strategy: &str,
        version: u32,
        user: Option<&str>,
        items: Vec<String>,
        fell_back: bool,
    ) {
        let counts = self
            .variants
            .get_or_insert_with((slot.to_string(), strategy.to_string(), version), || {
                Arc::new(Counts::default())
            })
            .value()
            .clone();
        counts.serves.fetch_add(1, Relaxed);
        counts.impressions.fetch_add(items.len() as u64, Relaxed);
        if fell_back {
            counts.fallbacks.fetch_add(1, Relaxed);
        }
        if let Some(user) = user {
            if self.shown.len() >= self.cap {
                self.shown.pop_front();
            }
            self.shown.insert(
                (user.to_string(), slot.to_string()),
                Shown { items, counts },
            );
        }
    }

    /// Attribute the clicks and purchases among `events` to the variants that showed the item.
    pub(crate) fn record(&self, events: &[Event]) {
        // Nothing shown, nothing to attribute: ingestion without A/B slots skips the per-event
        // map search (and its epoch pin) entirely.
        if self.shown.is_empty() {
            return;
        }
        for e in events {
            let Some(item) = e.item.as_deref() else {
                continue;
            };
            let purchase = match e.kind {
                EventKind::Click => false,
                EventKind::Purchase { .. } => true,
                _ => continue,
            };
            let from = (e.user.clone(), String::new());
            for entry in self.shown.range(from..) {
                if entry.key().0 != e.user {
                    break;
                }
                let shown = entry.value();
                if shown.items.iter().any(|i| i == item) {
                    let c = if purchase {
                        &shown.counts.purchases
                    } else {
                        &shown.counts.clicks
                    };
                    c.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Every variant's counters, for saving: (slot, strategy, version) and serves,
    /// impressions, clicks, purchases, fallbacks.
    pub(crate) fn figures(&self) -> Vec<SavedFigures> {
        self.variants
            .iter()
            .map(|e| {
                let c = e.value();
                SavedFigures {
                    key: e.key().clone(),
                    counts: [
                        c.serves.load(Relaxed),
                        c.impressions.load(Relaxed),
                        c.clicks.load(Relaxed),
                        c.purchases.load(Relaxed),
                        c.fallbacks.load(Relaxed),
                    ],
                }
            })
            .collect()
    }

    /// Add saved counters back (on open, before anything is served).
    pub(crate) fn restore(&self, saved: Vec<SavedFigures>) {
        for f in saved {
            let counts = self
                .variants
                .get_or_insert_with(f.key, || Arc::new(Counts::default()))
                .value()
                .clone();
            let [serves, impressions, clicks, purchases, fallbacks] = f.counts;
            counts.serves.fetch_add(serves, Relaxed);
            counts.impressions.fetch_add(impressions, Relaxed);
            counts.clicks.fetch_add(clicks, Relaxed);
            counts.purchases.fetch_add(purchases, Relaxed);
            counts.fallbacks.fetch_add(fallbacks, Relaxed);
        }
    }

    /// CTR and conversion counts of `strategy`'s versions `old` and `new`, summed over the
    /// slots (for the guardrails).
    pub(crate) fn rates(
        &self,
        strategy: &str,
        old: u32,
        new: u32,
    ) -> (crate::plugin::guard::Rates, crate::plugin::guard::Rates) {
        let (mut ctr, mut conversion) = (
            crate::plugin::guard::Rates::default(),
            crate::plugin::guard::Rates::default(),
        );
        for e in self.variants.iter() {
            let (_, s, v) = e.key();
            if s != strategy {
                continue;
            }
            let c = e.value();
            let (imp, clicks, buys) = (
                c.impressions.load(Relaxed),
                c.clicks.load(Relaxed),
                c.purchases.load(Relaxed),
            );
            if *v == old {
                ctr.old_impressions += imp;
                ctr.old += clicks;
                conversion.old_impressions += imp;
                conversion.old += buys;
            } else if *v == new {
                ctr.new_impressions += imp;
                ctr.new += clicks;
                conversion.new_impressions += imp;
                conversion.new += buys;
            }
        }
        (ctr, conversion)
    }

    /// Figures per variant of `slot` (every slot when `None`), in key order.
    pub(crate) fn stats(&self, slot: Option<&str>) -> Vec<VariantStats> {
        self.variants
            .iter()
            .filter(|e| slot.is_none_or(|s| e.key().0 == s))
            .map(|e| {
                let (slot, strategy, version) = e.key().clone();
                let c = e.value();
                let impressions = c.impressions.load(Relaxed);
                let clicks = c.clicks.load(Relaxed);
                let purchases = c.purchases.load(Relaxed);
                let rate = |x: u64| {
                    if impressions == 0 {
                        0.0
                    } else {
                        x as f64 / impressions as f64
                    }
                };
                VariantStats {
                    slot,
                    strategy,
                    version,
                    serves: c.serves.load(Relaxed),
                    impressions,
                    clicks,
                    purchases,
                    fallbacks: c.fallbacks.load(Relaxed),
                    ctr: rate(clicks),
                    conversion: rate(purchases),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_stable_and_follows_weights() {
        let slot =
            Slot::new("home", vec![Variant::new("a", 1), Variant::new("b", 3)]).expect("weighted");
        let mut b = 0;
        for u in 0..4000 {
            let user = format!("u{u}");
            let v = slot.route(Some(&user));
            assert_eq!(v, slot.route(Some(&user)), "same user, same variant");
            b += usize::from(v.strategy.name() == "b");
        }
        assert!((2800..3200).contains(&b), "b got {b} of 4000 at weight 3/4");
        assert!(Slot::new("x", vec![Variant::new("a", 0)]).is_none());
    }

    #[test]
    fn clicks_and_purchases_follow_what_was_shown() {
        let a = Attribution::new(10);
        a.served(
            "home",
            "p",
            2,
            Some("u1"),
            vec!["x".into(), "y".into()],
            false,
        );
        a.record(&[
            Event::click("u1", "x", 1),
            Event::click("u1", "z", 2),
            Event::purchase("u1", "y", 1, 3.0, 3),
            Event::click("u2", "x", 4),
        ]);
        let s = &a.stats(Some("home"))[0];
        assert_eq!((s.impressions, s.clicks, s.purchases), (2, 1, 1));
        assert!((s.ctr - 0.5).abs() < 1e-9);
    }
}
