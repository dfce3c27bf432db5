//! Writing the behaviour state to sled (a *checkpoint*). Loading it back on open is in
//! [`super::reload`]; running a checkpoint off the writer's thread in [`super::background`].
//!
//! | key                   | value                              |
//! |-----------------------|------------------------------------|
//! | `A` user (u32 BE)     | `VERSION ++ bincode(UserState)`    |
//! | `B` item (u32 BE)     | `VERSION ++ bincode(ItemRecord)`   |
//! | `Mactivity`           | `VERSION ++ bincode(Totals)`       |
//!
//! **Why checkpoints.** Writing every touched state value with every event batch cost about
//! three sled keys per event, which bounded ingestion at about 40k events/s. Instead, an event
//! batch writes only its log chunks and a journal entry ([`super::log`]); the ids whose state
//! it changed are remembered in memory ([`Unsaved`]). A checkpoint writes the current value of
//! every remembered id, removes the journal entries and writes the totals, in one sled batch.
//!
//! **When.** A write call checkpoints in its own batch when it is not a pure event batch (an
//! item upsert or any delete: replay reads item rows, and un-applying a deleted user must see
//! the state it was applied to), when [`crate::Config::checkpoint_events`] events have piled up,
//! and when the last store handle closes. So at any durable point the journal names only event
//! batches recorded since the checkpoint, against the item rows still stored, and replaying
//! them in arrival order on open reproduces the state bit for bit (`tests/recovery_journal.rs`).
//!
//! **One key per item.** An item's statistics and its two co-occurrence lists change
//! together (an event on an item counts it and pairs it with its session), so they are one
//! value: a checkpoint writes about half as many sled keys as with a key for each, and sled's
//! cost is mostly per key. Store format 2 and older kept them apart (`S` item, `CB`/`CV` item).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sled::Batch;

use super::{log, Activity, CoList, ItemStats};
use crate::codec;

/// Meta key of the [`super::Totals`].
pub(crate) const META_ACTIVITY: &[u8] = b"Mactivity";
/// Prefix of the user records.
pub(crate) const USER_PREFIX: u8 = b'A';
/// Prefix of the item records.
pub(crate) const ITEM_PREFIX: u8 = b'B';

/// The key of record `id` under `prefix`.
pub(crate) fn id_key(prefix: u8, id: u32) -> [u8; 5] {
    let mut k = [prefix, 0, 0, 0, 0];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// Everything behaviour keeps about one item: the value under its `B` key.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub(crate) struct ItemRecord {
    pub stats: Option<ItemStats>,
    pub bought: Option<CoList>,
    pub viewed: Option<CoList>,
}

/// [`ItemRecord`] borrowed from the state, to encode without copying it (same bytes).
#[derive(Serialize)]
pub(crate) struct ItemRecordRef<'a> {
    pub stats: Option<&'a ItemStats>,
    pub bought: Option<&'a CoList>,
    pub viewed: Option<&'a CoList>,
}

impl ItemRecordRef<'_> {
    fn is_empty(&self) -> bool {
        self.stats.is_none() && self.bought.is_none() && self.viewed.is_none()
    }
}

/// The ids whose behaviour state changed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Touched {
    pub users: HashSet<u32>,
    /// Items whose statistics or co-occurrence lists changed (one record each).
    pub items: HashSet<u32>,
}

impl Touched {
    /// Whether nothing is in it.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.items.is_empty()
    }

    /// Add `other`'s ids.
    pub fn absorb(&mut self, other: Touched) {
        for (mine, theirs) in [
            (&mut self.users, other.users),
            (&mut self.items, other.items),
        ] {
            if mine.is_empty() {
                *mine = theirs;
            } else {
                mine.extend(theirs);
            }
        }
    }
}

/// What the writer holds between checkpoints: the ids changed by event batches whose state is
/// only in the journal, and those batches' journal entries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Unsaved {
    pub touched: Touched,
    pub journal: Vec<u64>,
    pub events: usize,
}

impl Unsaved {
    /// Whether a checkpoint would write anything.
    pub fn is_empty(&self) -> bool {
        self.journal.is_empty() && self.touched.is_empty()
    }

    /// Add `other`'s ids, journal entries and event count.
    pub fn absorb(&mut self, other: Unsaved) {
        self.touched.absorb(other.touched);
        self.journal.extend(other.journal);
        self.events += other.events;
    }
}

/// The ids in any of `sets`, sorted, each once (sorted keys are cheapest for sled).
fn ids<'a>(sets: impl IntoIterator<Item = &'a HashSet<u32>>) -> Vec<u32> {
    let mut out: Vec<u32> = sets.into_iter().flatten().copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Write the current value (or removal) of every id in `touched` and in `unsaved.touched`,
/// remove `unsaved`'s journal entries and write the totals, all into `batch`.
pub(crate) fn write(act: &Activity, touched: &Touched, unsaved: &Unsaved, batch: &mut Batch) {
    let old = &unsaved.touched;
    for u in ids([&touched.users, &old.users]) {
        let k = id_key(USER_PREFIX, u);
        match act.users.get(&u) {
            Some(s) => batch.insert(&k, codec::encode(&**s)),
            None => batch.remove(&k),
        }
    }
    for i in ids([&touched.items, &old.items]) {
        let record = ItemRecordRef {
            stats: act.items.get(&i).map(|s| &**s),
            bought: act.bought.get(&i).map(|l| &**l),
            viewed: act.viewed.get(&i).map(|l| &**l),
        };
        let k = id_key(ITEM_PREFIX, i);
        if record.is_empty() {
            batch.remove(&k);
        } else {
            batch.insert(&k, codec::encode(&record));
        }
    }
    for &seq in &unsaved.journal {
        log::remove_journal(batch, seq);
    }
    batch.insert(META_ACTIVITY, codec::encode(&act.totals));
}
