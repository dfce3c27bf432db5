//! The item half of applying events: item counters, the popularity index and the basket
//! indexes.
//!
//! Applying an event has two halves that share nothing. The user half (the user's state:
//! recent items, decayed tags, open sessions) decides which basket or session an item joins;
//! the item half counts the event on the item and puts it in that basket. [`Ingest`] runs the
//! user half and hands its findings over as [`Steps`]; [`ItemSide`] applies them, in the same
//! order ([`ItemParts::apply`]). Because the halves touch disjoint state, a large batch can
//! run the item half on a second thread while the writer's thread resolves names and runs the
//! user half (see `Pending::record_all`), and the result is the same as applying each event in
//! turn.
//!
//! [`Ingest`]: super::ingest::Ingest

use std::collections::HashSet;
use std::sync::Arc;

use super::baskets::{Added, Baskets};
use super::{ItemStats, Relation};
use crate::config::Config;
use crate::event::StoredKind;

/// The basket (or viewed-together session) an event joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Joined {
    /// Which index: a purchase joins a basket, any other interest event a session.
    pub rel: Relation,
    /// Whether the event opened it.
    pub new: bool,
    /// Its id in that index.
    pub id: u64,
}

/// What the user half of one event found, for the item half.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The item the event is about. For an impression, unused (`kind` lists the items).
    pub item: u32,
    /// The user, who owns the basket.
    pub user: u32,
    pub ts: u64,
    /// The event's weight ([`super::ingest::weight`]).
    pub w: f32,
    pub kind: StoredKind,
    /// The basket or session it joined, for an interest event.
    pub basket: Option<Joined>,
}

/// A run of [`Step`]s, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    pub steps: Vec<Step>,
}

impl Steps {
    /// Steps held.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Drop every step, keeping the allocation.
    pub fn clear(&mut self) {
        self.steps.clear();
    }

    /// Append one.
    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }
}

/// The item half of a batch's private copy of the behaviour state, taken out of it while a
/// large batch runs ([`super::ingest::Ingest::take_items`]) so another thread can own it.
#[derive(Debug, Default)]
pub(crate) struct ItemSide {
    pub items: imbl::HashMap<u32, Arc<ItemStats>>,
    pub bought: Baskets,
    pub viewed: Baskets,
    pub by_popularity: imbl::OrdSet<(u64, u32)>,
    /// Items whose statistics changed.
    pub touched_items: HashSet<u32>,
    /// Basket-index chunks that changed (or were dropped).
    pub touched_chunks: HashSet<(Relation, u64)>,
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
            touched_chunks: &mut self.touched_chunks,
            sessions: &mut self.sessions,
            baskets: &mut self.baskets,
        }
    }
}

/// The item half of the behaviour state, borrowed: from an [`ItemSide`] or straight from a
/// batch's state (`Ingest::item_parts`), so applying one event moves nothing.
pub(crate) struct ItemParts<'a> {
    pub items: &'a mut imbl::HashMap<u32, Arc<ItemStats>>,
    pub bought: &'a mut Baskets,
    pub viewed: &'a mut Baskets,
    pub by_popularity: &'a mut imbl::OrdSet<(u64, u32)>,
    pub touched_items: &'a mut HashSet<u32>,
    pub touched_chunks: &'a mut HashSet<(Relation, u64)>,
    pub sessions: &'a mut u64,
    pub baskets: &'a mut u64,
}

impl ItemParts<'_> {
    /// The counters of `item`, copied out of the published snapshot on first touch.
    pub fn stats(&mut self, item: u32) -> &mut ItemStats {
        self.touched_items.insert(item);
        Arc::make_mut(self.items.entry(item).or_default())
    }

    /// The basket index of `rel`.
    pub fn index(&mut self, rel: Relation) -> &mut Baskets {
        match rel {
            Relation::Bought => self.bought,
            Relation::Viewed => self.viewed,
        }
    }

    /// Put `item` into the basket `j` names; returns whether that adds to the item's count of
    /// baskets (a new line, or one in a basket the index no longer keeps, which the count
    /// still includes so the item's figures are reported as bounds).
    fn join(&mut self, j: Joined, user: u32, item: u32) -> bool {
        let total = match j.rel {
            Relation::Bought => &mut *self.baskets,
            Relation::Viewed => &mut *self.sessions,
        };
        *total += u64::from(j.new);
        match self.index(j.rel).add(j.id, user, item) {
            Added::New(chunk) => {
                self.touched_chunks.insert((j.rel, chunk));
                true
            }
            Added::Duplicate => false,
            Added::Dropped => true,
        }
    }

    /// Apply `steps` in order, then drop the oldest baskets of an index that holds more than
    /// `Config::cooccurrence_lines` lines.
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
            let joined = step.basket.map(|j| (j.rel, self.join(j, step.user, item)));
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
            match joined {
                Some((Relation::Bought, true)) => s.baskets += 1,
                Some((Relation::Viewed, true)) => s.sessions += 1,
                _ => {}
            }
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
        }
        for rel in [Relation::Bought, Relation::Viewed] {
            let dropped = self.index(rel).trim(cfg.cooccurrence_lines);
            self.touched_chunks
                .extend(dropped.into_iter().map(|n| (rel, n)));
        }
    }
}

// The generated catalogue is the demo's (the `cli` feature).
#[cfg(all(test, feature = "cli"))]
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
        assert!(x.bought.lines() > 0 && x.viewed.lines() > 0);
        assert_eq!(x.by_popularity, y.by_popularity);
    }
}
