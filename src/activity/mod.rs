//! What behaviour events leave behind: per-user derived tags and counters, per-item statistics,
//! and the basket indexes that "bought together" and "viewed together" are counted from.
//!
//! * [`user`] — a user's derived tags (decayed lazily), recent/seen/purchased items, RFM
//!   counters and open sessions.
//! * [`item`] — an item's counters, conversion and time-decayed popularity.
//! * [`baskets`] — per relation, the items of every basket (or session) and the baskets of
//!   every item.
//! * `holdings` — each item's basket and session counts in a dense copy-on-write array, for
//!   the partner side of every pair measure.
//! * [`exposure`] — what each user was shown and when (impressions), bounded and decayed.
//! * [`cooccur`] — exact support, confidence and lift of a pair from those indexes, and the
//!   association measure scenarios rank by.
//! * `ingest` — applying a batch of events (or un-applying a deleted user's).
//! * `log` — the durable event log (per-user chunks) and the journal of event batches whose
//!   state is not yet checkpointed.
//! * `checkpoint` — writing the state to sled now and then (and its layout);
//!   `background` runs the periodic one on its own thread; `reload` loads it on open and
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
pub mod baskets;
pub(crate) mod checkpoint;
pub mod cooccur;
pub mod exposure;
pub(crate) mod holdings;
pub(crate) mod ingest;
pub(crate) mod ingest_items;
pub mod item;
pub(crate) mod log;
pub(crate) mod reload;
pub mod segments;
pub mod user;

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

pub use baskets::Baskets;
pub use cooccur::Pair;
pub use exposure::Exposure;
pub use item::ItemStats;
pub use segments::{Lifecycle, Rfm};
pub use user::UserState;

/// Store-wide counters of the behaviour data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Purchase baskets (one per user session with a purchase); a forgotten user's are
    /// subtracted.
    pub baskets: u64,
    /// Sessions with at least one interest event other than a purchase (view, click, cart,
    /// favourite, rating, review); a forgotten user's are subtracted.
    pub sessions: u64,
    /// Events recorded.
    pub events: u64,
    /// The newest event time seen: the store's clock for decay.
    pub latest_ts: u64,
    /// Sequence number of the last event (makes event-log keys unique).
    pub event_seq: u64,
    /// Purchase basket ids handed out (the next basket's id).
    pub bought_ids: u64,
    /// Viewed-together session ids handed out.
    pub viewed_ids: u64,
}

/// Which co-occurrence relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    /// Bought in the same basket (the purchases of one user session).
    Bought,
    /// Shown interest in (viewed, clicked, carted, saved, rated, reviewed) in the same
    /// session. A purchase alone is not a view: only recorded interest events count.
    Viewed,
}

/// The behaviour state of a snapshot. Cloning is O(1).
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub(crate) users: imbl::HashMap<u32, Arc<UserState>>,
    /// What each user was shown (see [`exposure`]); users never shown anything are absent.
    pub(crate) exposures: imbl::HashMap<u32, Arc<Exposure>>,
    pub(crate) items: imbl::HashMap<u32, Arc<ItemStats>>,
    pub(crate) bought: Baskets,
    pub(crate) viewed: Baskets,
    pub(crate) totals: Totals,
    /// Items by [`ItemStats::popularity_key`]: trending reads it from the top.
    pub(crate) by_popularity: imbl::OrdSet<(u64, u32)>,
    /// Users forgotten since the process started: a relation derived from histories is
    /// stale once this moves (not persisted; such relations are not either).
    pub(crate) forgotten: u64,
    /// RFM quintile bounds of this version, computed on first use.
    pub(crate) rfm: Arc<OnceLock<segments::RfmBounds>>,
    /// `items`' basket and session counts by id, for [`Activity::holding`] (see
    /// [`holdings`]); kept in step by the write path and built on open.
    pub(crate) held: holdings::Holdings,
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

    /// What user `id` (dense) was shown, if anything.
    pub fn exposure(&self, id: u32) -> Option<&Exposure> {
        self.exposures.get(&id).map(|a| &**a)
    }

    /// A user's behaviour state, by dense id.
    pub fn user(&self, id: u32) -> Option<&UserState> {
        self.users.get(&id).map(|a| &**a)
    }

    /// An item's statistics, by dense id.
    pub fn item(&self, id: u32) -> Option<&ItemStats> {
        self.items.get(&id).map(|a| &**a)
    }

    /// The basket index of `rel`.
    pub fn baskets(&self, rel: Relation) -> &Baskets {
        match rel {
            Relation::Bought => &self.bought,
            Relation::Viewed => &self.viewed,
        }
    }

    /// Baskets (or sessions) ever holding `item` under `rel`, as item statistics count them
    /// (those the index dropped included, a forgotten user's not).
    pub fn holding(&self, rel: Relation, item: u32) -> u32 {
        let at = match rel {
            Relation::Bought => 0,
            Relation::Viewed => 1,
        };
        if let Some(counts) = self.held.get(item) {
            return counts[at];
        }
        self.item(item).map_or(0, |s| match rel {
            Relation::Bought => s.baskets,
            Relation::Viewed => s.sessions,
        })
    }

    /// Baskets (or sessions) of `rel` in all.
    pub fn total(&self, rel: Relation) -> u64 {
        match rel {
            Relation::Bought => self.totals.baskets,
            Relation::Viewed => self.totals.sessions,
        }
    }

    /// Whether the index of `rel` still holds every basket `item` was in, so that the
    /// supports counted from it are exact.
    pub fn complete(&self, rel: Relation, item: u32) -> bool {
        self.baskets(rel).count(item) >= self.holding(rel, item)
    }

    /// Support, confidence and lift of item `b` given item `a` under `rel`, if they were ever
    /// together in a kept basket.
    pub fn pair(&self, rel: Relation, a: u32, b: u32) -> Option<Pair> {
        let support = self.baskets(rel).support(a, b);
        (support > 0).then(|| self.pair_from_count(rel, a, b, support))
    }

    /// The pair measures for a support counted from the index of `rel`.
    pub fn pair_from_count(&self, rel: Relation, a: u32, b: u32, support: u32) -> Pair {
        Pair::new(
            support,
            self.holding(rel, a),
            self.holding(rel, b),
            self.total(rel),
            self.complete(rel, a),
        )
    }

    /// Every partner of `a` under `rel` with its pair measures, in no particular order.
    pub fn partners(&self, rel: Relation, a: u32) -> Vec<(u32, Pair)> {
        let (n_a, total, exact) = (self.holding(rel, a), self.total(rel), self.complete(rel, a));
        cooccur::counts(self, rel, a)
            .into_iter()
            .map(|(b, s)| (b, Pair::new(s, n_a, self.holding(rel, b), total, exact)))
            .collect()
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
}
