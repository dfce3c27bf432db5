//! Applying events to an [`Activity`], un-applying a deleted user, and the sled keys the
//! state lives under.
//!
//! | key                                   | value                              |
//! |---------------------------------------|------------------------------------|
//! | `E` user (u32 BE) ts (u64 BE) seq (u64 BE) | `VERSION ++ bincode(StoredEvent)` |
//! | `A` user (u32 BE)                     | `VERSION ++ bincode(UserState)`    |
//! | `S` item (u32 BE)                     | `VERSION ++ bincode(ItemStats)`    |
//! | `CB` / `CV` item (u32 BE)             | `VERSION ++ bincode(CoList)`       |
//! | `Mactivity`                           | `VERSION ++ bincode(Totals)`       |
//!
//! Each event batch writes its log entries and the touched state in the same sled batch as
//! everything else, so after a crash the log and the state agree.

use std::collections::HashSet;
use std::sync::Arc;

use sled::Batch;

use super::{Activity, CoList, ItemStats, Relation, UserState};
use crate::codec;
use crate::config::Config;
use crate::error::Result;
use crate::event::{StoredEvent, StoredKind};

/// Meta key of the [`super::Totals`].
pub(crate) const META_ACTIVITY: &[u8] = b"Mactivity";

pub(crate) fn event_key(user: u32, ts: u64, seq: u64) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[0] = b'E';
    k[1..5].copy_from_slice(&user.to_be_bytes());
    k[5..13].copy_from_slice(&ts.to_be_bytes());
    k[13..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The event-log prefix of one user.
pub(crate) fn user_events_prefix(user: u32) -> [u8; 5] {
    let mut k = [b'E', 0, 0, 0, 0];
    k[1..].copy_from_slice(&user.to_be_bytes());
    k
}

/// `(user, ts)` of an event-log key.
pub(crate) fn parse_event_key(k: &[u8]) -> Result<(u32, u64)> {
    if k.len() != 21 {
        return Err(codec::corrupt(k, "event key is not 21 bytes"));
    }
    let user = codec::decode_u32(k, k.get(1..5))?;
    let ts = codec::decode_u64(k, &k[5..13])?;
    Ok((user, ts))
}

fn id_key(prefix: u8, id: u32) -> [u8; 5] {
    let mut k = [prefix, 0, 0, 0, 0];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn list_key(rel: Relation, id: u32) -> [u8; 6] {
    let mut k = [b'C', rel_byte(rel), 0, 0, 0, 0];
    k[2..].copy_from_slice(&id.to_be_bytes());
    k
}

fn rel_byte(rel: Relation) -> u8 {
    match rel {
        Relation::Bought => b'B',
        Relation::Viewed => b'V',
    }
}

/// Load the activity state from sled (on open).
pub(crate) fn load(tree: &sled::Tree, cfg: &Config) -> Result<Activity> {
    let mut act = Activity::default();
    if let Some(v) = tree.get(META_ACTIVITY)? {
        act.totals = codec::decode(META_ACTIVITY, &v)?;
    }
    for kv in tree.scan_prefix(b"A") {
        let (k, v) = kv?;
        let state: UserState = codec::decode(&k, &v)?;
        act.users.insert(codec::record_key_id(&k)?, Arc::new(state));
    }
    for kv in tree.scan_prefix(b"S") {
        let (k, v) = kv?;
        let stats: ItemStats = codec::decode(&k, &v)?;
        let id = codec::record_key_id(&k)?;
        if let Some(key) = stats.popularity_key(cfg.popularity_half_life_secs()) {
            act.by_popularity.insert((key, id));
        }
        act.items.insert(id, Arc::new(stats));
    }
    for kv in tree.scan_prefix(b"C") {
        let (k, v) = kv?;
        let list: CoList = codec::decode(&k, &v)?;
        let id = codec::decode_u32(&k, k.get(2..))?;
        match k.get(1) {
            Some(b'B') => act.bought.insert(id, Arc::new(list)),
            Some(b'V') => act.viewed.insert(id, Arc::new(list)),
            _ => return Err(codec::corrupt(&k, "unknown co-occurrence relation")),
        };
    }
    Ok(act)
}

/// One batch of changes to an [`Activity`]: a private copy plus what it touched, to persist.
pub(crate) struct Ingest<'c> {
    pub act: Activity,
    cfg: &'c Config,
    users: HashSet<u32>,
    items: HashSet<u32>,
    bought: HashSet<u32>,
    viewed: HashSet<u32>,
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
            users: HashSet::new(),
            items: HashSet::new(),
            bought: HashSet::new(),
            viewed: HashSet::new(),
        }
    }

    fn stats(&mut self, item: u32) -> &mut ItemStats {
        self.items.insert(item);
        Arc::make_mut(self.act.items.entry(item).or_default())
    }

    /// Pair `item` with every item already in `partners`, in both directions.
    fn pair(&mut self, rel: Relation, item: u32, partners: &[u32], add: bool) {
        let cap = self.cfg.cooccurrence_per_item.max(1);
        let (lists, touched) = match rel {
            Relation::Bought => (&mut self.act.bought, &mut self.bought),
            Relation::Viewed => (&mut self.act.viewed, &mut self.viewed),
        };
        for &other in partners {
            for (a, b) in [(item, other), (other, item)] {
                touched.insert(a);
                if add {
                    Arc::make_mut(lists.entry(a).or_default()).add(b, cap);
                } else if let Some(l) = lists.get_mut(&a) {
                    let l = Arc::make_mut(l);
                    l.remove(b);
                    if l.entries.is_empty() {
                        lists.remove(&a);
                    }
                }
            }
        }
    }

    /// Put `item` into the session list of relation `rel` of user state `u`; returns the
    /// partners to pair it with and whether the list was empty before (a new basket/session).
    /// `None` when the item is already in the session (counted once per session).
    fn join_session(
        u: &mut UserState,
        rel: Relation,
        key: u64,
        ts: u64,
        item: u32,
        cfg: &Config,
    ) -> Option<(Vec<u32>, bool)> {
        let s = u.session(key, ts, cfg.session_gap_secs);
        let list = match rel {
            Relation::Bought => &mut s.bought,
            Relation::Viewed => &mut s.viewed,
        };
        if list.contains(&item) {
            return None;
        }
        let partners = list.clone();
        list.push(item);
        let window = cfg.session_window.max(1);
        if list.len() > window {
            list.drain(..list.len() - window);
        }
        let first = partners.is_empty();
        Some((partners, first))
    }

    /// Apply one event of `user` at `ts`. `tags` are the item's tags as passed to the user
    /// (unit L2 norm, category and price band included), empty when there is no item.
    pub fn apply(&mut self, user: u32, ts: u64, ev: &StoredEvent, tags: &[(u32, f32)]) {
        let cfg = self.cfg;
        let w = weight(&ev.kind, cfg);
        let t = &mut self.act.totals;
        t.events += 1;
        t.latest_ts = t.latest_ts.max(ts);
        self.users.insert(user);
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
            viewed = Self::join_session(u, Relation::Viewed, key, ts, item, cfg);
            if let StoredKind::Purchase { qty, price } = ev.kind {
                u.last_order = u.last_order.max(ts);
                u.spend += f64::from(qty) * f64::from(price);
                super::user::insert_sorted(&mut u.purchased, item, cfg.max_seen_items);
                bought = Self::join_session(u, Relation::Bought, key, ts, item, cfg);
                if let Some((_, new_basket)) = &bought {
                    if *new_basket {
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
        if let Some((partners, new_session)) = viewed {
            self.stats(item).sessions += 1;
            if new_session {
                self.act.totals.sessions += 1;
            }
            self.pair(Relation::Viewed, item, &partners, true);
        }
        if let Some((partners, new_basket)) = bought {
            self.stats(item).baskets += 1;
            if new_basket {
                self.act.totals.baskets += 1;
            }
            self.pair(Relation::Bought, item, &partners, true);
        }
    }

    /// Remove user `user` and take back what their events added to co-occurrence: `events`
    /// is their log in time order. The replay runs the same session logic as [`Ingest::apply`]
    /// on a scratch state, so exactly the pairs they contributed are subtracted. Item counters
    /// (views, sales, popularity) are shop figures, not personal data, and stay.
    pub fn forget_user(&mut self, user: u32, events: &[(u64, StoredEvent)]) {
        let cfg = self.cfg;
        let mut scratch = UserState::default();
        for (ts, ev) in events {
            let Some(item) = ev.kind.is_interest().then_some(ev.item).flatten() else {
                continue;
            };
            let key = session_key(ev.session.as_deref());
            if let Some((partners, new_session)) =
                Self::join_session(&mut scratch, Relation::Viewed, key, *ts, item, cfg)
            {
                let s = self.stats(item);
                s.sessions = s.sessions.saturating_sub(1);
                if new_session {
                    let t = &mut self.act.totals;
                    t.sessions = t.sessions.saturating_sub(1);
                }
                self.pair(Relation::Viewed, item, &partners, false);
            }
            if ev.kind.is_purchase() {
                if let Some((partners, new_basket)) =
                    Self::join_session(&mut scratch, Relation::Bought, key, *ts, item, cfg)
                {
                    let s = self.stats(item);
                    s.baskets = s.baskets.saturating_sub(1);
                    if new_basket {
                        let t = &mut self.act.totals;
                        t.baskets = t.baskets.saturating_sub(1);
                    }
                    self.pair(Relation::Bought, item, &partners, false);
                }
            }
        }
        let t = &mut self.act.totals;
        t.events = t.events.saturating_sub(events.len() as u64);
        self.act.users.remove(&user);
        self.users.insert(user);
    }

    /// Whether anything was touched.
    pub fn changed(&self) -> bool {
        !(self.users.is_empty() && self.items.is_empty())
    }

    /// Write every touched value (or its removal) and the totals into `batch`.
    pub fn persist(&self, batch: &mut Batch) {
        for &u in &self.users {
            let k = id_key(b'A', u);
            match self.act.users.get(&u) {
                Some(s) => batch.insert(&k, codec::encode(&**s)),
                None => batch.remove(&k),
            }
        }
        for &i in &self.items {
            if let Some(s) = self.act.items.get(&i) {
                batch.insert(&id_key(b'S', i), codec::encode(&**s));
            }
        }
        for (rel, set, lists) in [
            (Relation::Bought, &self.bought, &self.act.bought),
            (Relation::Viewed, &self.viewed, &self.act.viewed),
        ] {
            for &i in set {
                let k = list_key(rel, i);
                match lists.get(&i) {
                    Some(l) => batch.insert(&k, codec::encode(&**l)),
                    None => batch.remove(&k),
                }
            }
        }
        batch.insert(META_ACTIVITY, codec::encode(&self.act.totals));
    }
}
