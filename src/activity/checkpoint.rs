//! Writing the behaviour state to sled (a *checkpoint*). Loading it back on open is in
//! [`super::reload`]; running a checkpoint off the writer's thread in [`super::background`].
//!
//! | key                                         | value                              |
//! |---------------------------------------------|------------------------------------|
//! | `A` user (u32 BE)                           | `VERSION ++ bincode(UserState)`    |
//! | `B` item (u32 BE)                           | `VERSION ++ bincode(ItemRecord)`   |
//! | `K` relation (`b`/`v`) chunk number (u64 BE) | `VERSION ++ bincode(Chunk)`        |
//! | `Mactivity`                                 | `VERSION ++ bincode(Totals)`       |
//! | `X` user (u32 BE)                           | `VERSION ++ bincode(Exposure)`     |
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
//! **Baskets by the chunk.** The basket indexes ([`super::baskets`]) are written as the
//! chunks of 256 baskets that changed since the last checkpoint (a new chunk fills in about
//! 1,000 events of a shop's traffic), so a checkpoint adds a few hundred keys per 100,000
//! events; posting lists are not stored but rebuilt from the chunks on open. A chunk dropped
//! by `Config::cooccurrence_lines` is removed in the same batch. Store format 3 and older kept
//! bounded co-occurrence lists inside each item's record instead (see
//! [`super::reload::upgrade`]).

use std::collections::HashSet;

use crate::durable::Batch;
use serde::{Deserialize, Serialize};

use super::baskets::Chunk;
use super::{log, Activity, ItemStats, Relation};
use crate::codec;

/// Meta key of the [`super::Totals`].
pub(crate) const META_ACTIVITY: &[u8] = b"Mactivity";
/// Prefix of the user records.
pub(crate) const USER_PREFIX: u8 = b'A';
/// Prefix of the item records.
pub(crate) const ITEM_PREFIX: u8 = b'B';
/// Meta key present once the exposure memories (`X`) cover the whole event log: written at a
/// store's creation, and by the open that derives them for a store written before them.
pub(crate) const META_EXPOSURE: &[u8] = b"Mexposure";
/// Prefix of the exposure memories (what each user was shown, [`super::exposure`]).
pub(crate) const EXPOSURE_PREFIX: u8 = b'X';
/// Prefix of the basket-index chunks.
pub(crate) const CHUNK_PREFIX: u8 = b'K';

/// The relation byte of a chunk key.
pub(crate) fn relation_byte(rel: Relation) -> u8 {
    match rel {
        Relation::Bought => b'b',
        Relation::Viewed => b'v',
    }
}

/// The key of chunk `n` of the index of `rel`.
pub(crate) fn chunk_key(rel: Relation, n: u64) -> [u8; 10] {
    let mut k = [CHUNK_PREFIX, relation_byte(rel), 0, 0, 0, 0, 0, 0, 0, 0];
    k[2..].copy_from_slice(&n.to_be_bytes());
    k
}

/// The key of record `id` under `prefix`.
pub(crate) fn id_key(prefix: u8, id: u32) -> [u8; 5] {
    let mut k = [prefix, 0, 0, 0, 0];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// Everything behaviour keeps about one item: the value under its `B` key.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ItemRecord {
    pub stats: ItemStats,
}

/// [`ItemRecord`] borrowed from the state, to encode without copying it (same bytes).
#[derive(Serialize)]
pub(crate) struct ItemRecordRef<'a> {
    pub stats: &'a ItemStats,
}

/// What changed in the behaviour state since it was last written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Touched {
    pub users: HashSet<u32>,
    /// Users whose exposure memory changed (an impression, a deletion): only theirs is
    /// written again, not that of every user an event touched.
    pub exposures: HashSet<u32>,
    /// Items whose statistics changed (one record each).
    pub items: HashSet<u32>,
    /// Basket-index chunks that changed or were dropped.
    pub chunks: HashSet<(Relation, u64)>,
}

fn absorb_set<T: std::hash::Hash + Eq>(mine: &mut HashSet<T>, theirs: HashSet<T>) {
    if mine.is_empty() {
        *mine = theirs;
    } else {
        mine.extend(theirs);
    }
}

impl Touched {
    /// Whether nothing is in it.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.exposures.is_empty()
            && self.items.is_empty()
            && self.chunks.is_empty()
    }

    /// Add `other`'s ids.
    pub fn absorb(&mut self, other: Touched) {
        absorb_set(&mut self.users, other.users);
        absorb_set(&mut self.exposures, other.exposures);
        absorb_set(&mut self.items, other.items);
        absorb_set(&mut self.chunks, other.chunks);
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
pub(crate) fn write(
    act: &Activity,
    touched: &Touched,
    unsaved: &Unsaved,
    batch: &mut Batch,
) -> crate::error::Result<()> {
    let old = &unsaved.touched;
    for u in ids([&touched.users, &old.users]) {
        let k = id_key(USER_PREFIX, u);
        match act.users.get(&u) {
            Some(s) => batch.insert(k, codec::encode(&k, &**s)?),
            None => batch.remove(k),
        }
    }
    for u in ids([&touched.exposures, &old.exposures]) {
        let k = id_key(EXPOSURE_PREFIX, u);
        match act.exposures.get(&u).filter(|e| !e.is_empty()) {
            Some(e) => batch.insert(k, codec::encode(&k, &**e)?),
            None => batch.remove(k),
        }
    }
    for i in ids([&touched.items, &old.items]) {
        let k = id_key(ITEM_PREFIX, i);
        match act.items.get(&i) {
            Some(s) => batch.insert(k, codec::encode(&k, &ItemRecordRef { stats: s })?),
            None => batch.remove(k),
        }
    }
    let mut chunks: Vec<(Relation, u64)> =
        touched.chunks.iter().chain(&old.chunks).copied().collect();
    chunks.sort_unstable_by_key(|&(rel, n)| (relation_byte(rel), n));
    chunks.dedup();
    for (rel, n) in chunks {
        let k = chunk_key(rel, n);
        match act.baskets(rel).chunk(n) {
            Some(c) => batch.insert(k, codec::encode::<Chunk>(&k, &**c)?),
            None => batch.remove(k),
        }
    }
    for &seq in &unsaved.journal {
        log::remove_journal(batch, seq);
    }
    batch.insert(META_ACTIVITY, codec::encode(META_ACTIVITY, &act.totals)?);
    Ok(())
}
