//! Applying events to an [`Activity`] (the user half here, the item half in
//! [`super::ingest_items`]), and un-applying a deleted user's.

use std::sync::Arc;

use super::checkpoint::Touched;
use super::ingest_items::{ItemParts, ItemSide, Step, Steps};
use super::{Activity, Relation, UserState};
use crate::config::Config;
use crate::event::{StoredEvent, StoredKind};

/// One batch of changes to an [`Activity`]: a private copy plus what it touched, to persist.
pub(crate) struct Ingest<'c> {
    pub act: Activity,
    cfg: &'c Config,
    /// What this batch changed, for the next checkpoint.
    pub touched: Touched,
    /// Scratch for the session partners of the event being applied, so applying an event
    /// allocates nothing once it has grown to the session window.
    with: Vec<u32>,
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
    pub fn new(base: &Activity, cfg: &'c Config) -> Ingest<'c> {
        let mut act = base.clone();
        act.rfm = Arc::default();
        Ingest {
            act,
            cfg,
            touched: Touched::default(),
            with: Vec::new(),
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
        self.act.totals.sessions = side.sessions;
        self.act.totals.baskets = side.baskets;
    }

    /// Put `item` into the session list of relation `rel` of user state `u`, leaving the
    /// partners to pair it with in `partners`; returns whether the list was empty before (a
    /// new basket/session). `None` when the item is already in the session (counted once per
    /// session).
    fn join_session(
        u: &mut UserState,
        rel: Relation,
        key: u64,
        ts: u64,
        item: u32,
        cfg: &Config,
        partners: &mut Vec<u32>,
    ) -> Option<bool> {
        let s = u.session(key, ts, cfg.session_gap_secs);
        let list = match rel {
            Relation::Bought => &mut s.bought,
            Relation::Viewed => &mut s.viewed,
        };
        if list.contains(&item) {
            return None;
        }
        partners.clear();
        partners.extend_from_slice(list);
        list.push(item);
        let window = cfg.session_window.max(1);
        if list.len() > window {
            list.drain(..list.len() - window);
        }
        Some(partners.is_empty())
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
    /// needs onto `steps` (nothing for an event that touches no item).
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
            if let StoredKind::Impression { .. } = &ev.kind {
                steps.steps.push(Step {
                    item: 0,
                    ts,
                    w,
                    kind: ev.kind.clone(),
                    viewed: None,
                    bought: None,
                });
            }
            return;
        };
        u.add_tags(tags, w, ts, cfg.user_half_life_secs(), cfg.max_derived_tags);
        let with = &mut self.with;
        let viewed = Self::join_session(u, Relation::Viewed, key, ts, item, cfg, with)
            .map(|new| (new, steps.push_partners(with)));
        let mut bought = None;
        if let StoredKind::Purchase { qty, price } = ev.kind {
            u.last_order = u.last_order.max(ts);
            u.spend += f64::from(qty) * f64::from(price);
            super::user::insert_sorted(&mut u.purchased, item, cfg.max_seen_items);
            bought = Self::join_session(u, Relation::Bought, key, ts, item, cfg, with)
                .map(|new| (new, steps.push_partners(with)));
            if let Some((new_basket, _)) = bought {
                if new_basket {
                    u.orders += 1;
                    u.last_basket.clear();
                }
                if u.last_basket.len() < cfg.session_window.max(1) {
                    u.last_basket.push(item);
                }
            }
        }
        steps.steps.push(Step {
            item,
            ts,
            w,
            kind: ev.kind.clone(),
            viewed,
            bought,
        });
    }

    /// Remove user `user` and take back what their events added to co-occurrence: `events`
    /// is their log in time order. The replay runs the same session logic as [`Ingest::apply`]
    /// on a scratch state, so exactly the pairs they contributed are subtracted. Item counters
    /// (views, sales, popularity) are shop figures, not personal data, and stay.
    pub fn forget_user(&mut self, user: u32, events: &[(u64, StoredEvent)]) {
        let cfg = self.cfg;
        let mut side = self.item_parts();
        let mut scratch = UserState::default();
        let mut with = Vec::new();
        for (ts, ev) in events {
            let Some(item) = ev.kind.is_interest().then_some(ev.item).flatten() else {
                continue;
            };
            let key = session_key(ev.session.as_deref());
            let session = &mut scratch;
            if let Some(new_session) =
                Self::join_session(session, Relation::Viewed, key, *ts, item, cfg, &mut with)
            {
                let s = side.stats(item);
                s.sessions = s.sessions.saturating_sub(1);
                if new_session {
                    *side.sessions = side.sessions.saturating_sub(1);
                }
                side.pair(cfg, Relation::Viewed, item, &with, false);
            }
            if ev.kind.is_purchase() {
                if let Some(new_basket) =
                    Self::join_session(session, Relation::Bought, key, *ts, item, cfg, &mut with)
                {
                    let s = side.stats(item);
                    s.baskets = s.baskets.saturating_sub(1);
                    if new_basket {
                        *side.baskets = side.baskets.saturating_sub(1);
                    }
                    side.pair(cfg, Relation::Bought, item, &with, false);
                }
            }
        }
        let t = &mut self.act.totals;
        t.events = t.events.saturating_sub(events.len() as u64);
        self.act.users.remove(&user);
        self.act.forgotten += 1;
        self.touched.users.insert(user);
    }

    /// Whether anything was touched.
    pub fn changed(&self) -> bool {
        !self.touched.is_empty()
    }
}
