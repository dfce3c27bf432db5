//! Applying events to an [`Activity`], and un-applying a deleted user's.

use std::sync::Arc;

use super::checkpoint::Touched;
use super::{Activity, CoList, ItemStats, Relation, UserState};
use crate::config::Config;
use crate::event::{StoredEvent, StoredKind};

/// One batch of changes to an [`Activity`]: a private copy plus what it touched, to persist.
pub(crate) struct Ingest<'c> {
    pub act: Activity,
    cfg: &'c Config,
    /// What this batch changed, for the next checkpoint.
    pub touched: Touched,
    /// Scratch for the session partners of the event being applied (one per relation), so
    /// applying an event allocates nothing once these have grown to the session window.
    viewed_with: Vec<u32>,
    bought_with: Vec<u32>,
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
            viewed_with: Vec::new(),
            bought_with: Vec::new(),
        }
    }

    fn stats(&mut self, item: u32) -> &mut ItemStats {
        self.touched.items.insert(item);
        Arc::make_mut(self.act.items.entry(item).or_default())
    }

    /// Pair `item` with every item already in `partners`, in both directions.
    fn pair(&mut self, rel: Relation, item: u32, partners: &[u32], add: bool) {
        if partners.is_empty() {
            return;
        }
        let cap = self.cfg.cooccurrence_per_item.max(1);
        let (lists, touched) = match rel {
            Relation::Bought => (&mut self.act.bought, &mut self.touched.bought),
            Relation::Viewed => (&mut self.act.viewed, &mut self.touched.viewed),
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

    /// Apply one event of `user` at `ts`. `tags` are the item's tags as passed to the user
    /// (unit L2 norm, category and price band included), empty when there is no item.
    pub fn apply(&mut self, user: u32, ts: u64, ev: &StoredEvent, tags: &[(u32, f32)]) {
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
        let mut viewed = None;
        let mut bought = None;
        if let Some(item) = interest {
            u.add_tags(tags, w, ts, cfg.user_half_life_secs(), cfg.max_derived_tags);
            let with = &mut self.viewed_with;
            viewed = Self::join_session(u, Relation::Viewed, key, ts, item, cfg, with);
            if let StoredKind::Purchase { qty, price } = ev.kind {
                u.last_order = u.last_order.max(ts);
                u.spend += f64::from(qty) * f64::from(price);
                super::user::insert_sorted(&mut u.purchased, item, cfg.max_seen_items);
                let with = &mut self.bought_with;
                bought = Self::join_session(u, Relation::Bought, key, ts, item, cfg, with);
                if let Some(new_basket) = bought {
                    if new_basket {
                        u.orders += 1;
                        u.last_basket.clear();
                    }
                    if u.last_basket.len() < cfg.session_window.max(1) {
                        u.last_basket.push(item);
                    }
                }
            }
        }
        let Some(item) = interest else {
            if let StoredKind::Impression { items, .. } = &ev.kind {
                for &i in items {
                    self.stats(i).impressions += 1;
                }
            }
            return;
        };
        let half_life = cfg.popularity_half_life_secs();
        let s = self.stats(item);
        match ev.kind {
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
        s.sessions += u32::from(viewed.is_some());
        s.baskets += u32::from(bought.is_some());
        let before = s.popularity_key(half_life);
        s.add_popularity(w.max(0.0), ts, half_life);
        let after = s.popularity_key(half_life);
        if before != after {
            if let Some(k) = before {
                self.act.by_popularity.remove(&(k, item));
            }
            if let Some(k) = after {
                self.act.by_popularity.insert((k, item));
            }
        }
        let t = &mut self.act.totals;
        t.sessions += u64::from(viewed == Some(true));
        t.baskets += u64::from(bought == Some(true));
        // The scratch lists go out and back so `pair` can borrow the whole state.
        if viewed.is_some() {
            let with = std::mem::take(&mut self.viewed_with);
            self.pair(Relation::Viewed, item, &with, true);
            self.viewed_with = with;
        }
        if bought.is_some() {
            let with = std::mem::take(&mut self.bought_with);
            self.pair(Relation::Bought, item, &with, true);
            self.bought_with = with;
        }
    }

    /// Remove user `user` and take back what their events added to co-occurrence: `events`
    /// is their log in time order. The replay runs the same session logic as [`Ingest::apply`]
    /// on a scratch state, so exactly the pairs they contributed are subtracted. Item counters
    /// (views, sales, popularity) are shop figures, not personal data, and stay.
    pub fn forget_user(&mut self, user: u32, events: &[(u64, StoredEvent)]) {
        let cfg = self.cfg;
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
                let s = self.stats(item);
                s.sessions = s.sessions.saturating_sub(1);
                if new_session {
                    let t = &mut self.act.totals;
                    t.sessions = t.sessions.saturating_sub(1);
                }
                self.pair(Relation::Viewed, item, &with, false);
            }
            if ev.kind.is_purchase() {
                if let Some(new_basket) =
                    Self::join_session(session, Relation::Bought, key, *ts, item, cfg, &mut with)
                {
                    let s = self.stats(item);
                    s.baskets = s.baskets.saturating_sub(1);
                    if new_basket {
                        let t = &mut self.act.totals;
                        t.baskets = t.baskets.saturating_sub(1);
                    }
                    self.pair(Relation::Bought, item, &with, false);
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
