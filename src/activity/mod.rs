//! What behaviour events leave behind: per-user derived tags and counters, per-item statistics,
//! and bounded co-occurrence lists ("bought together", "viewed together").
//!
//! * [`user`] — a user's derived tags (decayed lazily), recent/seen/purchased items, RFM
//!   counters and open sessions.
//! * [`item`] — an item's counters, conversion and time-decayed popularity.
//! * [`cooccur`] — a bounded top-N list of co-occurring items per item, with support,
//!   confidence and lift.
//! * [`ingest`] — applying a batch of events (or un-applying a deleted user's).
//! * [`log`] — the durable event log (per-user chunks) and the journal of event batches whose
//!   state is not yet checkpointed.
//! * [`checkpoint`] — writing the state to sled now and then (and its layout);
//!   [`background`] runs the periodic one on its own thread; [`reload`] loads it on open and
//!   upgrades older layouts.
//! * [`segments`] — RFM scores and lifecycle stages, computed on read.
//!
//! All of it is held in persistent maps (`imbl`: O(1) clone, O(log n) update) inside the
//! [`crate::snapshot::Snapshot`], so a reader sees one consistent state without a lock, exactly
//! like the record delta. sled is the source of truth; the maps are loaded from its last checkpoint on open, and the
//! journal's event batches are replayed on top.
//!
//! **Time.** Decay is relative to the store's clock, which is the newest event time recorded
//! (not the wall clock). A live shop's newest event is "now"; a replayed history from 2011
//! behaves as it did then. Queries can override it.

pub(crate) mod background;
pub(crate) mod checkpoint;
pub mod cooccur;
pub(crate) mod ingest;
pub(crate) mod ingest_items;
pub mod item;
pub(crate) mod log;
pub(crate) mod reload;
pub mod segments;
pub mod user;

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

pub use cooccur::{CoList, Pair};
pub use item::ItemStats;
pub use segments::{Lifecycle, Rfm};
pub use user::UserState;

/// Store-wide counters of the behaviour data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Purchase baskets seen (one per user session with a purchase).
    pub baskets: u64,
    /// Sessions with at least one interest event (view, click, cart, ...).
    pub sessions: u64,
    /// Events recorded.
    pub events: u64,
    /// The newest event time seen: the store's clock for decay.
    pub latest_ts: u64,
    /// Sequence number of the last event (makes event-log keys unique).
    pub event_seq: u64,
}

/// Which co-occurrence relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    /// Bought in the same basket (a purchase session).
    Bought,
    /// Interacted with in the same session.
    Viewed,
}

/// The behaviour state of a snapshot. Cloning is O(1).
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub(crate) users: imbl::HashMap<u32, Arc<UserState>>,
    pub(crate) items: imbl::HashMap<u32, Arc<ItemStats>>,
    pub(crate) bought: imbl::HashMap<u32, Arc<CoList>>,
    pub(crate) viewed: imbl::HashMap<u32, Arc<CoList>>,
    pub(crate) totals: Totals,
    /// Items by [`ItemStats::popularity_key`]: trending reads it from the top.
    pub(crate) by_popularity: imbl::OrdSet<(u64, u32)>,
    /// Users forgotten since the process started: a relation derived from histories is
    /// stale once this moves (not persisted; such relations are not either).
    pub(crate) forgotten: u64,
    /// RFM quintile bounds of this version, computed on first use.
    pub(crate) rfm: Arc<OnceLock<segments::RfmBounds>>,
}

impl Activity {
    /// Store-wide counters.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The store's clock: the newest event time recorded (0 before any event).
    pub fn now(&self) -> u64 {
        self.totals.latest_ts
    }

    /// A user's behaviour state, by dense id.
    pub fn user(&self, id: u32) -> Option<&UserState> {
        self.users.get(&id).map(|a| &**a)
    }

    /// An item's statistics, by dense id.
    pub fn item(&self, id: u32) -> Option<&ItemStats> {
        self.items.get(&id).map(|a| &**a)
    }

    /// The co-occurrence list of item `id`.
    pub fn list(&self, rel: Relation, id: u32) -> Option<&CoList> {
        match rel {
            Relation::Bought => self.bought.get(&id),
            Relation::Viewed => self.viewed.get(&id),
        }
        .map(|a| &**a)
    }

    /// Every user with behaviour, by dense id (unordered).
    pub fn users(&self) -> impl Iterator<Item = (u32, &UserState)> {
        self.users.iter().map(|(k, v)| (*k, &**v))
    }

    /// Item ids with popularity, most popular first (at any time: see
    /// [`ItemStats::popularity_key`]).
    pub fn most_popular(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_popularity.iter().rev().map(|&(_, id)| id)
    }

    /// Every item with statistics, by dense id (unordered).
    pub fn items(&self) -> impl Iterator<Item = (u32, &ItemStats)> {
        self.items.iter().map(|(k, v)| (*k, &**v))
    }

    /// Support, confidence, lift and cosine of item `b` given item `a` under `rel`, if `b` is in
    /// `a`'s list.
    pub fn pair(&self, rel: Relation, a: u32, b: u32) -> Option<Pair> {
        let count = self.list(rel, a)?.count(b)?;
        Some(self.pair_from_count(rel, a, b, count))
    }

    /// The pair measures for a known co-occurrence count.
    pub fn pair_from_count(&self, rel: Relation, a: u32, b: u32, count: u32) -> Pair {
        let (na, nb, total) = match rel {
            Relation::Bought => (
                self.item(a).map_or(0, |s| s.baskets),
                self.item(b).map_or(0, |s| s.baskets),
                self.totals.baskets,
            ),
            Relation::Viewed => (
                self.item(a).map_or(0, |s| s.sessions),
                self.item(b).map_or(0, |s| s.sessions),
                self.totals.sessions,
            ),
        };
        Pair::new(count, na, nb, total)
    }
}
