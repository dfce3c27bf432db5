//! Writing the behaviour state to sled (a *checkpoint*) and loading it back on open.
//!
//! | key                                   | value                              |
//! |---------------------------------------|------------------------------------|
//! | `A` user (u32 BE)                     | `VERSION ++ bincode(UserState)`    |
//! | `S` item (u32 BE)                     | `VERSION ++ bincode(ItemStats)`    |
//! | `CB` / `CV` item (u32 BE)             | `VERSION ++ bincode(CoList)`       |
//! | `Mactivity`                           | `VERSION ++ bincode(Totals)`       |
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

use std::collections::HashSet;
use std::sync::Arc;

use sled::Batch;

use super::{log, Activity, CoList, ItemStats, Relation, UserState};
use crate::codec;
use crate::config::Config;
use crate::error::Result;

/// Meta key of the [`super::Totals`].
pub(crate) const META_ACTIVITY: &[u8] = b"Mactivity";

fn id_key(prefix: u8, id: u32) -> [u8; 5] {
    let mut k = [prefix, 0, 0, 0, 0];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn list_key(rel: Relation, id: u32) -> [u8; 6] {
    let rel = match rel {
        Relation::Bought => b'B',
        Relation::Viewed => b'V',
    };
    let mut k = [b'C', rel, 0, 0, 0, 0];
    k[2..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The ids whose behaviour state changed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Touched {
    pub users: HashSet<u32>,
    pub items: HashSet<u32>,
    pub bought: HashSet<u32>,
    pub viewed: HashSet<u32>,
}

impl Touched {
    /// Whether nothing is in it.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.items.is_empty()
            && self.bought.is_empty()
            && self.viewed.is_empty()
    }

    /// Add `other`'s ids.
    pub fn absorb(&mut self, other: Touched) {
        for (mine, theirs) in [
            (&mut self.users, other.users),
            (&mut self.items, other.items),
            (&mut self.bought, other.bought),
            (&mut self.viewed, other.viewed),
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

/// The ids in `a` or `b`, each once.
fn union<'a>(a: &'a HashSet<u32>, b: &'a HashSet<u32>) -> impl Iterator<Item = u32> + 'a {
    a.iter().chain(b.difference(a)).copied()
}

/// Write the current value (or removal) of every id in `touched` and in `unsaved.touched`,
/// remove `unsaved`'s journal entries and write the totals, all into `batch`.
pub(crate) fn write(act: &Activity, touched: &Touched, unsaved: &Unsaved, batch: &mut Batch) {
    let old = &unsaved.touched;
    for u in union(&touched.users, &old.users) {
        let k = id_key(b'A', u);
        match act.users.get(&u) {
            Some(s) => batch.insert(&k, codec::encode(&**s)),
            None => batch.remove(&k),
        }
    }
    for i in union(&touched.items, &old.items) {
        // Item statistics are never removed: they are shop figures, kept when a user goes.
        if let Some(s) = act.items.get(&i) {
            batch.insert(&id_key(b'S', i), codec::encode(&**s));
        }
    }
    for (rel, lists, new_ids, old_ids) in [
        (Relation::Bought, &act.bought, &touched.bought, &old.bought),
        (Relation::Viewed, &act.viewed, &touched.viewed, &old.viewed),
    ] {
        for i in union(new_ids, old_ids) {
            let k = list_key(rel, i);
            match lists.get(&i) {
                Some(l) => batch.insert(&k, codec::encode(&**l)),
                None => batch.remove(&k),
            }
        }
    }
    for &seq in &unsaved.journal {
        log::remove_journal(batch, seq);
    }
    batch.insert(META_ACTIVITY, codec::encode(&act.totals));
}

/// Load the checkpointed behaviour state from sled (on open; the journal is replayed after).
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

/// The checkpoint that the event count triggered, written on its own thread so the write call
/// that crossed the threshold does not wait for it. At most one runs; the writer settles it
/// before any checkpoint of its own (a forced one must not land before an older one) and
/// before a backup reads sled. It keeps a copy of the ids it writes, to hand back on failure.
#[derive(Debug, Default)]
pub(crate) struct Background(Option<(std::thread::JoinHandle<Result<()>>, Unsaved)>);

impl Background {
    /// Whether one is still running.
    pub fn busy(&self) -> bool {
        self.0.as_ref().is_some_and(|(h, _)| !h.is_finished())
    }

    /// Write `unsaved` from `act` on a new thread. Journal batches may go on meanwhile: they
    /// touch only log and journal keys, and the checkpoint removes only its own entries.
    /// Hands `unsaved` back if no thread could be started.
    pub fn start(
        &mut self,
        tree: sled::Tree,
        act: Activity,
        mut unsaved: Unsaved,
    ) -> Option<Unsaved> {
        // One that finished since the writer last looked: if it failed, this one writes its
        // ids (from the newer state) and removes its journal entries too.
        self.settle(&mut unsaved);
        tracing::debug!(
            events = unsaved.events,
            batches = unsaved.journal.len(),
            users = unsaved.touched.users.len(),
            items = unsaved.touched.items.len(),
            "checkpoint started in the background"
        );
        let copy = unsaved.clone();
        let run = move || -> Result<()> {
            let mut batch = Batch::default();
            write(&act, &Touched::default(), &unsaved, &mut batch);
            Ok(tree.apply_batch(batch)?)
        };
        match std::thread::Builder::new()
            .name("recostore-checkpoint".into())
            .spawn(run)
        {
            Ok(h) => {
                self.0 = Some((h, copy));
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not start a checkpoint thread; retrying later");
                Some(copy)
            }
        }
    }

    /// Wait for the running checkpoint, if any. If it failed (or panicked), it wrote nothing
    /// (one atomic batch), so its ids and journal entries go back into `into` for the next one.
    pub fn settle(&mut self, into: &mut Unsaved) {
        let Some((h, copy)) = self.0.take() else {
            return;
        };
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "background checkpoint failed; the next one writes its state");
                into.absorb(copy);
            }
            Err(_) => {
                tracing::error!("background checkpoint panicked; the next one writes its state");
                into.absorb(copy);
            }
        }
    }

    /// Collect a finished checkpoint without waiting.
    pub fn reap(&mut self, into: &mut Unsaved) {
        if self.0.as_ref().is_some_and(|(h, _)| h.is_finished()) {
            self.settle(into);
        }
    }
}
