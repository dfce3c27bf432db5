//! Power loss, simulated: the crash loop over the fault-injecting durable layer
//! ([`crate::durable::faulty`]).
//!
//! Each round drives a store with random writes, flushes, checkpoints and rebuilds, and keeps a
//! model of what each successful call meant (plain maps of records and event lists: no store
//! code). The simulated disk loses power at a random write or flush call. The round then
//! reopens the store on what the disk kept and checks:
//! 1. the store equals the model after some prefix of the calls, and that prefix holds every
//!    call acknowledged before the last flush that returned (each call, under
//!    `Durability::Immediate`);
//! 2. what is derived from the records agrees with them: records against what queries serve,
//!    the event log against the behaviour state (`verify_deep`), and item counters and
//!    "bought together" supports against counts made here from the model's events.
//!
//! Then it writes on, loses power again, and so on. The segment files live in a real
//! directory, which the simulation does not fail: it checks the records and the behaviour
//! state in the durable layer, and that the files derived from them are made consistent on
//! open.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::{Config, Durability};
use crate::durable::faulty::Disk;
use crate::event::{Event, EventKind};
use crate::model::{Item, User};
use crate::scenario::{Ask, Reason, Scenario};
use crate::store::Store;

/// Everything the store should hold after a sequence of calls, kept without store code.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    /// Live items: id → sorted tags.
    items: BTreeMap<String, Vec<(String, u32)>>,
    /// Live users: id → sorted explicit tags (`None`: created by an event, no tags set).
    users: BTreeMap<String, Option<Vec<(String, u32)>>>,
    /// Events of live users in their log, in call order.
    events: BTreeMap<String, Vec<Event>>,
    /// Events of live users pruned from their log: gone from their history, still in their
    /// baskets.
    pruned: BTreeMap<String, Vec<Event>>,
    /// Every event ever recorded: an item's counters keep a deleted user's events (they are
    /// aggregates; the user's log, profile and baskets go).
    counted: Vec<Event>,
}

#[derive(Debug, Clone)]
enum Call {
    UpsertItems(Vec<Item>),
    /// The same through `Store::bulk_load_items`: chunks, tombstones, its own segment.
    BulkLoad(Vec<Item>),
    DeleteItem(String),
    UpsertUser(User),
    DeleteUser(String),
    Events(Vec<Event>),
    Flush,
    Checkpoint,
    Rebuild,
    /// A save of the delta to its file, which the next open reads back before the dirty log.
    SaveDelta,
    /// A checkpoint (so no event is left in the journal), then a prune of the event log
    /// keeping this many seconds.
    Prune(u64),
}

struct Rng(crate::splitmix::SplitMix64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        (!v.is_empty()).then(|| &v[self.below(v.len())])
    }
}

const TAGS: [&str; 6] = ["red", "blue", "mug", "shirt", "cheap", "brand:a"];

fn tags(rng: &mut Rng) -> Vec<(String, u32)> {
    let set: BTreeSet<&str> = (0..1 + rng.below(3)).map(|_| TAGS[rng.below(6)]).collect();
    set.into_iter()
        .map(|t| (t.to_string(), 1 + rng.below(4) as u32))
        .collect()
}

fn weighted(t: &[(String, u32)]) -> Vec<(String, f32)> {
    t.iter().map(|(n, w)| (n.clone(), *w as f32)).collect()
}

/// The ids a generator has used, so deleted ones are never used again (a model of id reuse
/// after deletion would be a second subject).
#[derive(Default)]
struct Ids {
    next_item: usize,
    next_user: usize,
    next_order: usize,
}

/// `n` random items: one in `reuse_one_in` rewrites an existing item, the rest are new.
fn item_batch(
    rng: &mut Rng,
    existing: &[&String],
    ids: &mut Ids,
    n: usize,
    reuse_one_in: usize,
) -> Vec<Item> {
    (0..n)
        .map(|_| {
            let id = match rng.pick(existing) {
                Some(id) if rng.below(reuse_one_in) == 0 => (*id).clone(),
                _ => {
                    ids.next_item += 1;
                    format!("i{}", ids.next_item)
                }
            };
            Item::new(id, weighted(&tags(rng)))
        })
        .collect()
}

/// A random call that is valid against `m` (so a failure can only be the power).
fn next_call(rng: &mut Rng, m: &Model, ids: &mut Ids, ts: u64) -> Call {
    let items: Vec<&String> = m.items.keys().collect();
    let users: Vec<&String> = m.users.keys().collect();
    let roll = rng.below(100);
    match roll {
        _ if roll < 25 || items.len() < 3 => {
            let n = 1 + rng.below(3);
            Call::UpsertItems(item_batch(rng, &items, ids, n, 3))
        }
        25..=29 => Call::DeleteItem((*rng.pick(&items).expect("3 items")).clone()),
        30..=39 => {
            let id = match rng.pick(&users) {
                Some(id) if rng.below(2) == 0 => (*id).clone(),
                _ => {
                    ids.next_user += 1;
                    format!("u{}", ids.next_user)
                }
            };
            Call::UpsertUser(User::new(id, weighted(&tags(rng))))
        }
        40..=42 if !users.is_empty() => {
            Call::DeleteUser((*rng.pick(&users).expect("a user")).clone())
        }
        43..=47 => Call::Flush,
        48..=51 => Call::Checkpoint,
        52..=54 => Call::Rebuild,
        55..=57 => Call::Prune(rng.below(300) as u64),
        58..=61 => {
            let n = 1 + rng.below(40);
            Call::BulkLoad(item_batch(rng, &items, ids, n, 4))
        }
        62..=65 => Call::SaveDelta,
        _ => {
            let user = match rng.pick(&users) {
                Some(id) if rng.below(4) > 0 => (*id).clone(),
                _ => {
                    ids.next_user += 1;
                    format!("u{}", ids.next_user)
                }
            };
            let mut events = Vec::new();
            if rng.below(2) == 0 {
                ids.next_order += 1;
                let order = format!("o{}", ids.next_order);
                let basket: BTreeSet<&String> = (0..2 + rng.below(2))
                    .map(|_| items[rng.below(items.len())])
                    .collect();
                for item in basket {
                    events.push(
                        Event::purchase(&user, item.as_str(), 1 + rng.below(3) as u32, 2.5, ts)
                            .session(order.clone()),
                    );
                }
            } else {
                for k in 0..1 + rng.below(4) {
                    let item = items[rng.below(items.len())];
                    events.push(if k % 2 == 0 {
                        Event::view(&user, item.as_str(), ts + k as u64)
                    } else {
                        Event::cart(&user, item.as_str(), ts + k as u64)
                    });
                }
            }
            Call::Events(events)
        }
    }
}

/// What `call` does to the model, as if it succeeded.
fn apply(m: &mut Model, call: &Call) {
    let sorted = |t: &[(String, f32)]| {
        let mut v: Vec<(String, u32)> = t.iter().map(|(n, w)| (n.clone(), *w as u32)).collect();
        v.sort();
        v
    };
    match call {
        Call::UpsertItems(items) | Call::BulkLoad(items) => {
            for i in items {
                m.items.insert(i.id.clone(), sorted(&i.tags));
            }
        }
        Call::DeleteItem(id) => {
            m.items.remove(id);
        }
        Call::UpsertUser(u) => {
            m.users.insert(u.id.clone(), Some(sorted(&u.tags)));
        }
        Call::DeleteUser(id) => {
            m.users.remove(id);
            m.events.remove(id);
            m.pruned.remove(id);
        }
        Call::Events(events) => {
            for e in events {
                m.users.entry(e.user.clone()).or_insert(None);
                m.events.entry(e.user.clone()).or_default().push(e.clone());
                m.counted.push(e.clone());
            }
        }
        Call::Prune(keep) => {
            // The store's clock: the newest event time ever recorded.
            let latest = m.counted.iter().map(|e| e.ts).max().unwrap_or(0);
            let horizon = latest.saturating_sub(*keep);
            for (user, events) in &mut m.events {
                let (old, kept): (Vec<Event>, Vec<Event>) =
                    events.drain(..).partition(|e| e.ts < horizon);
                *events = kept;
                if !old.is_empty() {
                    m.pruned.entry(user.clone()).or_default().extend(old);
                }
            }
        }
        Call::Flush | Call::Checkpoint | Call::Rebuild | Call::SaveDelta => {}
    }
}

/// Events the rounds' prunes took out of logs, so a run whose prunes took nothing is seen.
static PRUNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Opens that read the delta back from a delta file, so a run in which none did is seen.
static DELTA_FILE_OPENS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Bulk loads that returned, so a run in which none did is seen.
static BULK_LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn run(store: &Store, call: &Call) -> crate::error::Result<()> {
    match call {
        Call::UpsertItems(items) => store.upsert_items(items),
        Call::BulkLoad(items) => {
            store.bulk_load_items(items)?;
            BULK_LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        Call::DeleteItem(id) => store.delete_item(id).map(drop),
        Call::UpsertUser(u) => store.upsert_user(u),
        Call::DeleteUser(id) => store.delete_user(id).map(drop),
        Call::Events(events) => store.record_events(events).map(drop),
        Call::Flush => store.flush(),
        Call::Checkpoint => store.checkpoint(),
        Call::Rebuild => store.rebuild().map(drop),
        Call::SaveDelta => store.save_delta().map(drop),
        Call::Prune(keep) => {
            store.checkpoint()?;
            let r = store.prune_event_log(*keep)?;
            assert_eq!(r.journaled_chunks, 0, "a checkpoint empties the journal");
            PRUNED.fetch_add(r.events, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    }
}

/// Whether the store holds exactly `m`. `Err` names the first difference.
fn holds(store: &Store, m: &Model, ever: &Ids) -> Result<(), String> {
    for n in 1..=ever.next_item {
        let id = format!("i{n}");
        let got = store.get_item(&id).map(|i| {
            let mut t: Vec<(String, u32)> =
                i.tags.iter().map(|(n, w)| (n.clone(), *w as u32)).collect();
            t.sort();
            t
        });
        if got.as_ref() != m.items.get(&id) {
            return Err(format!(
                "item {id}: store {got:?}, model {:?}",
                m.items.get(&id)
            ));
        }
    }
    for n in 1..=ever.next_user {
        let id = format!("u{n}");
        let want = m.users.get(&id);
        let got = store.get_user(&id);
        match (want, &got) {
            (None, None) => continue,
            (Some(Some(t)), Some(u)) => {
                let mut have: Vec<(String, u32)> =
                    u.tags.iter().map(|(n, w)| (n.clone(), *w as u32)).collect();
                have.sort();
                if &have != t {
                    return Err(format!("user {id}: tags {have:?}, model {t:?}"));
                }
            }
            (Some(None), Some(_)) => {}
            _ => return Err(format!("user {id}: store {got:?}, model {want:?}")),
        }
        let mut want_events = m.events.get(&id).cloned().unwrap_or_default();
        want_events.sort_by_key(|e| e.ts);
        // The store names no item that is gone (documented on `Store::user_events`).
        for e in &mut want_events {
            if e.item.as_ref().is_some_and(|i| !m.items.contains_key(i)) {
                e.item = None;
            }
        }
        let got_events = store
            .user_events(&id)
            .map_err(|e| format!("user {id}: {e}"))?;
        if got_events != want_events {
            let first = got_events.iter().zip(&want_events).find(|(a, b)| a != b);
            return Err(format!(
                "user {id}: {} events in the store, {} in the model; first difference {first:?}",
                got_events.len(),
                want_events.len()
            ));
        }
    }
    // Item counters and basket supports, counted here from the model's events.
    let mut counts: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    let mut baskets: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &m.counted {
        let item = e.item.as_deref().unwrap_or_default();
        let c = counts.entry(item).or_default();
        match &e.kind {
            EventKind::View => c[0] += 1,
            EventKind::Cart => c[1] += 1,
            EventKind::Purchase { qty, .. } => {
                c[2] += 1;
                c[3] += u64::from(*qty);
            }
            _ => {}
        }
    }
    for e in m.events.values().chain(m.pruned.values()).flatten() {
        if let (EventKind::Purchase { .. }, Some(s), Some(item)) = (&e.kind, &e.session, &e.item) {
            baskets.entry(s).or_default().insert(item);
        }
    }
    for id in m.items.keys() {
        let a = store
            .item_activity(id)
            .ok_or_else(|| format!("item {id}: no activity"))?;
        let want = counts.get(id.as_str()).copied().unwrap_or_default();
        let got = [a.views, a.carts, a.orders, a.units];
        if got != want {
            return Err(format!(
                "item {id}: views/carts/orders/units {got:?}, model {want:?}"
            ));
        }
        let together = store
            .recommend(&Ask::new(Scenario::Together { item: id.clone() }).k(50))
            .map_err(|e| format!("together {id}: {e}"))?;
        for r in together {
            for reason in &r.reasons {
                if let Reason::BoughtTogether { with, support, .. } = reason {
                    let want = baskets
                        .values()
                        .filter(|b| b.contains(with.as_str()) && b.contains(r.id.as_str()))
                        .count();
                    if *support as usize != want {
                        return Err(format!(
                            "{} bought with {with}: support {support}, model {want}",
                            r.id
                        ));
                    }
                }
            }
        }
    }
    let report = store
        .verify_deep()
        .map_err(|e| format!("verify_deep: {e}"))?;
    if !report.healthy() {
        return Err(format!("verify_deep: {:?}", report.problems));
    }
    Ok(())
}

/// What the rounds went through, so a run that never lost power (or never kept an
/// unacknowledged write) is seen to be vacuous.
#[derive(Debug, Default)]
struct Seen {
    /// Power losses during calls.
    losses: usize,
    /// Of those, losses during an open.
    in_open: usize,
    /// Recoveries that kept calls after the last acknowledged one.
    kept_more: usize,
    /// Recoveries that kept exactly the acknowledged calls while later ones were lost.
    lost_unacknowledged: usize,
}

/// One round: `lives` power losses, `calls` calls each.
fn round(dir: &Path, seed: u64, lives: usize, calls: usize, seen: &mut Seen) {
    let mut rng = Rng(crate::splitmix::SplitMix64(seed));
    let durability = if seed.is_multiple_of(2) {
        Durability::Immediate
    } else {
        // Never flushed by a timer here: only flushes the store makes count.
        Durability::GroupCommit { ms: 3_600_000 }
    };
    let config = || {
        Config::default()
            .durability(durability)
            .checkpoint_events(1 + (seed % 7) as usize)
            .rebuild_threshold(Some(4 + (seed % 5) as usize))
            // The background upkeep folds always, sometimes, or (nearly) never saves instead.
            .fold_fraction([0.0, 0.5, 1.0][(seed % 3) as usize])
            // Flushes of the delta's index run between the writes too.
            .delta_index_rows(1 + (seed % 3) as usize)
    };
    let mut model = Model::default();
    let mut ids = Ids::default();
    let mut ts = 1_700_000_000u64;
    // Write and flush calls a life gets before the power goes: about 3 per store call.
    let mut disk = Disk::new(1 + rng.below(calls * 3) as u64, rng.next());
    for life in 0..lives {
        let store = match Store::open_on(dir.to_path_buf(), config(), disk.db()) {
            Ok(s) => s,
            Err(e) => {
                // The power went while opening: nothing was acknowledged, open again.
                assert!(disk.crashed(), "seed {seed} life {life}: open failed: {e}");
                seen.in_open += 1;
                disk = disk.recover(1 + rng.below(calls * 3) as u64, rng.next());
                continue;
            }
        };
        if super::lock(&store.inner.delta_saved).0 > 0 {
            DELTA_FILE_OPENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut states = vec![model.clone()];
        let mut durable = 0;
        for _ in 0..calls {
            ts += 10;
            let call = next_call(&mut rng, states.last().expect("a state"), &mut ids, ts);
            let mut next = states.last().expect("a state").clone();
            apply(&mut next, &call);
            states.push(next);
            if std::env::var_os("RECOSTORE_CRASH_TRACE").is_some() {
                eprintln!("life {life} call {}: {call:?}", states.len() - 1);
            }
            match run(&store, &call) {
                Ok(()) => {
                    if matches!(call, Call::Flush) || durability == Durability::Immediate {
                        durable = states.len() - 1;
                    }
                }
                Err(e) => {
                    assert!(disk.crashed(), "seed {seed}: {call:?} failed: {e}");
                    seen.losses += 1;
                    break;
                }
            }
        }
        drop(store);
        // Checked on a disk that keeps its power; the next life starts from what it holds.
        disk = disk.recover(u64::MAX, rng.next());
        let after = Store::open_on(dir.to_path_buf(), config(), disk.db());
        let after = match after {
            Ok(s) => s,
            Err(e) => panic!("seed {seed} life {life}: reopening after power loss: {e}"),
        };
        // The first state from the acknowledged ones on that the store holds.
        if std::env::var_os("RECOSTORE_CRASH_TRACE").is_some() {
            for (p, st) in states.iter().enumerate() {
                eprintln!("state {p}: {:?}", holds(&after, st, &ids).err());
            }
        }
        let found = (durable..states.len()).find(|&p| holds(&after, &states[p], &ids).is_ok());
        match found {
            Some(p) => {
                if p > durable {
                    seen.kept_more += 1;
                } else if states.len() - 1 > durable && states[durable] != states[states.len() - 1]
                {
                    seen.lost_unacknowledged += 1;
                }
                model = states[p].clone();
            }
            None => panic!(
                "seed {seed} life {life}: the store holds none of states {durable}..{}; \
                 against the last acknowledged: {}",
                states.len() - 1,
                holds(&after, &states[durable], &ids)
                    .err()
                    .unwrap_or_default()
            ),
        }
        drop(after);
        disk = disk.recover(1 + rng.below(calls * 3) as u64, rng.next());
    }
}

#[test]
fn every_acknowledged_write_survives_simulated_power_loss() {
    let rounds: u64 = std::env::var("RECOSTORE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let first: u64 = std::env::var("RECOSTORE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut seen = Seen::default();
    for seed in first..first + rounds {
        let tmp = tempfile::tempdir().expect("tempdir");
        round(tmp.path(), seed, 4, 30, &mut seen);
    }
    let pruned = PRUNED.load(std::sync::atomic::Ordering::Relaxed);
    let bulk = BULK_LOADS.load(std::sync::atomic::Ordering::Relaxed);
    let from_file = DELTA_FILE_OPENS.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{seen:?}; {pruned} events pruned from logs; {bulk} bulk loads returned; \
         {from_file} opens read a delta file"
    );
    assert!(pruned > 0, "no prune took an event out");
    assert!(from_file > 0, "no open read a delta file back");
    assert!(bulk > 0, "no bulk load returned");
    assert!(
        seen.losses > rounds as usize,
        "too few power losses to mean anything: {seen:?}"
    );
    assert!(
        seen.kept_more > 0 && seen.lost_unacknowledged > 0,
        "{seen:?}"
    );
}
