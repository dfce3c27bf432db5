//! Loading the checkpointed behaviour state on open (the journal is replayed after it, see
//! [`super::checkpoint`]), and raising older layouts to the current one.

use std::collections::BTreeMap;
use std::sync::Arc;

use sled::Batch;

use super::checkpoint::{
    id_key, ItemRecord, ItemRecordRef, ITEM_PREFIX, META_ACTIVITY, USER_PREFIX,
};
use super::{Activity, CoList, UserState};
use crate::codec;
use crate::config::Config;
use crate::error::Result;

/// Load the checkpointed behaviour state from sled.
pub(crate) fn load(tree: &sled::Tree, cfg: &Config) -> Result<Activity> {
    let mut act = Activity::default();
    if let Some(v) = tree.get(META_ACTIVITY)? {
        act.totals = codec::decode(META_ACTIVITY, &v)?;
    }
    for kv in tree.scan_prefix([USER_PREFIX]) {
        let (k, v) = kv?;
        let state: UserState = codec::decode(&k, &v)?;
        act.users.insert(codec::record_key_id(&k)?, Arc::new(state));
    }
    let half_life = cfg.popularity_half_life_secs();
    for kv in tree.scan_prefix([ITEM_PREFIX]) {
        let (k, v) = kv?;
        let id = codec::record_key_id(&k)?;
        let record: ItemRecord = codec::decode(&k, &v)?;
        if let Some(stats) = record.stats {
            if let Some(key) = stats.popularity_key(half_life) {
                act.by_popularity.insert((key, id));
            }
            act.items.insert(id, Arc::new(stats));
        }
        if let Some(list) = record.bought {
            act.bought.insert(id, Arc::new(list));
        }
        if let Some(list) = record.viewed {
            act.viewed.insert(id, Arc::new(list));
        }
    }
    Ok(act)
}

/// Raise a format-1 or format-2 store's behaviour state to format 3 and set the store's
/// format mark to `format`, in one atomic batch (a crash leaves the old layout and mark, and
/// the next open upgrades again): an item's statistics (`S`) and lists (`CB`, `CV`), a key
/// each before, become one `B` record. Returns how many items were rewritten.
pub(crate) fn upgrade(tree: &sled::Tree, format: u32) -> Result<usize> {
    let mut batch = Batch::default();
    let mut items: BTreeMap<u32, ItemRecord> = BTreeMap::new();
    for kv in tree.scan_prefix(b"S") {
        let (k, v) = kv?;
        let id = codec::record_key_id(&k)?;
        items.entry(id).or_default().stats = Some(codec::decode(&k, &v)?);
        batch.remove(k);
    }
    for kv in tree.scan_prefix(b"C") {
        let (k, v) = kv?;
        let id = codec::decode_u32(&k, k.get(2..))?;
        let list: CoList = codec::decode(&k, &v)?;
        let record = items.entry(id).or_default();
        match k.get(1) {
            Some(b'B') => record.bought = Some(list),
            Some(b'V') => record.viewed = Some(list),
            _ => return Err(codec::corrupt(&k, "unknown co-occurrence relation")),
        }
        batch.remove(k);
    }
    for (&id, r) in &items {
        let borrowed = ItemRecordRef {
            stats: r.stats.as_ref(),
            bought: r.bought.as_ref(),
            viewed: r.viewed.as_ref(),
        };
        batch.insert(&id_key(ITEM_PREFIX, id), codec::encode(&borrowed));
    }
    batch.insert(codec::META_FORMAT, &format.to_be_bytes());
    tree.apply_batch(batch)?;
    Ok(items.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::checkpoint::{write, Touched, Unsaved};
    use crate::activity::cooccur::CoEntry;
    use crate::activity::{ItemStats, Relation};

    fn stats(views: u64, pop: f32) -> ItemStats {
        ItemStats {
            views,
            pop,
            pop_at: 1_000,
            ..ItemStats::default()
        }
    }

    fn list(items: &[u32]) -> CoList {
        CoList {
            entries: items
                .iter()
                .map(|&item| CoEntry {
                    item,
                    count: item + 1,
                    err: 0,
                })
                .collect(),
        }
    }

    fn user(events: u64) -> UserState {
        UserState {
            events,
            derived: vec![(1, 0.5), (7, events as f32)],
            ..UserState::default()
        }
    }

    /// Users 1 and 2; items 1 (stats and both lists), 2 (stats only), 3 (a bought list only).
    fn activity() -> Activity {
        let mut act = Activity::default();
        act.users.insert(1, Arc::new(user(3)));
        act.users.insert(2, Arc::new(user(5)));
        act.items.insert(1, Arc::new(stats(10, 2.0)));
        act.items.insert(2, Arc::new(stats(3, 1.0)));
        act.bought.insert(1, Arc::new(list(&[2, 3])));
        act.viewed.insert(1, Arc::new(list(&[2])));
        act.bought.insert(3, Arc::new(list(&[1])));
        act.totals.events = 8;
        act
    }

    fn touched(users: &[u32], items: &[u32]) -> Touched {
        Touched {
            users: users.iter().copied().collect(),
            items: items.iter().copied().collect(),
        }
    }

    type ItemRow = (u32, Option<ItemStats>, Option<CoList>, Option<CoList>);

    /// Everything a checkpoint keeps, in a comparable form.
    fn state(act: &Activity) -> (Vec<(u32, UserState)>, Vec<ItemRow>, u64) {
        let mut users: Vec<(u32, UserState)> = act.users().map(|(id, u)| (id, u.clone())).collect();
        users.sort_by_key(|u| u.0);
        let mut ids: Vec<u32> = act
            .items
            .keys()
            .chain(act.bought.keys())
            .chain(act.viewed.keys())
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let items = ids
            .into_iter()
            .map(|i| {
                (
                    i,
                    act.item(i).cloned(),
                    act.list(Relation::Bought, i).cloned(),
                    act.list(Relation::Viewed, i).cloned(),
                )
            })
            .collect();
        (users, items, act.totals.events)
    }

    fn popularity(act: &Activity) -> imbl::OrdSet<(u64, u32)> {
        let hl = Config::default().popularity_half_life_secs();
        act.items
            .iter()
            .filter_map(|(&i, s)| Some((s.popularity_key(hl)?, i)))
            .collect()
    }

    /// Checkpoint `act` (touching `t`) in one batch, as a write call does.
    fn checkpoint(db: &sled::Tree, act: &Activity, t: &Touched) -> Result<()> {
        let mut batch = Batch::default();
        write(act, t, &Unsaved::default(), &mut batch);
        db.apply_batch(batch)?;
        Ok(())
    }

    fn reopen(db: &sled::Tree) -> Result<Activity> {
        load(db, &Config::default())
    }

    #[test]
    fn records_round_trip_and_go_when_empty() -> Result<()> {
        let db = sled::Config::new().temporary(true).open()?;
        let act = activity();
        checkpoint(&db, &act, &touched(&[1, 2], &[1, 2, 3]))?;
        let loaded = reopen(&db)?;
        assert_eq!(state(&loaded), state(&act));
        assert_eq!(loaded.by_popularity, popularity(&act));
        // One key per user and per item with any state.
        assert_eq!(db.scan_prefix([USER_PREFIX]).count(), 2);
        assert_eq!(db.scan_prefix([ITEM_PREFIX]).count(), 3);

        // Item 3 loses its only list and user 2 goes: their keys go; the rest is as it was.
        let mut after = act.clone();
        after.users.insert(1, Arc::new(user(4)));
        after.bought.remove(&3);
        after.users.remove(&2);
        checkpoint(&db, &after, &touched(&[1, 2], &[3]))?;
        assert!(db.get(id_key(ITEM_PREFIX, 3))?.is_none());
        assert!(db.get(id_key(USER_PREFIX, 2))?.is_none());
        assert_eq!(state(&reopen(&db)?), state(&after));
        Ok(())
    }

    #[test]
    fn a_format_2_store_is_upgraded() -> Result<()> {
        let db = sled::Config::new().temporary(true).open()?;
        let act = activity();
        // The format-2 layout: a key for an item's statistics and for each of its lists.
        for (&u, s) in act.users.iter() {
            db.insert(id_key(USER_PREFIX, u), codec::encode(&**s))?;
        }
        for (&i, s) in act.items.iter() {
            db.insert(id_key(b'S', i), codec::encode(&**s))?;
        }
        for (rel, lists) in [(b'B', &act.bought), (b'V', &act.viewed)] {
            for (&i, l) in lists.iter() {
                let mut k = vec![b'C', rel];
                k.extend_from_slice(&i.to_be_bytes());
                db.insert(k, codec::encode(&**l))?;
            }
        }
        db.insert(META_ACTIVITY, codec::encode(&act.totals))?;
        db.insert(codec::META_FORMAT, &2u32.to_be_bytes())?;

        assert_eq!(upgrade(&db, 3)?, 3);
        assert_eq!(
            db.scan_prefix(b"S").count() + db.scan_prefix(b"C").count(),
            0
        );
        let format = db.get(codec::META_FORMAT)?;
        assert_eq!(codec::decode_u32(codec::META_FORMAT, format.as_deref())?, 3);
        let loaded = reopen(&db)?;
        assert_eq!(state(&loaded), state(&act));
        assert_eq!(loaded.by_popularity, popularity(&act));
        Ok(())
    }

    #[test]
    fn a_damaged_old_key_fails_the_upgrade_and_changes_nothing() -> Result<()> {
        let db = sled::Config::new().temporary(true).open()?;
        db.insert(id_key(b'S', 1), codec::encode(&stats(1, 1.0)))?;
        db.insert([b'C', b'X', 0, 0, 0, 1], codec::encode(&list(&[2])))?;
        db.insert(codec::META_FORMAT, &2u32.to_be_bytes())?;
        assert!(upgrade(&db, 3).is_err());
        assert!(db.get(id_key(b'S', 1))?.is_some());
        assert_eq!(db.scan_prefix([ITEM_PREFIX]).count(), 0);
        let format = db.get(codec::META_FORMAT)?;
        assert_eq!(codec::decode_u32(codec::META_FORMAT, format.as_deref())?, 2);
        Ok(())
    }
}
