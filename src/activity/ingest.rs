//! Applying events to an [`Activity`] (the user half here, the item half in
//! [`super::ingest_items`]), and un-applying a deleted user's.

use std::sync::Arc;

use super::checkpoint::Touched;
use super::ingest_items::{ItemParts, ItemSide, Joined, Step, Steps};
use super::{Activity, Relation};
use crate::config::Config;
use crate::event::{StoredEvent, StoredKind};

/// One batch of changes to an [`Activity`]: a private copy plus what it touched, to persist.
pub(crate) struct Ingest<'c> {
    pub act: Activity,
    cfg: &'c Config,
    /// What this batch changed, for the next checkpoint.
    pub touched: Touched,
    /// Scratch steps for [`Ingest::apply`], which runs both halves per event.
    steps: Steps,
}

/// How much an event of this kind adds (negative for a bad rating).
pub(crate) fn weight(kind: &StoredKind, cfg: &Config) -> f32 {
    let w = &cfg.event_weights;
    match kind {
        StoredKind::View => w.view,
        StoredKind::Click => w.click,
        StoredKind::Favourite => w.favourite,
        StoredKind::Cart => w.cart,
        StoredKind::Purchase { qty, .. } => w.purchase * (1.0 + (*qty as f32).ln()),
        StoredKind::Rating(x) => (x - w.rating_neutral) * w.rating_per_star,
        StoredKind::Review => w.review,
        StoredKind::Search(_) | StoredKind::Impression { .. } => 0.0,
    }
}

fn session_key(session: Option<&str>) -> u64 {
    // 0 is the implicit session; an explicit id that hashes to 0 is moved off it.
    session.map_or(0, |s| xxhash_rust::xxh3::xxh3_64(s.as_bytes()).max(1))
}

impl<'c> Ingest<'c> {
    /// The configuration events are applied under.
    pub fn config(&self) -> &'c Config {
        self.cfg
    }

    pub fn new(base: &Activity, cfg: &'c Config) -> Ingest<'c> {
        let mut act = base.clone();
        act.rfm = Arc::default();
        Ingest {
            act,
            cfg,
            touched: Touched::default(),
            steps: Steps::default(),
        }
    }

    /// The item half of the state, borrowed in place.
    pub fn item_parts(&mut self) -> ItemParts<'_> {
        let (a, t) = (&mut self.act, &mut self.touched);
        ItemParts {
            items: &mut a.items,
            bought: &mut a.bought,
            viewed: &mut a.viewed,
            by_popularity: &mut a.by_popularity,
            touched_items: &mut t.items,
            touched_chunks: &mut t.chunks,
            sessions: &mut a.totals.sessions,
            baskets: &mut a.totals.baskets,
        }
    }

    /// Take the item half of the state out, to apply [`Steps`] to while the user half goes on
    /// (see [`super::ingest_items`]). [`Ingest::restore_items`] puts it back.
    pub fn take_items(&mut self) -> ItemSide {
        let t = &mut self.touched;
        ItemSide {
            items: std::mem::take(&mut self.act.items),
            bought: std::mem::take(&mut self.act.bought),
            viewed: std::mem::take(&mut self.act.viewed),
            by_popularity: std::mem::take(&mut self.act.by_popularity),
            touched_items: std::mem::take(&mut t.items),
            touched_chunks: std::mem::take(&mut t.chunks),
            sessions: self.act.totals.sessions,
            baskets: self.act.totals.baskets,
        }
    }

    /// Put back what [`Ingest::take_items`] took, with what was applied to it.
    pub fn restore_items(&mut self, side: ItemSide) {
        self.act.items = side.items;
        self.act.bought = side.bought;
        self.act.viewed = side.viewed;
        self.act.by_popularity = side.by_popularity;
        self.touched.items = side.touched_items;
        self.touched.chunks = side.touched_chunks;
        self.act.totals.sessions = side.sessions;
        self.act.totals.baskets = side.baskets;
    }

    /// Apply one event of `user` at `ts`, both halves. `tags` are the item's tags as passed
    /// to the user (unit L2 norm, category and price band included), empty when there is no
    /// item.
    pub fn apply(&mut self, user: u32, ts: u64, ev: &StoredEvent, tags: &[(u32, f32)]) {
        let mut steps = std::mem::take(&mut self.steps);
        steps.clear();
        self.apply_user(user, ts, ev, tags, &mut steps);
        let cfg = self.cfg;
        self.item_parts().apply(cfg, &steps);
        self.steps = steps;
    }

    /// The user half of [`Ingest::apply`]: update `user`'s state, and push what the item half
    /// needs onto `steps` (nothing for an event that touches no item). An interest event joins
    /// the user's open session for its session id (or the implicit, time-gap one): a purchase
    /// its basket, any other interest event its viewed-together session; the first such event
    /// of a session takes the next basket (or session) id.
    pub fn apply_user(
        &mut self,
        user: u32,
        ts: u64,
        ev: &StoredEvent,
        tags: &[(u32, f32)],
        steps: &mut Steps,
    ) {
        let cfg = self.cfg;
        let w = weight(&ev.kind, cfg);
        let t = &mut self.act.totals;
        t.events += 1;
        t.latest_ts = t.latest_ts.max(ts);
        self.touched.users.insert(user);
        let interest = ev.kind.is_interest().then_some(ev.item).flatten();
        let key = session_key(ev.session.as_deref());
        // Copy-on-write: the first event of a user in a batch copies their state out of the
        // published snapshot; later ones in the batch update it in place.
        let u = Arc::make_mut(self.act.users.entry(user).or_default());
        u.touch(interest, ts, cfg.max_recent_items, cfg.max_seen_items);
        let Some(item) = interest else {
            if let StoredKind::Impression { items, .. } = &ev.kind {
                if cfg.exposure_memory > 0 && !items.is_empty() {
                    Arc::make_mut(self.act.exposures.entry(user).or_default()).record(
                        items,
                        ts,
                        cfg.exposure_memory,
                    );
                    self.touched.exposures.insert(user);
                }
                steps.push(Step {
                    item: 0,
                    user,
                    ts,
                    w,
                    kind: ev.kind.clone(),
                    basket: None,
                });
            }
            return;
        };
        u.add_tags(tags, w, ts, cfg.user_half_life_secs(), cfg.max_derived_tags);
        let purchase = ev.kind.is_purchase();
        let session = u.session(key, ts, cfg.session_gap_secs);
        let t = &mut self.act.totals;
        let (rel, slot, ids) = if purchase {
            (Relation::Bought, &mut session.basket, &mut t.bought_ids)
        } else {
            (Relation::Viewed, &mut session.viewed, &mut t.viewed_ids)
        };
        let (new, id) = match *slot {
            Some(id) => (false, id),
            None => {
                let id = *ids;
                *ids += 1;
                *slot = Some(id);
                (true, id)
            }
        };
        if let StoredKind::Purchase { qty, price } = ev.kind {
            u.last_order = u.last_order.max(ts);
            u.spend += f64::from(qty) * f64::from(price);
            super::user::insert_sorted(&mut u.purchased, item, cfg.max_seen_items);
            if new {
                u.orders += 1;
                u.last_basket = Some(id);
            }
        }
        steps.push(Step {
            item,
            user,
            ts,
            w,
            kind: ev.kind.clone(),
            basket: Some(Joined { rel, new, id }),
        });
    }

    /// Remove user `user`, whose log held `events` events, and take their baskets and
    /// sessions out of the indexes: exactly the lines they added, and one basket (or session)
    /// each from the counts of their items and the totals. Item counters (views, sales,
    /// popularity) are shop figures, not personal data, and stay.
    pub fn forget_user(&mut self, user: u32, events: usize) -> crate::forget::Taken {
        let mut taken = crate::forget::Taken::default();
        if let Some(state) = self.act.user(user) {
            taken.derived_tags = state.derived.len() as u64;
        }
        if let Some(shown) = self.act.exposures.get(&user) {
            taken.shows = shown.len() as u64;
        }
        let mut side = self.item_parts();
        for rel in [Relation::Bought, Relation::Viewed] {
            let (removed, chunks) = side.index(rel).forget(user);
            side.touched_chunks
                .extend(chunks.into_iter().map(|n| (rel, n)));
            for items in removed.iter().filter(|b| !b.is_empty()) {
                match rel {
                    Relation::Bought => taken.baskets += 1,
                    Relation::Viewed => taken.sessions += 1,
                }
                taken.lines += items.len() as u64;
                let total = match rel {
                    Relation::Bought => &mut *side.baskets,
                    Relation::Viewed => &mut *side.sessions,
                };
                *total = total.saturating_sub(1);
                for &item in items {
                    let s = side.stats(item);
                    let n = match rel {
                        Relation::Bought => &mut s.baskets,
                        Relation::Viewed => &mut s.sessions,
                    };
                    *n = n.saturating_sub(1);
                }
            }
        }
        let t = &mut self.act.totals;
        t.events = t.events.saturating_sub(events as u64);
        self.act.users.remove(&user);
        self.act.exposures.remove(&user);
        self.act.forgotten += 1;
        self.touched.users.insert(user);
        self.touched.exposures.insert(user);
        taken
    }

    /// Copy the basket and session counts of the items this batch touched into the dense
    /// array ([`super::holdings`]); the write path calls it before publishing the batch.
    pub fn sync_holdings(&mut self) {
        let act = &mut self.act;
        act.held.sync(self.touched.items.iter(), &act.items);
    }

    /// Whether anything was touched.
    pub fn changed(&self) -> bool {
        !self.touched.is_empty()
    }
}
