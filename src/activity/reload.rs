//! Loading the checkpointed behaviour state on open (the journal is replayed after it, see
//! [`super::checkpoint`]), and what upgrading an older store's state takes.
//!
//! **Upgrades.** Store formats 1 to 3 kept bounded co-occurrence lists whose counts could not
//! be trusted (space-saving inherits evicted counts), and counted purchases as views. Their
//! state cannot be converted into exact basket indexes, so an older store's behaviour state is
//! derived again from its event log, which holds every event: [`old_state_keys`] lists what
//! to remove, and the store replays the whole log (`Store::upgrade_activity`) and writes the
//! result, the removals and the new format mark in one atomic batch.

use std::sync::Arc;

use crate::durable::Value;

use super::baskets::{Baskets, Chunk};
use super::checkpoint::{
    id_key, relation_byte, ItemRecord, CHUNK_PREFIX, EXPOSURE_PREFIX, ITEM_PREFIX, META_ACTIVITY,
    META_EXPOSURE, USER_PREFIX,
};
use super::log::{self, Logged};
use super::{Activity, Relation, UserState};
use crate::codec;
use crate::config::Config;
use crate::error::Result;

/// Load the checkpointed behaviour state from sled.
pub(crate) fn load(tree: &crate::durable::Db, cfg: &Config) -> Result<Activity> {
    let mut act = Activity::default();
    if let Some(v) = tree.get(META_ACTIVITY)? {
        act.totals = codec::decode(META_ACTIVITY, &v)?;
    }
    for kv in tree.scan_prefix([USER_PREFIX]) {
        let (k, v) = kv?;
        let state: UserState = codec::decode(&k, &v)?;
        act.users.insert(codec::record_key_id(&k)?, Arc::new(state));
    }
    for kv in tree.scan_prefix([EXPOSURE_PREFIX]) {
        let (k, v) = kv?;
        let shown: super::Exposure = codec::decode(&k, &v)?;
        act.exposures
            .insert(codec::record_key_id(&k)?, Arc::new(shown));
    }
    let half_life = cfg.popularity_half_life_secs();
    for kv in tree.scan_prefix([ITEM_PREFIX]) {
        let (k, v) = kv?;
        let id = codec::record_key_id(&k)?;
        let record: ItemRecord = codec::decode(&k, &v)?;
        if let Some(key) = record.stats.popularity_key(half_life) {
            act.by_popularity.insert((key, id));
        }
        act.items.insert(id, Arc::new(record.stats));
    }
    match (tree.get(META_EXPOSURE)?.is_some(), cfg.exposure_memory > 0) {
        (false, true) => derive_exposures(tree, cfg, &mut act)?,
        // Impressions recorded with the memory off are in no memory: the mark goes, so that
        // the next open with a memory derives it from the whole log.
        (true, false) if !tree.is_read_only() => tree.remove(META_EXPOSURE)?,
        _ => {}
    }
    act.bought = load_baskets(tree, Relation::Bought)?;
    act.viewed = load_baskets(tree, Relation::Viewed)?;
    act.held = super::holdings::Holdings::from_items(&act.items);
    Ok(act)
}

/// Derive every user's exposure memory from the impressions in the event log, for a store
/// written before the memory existed (or while it was off), replacing whatever `X` keys it
/// has, and write it with the mark that it was done (one batch; a crash before it derives
/// again at the next open). The journal's batches are left out: replaying them after this
/// adds theirs. One user's log at a time (the log is keyed by user), so the whole log is
/// never in memory. Events already pruned from the log ([`crate::retention`]) are not in it.
/// A replica's durable layer keeps the writes of its open in memory.
fn derive_exposures(tree: &crate::durable::Db, cfg: &Config, act: &mut Activity) -> Result<()> {
    let (journaled, _) = log::read_journal(tree)?;
    let journaled: std::collections::HashSet<u64> = journaled.iter().map(|(_, e)| e.seq).collect();
    let mut batch = crate::durable::Batch::default();
    for kv in tree.scan_prefix([EXPOSURE_PREFIX]) {
        batch.remove(kv?.0);
    }
    act.exposures = Default::default();
    let mut shown = 0u64;
    // One user's impressions: (seq, ts, items).
    let mut user: Option<u32> = None;
    let mut theirs: Vec<(u64, u64, Vec<u32>)> = Vec::new();
    let mut finish = |user: Option<u32>, theirs: &mut Vec<(u64, u64, Vec<u32>)>| {
        let Some(u) = user else { return };
        // Arrival order, as ingest applied them (two chunks of a user can interleave).
        theirs.sort_by_key(|e| e.0);
        for (_, ts, items) in theirs.drain(..) {
            shown += 1;
            Arc::make_mut(act.exposures.entry(u).or_default()).record(
                &items,
                ts,
                cfg.exposure_memory,
            );
        }
    };
    for kv in tree.scan_prefix(log::LOG_PREFIX) {
        let (k, v) = kv?;
        let (u, chunk) = log::decode_entry(&k, &v)?;
        if user != Some(u) {
            finish(user, &mut theirs);
            user = Some(u);
        }
        for e in chunk {
            if journaled.contains(&e.seq) {
                continue;
            }
            if let crate::event::StoredKind::Impression { items, .. } = e.event.kind {
                if !items.is_empty() {
                    theirs.push((e.seq, e.ts, items));
                }
            }
        }
    }
    finish(user, &mut theirs);
    for (&u, memory) in &act.exposures {
        let k = id_key(EXPOSURE_PREFIX, u);
        batch.insert(k, codec::encode(&k, &**memory)?);
    }
    batch.insert(META_EXPOSURE, [1u8]);
    tree.apply_batch(batch)?;
    if shown > 0 {
        tracing::info!(
            impressions = shown,
            users = act.exposures.len(),
            "exposure memory derived from the event log (a store written before it, or with it off)"
        );
    }
    Ok(())
}

/// The basket index of `rel`, from its chunks (in key order, which is chunk order).
fn load_baskets(tree: &crate::durable::Db, rel: Relation) -> Result<Baskets> {
    let item_bound = match tree.get(codec::META_NEXT_ITEM)? {
        None => 0,
        Some(v) if v.len() == 4 => codec::decode_u32(codec::META_NEXT_ITEM, Some(&v))?,
        Some(v) => u32::try_from(codec::decode_u64(codec::META_NEXT_ITEM, &v)?).unwrap_or(u32::MAX),
    };
    let mut chunks = Vec::new();
    for kv in tree.scan_prefix([CHUNK_PREFIX, relation_byte(rel)]) {
        let (k, v) = kv?;
        let n = codec::decode_u64(&k, k.get(2..).unwrap_or_default())?;
        let chunk: Chunk = codec::decode(&k, &v)?;
        if !chunk.is_valid(item_bound) {
            return Err(codec::corrupt(
                &k,
                "basket chunk offsets are inconsistent, or it names an item id never handed out",
            ));
        }
        chunks.push((n, chunk));
    }
    Ok(Baskets::from_chunks(chunks))
}

/// The keys of an older store's behaviour state (formats 1 to 3): user and item records,
/// format-2 statistics and lists, and the journal (the upgrade replays the whole log, the
/// journalled batches included).
pub(crate) fn old_state_keys(tree: &crate::durable::Db) -> Result<Vec<Value>> {
    let mut keys = Vec::new();
    for prefix in [
        &[USER_PREFIX][..],
        &[EXPOSURE_PREFIX],
        &[ITEM_PREFIX],
        b"S",
        b"C",
        &[CHUNK_PREFIX],
        log::JOURNAL_PREFIX,
    ] {
        for kv in tree.scan_prefix(prefix) {
            keys.push(kv?.0);
        }
    }
    Ok(keys)
}

/// Every event of the log with its user, in arrival order (the order they were recorded in).
pub(crate) fn whole_log(tree: &crate::durable::Db) -> Result<Vec<(u32, Logged)>> {
    let mut events = Vec::new();
    for kv in tree.scan_prefix(log::LOG_PREFIX) {
        let (k, v) = kv?;
        let (user, chunk) = log::decode_entry(&k, &v)?;
        events.extend(chunk.into_iter().map(|e| (user, e)));
    }
    events.sort_by_key(|(_, e)| e.seq);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use crate::durable::Batch;

    use super::*;
    use crate::activity::checkpoint::{chunk_key, id_key, write, Touched, Unsaved};
    use crate::activity::ItemStats;

    fn stats(views: u64, pop: f32) -> ItemStats {
        ItemStats {
            views,
            pop,
            pop_at: 1_000,
            ..ItemStats::default()
        }
    }

    fn user(events: u64) -> UserState {
        UserState {
            events,
            derived: vec![(1, 0.5), (7, events as f32)],
            ..UserState::default()
        }
    }

    /// Users 1 and 2; items 1 and 2 with statistics; baskets {1, 2}, {1, 3} and a session {2}.
    fn activity() -> (Activity, Touched) {
        let mut act = Activity::default();
        let mut t = Touched::default();
        act.users.insert(1, Arc::new(user(3)));
        act.users.insert(2, Arc::new(user(5)));
        act.items.insert(1, Arc::new(stats(10, 2.0)));
        act.items.insert(2, Arc::new(stats(3, 1.0)));
        for (id, item) in [(0, 1), (0, 2), (1, 1), (1, 3)] {
            act.bought.add(id, 1, item);
        }
        act.viewed.add(0, 2, 2);
        act.totals.events = 8;
        t.users.extend([1, 2]);
        t.items.extend([1, 2]);
        t.chunks
            .extend([(Relation::Bought, 0), (Relation::Viewed, 0)]);
        (act, t)
    }

    type State = (Vec<(u32, UserState)>, Vec<(u32, ItemStats)>, u64);

    /// Everything a checkpoint keeps but the indexes, in a comparable form.
    fn state(act: &Activity) -> State {
        let mut users: Vec<(u32, UserState)> = act.users().map(|(id, u)| (id, u.clone())).collect();
        users.sort_by_key(|u| u.0);
        let mut items: Vec<(u32, ItemStats)> = act.items().map(|(id, s)| (id, s.clone())).collect();
        items.sort_by_key(|i| i.0);
        (users, items, act.totals.events)
    }

    fn checkpoint(db: &crate::durable::Db, act: &Activity, t: &Touched) -> Result<()> {
        let mut batch = Batch::default();
        write(act, t, &Unsaved::default(), &mut batch)?;
        db.apply_batch(batch)?;
        Ok(())
    }

    fn reopen(db: &crate::durable::Db) -> Result<Activity> {
        // The item counter a store keeps: chunks may name items below it only.
        if db.get(codec::META_NEXT_ITEM)?.is_none() {
            db.insert(codec::META_NEXT_ITEM, 100u32.to_be_bytes())?;
        }
        load(db, &Config::default())
    }

    #[test]
    fn records_and_chunks_round_trip_and_go_when_empty() -> Result<()> {
        let db = crate::durable::memory();
        let (act, t) = activity();
        checkpoint(&db, &act, &t)?;
        let loaded = reopen(&db)?;
        assert_eq!(state(&loaded), state(&act));
        assert_eq!(loaded.bought, act.bought);
        assert_eq!(loaded.viewed, act.viewed);
        assert_eq!(loaded.baskets(Relation::Bought).support(1, 2), 1);
        assert_eq!(db.scan_prefix([USER_PREFIX]).count(), 2);
        assert_eq!(db.scan_prefix([ITEM_PREFIX]).count(), 2);
        assert_eq!(db.scan_prefix([CHUNK_PREFIX]).count(), 2);

        // User 2 goes with their session; item 2 loses its statistics.
        let mut after = act.clone();
        after.users.remove(&2);
        after.items.remove(&2);
        after.viewed.forget(2);
        let mut t = Touched::default();
        t.users.insert(2);
        t.items.insert(2);
        t.chunks.insert((Relation::Viewed, 0));
        checkpoint(&db, &after, &t)?;
        assert!(db.get(id_key(ITEM_PREFIX, 2))?.is_none());
        assert!(db.get(id_key(USER_PREFIX, 2))?.is_none());
        let loaded = reopen(&db)?;
        assert_eq!(state(&loaded), state(&after));
        assert_eq!(loaded.viewed.lines(), 0);
        Ok(())
    }

    #[test]
    fn a_damaged_chunk_is_an_error_not_a_panic() -> Result<()> {
        let db = crate::durable::memory();
        let k = chunk_key(Relation::Bought, 0);
        db.insert(
            k,
            codec::encode(&k, &(vec![1u32], vec![9u32], Vec::<u32>::new()))?,
        )?;
        assert!(reopen(&db).is_err());
        db.insert(chunk_key(Relation::Bought, 0), &b"\x01garbage"[..])?;
        assert!(reopen(&db).is_err());
        Ok(())
    }
}
