//! The item half of applying events: item counters, the popularity index and co-occurrence.
//!
//! Applying an event has two halves that share nothing. The user half (the user's state:
//! recent items, decayed tags, open sessions) decides which session partners a new item
//! pairs with; the item half counts the event on the item and pairs it. [`Ingest`] runs the
//! user half and hands its findings over as [`Steps`]; [`ItemSide`] applies them, in the same
//! order ([`ItemParts::apply`]). Because the halves touch disjoint state, a large batch can
//! run the item half on a second thread while the writer's thread resolves names and runs the user half (see
//! `Pending::record_all`), and the result is the same as applying each event in turn.
//!
//! [`Ingest`]: super::ingest::Ingest

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use super::{CoList, ItemStats, Relation};
use crate::config::Config;
use crate::event::StoredKind;

/// What the user half of one event found, for the item half.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The item the event is about. For an impression, unused (`kind` lists the items).
    pub item: u32,
    pub ts: u64,
    /// The event's weight ([`super::ingest::weight`]).
    pub w: f32,
    pub kind: StoredKind,
    /// Joined a viewed-together session: whether it was a new one, and the partners (a range
    /// of [`Steps::partners`]).
    pub viewed: Option<(bool, Range<usize>)>,
    /// Joined a basket: whether it was a new one, and the partners.
    pub bought: Option<(bool, Range<usize>)>,
}

/// A run of [`Step`]s with their session partners, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    pub steps: Vec<Step>,
    pub partners: Vec<u32>,
}

impl Steps {
    /// Steps held.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Drop every step, keeping the allocations.
    pub fn clear(&mut self) {
        self.steps.clear();
        self.partners.clear();
    }

    /// Append `partners` and return their range.
    pub fn push_partners(&mut self, partners: &[u32]) -> Range<usize> {
        let at = self.partners.len();
        self.partners.extend_from_slice(partners);
        at..self.partners.len()
    }
}

/// The item half of a batch's private copy of the behaviour state, taken out of it while a
/// large batch runs ([`super::ingest::Ingest::take_items`]) so another thread can own it.
#[derive(Debug, Default)]
pub(crate) struct ItemSide {
    pub items: imbl::HashMap<u32, Arc<ItemStats>>,
    pub bought: imbl::HashMap<u32, Arc<CoList>>,
    pub viewed: imbl::HashMap<u32, Arc<CoList>>,
    pub by_popularity: imbl::OrdSet<(u64, u32)>,
    /// Items whose statistics or lists changed.
    pub touched_items: HashSet<u32>,
    /// `Totals::sessions` and `Totals::baskets`.
    pub sessions: u64,
    pub baskets: u64,
}

impl ItemSide {
    /// Borrow it as [`ItemParts`].
    pub fn parts(&mut self) -> ItemParts<'_> {
        ItemParts {
            items: &mut self.items,
            bought: &mut self.bought,
            viewed: &mut self.viewed,
            by_popularity: &mut self.by_popularity,
            touched_items: &mut self.touched_items,
            sessions: &mut self.sessions,
            baskets: &mut self.baskets,
        }
    }
}

/// The item half of the behaviour state, borrowed: from an [`ItemSide`] or straight from a
/// batch's state (`Ingest::item_parts`), so applying one event moves nothing.
pub(crate) struct ItemParts<'a> {
    pub items: &'a mut imbl::HashMap<u32, Arc<ItemStats>>,
    pub bought: &'a mut imbl::HashMap<u32, Arc<CoList>>,
    pub viewed: &'a mut imbl::HashMap<u32, Arc<CoList>>,
    pub by_popularity: &'a mut imbl::OrdSet<(u64, u32)>,
    pub touched_items: &'a mut HashSet<u32>,
    pub sessions: &'a mut u64,
    pub baskets: &'a mut u64,
}

impl ItemParts<'_> {
    /// The counters of `item`, copied out of the published snapshot on first touch.
    pub fn stats(&mut self, item: u32) -> &mut ItemStats {
        self.touched_items.insert(item);
        Arc::make_mut(self.items.entry(item).or_default())
    }

    /// Pair `item` with every item in `partners`, in both directions (`add` false: take the
    /// pairs back, for a forgotten user).
    pub fn pair(&mut self, cfg: &Config, rel: Relation, item: u32, partners: &[u32], add: bool) {
        if partners.is_empty() {
            return;
        }
        let cap = cfg.cooccurrence_per_item.max(1);
        let touched = &mut *self.touched_items;
        let lists = match rel {
            Relation::Bought => &mut *self.bought,
            Relation::Viewed => &mut *self.viewed,
        };
        let mut count = |lists: &mut imbl::HashMap<u32, Arc<CoList>>, a: u32, b: &[u32]| {
            touched.insert(a);
            if add {
                let l = Arc::make_mut(lists.entry(a).or_default());
                for &b in b {
                    l.add(b, cap);
                }
            } else if let Some(l) = lists.get_mut(&a) {
                let l = Arc::make_mut(l);
                for &b in b {
                    l.remove(b);
                }
                if l.entries.is_empty() {
                    lists.remove(&a);
                }
            }
        };
        // The item's own list once for all partners, then each partner's.
        count(lists, item, partners);
        for &other in partners {
            count(lists, other, &[item]);
        }
    }

    /// Apply `steps` in order.
    pub fn apply(&mut self, cfg: &Config, steps: &Steps) {
        let half_life = cfg.popularity_half_life_secs();
        for step in &steps.steps {
            if let StoredKind::Impression { items, .. } = &step.kind {
                for &i in items {
                    self.stats(i).impressions += 1;
                }
                continue;
            }
            let item = step.item;
            let s = self.stats(item);
            match step.kind {
                StoredKind::View => s.views += 1,
                StoredKind::Click => s.clicks += 1,
                StoredKind::Favourite => s.favourites += 1,
                StoredKind::Cart => s.carts += 1,
                StoredKind::Purchase { qty, price } => {
                    s.orders += 1;
                    s.units += u64::from(qty);
                    s.revenue += f64::from(qty) * f64::from(price);
                }
                StoredKind::Rating(x) => {
                    s.ratings += 1;
                    s.rating_sum += f64::from(x);
                }
                StoredKind::Review => s.reviews += 1,
                StoredKind::Search(_) | StoredKind::Impression { .. } => {}
            }
            s.sessions += u32::from(step.viewed.is_some());
            s.baskets += u32::from(step.bought.is_some());
            let before = s.popularity_key(half_life);
            s.add_popularity(step.w.max(0.0), step.ts, half_life);
            let after = s.popularity_key(half_life);
            if before != after {
                if let Some(k) = before {
                    self.by_popularity.remove(&(k, item));
                }
                if let Some(k) = after {
                    self.by_popularity.insert((k, item));
                }
            }
            if let Some((new, range)) = &step.viewed {
                *self.sessions += u64::from(*new);
                let with = steps.partners.get(range.clone()).unwrap_or_default();
                self.pair(cfg, Relation::Viewed, item, with, true);
            }
            if let Some((new, range)) = &step.bought {
                *self.baskets += u64::from(*new);
                let with = steps.partners.get(range.clone()).unwrap_or_default();
                self.pair(cfg, Relation::Bought, item, with, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use crate::{Event, Store};

    /// Every kind of event, from a few hundred users over a few hundred items, in sessions.
    fn events(count: usize) -> Vec<Event> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut ts = 1_700_000_000;
        (0..count)
            .map(|n| {
                ts += rng.gen_range(0..40);
                let user = format!("u{}", rng.gen_range(0..300));
                let item = format!("sku-{:07}", rng.gen_range(0..400));
                let e = match rng.gen_range(0..12) {
                    0 => Event::rating(&user, &item, rng.gen_range(1..=5) as f32, ts),
                    1 => Event::cart(&user, &item, ts),
                    2..=4 => Event::purchase(&user, &item, rng.gen_range(1..4), 3.5, ts),
                    5 => Event::impression(&user, "home", "built-in", vec![item.clone()], ts),
                    6 => Event::search(&user, "red mug", ts),
                    7 => Event::click(&user, &item, ts),
                    _ => Event::view(&user, &item, ts),
                };
                e.session(format!("s{}", n / 6))
            })
            .collect()
    }

    /// A batch large enough to apply item halves on a second thread leaves exactly the state
    /// that the same events leave when recorded in small batches, one event after another.
    #[test]
    fn a_parallel_batch_leaves_the_state_of_one_event_at_a_time() {
        let items = crate::demo::zipf_items(400, 300, 4..=6, 1);
        let evs = events(4 * crate::behaviour::PARALLEL_EVENTS);
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (
            Store::open(da.path()).unwrap(),
            Store::open(db.path()).unwrap(),
        );
        for s in [&a, &b] {
            s.upsert_items(&items).unwrap();
        }
        a.record_events(&evs).unwrap();
        for chunk in evs.chunks(7) {
            b.record_events(chunk).unwrap();
        }
        let (x, y) = (&a.snapshot().activity, &b.snapshot().activity);
        assert_eq!(x.totals, y.totals);
        assert!(
            x.totals.baskets > 0 && x.totals.sessions > 0,
            "{:?}",
            x.totals
        );
        assert_eq!(x.users, y.users);
        assert_eq!(x.items, y.items);
        assert_eq!(x.bought, y.bought);
        assert_eq!(x.viewed, y.viewed);
        assert_eq!(x.by_popularity, y.by_popularity);
    }
}
